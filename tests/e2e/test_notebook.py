"""The Colab notebook (issue 11), executed as a user runs it: nbclient on a real Python kernel,
its three cells in order, against a local store and the demo spec (the Colab-only lines are
guarded and skipped off Colab). The job must end `done`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from runner.store import Store

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "colab.ipynb"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("runner") is None, reason="runner console script not installed")]


def parameters(source: str, values: dict[str, str]) -> str:
    """The first code cell with its settings replaced, as a user edits them."""
    lines = source.splitlines()
    for name, value in values.items():
        matches = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        assert len(matches) == 1, f"the notebook's first code cell has no single `{name} = ...` line"
        lines[matches[0]] = f"{name} = {json.dumps(value)}"
    return "\n".join(lines)


def test_the_notebook_runs_the_demo_job_to_done(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) == 3, "the notebook is three cells: install, submit or attach, status and logs"
    store = tmp_path / "runs"
    code[0].source = parameters(code[0].source, {"STORE": str(store), "SPEC": str(ROOT / "jobs" / "demo.yaml"),
                                                 "JOB": "demo"})
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in code]
    assert outputs[0].startswith("runner "), outputs[0]
    assert "holds it, phase" in outputs[1], outputs[1]
    assert "job demo is done" in outputs[2], outputs[2]
    state = json.loads(Store(str(store)).job("demo").get_bytes("state.json") or b"{}")
    assert state["phase"] == "done", state
