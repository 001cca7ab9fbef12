"""Notification destinations and texts (runner/notify.py) without sending: ${NAME} references,
the spec's `notify` checks, RUNNER_NOTIFY, and that no message ever quotes a URL."""

from __future__ import annotations

import logging

import pytest

from contract.config import Rung
from runner.notify import (ENV_VAR, entry_problem, env_entries, literal_warning, masked, phase_message, references,
                           resolve, session_end_message, session_targets, step_down_message)
from runner.spec import SpecError, parse_spec
from runner.status import Best, JobState, SessionRecord

SECRET = "T00000000/B00000000/Zq7hiddenZq7"
MARK = "Zq7"
SLACK = f"https://hooks.slack.com/services/{SECRET}"
STORE = "gs://bucket/runs"


def job_state(phase: str, reason: str | None = None) -> JobState:
    return JobState(job="j", phase=phase, reason=reason, epoch=2, max_epochs=5, step=40,
                    sessions=[SessionRecord(id="s1", host="vm", gpu="T4", started_at="2026-12-01T08:00:00+00:00")],
                    best={"evalai": Best(value=0.5123, step=38)})


def test_references_are_found_and_malformed_ones_refused_without_quoting_them() -> None:
    assert references("${SLACK_URL}") == ["SLACK_URL"]
    assert references("ntfy://ntfy.sh/${TOPIC}") == ["TOPIC"]
    assert references(SLACK) == []
    for bad in ("${xoxb-Zq7-1}", "${SLACK_URL", "x${}"):
        with pytest.raises(ValueError) as error:
            references(bad)
        assert MARK not in str(error.value) and "SLACK" not in str(error.value)


@pytest.mark.parametrize("entry", [SLACK, "json://127.0.0.1:8080/hook", "ntfy://my-topic", "${SLACK_URL}",
                                   "tgram://123456789:abcdefg_hijklmnop/12315544"])
def test_usable_entries(entry: str) -> None:
    assert entry_problem(entry) is None


@pytest.mark.parametrize(("entry", "said"), [
    ("slack://" + SECRET.replace("/", "-"), "scheme slack"),
    ("hooks.slack.com/services/" + SECRET, "not a URL apprise can send to"),
    ("", "is empty"),
    ("x" * 3000, "at most 2000"),
])
def test_unusable_entries_are_named_with_the_fix_and_never_quoted(entry: str, said: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    problem = entry_problem(entry)
    assert problem is not None and said in problem
    assert MARK not in problem
    assert not [r for r in caplog.records if r.name.startswith("apprise")]  # apprise logs the URLs it refuses


def test_a_bad_spec_entry_names_notify_i_and_quotes_no_url() -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({"name": "j", "notify": ["${SLACK_URL}", "nonsense-" + SECRET]})
    assert [p.path for p in error.value.problems] == ["notify[1]"]
    assert MARK not in str(error.value)


@pytest.mark.parametrize("notify", [SLACK, {"url": SLACK}, [{"url": SLACK}], [SLACK] * 17])
def test_a_spec_notify_of_the_wrong_shape_is_refused_without_quoting_it(notify: object) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({"name": "j", "notify": notify})
    assert error.value.problems[0].path.startswith("notify")
    assert MARK not in str(error.value)


def test_literal_entries_are_warned_about_and_hidden_in_print() -> None:
    assert literal_warning(["${SLACK_URL}"]) is None
    warning = literal_warning(["${A}", SLACK])
    assert warning is not None and "notify[1] (https)" in warning and MARK not in warning
    assert "\n" not in warning
    assert masked("${SLACK_URL}") == "${SLACK_URL}"
    assert MARK not in masked(SLACK) and MARK not in masked("json://host/${T}/Zq7")


def test_runner_notify_splits_on_whitespace_and_commas_but_keeps_a_url_s_own_commas() -> None:
    mail = "mailto://user:pw@example.org?to=a@example.org,b@example.org"
    env = {ENV_VAR: f" {SLACK},ntfy://topic \n {mail}, json://h/p ,"}
    assert env_entries(env) == [SLACK, "ntfy://topic", mail, "json://h/p"]
    assert env_entries({}) == []


def test_resolve_expands_references_names_services_and_sends_once_per_url() -> None:
    env = {"SLACK_URL": SLACK, "BROKEN": "nonsense-" + SECRET}
    targets, problems = resolve([("notify[0]", "${SLACK_URL}"), ("notify[1]", SLACK), ("notify[2]", "${UNSET_X}"),
                                 ("notify[3]", "${BROKEN}")], env)
    assert [(t.where, t.service, t.url) for t in targets] == [("notify[0]", "slack", SLACK)]
    assert len(problems) == 2
    assert problems[0].startswith("notify[2]: ${UNSET_X} is not set")
    assert problems[1].startswith("notify[3]: the value of ${BROKEN} is not a URL")
    assert MARK not in " ".join(problems) + repr(targets)


def test_a_session_sends_to_the_spec_s_entries_and_runner_notify_s() -> None:
    targets, problems = session_targets(["${SLACK_URL}"], {"SLACK_URL": SLACK, ENV_VAR: "ntfy://topic"})
    assert problems == [] and [(t.where, t.service) for t in targets] == [("notify[0]", "slack"),
                                                                          ("RUNNER_NOTIFY[0]", "ntfy")]


def test_phase_messages_say_what_to_do() -> None:
    done = phase_message(job_state("done", "max_epochs"), "done", STORE)
    assert (done.title, done.kind) == ("j: done (max_epochs)", "success")
    assert "best evalai: 0.5123 at step 38" in done.body and f"runner pull j --store {STORE}" in done.body
    failed = phase_message(job_state("failed", "data preparation failed"), "failed", STORE)
    assert failed.kind == "failure" and "--supervisor" in failed.body
    paused = phase_message(job_state("paused", "session limit"), "paused", STORE)
    assert paused.title == "j: paused (session limit)" and f"runner attach j --store {STORE}" in paused.body
    resumed = phase_message(job_state("running"), "running", STORE, previous="paused")
    assert "was paused" in resumed.body and "vm (T4)" in resumed.body


def test_the_session_end_message() -> None:
    taken = session_end_message(job_state("running"), STORE, taken_over=True, not_uploaded=[], workdir="/w")
    assert taken is not None and taken.title == "j: taken over" and "s1 on vm" in taken.body
    left = session_end_message(job_state("done"), STORE, taken_over=False, not_uploaded=["a.pt", "b.pt"],
                               workdir="/w")
    assert left is not None and "2 file(s)" in left.title and "--workdir /w" in left.body
    for phase in ("done", "failed", "paused"):
        said = session_end_message(job_state(phase), STORE, taken_over=False, not_uploaded=[], workdir="/w")
        assert said is not None and said.title.startswith(f"j: {phase}")
    assert session_end_message(job_state("cancelled"), STORE, taken_over=False, not_uploaded=[], workdir="/w") is None


def test_the_step_down_message_names_both_rungs() -> None:
    ladder = [Rung(batch_size=4, input_size=(256, 144)), Rung(batch_size=2, input_size=(256, 144), accumulation=2)]
    message = step_down_message("j", "Tesla T4", 0, ladder, 1)
    assert message.title == "j: out of memory, rung 0 -> 1"
    assert "rung 0 (batch 4, 256x144)" in message.body and "rung 1 (batch 2, 256x144, accum 2)" in message.body
