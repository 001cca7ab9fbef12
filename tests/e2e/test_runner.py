"""The runner end to end: the real `runner` CLI, real supervisor and trainer processes, a real store.

Every test runs against a local store and against gcsfs on the GCS emulator (`store_url`).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch
import yaml

from runner.store import Store
from trainer.inference.weights import read_weights

pytestmark = pytest.mark.e2e

RUNNER = [sys.executable, "-m", "runner"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic frames rendered once for the module; every job prepares from this root."""
    root = tmp_path_factory.mktemp("frames")
    subprocess.run([sys.executable, "-m", "trainer", "prepare", "--source", "synthetic", "--root", str(root),
                    "--frames", "8", "--valid-frames", "4", "--seed", "3"], check=True, capture_output=True)
    return root


def write_spec(path: Path, name: str, store: str, data_root: Path, **sections: dict) -> Path:
    spec = {
        "name": name,
        "store": store,
        "data": {"source": "synthetic", "root": str(data_root), "frames": 8, "valid_frames": 4, "seed": 3,
                 "num_workers": 0},
        "model": {"arch": "hrnet_w18_small"},
        # early stopping off in effect: these jobs train to max_epochs whatever the loss curve does (a
        # change to the model's init or the keypoints moves it; test_goodput counts the steps)
        "train": {"batch_size": 4, "input_size": [128, 72], "max_epochs": 3, "early_stopping_epochs": 100000,
                  "lr": 1e-3, "amp": False, "device": "cpu", "deterministic": True, "seed": 7},
        "oom": {"batch_sizes": [4, 2], "input_sizes": [[128, 72], [96, 64]]},
        "checkpoint": {"every_minutes": 1e-6, "keep_last": 20},
        "sync": {"every_seconds": 1.0},  # the least a spec allows: a lease of 3 s
    }
    for section, values in sections.items():
        spec.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(spec))
    return path


