"""Nothing is called done before it is in the store (issue 10.2): the store down for longer than
the final flush gives exit 4 and names what is only local; an attach from the same work dir then
uploads it and goes on from the newest step."""

from __future__ import annotations

import json
from pathlib import Path

from contract.codes import RunnerExit
from runner.store import Store
from tests.e2e.test_runner import data_root, remote_steps, runner, start, state_of, wait_until, write_spec

__all__ = ["data_root"]  # the module-scoped fixture, shared with test_runner


def test_an_outage_through_the_final_flush_exits_4_then_attach_uploads_and_finishes(
        data_root: Path, private_gcs_emulator, tmp_path: Path) -> None:
    emulator = private_gcs_emulator
    emulator.create_bucket("flush")
    store = "gs://flush/runs"
    spec = write_spec(tmp_path / "job.yaml", "flush", store, data_root, train={"max_epochs": 4})
    work = tmp_path / "work"
    proc = start("submit", str(spec), "--workdir", str(work), cwd=tmp_path)
    wait_until(lambda: len(remote_steps(store, "flush")) >= 1, what="a first upload")
    emulator.stop()  # and it stays down until the session has given up
    output = proc.communicate(timeout=900)[0]
    assert proc.returncode == RunnerExit.NOT_UPLOADED, output
    assert "only in" in output and "runner attach flush" in output and "Traceback" not in output
    local_newest = max(int(p.stem.split("-")[1]) for p in (work / "checkpoints").glob("step-*.pt"))
    assert json.loads((work / "unflushed.json").read_text())["files"]

    emulator.start()
    assert max(remote_steps(store, "flush")) < local_newest  # the store never got the end
    shown = runner("status", "flush", "--store", store, "--json", cwd=tmp_path)
    document = json.loads(shown.stdout)
    assert document["phase"] == "interrupted", document
    assert document["unsaved"]["workdir"] == str(work.absolute()), document["unsaved"]
    # the status may lag the manifests (the store went down right after one): never ahead of them
    assert document["unsaved"]["after_step"] <= max(remote_steps(store, "flush"))
    human = runner("status", "flush", "--store", store, cwd=tmp_path, env={"COLUMNS": "400"}).stdout
    assert "not in the store" in human and f"--workdir {work.absolute()}" in human, human
    resumed = runner("attach", "flush", "--store", store, "--workdir", str(work), "--take-over", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from step-" in resumed.stderr and "in the work dir" in resumed.stderr
    state = state_of(store, "flush")
    assert state["phase"] == "done" and state["step"] >= local_newest
    assert max(remote_steps(store, "flush")) >= local_newest
    assert Store(store).job("flush").exists("weights/final.pt")
    assert not (work / "unflushed.json").exists()
