"""Sending for real (runner/notify.py): apprise's json:// to an HTTP server on 127.0.0.1 as the
webhook, a service that never answers, and the log text, which must never carry a URL."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runner.notify import Message, Notifier, send, session_targets

MARK = "Zq7token"  # in every URL's path: a log line that carries it carries a URL


class Webhook:
    """A webhook on 127.0.0.1: records each JSON POST as (path, body) and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[str, dict]] = []
        self._arrived = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with hook._arrived:
                    hook.received.append((self.path, body))
                    hook._arrived.notify_all()
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet: the test reads what arrived, not the server's access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = f"hook/{MARK}") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def wait_for(self, count: int, timeout: float = 60) -> list[tuple[str, dict]]:
        """The first `count` POSTs, once they have arrived (a hang guard, not a timing check)."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A json:// URL whose server accepts the connection and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"json://127.0.0.1:{listener.getsockname()[1]}/silent/{MARK}"


@pytest.fixture
def runner_log() -> Iterator[io.StringIO]:
    """Everything that reaches the root logger's handlers, as a supervisor's log file gets it."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield text
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_send_posts_the_message_to_the_webhook(webhook: Webhook) -> None:
    targets, problems = session_targets([webhook.url()], {})
    assert problems == [] and [t.service for t in targets] == ["json"]
    assert send(targets, Message("demo: done", "job demo: done\nepoch 3/3", "success")) == []
    [(path, body)] = webhook.wait_for(1)
    assert path == f"/hook/{MARK}"
    assert (body["title"], body["message"], body["type"]) == ("demo: done", "job demo: done\nepoch 3/3", "success")


def test_a_reference_is_expanded_from_the_environment_at_send_time(webhook: Webhook,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_URL", webhook.url())
    notifier = Notifier.for_session(["${TEST_HOOK_URL}"], os.environ)
    notifier.send(Message("a", "first"))
    notifier.send(Message("b", "second"))
    notifier.close()
    assert [body["title"] for _, body in webhook.wait_for(2)] == ["a", "b"]  # in the order sent


def test_a_service_that_never_answers_is_one_warning_and_no_exception(silent_url: str, webhook: Webhook,
                                                                      runner_log: io.StringIO) -> None:
    targets, _ = session_targets([silent_url, webhook.url()], {})
    notifier = Notifier(targets, timeout_s=1.0)
    notifier.send(Message("demo: failed", "job demo: failed", "failure"))
    notifier.close()
    assert len(webhook.wait_for(1)) == 1  # the other destination still got it
    warnings = [line for line in runner_log.getvalue().splitlines() if "not sent" in line]
    assert warnings == ["notification to json (notify[0]) not sent: refused, unreachable or timed out"]


def test_an_error_reply_is_one_warning(runner_log: io.StringIO) -> None:
    refusing = Webhook(status=500)
    try:
        notifier = Notifier(session_targets([refusing.url()], {})[0], timeout_s=5.0)
        notifier.send(Message("t", "b"))
        notifier.close()
        refusing.wait_for(1)
    finally:
        refusing.close()
    assert "notification to json (notify[0]) not sent" in runner_log.getvalue()


def test_no_url_reaches_the_log(webhook: Webhook, silent_url: str, runner_log: io.StringIO) -> None:
    """Configuration problems, deliveries and failures, with every logger at DEBUG: the log names
    services and where they were configured, never a URL (nor its host and port)."""
    env = {"HOOK": webhook.url(), "BAD": f"nonsense://{MARK}", "RUNNER_NOTIFY": f"{silent_url} foo://{MARK}"}
    notifier = Notifier.for_session(["${HOOK}", "${BAD}", "${UNSET_HOOK}", f"json://127.0.0.1:1/{MARK}"], env)
    notifier.timeout_s = 1.0
    notifier.send(Message("demo: paused", "job demo: paused"))
    notifier.close()
    webhook.wait_for(1)
    text = runner_log.getvalue()
    assert "notifications go to: json (notify[0])" in text
    assert "notify[1]: the value of ${BAD} is not a URL" in text and "${UNSET_HOOK} is not set" in text
    assert "RUNNER_NOTIFY[1] is not a URL" in text
    assert text.count("not sent") == 2  # the silent server and port 1
    assert MARK not in text and "127.0.0.1" not in text and str(webhook.port) not in text
