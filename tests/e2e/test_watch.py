"""Notifications through the real CLI: a demo job that steps down after an OOM and finishes tells
a webhook on 127.0.0.1 both, and `runner watch --once` (as cron runs it) sends one message when a
job's heartbeat goes stale and none when nothing changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from contract.codes import FAULT_OOM_ABOVE
from runner.spec import dump_spec, parse_spec
from runner.status import JobState, SessionRecord
from runner.store import Store
from tests.integration.test_notify import MARK, Webhook

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
RUNNER = [sys.executable, "-m", "runner"]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def runner(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
           ) -> subprocess.CompletedProcess[str]:
    full_env = {**{k: v for k, v in os.environ.items() if k != "RUNNER_NOTIFY"}, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*RUNNER, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def demo_spec(tmp_path: Path, notify: list[str]) -> Path:
    """jobs/demo.yaml with its store and data in tmp_path, one epoch, and `notify`."""
    spec = yaml.safe_load((ROOT / "jobs" / "demo.yaml").read_text())
    spec["store"] = str(tmp_path / "store")
    spec["data"].update(root=str(tmp_path / "data"), frames=16, valid_frames=8)
    spec["train"]["max_epochs"] = 1
    spec["notify"] = notify
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_demo_job_reports_its_oom_step_down_and_done(tmp_path: Path, webhook: Webhook) -> None:
    spec = demo_spec(tmp_path, ["${TEST_HOOK_URL}"])
    batch, (width, height) = 4, (256, 144)  # rung 0 of the demo; rung 1 halves the batch and fits
    env = {"TEST_HOOK_URL": webhook.url(), FAULT_OOM_ABOVE: str(batch * width * height - 1)}
    result = runner("submit", str(spec), "--workdir", str(tmp_path / "work"), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    titles = [body["title"] for _, body in webhook.wait_for(2)]
    assert titles == ["demo: out of memory, rung 0 -> 1", "demo: done (max_epochs)"]
    done = webhook.received[1][1]
    assert done["type"] == "success" and "runner pull demo --store" in done["message"]
    stored = Store(str(tmp_path / "store")).job("demo").get_bytes("spec.yaml") or b""
    assert yaml.safe_load(stored)["notify"] == ["${TEST_HOOK_URL}"]  # the reference, never the URL
    log = (tmp_path / "work" / "supervisor.log").read_text()
    assert "notifications go to: json (notify[0])" in log
    assert MARK not in log + result.stdout + result.stderr and str(webhook.port) not in log


def test_validate_warns_about_a_literal_url_and_never_prints_it(tmp_path: Path, webhook: Webhook) -> None:
    spec = demo_spec(tmp_path, [webhook.url()])
    result = runner("validate", str(spec), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: notify[0] (json) is a literal URL: stored with the spec" in result.stderr
    assert "<json URL, hidden>" in result.stdout
    assert MARK not in result.stdout + result.stderr
    bad = demo_spec(tmp_path, [f"jsn://127.0.0.1/{MARK}"])
    refused = runner("validate", str(bad), cwd=tmp_path)
    assert refused.returncode == 2 and "notify[0]: is not a URL apprise can send to (scheme jsn)" in refused.stderr
    assert MARK not in refused.stdout + refused.stderr


def write_job(store: str, job: str, state: JobState | bytes) -> None:
    """A job as a session leaves it in the store: its spec and its state.json."""
    js = Store(store).job(job)
    js.put_bytes("spec.yaml", dump_spec(parse_spec({"name": job, "store": store})).encode())
    js.put_bytes("state.json", state if isinstance(state, bytes) else state.model_dump_json().encode())


def running(job: str, heartbeat: datetime) -> JobState:
    return JobState(job=job, phase="running", heartbeat_at=heartbeat.isoformat(), sync_every_s=5, max_epochs=3,
                    epoch=1, step=12, sessions=[SessionRecord(id="s1", host="colab-vm", gpu="Tesla T4",
                                                              started_at=heartbeat.isoformat())])


def test_watch_once_sends_one_message_per_change(tmp_path: Path, webhook: Webhook) -> None:
    store = str(tmp_path / "store")
    now = datetime.now(timezone.utc)
    write_job(store, "alive", running("alive", now + timedelta(hours=1)))  # fresh for the whole test
    write_job(store, "cut", running("cut", now + timedelta(hours=1)))
    write_job(store, "broken", b"{not json")
    memory = tmp_path / "watch.json"
    env = {"TEST_HOOK_URL": webhook.url()}
    args = ("watch", "--store", store, "--notify", "${TEST_HOOK_URL}", "--once", "--state", str(memory))

    first = runner(*args, cwd=tmp_path, env=env)  # records the phases: nothing is news yet
    assert first.returncode == 0, first.stdout + first.stderr
    assert "broken/state.json" in first.stderr and "skipped, watching the others" in first.stderr
    assert len(first.stderr.splitlines()) == 1 and "sent:" not in first.stdout

    write_job(store, "cut", running("cut", now - timedelta(hours=1)))  # its session is gone
    second = runner(*args, cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines() == ["sent: cut: interrupted"]

    third = runner(*args, cwd=tmp_path, env=env)  # nothing changed since
    assert third.returncode == 0 and "sent:" not in third.stdout, third.stdout + third.stderr

    [(_, body)] = webhook.received
    assert body["title"] == "cut: interrupted" and "was running" in body["message"]
    assert json.loads(memory.read_text())["stores"][store] == {"alive": "running", "cut": "interrupted"}
    assert MARK not in first.stdout + first.stderr + second.stdout + second.stderr + memory.read_text()


def test_watch_without_a_url_says_how_to_give_one(tmp_path: Path) -> None:
    result = runner("watch", "--store", str(tmp_path), "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "no notification URL: pass --notify URL (e.g. --notify '${SLACK_URL}' with the URL in that variable) or "
        "set RUNNER_NOTIFY"]


def test_watch_runs_until_ctrl_c_and_then_exits_0(tmp_path: Path, webhook: Webhook) -> None:
    store = str(tmp_path / "store")
    write_job(store, "alive", running("alive", datetime.now(timezone.utc) + timedelta(hours=1)))
    memory = tmp_path / "watch.json"
    env = {**os.environ, "RUNNER_NOTIFY": webhook.url()}
    proc = subprocess.Popen([*RUNNER, "watch", "--store", store, "--every", "1", "--state", str(memory)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not memory.exists():  # the first look is done: it is in its loop
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr
