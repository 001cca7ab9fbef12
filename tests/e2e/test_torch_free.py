"""`pip install resumable-runner` without extras (issue 11): a venv of its own, from the base
interpreter without system site packages, gets the runner and no torch; its `runner status`,
`logs`, `ls`, `validate` and `cancel` work on a local store and on a `gs://` one (the emulator).

The venv is built once per test session (20–40 s here: pip resolves and installs the runner's
dependencies from the package index). Without the index (no network) the tests are skipped,
saying why; any other pip failure fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from matplotlib.image import imread

from runner.store import Store
from runner.trainer_check import INSTALL_HINT
from tests.unit.test_plot import epoch_event, start
from tests.unit.test_torch_free import DEMO_STATE, check_store_results, make_store, store_commands

ROOT = Path(__file__).parents[2]
SPEC = ROOT / "jobs" / "demo.yaml"

pytestmark = pytest.mark.e2e

# What pip prints when it cannot reach the index; anything else is a real failure.
NETWORK_ERRORS = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
                  "Name or service not known", "Network is unreachable", "ConnectTimeout", "ReadTimeout",
                  "Max retries exceeded", "ProxyError", "Connection refused", "SSLError", "timed out")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would let the test's own venv or source tree leak in."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "RUNNER_STORE"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "COLUMNS": "200", **extra}


@pytest.fixture(scope="session")
def runner_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv holding `pip install -c constraints.txt .` (no extras),
    installed from a copy of the source tree (so the build leaves nothing in the checkout)."""
    root = tmp_path_factory.mktemp("runner-only")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("contract", "runner", "trainer"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = root / "venv"
    started = time.monotonic()
    # From this interpreter's base Python (venv always builds on it), without system site packages.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120,
                   env=clean_env())
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--retries", "2",
         "--timeout", "30", "-c", str(ROOT / "constraints.txt"), str(source)],
        capture_output=True, text=True, timeout=900, env=clean_env(), cwd=root)
    if install.returncode != 0:
        output = install.stdout + install.stderr
        tail = "\n".join(output.strip().splitlines()[-15:])
        network = [line.strip() for line in output.splitlines() if any(m in line for m in NETWORK_ERRORS)]
        if network:
            pytest.skip(f"pip cannot reach the package index here: {network[0][:240]}")
        pytest.fail(f"pip install of the runner alone failed (rc {install.returncode}):\n{tail}")
    print(f"\nrunner-only venv built in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return venv / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`runner ARGS` from the runner-only venv."""
    result = subprocess.run([str(bin_dir / "runner"), *args], capture_output=True, text=True, timeout=120,
                            cwd=cwd, env=clean_env(), errors="replace")
    assert "Traceback" not in result.stderr, (args, result.stderr)
    return result


def test_the_runner_alone_has_no_torch(runner_only: Path, tmp_path: Path) -> None:
    python = str(runner_only / "python")
    torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, cwd=tmp_path,
                           env=clean_env())
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr
    code = ("import runner, sys; from runner.trainer_check import trainer_missing; "
            "print(runner.__file__); print(trainer_missing())")
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                           env=clean_env()).stdout.splitlines()
    assert Path(found[0]).is_relative_to(runner_only.parent)  # the installed copy, not this checkout
    # numpy is not among them: it comes with matplotlib, which the base install has for `runner plot`
    for name in ("torch", "torchvision", "scipy", "opencv-python-headless", "tensorboard"):
        assert name in found[1]
    assert found[1].endswith(INSTALL_HINT)


@pytest.mark.parametrize("kind", ["local", "gcs"])
def test_store_commands_in_the_runner_alone(runner_only: Path, tmp_path: Path, kind: str,
                                            request: pytest.FixtureRequest) -> None:
    local = make_store(tmp_path)
    url = str(local)
    if kind == "gcs":  # the same objects in a bucket; gcsfs in the runner-only venv reads them
        emulator = request.getfixturevalue("gcs_emulator")
        bucket = f"torch-free-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        emulator.create_bucket(bucket)
        url = f"gs://{bucket}/runs"
        store = Store(url)
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            job, key = path.relative_to(local).as_posix().split("/", 1)
            store.job(job).put_bytes(key, path.read_bytes())
    commands = store_commands(url, SPEC)
    ran = {args: run(runner_only, *args, cwd=tmp_path) for args in commands}
    check_store_results(ran, url, SPEC)
    assert Store(url).job("queued").get_bytes("cancel.json") is not None
    state = json.loads(Store(url).job("demo").get_bytes("state.json"))
    assert state == DEMO_STATE  # reading changed nothing


def test_plot_in_the_runner_alone(runner_only: Path, tmp_path: Path) -> None:
    """`runner plot` draws with the matplotlib the base install brings, without torch."""
    store = make_store(tmp_path)
    events = [start(0, 0, t=1), epoch_event(0, 10, 0.1, 0.9, t=2), epoch_event(1, 20, 0.3, 0.7, t=3)]
    (store / "demo" / "logs" / "s2" / "events.jsonl.000002").write_text("".join(json.dumps(e) + "\n" for e in events))
    result = run(runner_only, "plot", "demo", "--store", str(store), "--out", str(tmp_path / "demo.png"), "--json",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [(s["metric"], s["points"]) for s in shown["series"]] == [
        ("val_evalai", 2), ("val_loss", 2), ("train_loss", 2)]
    assert imread(tmp_path / "demo.png").shape == (120 + 260 * 3, 1000, 4)  # it opens: one panel a series




@pytest.mark.parametrize("command", ["submit", "attach"])
def test_submit_and_attach_refuse_without_the_trainer(runner_only: Path, tmp_path: Path, command: str) -> None:
    """One line with the install command and exit 2, before any lease: the store is as it was."""
    if command == "submit":  # a store without the job, so that nothing else refuses it first
        store = tmp_path / "store"
        store.mkdir()
        args = ["submit", str(SPEC)]
    else:
        store = make_store(tmp_path)
        args = ["attach", "queued"]
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    for extra in ([], ["--detach"]):
        result = run(runner_only, *args, "--store", str(store), *extra, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith(INSTALL_HINT), result.stderr
        assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == before
        assert not (tmp_path / ".runner").exists()
