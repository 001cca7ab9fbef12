"""The runner without the trainer's stack (issue 11): in an interpreter where importing torch, numpy
or any other module of the `trainer` extra raises, every `runner` and `contract` module imports and
`runner status/logs/ls/cancel/validate` work on a local store. No network: the stack is blocked
through `sys.modules`, not uninstalled (tests/e2e/test_torch_free.py installs without it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from runner.trainer_check import INSTALL_HINT, TRAINER_MODULES

ROOT = Path(__file__).parents[2]
BLOCKED = sorted(TRAINER_MODULES)  # torch, numpy, cv2, ..., and `trainer` itself

# `sys.modules[name] = None` makes `import name` (and `from name import x`) raise ImportError.
PRELUDE = f"import sys\nfor _name in {BLOCKED!r}:\n    sys.modules[_name] = None\n"
# The source tree whatever the cwd, wide enough for rich's tables, and no store from outside.
ENV = {**{k: v for k, v in os.environ.items() if k != "RUNNER_STORE"}, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def blocked(code: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter with the trainer's stack blocked."""
    return subprocess.run([sys.executable, "-c", PRELUDE + code, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=ENV)


def blocked_runner(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`runner ARGS` (as `python -m runner`) with the trainer's stack blocked."""
    code = "import runpy\nsys.argv = ['runner', *sys.argv[1:]]\nrunpy.run_module('runner', run_name='__main__')\n"
    result = blocked(code, *args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def all_modules() -> list[str]:
    """Every module of the runner and the contract, store backends included."""
    names = []
    for package in ("runner", "contract"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_runner_and_contract_module_imports_without_the_trainer_stack() -> None:
    modules = all_modules()
    assert "runner.cli" in modules and "runner.store.gcs" in modules and "contract.config" in modules
    code = ("import importlib, json\n"
            f"for _module in {modules!r}:\n    importlib.import_module(_module)\n"
            "print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))\n")
    result = blocked(code)  # an import of a blocked module raises ImportError: a traceback, rc 1
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert set(modules) <= loaded
    assert sorted(m for m in loaded if m.split(".")[0] in BLOCKED) == []


def test_runner_help_without_the_trainer_stack() -> None:
    for args in (["--help"], ["status", "--help"]):
        result = blocked_runner(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout


def make_store(root: Path) -> Path:
    """A local store with a finished job `demo` (two sessions' logs and events) and a job `queued`
    that has a spec and no status yet, in the layout of DESIGN §5, written by hand."""
    from runner.spec import dump_spec, parse_spec

    store = root / "store"
    for name in ("demo", "queued"):
        (store / name).mkdir(parents=True)
        (store / name / "spec.yaml").write_text(dump_spec(parse_spec({"name": name, "store": str(store)})))
    for session, line in (("s1", "epoch 1 of 3\n"), ("s2", "epoch 3 of 3\n")):
        (store / "demo" / "logs" / session).mkdir(parents=True)
        (store / "demo" / "logs" / session / "trainer.log.000001").write_text(line)
        (store / "demo" / "logs" / session / "events.jsonl.000001").write_text(
            json.dumps({"event": "epoch_end", "session": session}) + "\n")
    (store / "demo" / "state.json").write_text(json.dumps(DEMO_STATE))
    return store


DEMO_STATE = {
    "job": "demo", "phase": "done", "epoch": 3, "max_epochs": 3, "step": 30, "samples_per_s": 12.5,
    "heartbeat_at": "2026-01-02T03:04:05+00:00", "sync_every_s": 60.0,
    "last_checkpoint": {"step": 30, "token": 2, "written_at": "2026-01-02T03:04:00+00:00"},
    "best": {"accuracy": {"value": 0.75, "step": 30}},
    "sessions": [{"id": "s1", "host": "colab-a", "gpu": "Tesla T4", "started_at": "2026-01-02T01:00:00+00:00",
                  "ended_at": "2026-01-02T02:00:00+00:00", "end_reason": "session limit"},
                 {"id": "s2", "host": "colab-b", "gpu": "Tesla T4", "started_at": "2026-01-02T02:30:00+00:00",
                  "ended_at": "2026-01-02T03:04:05+00:00", "end_reason": "done"}],
}


def store_commands(url: str, spec: Path) -> list[tuple[str, ...]]:
    """The commands check_store_results() reads, in the order they run (`cancel` changes the store)."""
    return [("ls", "--store", url), ("status", "--store", url), ("status", "demo", "--store", url),
            ("status", "demo", "--json", "--store", url), ("status", "nope", "--store", url),
            ("logs", "demo", "--store", url), ("logs", "demo", "--events", "--store", url),
            ("validate", str(spec)), ("cancel", "queued", "--store", url)]


def check_store_results(ran: dict[tuple[str, ...], subprocess.CompletedProcess[str]], url: str, spec: Path) -> None:
    """What `status`, `status JOB [--json]`, `logs JOB [--events]`, `ls`, `validate` and `cancel`
    print for the store from make_store(), run as store_commands() lists them. Shared with
    tests/e2e/test_torch_free.py, which runs them in a venv without the trainer."""
    for args, result in ran.items():
        assert "Traceback" not in result.stderr, (args, result.stderr)

    listed = ran["ls", "--store", url]
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["demo", "queued"]

    table = ran["status", "--store", url]
    assert table.returncode == 0, table.stderr
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if line.count("│") > 2}
    assert "demo" in rows and "queued" not in rows, table.stdout  # a job without a status yet is not listed
    assert re.search(r"│\s*done\s*│\s*3/3\s*│\s*30\s*│\s*12\.5\s*│", rows["demo"]), table.stdout

    one = ran["status", "demo", "--store", url]
    assert one.returncode == 0, one.stderr
    assert "done" in one.stdout and "accuracy" in one.stdout and "colab-b" in one.stdout

    document = ran["status", "demo", "--json", "--store", url]
    assert document.returncode == 0, document.stderr
    shown = json.loads(document.stdout)
    assert (shown["phase"], shown["step"], shown["best"]["accuracy"]["value"]) == ("done", 30, 0.75)

    missing = ran["status", "nope", "--store", url]
    assert missing.returncode == 2 and "nope" in missing.stderr

    log = ran["logs", "demo", "--store", url]
    assert log.returncode == 0, log.stderr
    assert log.stdout == "epoch 1 of 3\nepoch 3 of 3\n"

    events = ran["logs", "demo", "--events", "--store", url]
    assert events.returncode == 0, events.stderr
    assert [json.loads(line)["session"] for line in events.stdout.splitlines()] == ["s1", "s2"]

    valid = ran["validate", str(spec)]
    assert valid.returncode == 0, valid.stderr
    assert "is valid" in valid.stdout

    cancelled = ran["cancel", "queued", "--store", url]
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancel requested for queued" in cancelled.stdout


# Runs the commands in one interpreter (one import of the CLI, not one per command) and prints
# [[exit code, stdout, stderr], ...]; an exception other than an exit shows as a traceback.
BATCH = """
import json, traceback
from typer.testing import CliRunner
from runner.cli import app
results = []
for args in json.loads(sys.argv[1]):
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args, prog_name="runner")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback\\n" + "".join(traceback.format_exception(*result.exc_info))
    results.append([result.exit_code, result.stdout, stderr])
print(json.dumps(results))
"""


def test_store_commands_without_the_trainer_stack(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    spec = ROOT / "jobs" / "demo.yaml"
    commands = store_commands(str(store), spec)
    batch = blocked(BATCH, json.dumps(commands), cwd=tmp_path)
    assert batch.returncode == 0, batch.stderr
    ran = {args: subprocess.CompletedProcess(args, code, stdout, stderr)
           for args, (code, stdout, stderr) in zip(commands, json.loads(batch.stdout))}
    check_store_results(ran, str(store), spec)
    assert (store / "queued" / "cancel.json").is_file()


def test_plot_without_matplotlib_says_what_to_install(tmp_path: Path) -> None:
    """matplotlib cannot import with numpy blocked: `runner plot` says so in one line, exit 2, no PNG
    (tests/e2e/test_torch_free.py draws one in a real runner-only install, which has matplotlib)."""
    store = make_store(tmp_path)
    epoch = {"t": 1, "kind": "epoch", "epoch": 0, "step": 10, "metrics": {"val_loss": 0.5}}
    (store / "demo" / "logs" / "s2" / "events.jsonl.000002").write_text(json.dumps(epoch) + "\n")
    result = blocked_runner("plot", "demo", "--store", str(store), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runner plot needs matplotlib"), result.stderr
    assert not (tmp_path / "demo.png").exists()


def test_trainer_missing_names_the_blocked_stack_and_the_install_line() -> None:
    result = blocked("from runner.trainer_check import trainer_missing\nprint(trainer_missing())\n")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and line.endswith(INSTALL_HINT)
    for shown in ("torch", "numpy", "opencv-python-headless", "trainer package"):
        assert shown in line