def runner(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*RUNNER, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def start(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([*RUNNER, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def state_of(store: str, job: str) -> dict:
    data = Store(store).job(job).get_bytes("state.json")
    return json.loads(data) if data else {}


def remote_steps(store: str, job: str) -> list[int]:
    names = Store(store).job(job).list("checkpoints")
    return sorted(int(n[5:14]) for n in names if n.endswith(".json"))


def wait_until(condition, timeout: float = 300, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def store_retry_budget_s() -> float:
    """The longest one store call keeps retrying under `Store`'s default policy."""
    defaults = {name: p.default for name, p in inspect.signature(Store).parameters.items()}
    return sum(min(defaults["max_backoff_s"], defaults["backoff_s"] * 2 ** k) for k in range(defaults["retries"] - 1))


def final_weights(store: str, job: str, tmp: Path) -> dict[str, torch.Tensor]:
    local = tmp / f"{job}-final.pt"
    assert Store(store).job(job).get_file("weights/final.pt", local)
    return read_weights(local).state_dict


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the supervisor and its trainer: a Colab session cut off."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(data_root: Path, tmp_path_factory: pytest.TempPathFactory, request) -> tuple[str, str]:
    """One job run start to finish on a local store: the reference for exact-resume checks."""
    tmp = tmp_path_factory.mktemp("reference")
    store = str(tmp / "store")
    spec = write_spec(tmp / "job.yaml", "reference", store, data_root)
    result = runner("submit", str(spec), "--workdir", str(tmp / "work"), cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    return store, "reference"


def test_submit_runs_to_done(uninterrupted: tuple[str, str]) -> None:
    store, job = uninterrupted
    state = state_of(store, job)
    assert state["phase"] == "done" and state["reason"] == "max_epochs"
    assert state["epoch"] == 3 and state["last_checkpoint"]["token"] >= 1
    assert state["sessions"][0]["end_reason"] == "done"
    js = Store(store).job(job)
    manifests = [json.loads(js.get_bytes(f"checkpoints/{n}")) for n in js.list("checkpoints") if n.endswith(".json")]
    assert manifests and all(m["token"] >= 1 and m["size"] > 0 for m in manifests)
    for m in manifests:
        assert js.size(f"checkpoints/step-{m['step']:09d}.pt") == m["size"]
    assert js.exists("weights/final.pt") and js.exists("spec.yaml")
    assert any(n.startswith("trainer.log.") for s in js.list_dirs("logs") for n in js.list(f"logs/{s}"))


def test_status_and_logs_read_the_store(uninterrupted: tuple[str, str], tmp_path: Path) -> None:
    store, job = uninterrupted
    shown = runner("status", job, "--store", store, "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["phase"] == "done" and document["job"] == job
    table = runner("status", "--store", store, cwd=tmp_path)
    assert job in table.stdout and "done" in table.stdout
    assert job in runner("ls", "--store", store, cwd=tmp_path).stdout
    log = runner("logs", job, "--store", store, cwd=tmp_path)
    assert "samples/s" in log.stdout and "training finished" in log.stdout


def test_kill9_then_attach_from_a_fresh_workdir_resumes_exactly(
        data_root: Path, uninterrupted: tuple[str, str], store_url: str, tmp_path: Path) -> None:
    reference_store, reference_job = uninterrupted
    spec = write_spec(tmp_path / "job.yaml", "resumed", store_url, data_root)
    proc = start("submit", str(spec), "--workdir", str(tmp_path / "work-a"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store_url, "resumed")) >= 3, what="three uploaded checkpoints")
    kill_group(proc)
    shutil.rmtree(tmp_path / "work-a")
    before = state_of(store_url, "resumed")
    assert before["phase"] == "running"
    # the dead session's lease outlives it by 3 sync intervals: attach says so, then works
    result = runner("attach", "resumed", "--store", store_url, "--workdir", str(tmp_path / "work-b"), cwd=tmp_path)
    if result.returncode != 0:
        assert "holds this job" in result.stderr and "--take-over" in result.stderr
        time.sleep(3.5)  # a lease lives 3 sync intervals of 1 s
        result = runner("attach", "resumed", "--store", store_url, "--workdir", str(tmp_path / "work-b"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(store_url, "resumed")
    assert state["phase"] == "done" and len(state["sessions"]) >= 2
    # goodput adds up (issue 10.9): the killed session's training time reached the store on its
    # ticks, and the next session closed its record at its last heartbeat
    assert before["goodput"]["training_s"] > 0
    killed = state["sessions"][0]
    assert (killed["end_reason"], killed["ended_at"]) == ("lost", before["heartbeat_at"])
    assert state["goodput"]["training_s"] > before["goodput"]["training_s"]
    expected = final_weights(reference_store, reference_job, tmp_path)
    got = final_weights(store_url, "resumed", tmp_path)
    for key in expected:
        assert torch.equal(expected[key], got[key]), f"{key} differs from the uninterrupted run"


def test_oom_walks_the_ladder_and_remembers_the_rung(data_root: Path, store_url: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.yaml", "ladder", store_url, data_root, train={"max_epochs": 1})
    # rung 0 (4 x 128 x 72) and rung 1 (2 x 128 x 72) exceed it; rung 2 (act. ckpt halves the load) fits
    env = {"TRAINER_FAULT_OOM_ABOVE": str(2 * 128 * 72 - 1)}
    result = runner("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(store_url, "ladder")
    assert state["phase"] == "done"
    assert [(o["rung"]["batch_size"], o["rung"]["activation_checkpointing"]) for o in state["ooms"]] == [
        (4, False), (2, False)]
    assert state["rung"]["index"] == 2 and state["rungs_by_gpu"]["cpu"] == 2
    more = write_spec(tmp_path / "more.yaml", "ladder", store_url, data_root, train={"max_epochs": 2})
    again = runner("submit", str(more), "--force-spec", "--workdir", str(tmp_path / "w2"), cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    state = state_of(store_url, "ladder")
    assert len(state["ooms"]) == 2 and state["rung"]["index"] == 2 and len(state["sessions"]) == 2


def test_truncated_newest_remote_checkpoint_is_skipped(data_root: Path, store_url: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.yaml", "truncated", store_url, data_root, train={"max_epochs": 2})
    proc = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store_url, "truncated")) >= 2, what="two uploaded checkpoints")
    kill_group(proc)
    js = Store(store_url).job("truncated")
    newest = remote_steps(store_url, "truncated")[-1]
    key = f"checkpoints/step-{newest:09d}.pt"
    js.put_bytes(key, (js.get_bytes(key) or b"")[:100])
    result = runner("attach", "truncated", "--store", store_url, "--workdir", str(tmp_path / "w2"),
                    "--take-over", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"step-{newest:09d}.pt does not match its manifest" in result.stderr
    assert state_of(store_url, "truncated")["phase"] == "done"


def test_second_attach_is_refused_and_take_over_fences_the_first(
        data_root: Path, store_url: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.yaml", "fenced", store_url, data_root, train={"max_epochs": 50},
                      sync={"every_seconds": 2.0})  # a 6 s lease: a slow tick on a busy machine must not lapse it
    first = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store_url, "fenced")) >= 1, what="a first checkpoint")
    refused = runner("attach", "fenced", "--store", store_url, "--workdir", str(tmp_path / "w2"), cwd=tmp_path)
    assert refused.returncode == 2 and "holds this job" in refused.stderr
    second = start("attach", "fenced", "--store", store_url, "--workdir", str(tmp_path / "w3"), "--take-over",
                   cwd=tmp_path)
    assert first.wait(timeout=120) == 3
    assert "taken over" in first.stdout.read()
    js = Store(store_url).job("fenced")

    def token(step: int) -> int:
        return json.loads(js.get_bytes(f"checkpoints/step-{step:09d}.json"))["token"]

    fenced_steps = set(remote_steps(store_url, "fenced"))
    first_token = max(token(s) for s in fenced_steps)
    wait_until(lambda: set(remote_steps(store_url, "fenced")) - fenced_steps, what="the new owner's checkpoint")
    runner("cancel", "fenced", "--store", store_url, cwd=tmp_path)
    assert second.wait(timeout=300) == 0
    new_tokens = {token(s) for s in set(remote_steps(store_url, "fenced")) - fenced_steps}
    assert new_tokens and min(new_tokens) > first_token, "after the fence only the new owner writes"
    assert state_of(store_url, "fenced")["phase"] == "cancelled"


def test_deadline_pauses_then_attach_finishes(data_root: Path, store_url: str, tmp_path: Path) -> None:
    start_time = datetime.now(timezone.utc) - timedelta(minutes=60) + timedelta(seconds=25)
    spec = write_spec(tmp_path / "job.yaml", "deadline", store_url, data_root,
                      # more epochs than 25 s can train on any machine: the session limit ends it
                      train={"max_epochs": 100000}, session={"max_hours": 1, "margin_minutes": 0,
                                                         "start": start_time.isoformat()})
    result = runner("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(store_url, "deadline")
    assert state["phase"] == "paused" and state["reason"] == "session limit"
    paused_at = state["last_checkpoint"]["step"]
    js = Store(store_url).job("deadline")
    stored = yaml.safe_load(js.get_bytes("spec.yaml"))
    stored["session"] = {"max_hours": None, "margin_minutes": 15, "start": "auto"}
    stored["train"]["max_epochs"] = state["epoch"] + 2
    new_spec = tmp_path / "next.yaml"
    new_spec.write_text(yaml.safe_dump(stored))
    resumed = runner("submit", str(new_spec), "--workdir", str(tmp_path / "w2"), "--force-spec", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = state_of(store_url, "deadline")
    assert state["phase"] == "done" and state["step"] > paused_at


def test_store_outage_delays_uploads_but_loses_no_checkpoint(
        data_root: Path, private_gcs_emulator, tmp_path: Path) -> None:
    emulator = private_gcs_emulator
    emulator.create_bucket("outage")
    store = "gs://outage/runs"
    spec = write_spec(tmp_path / "job.yaml", "outage", store, data_root, train={"max_epochs": 10})
    work = tmp_path / "work"
    proc = start("submit", str(spec), "--workdir", str(work), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "outage")) >= 1, what="a first upload")

    def local_checkpoint_events() -> list[int]:
        lines = (work / "events.jsonl").read_text().splitlines()
        return [json.loads(line)["step"] for line in lines if '"kind": "checkpoint"' in line]

    emulator.stop()
    stopped = time.monotonic()
    during = len(local_checkpoint_events())
    # Longer than a tick's whole retry budget, so whole ticks fail and their work waits, however
    # fast this machine writes the 8 checkpoints.
    outage_s = store_retry_budget_s() + 2 * 0.5
    wait_until(lambda: len(local_checkpoint_events()) >= during + 8 and time.monotonic() - stopped > outage_s,
               what="checkpoints written during the outage")
    emulator.start()
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    assert "the rest stays queued for the next tick" in output, output
    written = set(local_checkpoint_events())
    assert written <= set(remote_steps(store, "outage")), "a checkpoint written during the outage never arrived"
    assert state_of(store, "outage")["phase"] == "done"


def test_crashes_are_retried_then_fail_with_the_traceback(data_root: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "crashy", store, data_root, resources={"max_restarts": 1})
    result = runner("submit", str(spec), "--workdir", str(tmp_path / "w"), cwd=tmp_path,
                    env={"TRAINER_FAULT_CRASH_AT_STEP": "1"})
    assert result.returncode == 1
    assert "job crashy: failed (trainer crashed 2 times" in result.stdout
    state = state_of(store, "crashy")
    assert state["phase"] == "failed" and state["restarts"] == 2 and state["attempt"] == 2
    assert any("injected crash at step 1" in line for line in state["error"])


def test_sigterm_to_the_supervisor_pauses_after_a_checkpoint(data_root: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "stopped", store, data_root, train={"max_epochs": 50})
    proc = start("submit", str(spec), "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "stopped")) >= 1, what="a first checkpoint")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    state = state_of(store, "stopped")
    assert state["phase"] == "paused" and state["reason"] == "stopped"
    events_key = [k for k in Store(store).job("stopped").list(f"logs/{state['session']}") if k.startswith("events")]
    text = "".join(Store(store).job("stopped").get_bytes(f"logs/{state['session']}/{k}").decode() for k in sorted(events_key))
    assert '"reason": "stopped"' in text, "the trainer saved and reported its stop, and the flush uploaded it"


def test_detach_tells_the_truth_and_the_session_log_reaches_the_store(data_root: Path, tmp_path: Path) -> None:
    """The README's Colab line `runner attach JOB --store … --detach` runs as written: it returns
    once the session holds the job with its phase in the store; a second one while that session
    runs says why it did not start and exits 2; the supervisor's log is in the store for
    `runner logs JOB --supervisor`; `logs -f` ends when the job does."""
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "detached", store, data_root, train={"max_epochs": 4})
    first = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "detached")) >= 1, what="a first checkpoint")
    kill_group(first)  # a Colab cut-off: the job is left interrupted
    wait_until(lambda: runner("status", "detached", "--store", store, "--json", cwd=tmp_path).stdout.count(
        '"interrupted"'), what="the lease and heartbeat to go stale")
    attempts: list[subprocess.CompletedProcess] = []

    def attached() -> bool:
        """The lease is renewed on a timer of its own, so it can outlive the last heartbeat by up
        to one sync interval: an attach in that second is refused saying so, and tried again."""
        attempts.append(runner("attach", "detached", "--store", store, "--workdir", str(tmp_path / "w2"),
                               "--detach", cwd=tmp_path))
        last = attempts[-1]
        return not (last.returncode == 2 and "holds this job for another" in last.stderr)

    wait_until(attached, timeout=60, what="the first session's lease to expire")
    result = attempts[-1]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "holds it, phase preparing" in result.stdout and "running in the background" in result.stdout
    assert state_of(store, "detached")["session"] in result.stdout  # the phase is in the store already
    second = runner("attach", "detached", "--store", store, "--workdir", str(tmp_path / "w3"), "--detach",
                    cwd=tmp_path)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "did not start (exit 2)" in second.stderr and "holds this job" in second.stderr
    followed = runner("logs", "detached", "--store", store, "-f", cwd=tmp_path, timeout=300)
    assert followed.returncode == 0 and "job detached is done" in followed.stderr, followed.stderr
    state = state_of(store, "detached")
    assert state["phase"] == "done" and len(state["sessions"]) == 2
    shown = runner("logs", "detached", "--store", store, "--supervisor", cwd=tmp_path)
    assert shown.returncode == 0 and "phase done" in shown.stdout and state["sessions"][1]["id"] in shown.stdout


def test_finished_and_missing_jobs_start_nothing(data_root: Path, tmp_path: Path) -> None:
    """Issue 11: attach of a done job says so and exits 0 without a session; cancel of a done job
    writes nothing; a job that does not exist is rc 2 for every command; a cancel while no session
    runs is honoured by the next one, which trains nothing."""
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "finished", store, data_root, train={"max_epochs": 1})
    assert runner("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path).returncode == 0
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "store").rglob("*"))
    again = runner("attach", "finished", "--store", store, "--workdir", str(tmp_path / "w2"), cwd=tmp_path)
    assert again.returncode == 0 and "already done" in again.stdout, again.stdout + again.stderr
    resubmitted = runner("submit", str(spec), "--workdir", str(tmp_path / "w2"), cwd=tmp_path)
    assert resubmitted.returncode == 0 and "already done" in resubmitted.stdout
    cancelled = runner("cancel", "finished", "--store", store, cwd=tmp_path)
    assert cancelled.returncode == 0 and "already done" in cancelled.stdout
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "store").rglob("*")) == before
    assert not (tmp_path / "w2").exists()
    for args in (("status", "nosuch"), ("logs", "nosuch"), ("logs", "nosuch", "-f"), ("cancel", "nosuch"),
                 ("attach", "nosuch")):
        missing = runner(*args, "--store", store, cwd=tmp_path)
        assert missing.returncode == 2 and "no job 'nosuch'" in missing.stderr, (args, missing.stderr)

    spec = write_spec(tmp_path / "paused.yaml", "later", store, data_root, train={"max_epochs": 30})
    proc = start("submit", str(spec), "--workdir", str(tmp_path / "w3"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "later")) >= 1, what="a first checkpoint")
    kill_group(proc)
    steps = remote_steps(store, "later")
    assert runner("cancel", "later", "--store", store, cwd=tmp_path).returncode == 0
    honoured = runner("attach", "later", "--store", store, "--workdir", str(tmp_path / "w4"), "--take-over",
                      cwd=tmp_path)
    assert honoured.returncode == 0 and "job later: cancelled" in honoured.stdout, honoured.stdout + honoured.stderr
    assert remote_steps(store, "later") == steps  # nothing trained
    assert state_of(store, "later")["sessions"][-1]["end_reason"] == "cancelled"


