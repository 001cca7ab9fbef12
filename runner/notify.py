"""Notifications (issue 13): what a message about a job says, and sending it with apprise.

Where messages go is a list of apprise URLs (Slack, Discord, Telegram, ntfy, e-mail, json://
webhooks...): the spec's `notify:` entries, the `RUNNER_NOTIFY` variable, or `runner watch
--notify`. Such a URL is a credential (a bot token, a webhook key) and the spec travels to the
store as `spec.yaml`, so an entry may be a `${NAME}` reference, expanded from the environment of
the machine that sends, and nothing here ever writes a URL into a log, a status or a message:
a destination is named by its service alone ("slack", "json") and by where it was configured
("notify[0]"). apprise's own logger is cut off for the same reason: its lines can quote URLs.

Sending never holds up training and never fails it: every delivery runs on a thread of its own
and is given up after a bounded time, and a failure is one warning line naming the service.
apprise is imported on first use, so commands that send nothing do not pay for loading it.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Literal

from contract.config import Rung
from runner.status import ALIVE, JobState, shown_epoch

log = logging.getLogger("runner")

# apprise logs the URLs it parses and posts to: it makes no log record at all (a level above
# every level), and none would reach the runner's handlers (no propagation).
_apprise_log = logging.getLogger("apprise")
_apprise_log.setLevel(logging.CRITICAL + 1)
_apprise_log.propagate = False
THREAD_PREFIX = "notify-"  # the threads that deliver messages


class _NotFromDeliveries(logging.Filter):
    """Drops the records a delivery thread makes in the HTTP library apprise's services use:
    urllib3 logs request paths ("POST /services/T0/B0/KEY"), which are webhook keys. Other
    threads' records (a store's requests) pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName.startswith(THREAD_PREFIX)


# A logger's filters do not see its children's records, so each urllib3 logger gets one.
for _name in ("urllib3", "urllib3.connection", "urllib3.connectionpool", "urllib3.poolmanager", "urllib3.response",
              "urllib3.util.retry", "urllib3.contrib.pyopenssl", "urllib3.http2.connection"):
    logging.getLogger(_name).addFilter(_NotFromDeliveries())

ENV_VAR = "RUNNER_NOTIFY"  # more destinations, whitespace or comma separated, never stored anywhere
SEND_TIMEOUT_S = 10.0  # one delivery to one service; given up after that, with one warning line
CONNECT_TIMEOUT_S = 5.0
CLOSE_WAIT_S = 30.0  # how long a session that ends waits for its last messages to go out
MAX_ENTRIES = 16
MAX_ENTRY_CHARS = 2000

REFERENCE = re.compile(r"\$\{([^}]*)\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,15})://")
# RUNNER_NOTIFY separators: whitespace, and a comma that starts the next URL (apprise URLs may
# hold commas of their own, e.g. several recipients in `mailto://...?to=a@x.org,b@x.org`).
_SEPARATOR = re.compile(r"\s+|,(?=\s*(?:[A-Za-z][A-Za-z0-9+.-]*://|\$\{))")
HOW = ("write it as apprise documents it for the service (e.g. slack://TOKEN_A/TOKEN_B/TOKEN_C, "
       "ntfy://TOPIC, json://HOST/PATH; https://github.com/caronc/apprise/wiki)")
WHAT = "an apprise URL (slack://..., ntfy://..., json://...) or a ${NAME} reference to an environment variable"

Kind = Literal["info", "success", "warning", "failure"]  # apprise's message types (a colour in Slack)


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    kind: Kind = "info"


# -- what a message says (pure) ------------------------------------------------------------------

# Phases a message quotes the reason of (why it paused, failed, finished).
_WITH_REASON = ("paused", "failed", "done", "cancelled")
_KINDS: dict[str, Kind] = {"done": "success", "failed": "failure", "interrupted": "warning"}


def phase_message(state: JobState, phase: str, store: str, previous: str | None = None) -> Message:
    """What a job's (effective) `phase` means and what to do about it: the supervisor says it when
    a session ends, `runner watch` when it sees a phase change."""
    job = state.job
    reason = f" ({state.reason})" if state.reason and phase in _WITH_REASON else ""
    was = f", was {previous}" if previous else ""
    lines = [f"job {job}: {phase}{reason}{was}",
             f"epoch {shown_epoch(state)}/{state.max_epochs}, step {state.step}"]
    session = state.sessions[-1] if state.sessions else None
    if phase == "interrupted":
        where = f" from session {session.id} on {session.host}" if session else ""
        lines.append(f"no heartbeat since {state.heartbeat_at or 'the start'}{where}: the session is gone "
                     "(cut off or killed)")
        lines.append(f"resume: runner attach {job} --store {store}")
    elif phase == "paused":
        lines.append(f"resume: runner attach {job} --store {store}")
    elif phase == "failed":
        lines.append(f"log: runner logs {job} --store {store} --supervisor")
    elif phase == "done":
        lines += [f"best {metric}: {best.value:.4g} at step {best.step}" for metric, best in sorted(state.best.items())]
        lines.append(f"weights: runner pull {job} --store {store}")
    elif phase in ALIVE and session:
        lines.append(f"session {session.id} on {session.host} ({session.gpu})")
    return Message(f"{job}: {phase}{reason}", "\n".join(lines), _KINDS.get(phase, "info"))


def session_end_message(state: JobState, store: str, *, taken_over: bool, not_uploaded: Sequence[str],
                        workdir: str) -> Message | None:
    """What the supervisor says when its session ends: taken over, stopped with files only on this
    machine, or the job's phase (done, failed, paused). None for a cancelled job: whoever cancelled
    it knows."""
    job = state.job
    session = state.sessions[-1] if state.sessions else None
    who = f"session {session.id} on {session.host}" if session else "this session"
    if taken_over:
        return Message(f"{job}: taken over", f"job {job}: {who} was taken over by another session; it stopped and "
                                             f"wrote nothing more. The new one: runner status {job} --store {store}",
                       "warning")
    if not_uploaded:
        return Message(f"{job}: stopped, {len(not_uploaded)} file(s) not in the store",
                       f"job {job}: {who} stopped with {len(not_uploaded)} file(s) only in {workdir}: the store stayed "
                       f"unreachable. On that machine: runner attach {job} --store {store} --workdir {workdir}",
                       "warning")
    if state.phase in ("done", "failed", "paused"):
        return phase_message(state, state.phase, store)
    return None


def step_down_message(job: str, gpu: str, left: int, ladder: Sequence[Rung], to: int) -> Message:
    """An OOM that moved the job one rung down the ladder: from rung `left` to rung `to`."""
    return Message(f"{job}: out of memory, rung {left} -> {to}",
                   f"job {job}: CUDA out of memory on {gpu} at rung {left} ({ladder[left].describe()}); "
                   f"going on at rung {to} ({ladder[to].describe()}) from the newest checkpoint", "warning")


# -- destinations --------------------------------------------------------------------------------

def _apprise() -> ModuleType:
    import apprise

    return apprise


def _plugin(url: str) -> object | None:
    """apprise's sender for `url`, or None when apprise cannot parse it. Persistent storage stays
    in memory: notifying writes nothing to this machine's disk."""
    apprise = _apprise()
    return apprise.Apprise.instantiate(url, asset=apprise.AppriseAsset(storage_mode="memory"))


def scheme(text: str) -> str | None:
    """The scheme an entry starts with ("slack", "json"): never secret, so messages may name it."""
    match = SCHEME.match(text.strip())
    return match.group(1).lower() if match else None


def service(plugin: object, url: str) -> str:
    """The service a URL sends to, as apprise names it ("slack" for https://hooks.slack.com/...)."""
    name = getattr(plugin, "service_name", None)
    return str(name).lower() if name else scheme(url) or "unknown"


def references(entry: str) -> list[str]:
    """The environment variables an entry refers to as ${NAME}; ValueError for a malformed one
    (the message never repeats the entry: what is between the braces may be a pasted secret)."""
    names = []
    for match in REFERENCE.finditer(entry):
        if not ENV_NAME.fullmatch(match.group(1)):
            raise ValueError("has a ${...} that is not a variable name: write ${NAME} with letters, digits and '_'")
        names.append(match.group(1))
    if "${" in REFERENCE.sub("", entry):
        raise ValueError("has a '${' without its closing '}': write ${NAME}")
    return names


def entry_problem(entry: str) -> str | None:
    """Why a spec's `notify` entry cannot be used, phrased with the fix; None when it can. A
    reference is only checked for its form: its value is on the machine that sends."""
    if not entry.strip():
        return f"is empty; give {WHAT}"
    if len(entry) > MAX_ENTRY_CHARS:
        return f"is {len(entry)} characters long; an entry may be at most {MAX_ENTRY_CHARS}"
    try:
        if references(entry):
            return None
    except ValueError as error:
        return str(error)
    if _plugin(entry.strip()) is None:
        named = f" (scheme {scheme(entry)})" if scheme(entry) else ""
        return (f"is not a URL apprise can send to{named}; {HOW}, or keep the URL in an environment variable "
                "and write ${NAME}")
    return None


def is_literal(entry: str) -> bool:
    """An entry with no ${NAME} in it: the URL itself, stored with the spec."""
    return "${" not in entry


def literal_warning(entries: Sequence[str]) -> str | None:
    """One line for `runner validate`/`submit` when the spec holds URLs themselves: allowed, since
    a private store may be fine for them, but whoever can read the store can read them."""
    literal = [f"notify[{i}] ({scheme(e) or 'URL'})" for i, e in enumerate(entries) if is_literal(e)]
    if not literal:
        return None
    return (f"{', '.join(literal)} {'is a literal URL' if len(literal) == 1 else 'are literal URLs'}: stored with "
            "the spec (spec.yaml in the store), readable by anyone who can read the store; prefer '${NAME}' with "
            f"the URL in an environment variable, or set {ENV_VAR}")


def masked(entry: str) -> str:
    """An entry as commands may print it: references as written, anything with a literal part
    hidden behind its scheme."""
    if not REFERENCE.sub("", entry).strip():
        return entry
    return f"<{scheme(entry) or 'notification'} URL, hidden>"


