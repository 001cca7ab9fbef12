"""Bad store content and an unreachable store through the real `runner` CLI (issue 10, item 4):
one line naming the key, rc 2 for the job asked about, the other jobs shown as usual, never a
traceback, and nothing in the store changed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.spec import dump_spec, parse_spec
from tests.file_tree import tree

RUNNER = shutil.which("runner")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")]

GOOD_STATE = {"job": "good", "phase": "done", "epoch": 3, "max_epochs": 3, "step": 30}

BAD_STATES = {
    "garbage-bytes": b"\x00\x01\x02 not json \xff",
    "not-utf8": b'{"job": "bad", "phase": "done", "reason": "\xff\xfe"}',
    "a-list": b'[{"job": "bad"}]',
    "wrong-types": b'{"job": "bad", "phase": "running", "epoch": "x"}',
    "unknown-phase": b'{"job": "bad", "phase": "exploded"}',
    "empty": b"",
}


def spec_bytes(name: str, store: Path) -> bytes:
    return dump_spec(parse_spec({"name": name, "store": str(store)})).encode()


def make_store(tmp_path: Path) -> Path:
    """A store with one healthy job, `good`, and a submitted job `bad` to spoil."""
    store = tmp_path / "store"
    for name in ("good", "bad"):
        (store / name / "logs" / "s1").mkdir(parents=True)
        (store / name / "spec.yaml").write_bytes(spec_bytes(name, store))
        (store / name / "logs" / "s1" / "trainer.log.000001").write_bytes(f"{name} line\n".encode())
    (store / "good" / "state.json").write_text(json.dumps(GOOD_STATE))
    return store



def runner(store: Path | str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNNER, *args, "--store", str(store)], capture_output=True, text=True, timeout=120,
                          cwd=Path(store).parent if isinstance(store, Path) else None,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, errors="replace")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("content", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_bad_state_json_is_unreadable_for_that_job_only(tmp_path: Path, content: bytes) -> None:
    store = make_store(tmp_path)
    (store / "bad" / "state.json").write_bytes(content)
    before = tree(store)

    listed = runner(store, "status")
    assert listed.returncode == 0, listed.stderr
    assert "bad/state.json" in one_line(listed.stderr)
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") > 2}
    assert "unreadable" in rows["bad"] and "done" in rows["good"]

    as_json = runner(store, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    documents = {d["job"]: d for d in json.loads(as_json.stdout)}
    assert documents["good"]["phase"] == "done" and documents["good"]["step"] == 30
    assert documents["bad"]["phase"] == "unreadable" and documents["bad"]["error"]
    assert "Traceback" not in as_json.stderr

    for args in (("status", "bad"), ("status", "bad", "--json")):
        alone = runner(store, *args)
        assert alone.returncode == 2
        assert "bad/state.json" in one_line(alone.stderr) and "unreadable" in alone.stderr

    logs = runner(store, "logs", "bad")
    assert logs.returncode == 0 and logs.stdout == "bad line\n" and logs.stderr == ""
    assert tree(store) == before


def test_a_state_that_parses_but_has_odd_values_still_shows(tmp_path: Path) -> None:
    """Times that do not parse, rich markup, an infinite ETA: shown as they are, no traceback."""
    store = make_store(tmp_path)
    (store / "bad" / "state.json").write_text(json.dumps({
        "job": "bad", "phase": "running", "reason": "[/bold] not markup", "heartbeat_at": "tomorrow",
        "eta_s": 1e400, "samples_per_s": 2.0, "sync_every_s": -1,
        "last_checkpoint": {"step": 1, "token": 1, "written_at": "2026-01-01T00:00:00"},
    }).replace("Infinity", "1e400"))
    before = tree(store)
    for args in (("status",), ("status", "bad"), ("status", "bad", "--json")):
        result = runner(store, *args)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert "interrupted" in result.stdout  # a heartbeat that cannot be read is not fresh
    assert "[/bold] not markup" in runner(store, "status", "bad").stdout
    assert tree(store) == before


@pytest.mark.parametrize("content, says", [
    (b"name: bad\n\xff\xfe\n", "not UTF-8"),
    (b"name: [unclosed\n", "invalid"),
    (b"- just\n- a list\n", "invalid"),
    (b"name: other\n", "names job 'other'"),
], ids=["not-utf8", "not-yaml", "not-a-mapping", "another-job"])
def test_a_bad_spec_yaml_refuses_attach_in_one_line(tmp_path: Path, content: bytes, says: str) -> None:
    store = make_store(tmp_path)
    if says.startswith("names"):
        content = spec_bytes("other", store)
    (store / "bad" / "spec.yaml").write_bytes(content)
    before = tree(store)
    result = runner(store, "attach", "bad", "--workdir", str(tmp_path / "work"))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "bad/spec.yaml" in line and says in line
    assert tree(store) == before  # no lease taken, no state written


@pytest.mark.parametrize("folder", ["..x", "a b", "ünï", "-dash"])
def test_log_folders_with_odd_names_are_skipped_with_a_warning(tmp_path: Path, folder: str) -> None:
    store = make_store(tmp_path)
    odd = store / "bad" / "logs" / folder
    odd.mkdir()
    (odd / "trainer.log.000001").write_bytes(b"from the odd folder\n")
    (store / "bad" / "logs" / "s1" / "trainer.log.000002").write_bytes(b"bytes \xff\xfe not utf-8\n")
    before = tree(store)
    result = runner(store, "logs", "bad")
    assert result.returncode == 0
    assert "logs/" in one_line(result.stderr) and "skipped" in result.stderr
    assert result.stdout == "bad line\nbytes \ufffd\ufffd not utf-8\n"
    assert tree(store) == before


def test_cancel_works_whatever_state_json_holds(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    (store / "bad" / "state.json").write_bytes(BAD_STATES["garbage-bytes"])
    result = runner(store, "cancel", "bad")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert (store / "bad" / "cancel.json").exists()


@pytest.mark.parametrize("args", [("status",), ("status", "job"), ("logs", "job"), ("attach", "job")], ids=" ".join)
def test_an_unreachable_store_is_one_line_and_rc_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The GCS client pointed at a closed port: refused at once, retried by the store's default
    policy, then one line that names the store and what to check."""
    env = {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"}
    extra = ("--workdir", str(tmp_path / "work")) if args[0] == "attach" else ()
    result = runner("gs://bucket/runs", *args, *extra, env=env)
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert "gs://bucket/runs" in line and "unavailable" in line and "check" in line
    assert len(line) < 800
    assert not (tmp_path / "work").exists()


@pytest.fixture(params=["silent", "dropping"])
def unanswering_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """A store host that never answers, on 127.0.0.1: `silent` completes the TCP connection (the
    kernel's backlog does) and never replies, like a half-open link; `dropping` has its backlog
    already full, so new connections get no SYN-ACK, like a firewall dropping packets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    if request.param == "dropping":
        for _ in range(4):  # Linux admits backlog + 1 connections; the rest wait for a SYN-ACK
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    for sock in (*fillers, server):
        sock.close()


@pytest.mark.parametrize("args", [("status",), ("attach", "job")], ids=" ".join)
def test_a_store_that_never_answers_is_one_line_within_30_s(
        tmp_path: Path, unanswering_store: str, args: tuple[str, ...]) -> None:
    """Issue 10: "an unreachable store (one line within 30 s: which store, what failed, what to
    check)": the prompt's commands use the quick store (`Store.quick`), whose request timeouts
    and two attempts bound the wait whatever the network does."""
    extra = ("--workdir", str(tmp_path / "work")) if args[0] == "attach" else ()
    began = time.monotonic()
    result = runner("gs://bucket/runs", *args, *extra, env={"STORAGE_EMULATOR_HOST": unanswering_store})
    took = time.monotonic() - began
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert "gs://bucket/runs" in line and "unavailable" in line and "check" in line
    assert took < 30, f"{took:.0f} s to report an unreachable store"
    assert not (tmp_path / "work").exists()


def test_a_drive_store_without_the_mount_is_refused_with_the_fix(tmp_path: Path) -> None:
    """Issue 11: on a VM where Drive is not mounted, /content/drive/... would be created on the
    VM's own disk and lost with it: refused before anything is written, saying how to mount."""
    if os.path.ismount("/content/drive"):
        pytest.skip("Google Drive is mounted on this machine")
    existed = os.path.exists("/content")
    for args in (("status",), ("ls",), ("attach", "job", "--workdir", str(tmp_path / "w"))):
        result = runner("/content/drive/MyDrive/runs", *args)
        assert result.returncode == 2, result.stderr
        line = one_line(result.stderr)
        assert "drive.mount('/content/drive')" in line and "not mounted" in line
    assert os.path.exists("/content") == existed and not (tmp_path / "w").exists()