def test_attach_keeps_an_unreadable_state_and_sweeps_dead_uploads(data_root: Path, tmp_path: Path) -> None:
    """A session killed mid-job, then its state.json spoiled and uploads-in-flight left behind by
    dead sessions: the next attach keeps the unreadable bytes as `state.unreadable.json` (history
    is evidence, never silently replaced), deletes the dead uploads, and finishes the job."""
    store = str(tmp_path / "store")
    spec = write_spec(tmp_path / "job.yaml", "spoiled", store, data_root, train={"max_epochs": 2})
    proc = start("submit", str(spec), "--workdir", str(tmp_path / "w1"), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "spoiled")) >= 1, what="a first checkpoint")
    kill_group(proc)
    js = Store(store).job("spoiled")
    garbage = b"\x00 not a status \xff"
    js.put_bytes("state.json", garbage)
    dead = ["checkpoints/.upload-dead-1-step-000000099.pt", "weights/.upload-dead-2-best-val-loss.pt"]
    for key in dead:
        js.put_bytes(key, b"half of a checkpoint")
    result = runner("attach", "spoiled", "--store", store, "--workdir", str(tmp_path / "w2"), "--take-over",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert js.get_bytes("state.unreadable.json") == garbage
    assert "state.unreadable.json" in result.stderr
    assert not [key for key in dead if js.exists(key)]
    assert state_of(store, "spoiled")["phase"] == "done"