def env_entries(env: Mapping[str, str]) -> list[str]:
    """The destinations in RUNNER_NOTIFY."""
    return [part.strip(",") for part in _SEPARATOR.split(env.get(ENV_VAR, "")) if part.strip(",")]


@dataclass(frozen=True)
class Target:
    """A destination ready to send to. `where` says where it was configured ("notify[0]"), for
    messages about it; the URL is kept out of the repr."""

    where: str
    service: str
    url: str = field(repr=False)


def resolve(entries: Sequence[tuple[str, str]], env: Mapping[str, str]) -> tuple[list[Target], list[str]]:
    """(where, entry) pairs made targets, ${NAME}s expanded from `env`; and one line per entry
    that cannot be used. The same URL configured twice is one target: one message per destination."""
    targets: list[Target] = []
    problems: list[str] = []
    for where, entry in entries:
        try:
            names = references(entry)
        except ValueError as error:
            problems.append(f"{where} {error}")
            continue
        unset = [name for name in names if not env.get(name)]
        if unset:
            problems.append(f"{where}: ${{{unset[0]}}} is not set on this machine; set it to the URL (on Colab "
                            "from a secret: os.environ[...] = userdata.get(...)) before starting")
            continue
        url = REFERENCE.sub(lambda m: env[m.group(1)], entry).strip()
        plugin = _plugin(url)
        if plugin is None:
            what = f"{where}: the value of ${{{names[0]}}}" if names else where
            named = f" (scheme {scheme(url)})" if scheme(url) else ""
            problems.append(f"{what} is not a URL apprise can send to{named}; {HOW}")
            continue
        if url not in (t.url for t in targets):
            targets.append(Target(where, service(plugin, url), url))
    return targets, problems


def session_targets(spec_entries: Sequence[str], env: Mapping[str, str]) -> tuple[list[Target], list[str]]:
    """A session's destinations: the spec's `notify` entries and RUNNER_NOTIFY's."""
    entries = [(f"notify[{i}]", e) for i, e in enumerate(spec_entries)]
    entries += [(f"{ENV_VAR}[{i}]", e) for i, e in enumerate(env_entries(env))]
    return resolve(entries, env)


# -- sending -------------------------------------------------------------------------------------

def _deliver(target: Target, message: Message, timeout_s: float, outcome: dict[str, bool]) -> None:
    apprise = _apprise()
    plugin = _plugin(target.url)
    try:
        plugin.socket_connect_timeout = min(CONNECT_TIMEOUT_S, timeout_s)  # type: ignore[union-attr]
        plugin.socket_read_timeout = timeout_s  # type: ignore[union-attr]
        outcome[target.where] = bool(plugin.notify(body=message.body, title=message.title,  # type: ignore[union-attr]
                                                   notify_type=apprise.NotifyType(message.kind)))
    except Exception:  # a plugin's bug is a failed delivery, never the caller's exception
        outcome[target.where] = False


def send(targets: Sequence[Target], message: Message, timeout_s: float = SEND_TIMEOUT_S) -> list[str]:
    """Send `message` to every target at once; returns one line per target it did not reach
    (naming the service only). Returns within about `timeout_s` whatever the services do: a
    delivery still hanging then is left to finish on its own daemon thread."""
    outcome: dict[str, bool] = {}
    threads = [threading.Thread(target=_deliver, args=(t, message, timeout_s, outcome), daemon=True,
                                name=f"{THREAD_PREFIX}{t.service}") for t in targets]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout_s + 1.0
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    failures = []
    for target in targets:
        if target.where not in outcome:
            failures.append(f"notification to {target.service} ({target.where}) not sent: no answer within "
                            f"{timeout_s:g} s")
        elif not outcome[target.where]:
            failures.append(f"notification to {target.service} ({target.where}) not sent: refused, unreachable or "
                            "timed out")
    return failures


class Notifier:
    """A session's sender: `send` queues and returns at once; one background thread delivers in
    order (an OOM step-down before the `done` that follows it) and logs a failure as one warning."""

    def __init__(self, targets: Sequence[Target], timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.targets = list(targets)
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_session(cls, spec_entries: Sequence[str], env: Mapping[str, str]) -> Notifier:
        """The spec's and RUNNER_NOTIFY's destinations; an entry that cannot be used is one warning
        line (where it was configured and why) and the others still get messages."""
        targets, problems = session_targets(spec_entries, env)
        for problem in problems:
            log.warning("notifications: %s; no messages go there", problem)
        if targets:
            log.info("notifications go to: %s", ", ".join(f"{t.service} ({t.where})" for t in targets))
        return cls(targets)

    def send(self, message: Message) -> None:
        if not self.targets:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="notifier")
            self._thread.start()
        self._queue.put(message)

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            for failure in send(self.targets, message, self.timeout_s):
                log.warning("%s", failure)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Let queued messages go out, waiting at most `wait_s`: the session's last message (done,
        failed) is sent before the process exits, and a dead service cannot keep it alive."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(wait_s)
        if self._thread.is_alive():
            log.warning("notifications: still sending after %.0f s; giving up on the rest", wait_s)