def test_a_local_store_that_is_not_there(tmp_path: Path) -> None:
    """Reading a store that does not exist says so (not an empty table); submitting into a folder
    whose parent is missing (a typo, a mount that is not there) is refused unless --create."""
    missing = tmp_path / "runs"
    for args in (("status",), ("ls",), ("logs", "job")):
        result = runner(missing, *args)
        assert result.returncode == 2 and "no store at" in one_line(result.stderr), result.stderr
    spec = tmp_path / "job.yaml"
    deep = tmp_path / "typo" / "runs"
    spec.write_bytes(spec_bytes("job", deep))
    result = subprocess.run([RUNNER, "submit", str(spec), "--workdir", str(tmp_path / "w")], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "does not exist" in line and "--create" in line
    assert not (tmp_path / "typo").exists() and not (tmp_path / "w").exists()


def test_a_missing_bucket_is_named(gcs_emulator) -> None:
    """A missing bucket used to read as an empty store (exit 0); now one line names the bucket."""
    for args in (("status",), ("ls",), ("status", "job")):
        result = runner("gs://no-such-bucket/runs", *args)
        assert result.returncode == 2, result.stderr
        line = one_line(result.stderr)
        assert "bucket 'no-such-bucket' does not exist" in line and "gcloud storage buckets create" in line
