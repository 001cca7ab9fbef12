"""`runner validate` through the installed console script, as a person runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JOBS = Path(__file__).resolve().parents[2] / "jobs"
RUNNER = shutil.which("runner")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(RUNNER is None, reason="runner console script not installed")]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNNER, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def t4_with_a_bucket(tmp_path: Path) -> Path:
    """jobs/t4.yaml as a user fills it in: their bucket in place of the placeholder."""
    path = tmp_path / "t4.yaml"
    path.write_text((JOBS / "t4.yaml").read_text().replace("gs://YOUR-BUCKET/runs", "gs://my-runs/runs"))
    return path


def test_the_shipped_placeholder_bucket_is_refused_with_the_fix() -> None:
    result = run("validate", str(JOBS / "t4.yaml"))
    assert result.returncode == 2
    assert "YOUR-BUCKET" in result.stderr and "placeholder" in result.stderr and "--store" in result.stderr
    assert "Traceback" not in result.stderr


def test_valid_spec_prints_resolved_plan(t4_with_a_bucket: Path) -> None:
    result = run("validate", str(t4_with_a_bucket))
    assert result.returncode == 0, result.stderr
    assert "job hrnet-w48-t4" in result.stdout
    assert "early_stopping_epochs: 32" in result.stdout
    assert "360 x 203" in result.stdout  # heatmap of 720x405 at stride 2, rounded up


def test_json_output_is_machine_readable() -> None:
    result = run("validate", str(JOBS / "demo.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["spec"]["name"] == "demo"
    assert document["ladder"][0] == {
        "batch_size": 4, "input_size": [256, 144], "accumulation": 1, "activation_checkpointing": False,
    }


def test_json_keys_are_stable(t4_with_a_bucket: Path) -> None:
    """Keys may be added (train.compile was, issue 9), never renamed or removed."""
    document = json.loads(run("validate", str(t4_with_a_bucket), "--json").stdout)
    spec = document["spec"]
    assert set(document) == {"spec", "ladder"}
    assert set(spec) == {"name", "store", "data", "model", "train", "oom", "checkpoint", "sync", "session", "resources",
                         "notify"}
    assert set(spec["data"]) == {"source", "root", "splits", "frames", "valid_frames", "seed", "num_workers"}
    assert set(spec["model"]) == {"arch", "num_keypoints", "pretrained"}
    assert set(spec["train"]) == {"batch_size", "input_size", "stride", "sigma", "lr", "max_epochs",
                                  "early_stopping_epochs", "reduce_lr_factor", "reduce_lr_patience", "amp", "seed",
                                  "device", "deterministic", "compile", "sync_bn"}
    assert set(spec["checkpoint"]) == {"every_minutes", "every_epochs", "keep_last"}
    assert set(spec["resources"]) == {"gpus", "max_restarts"}
    assert all(set(rung) == {"batch_size", "input_size", "accumulation", "activation_checkpointing"}
               for rung in document["ladder"])


def test_broken_spec_exits_2_naming_each_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: Bad Name\ntrain:\n  bach_size: 4\n  lr: -1\nmodel: {arch: vgg}\n")
    result = run("validate", str(spec))
    assert result.returncode == 2
    for fragment in ["name: 'Bad Name'", "train.bach_size: unknown key", "did you mean 'batch_size'",
                     "train.lr:", "model.arch: 'vgg'"]:
        assert fragment in result.stderr
    assert result.stdout == ""


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("validate", "submit", "attach", "status", "logs", "ls", "cancel"):
        assert command in result.stdout


def test_alias_bomb_exits_2_with_one_short_line(tmp_path: Path) -> None:
    """A 'billion laughs' spec (9 ** 9 strings once expanded) is refused before it is expanded."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    result = run("validate", str(spec))
    assert result.returncode == 2
    assert "YAML aliases (*a) are not allowed in a job spec" in result.stderr
    assert len(result.stderr) < 300 + len(str(spec)) and "Traceback" not in result.stderr
    assert result.stdout == ""
