"""Every validation rule of the job spec, as a table: the bad input and what the error must say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runner.spec import SpecError, dump_spec, load_spec, parse_spec, parse_spec_text, same_spec

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def problems_for(data: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return [str(p) for p in caught.value.problems]


BAD_SPECS = [
    # (id, spec, [(field path, fragment of its message), ...])
    ("missing name", {}, [("name", "is required")]),
    ("name with slash", {"name": "a/b"}, [("name", "not a safe job name")]),
    ("name with dots", {"name": "a..b"}, [("name", "no '..'")]),
    ("name with space", {"name": "my job"}, [("name", "not a safe job name")]),
    ("name upper case", {"name": "Job"}, [("name", "not a safe job name")]),
    ("name too long", {"name": "a" * 64}, [("name", "1-63 characters")]),
    ("typo top level", {"name": "j", "trian": {}}, [("trian", "did you mean 'train'?")]),
    ("typo in section", {"name": "j", "train": {"bach_size": 4}}, [("train.bach_size", "did you mean 'batch_size'?")]),
    ("unknown key no match", {"name": "j", "oom": {"zzz": 1}}, [("oom.zzz", "allowed keys: batch_sizes")]),
    ("bad arch", {"name": "j", "model": {"arch": "hrnet_w64"}}, [("model.arch", "'hrnet_w64' is not allowed")]),
    ("bad keypoint count", {"name": "j", "model": {"num_keypoints": 17}}, [("model.num_keypoints", "57")]),
    ("bad source", {"name": "j", "data": {"source": "youtube"}}, [("data.source", "'soccernet', 'synthetic' or 'path'")]),
    ("absolute split", {"name": "j", "data": {"splits": {"train": "/etc"}}}, [("data.splits.train", "relative folder name")]),
    ("climbing split", {"name": "j", "data": {"splits": {"valid": "../x"}}}, [("data.splits.valid", "without '..'")]),
    ("negative workers", {"name": "j", "data": {"num_workers": -1}}, [("data.num_workers", "greater than or equal to 0")]),
    ("batch not int", {"name": "j", "train": {"batch_size": "four"}}, [("train.batch_size", "valid integer")]),
    ("input too small", {"name": "j", "train": {"input_size": [720, 40]}}, [("train.input_size[1]", "greater than or equal to 64")]),
    ("input one side", {"name": "j", "train": {"input_size": [720]}}, [("train.input_size", "[720] must be [W, H]")]),
    ("zero lr", {"name": "j", "train": {"lr": 0}}, [("train.lr", "greater than 0")]),
    ("stride 4", {"name": "j", "train": {"stride": 4}}, [("train.stride", "Input should be 2")]),
    ("bad device", {"name": "j", "train": {"device": "tpu"}}, [("train.device", "'auto', 'cpu' or 'cuda'")]),
    ("lr factor 1", {"name": "j", "train": {"reduce_lr_factor": 1}}, [("train.reduce_lr_factor", "less than 1")]),
    ("batch off ladder", {"name": "j", "train": {"batch_size": 6}}, [("train.batch_size", "not on the OOM ladder oom.batch_sizes [8, 4, 2]")]),
    ("input off ladder", {"name": "j", "train": {"input_size": [800, 450]}}, [("train.input_size", "add it to oom.input_sizes")]),
    ("batches unsorted", {"name": "j", "oom": {"batch_sizes": [2, 4, 8]}}, [("oom.batch_sizes", "sorted large to small")]),
    ("batches repeated", {"name": "j", "oom": {"batch_sizes": [8, 8, 2]}}, [("oom.batch_sizes", "without repeats")]),
    ("sizes unsorted", {"name": "j", "oom": {"input_sizes": [[640, 360], [960, 540]]}}, [("oom.input_sizes", "sorted large to small")]),
    ("sizes one side larger", {"name": "j", "oom": {"input_sizes": [[960, 540], [1000, 405]]}}, [("oom.input_sizes", "both sides")]),
    ("empty ladder", {"name": "j", "oom": {"batch_sizes": []}}, [("oom.batch_sizes", "at least 1 item")]),
    ("uneven accumulation", {"name": "j", "oom": {"batch_sizes": [8, 3]}}, [("oom.batch_sizes", "[3] do not divide the starting batch size 8")]),
    ("zero keep_last", {"name": "j", "checkpoint": {"keep_last": 0}}, [("checkpoint.keep_last", "greater than or equal to 1")]),
    ("zero sync", {"name": "j", "sync": {"every_seconds": 0}}, [("sync.every_seconds", "greater than 0")]),
    ("margin eats session", {"name": "j", "session": {"max_hours": 0.25, "margin_minutes": 15}}, [("session.margin_minutes", "leaves no training time")]),
    ("bad start", {"name": "j", "session": {"start": "yesterday"}}, [("session.start", "'auto' or an ISO 8601 time")]),
    ("zero gpus", {"name": "j", "resources": {"gpus": 0}}, [("resources.gpus", "greater than or equal to 1")]),
    ("ftp store", {"name": "j", "store": "ftp://host/runs"}, [("store", "protocol 'ftp', which is not supported")]),
    ("empty store", {"name": "j", "store": " "}, [("store", "must not be empty")]),
    ("credentials in store", {"name": "j", "store": "s3://key:secret@bucket/runs"}, [("store", "credentials come from the environment")]),
    ("options in store", {"name": "j", "store": "gs://bucket/runs?token=abc"}, [("store", "must not carry credentials")]),
    ("climbing gs store", {"name": "j", "store": "gs://bucket/../other"}, [("store", "'..' segments")]),
    (
        "several problems at once",
        {"name": "A B", "train": {"lr": -1, "sigma": 0}, "model": {"arch": "resnet"}},
        [("name", "safe job name"), ("train.lr", "greater than 0"), ("train.sigma", "greater than 0"), ("model.arch", "'resnet'")],
    ),
]


@pytest.mark.parametrize("case_id, data, expected", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_names_field_and_fix(case_id: str, data: dict, expected: list[tuple[str, str]]) -> None:
    problems = problems_for(data)
    assert len(problems) == len(expected), problems
    for path, fragment in expected:
        assert any(p.startswith(f"{path}: ") and fragment in p for p in problems), (path, fragment, problems)


def test_missing_store_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "s3fs" else real(name, *a))
    assert problems_for({"name": "j", "store": "s3://bucket/runs"}) == [
        "store: 's3://bucket/runs' needs the package s3fs, which is not installed: "
        "pip install s3fs (pip install 'resumable-runner[s3]')"
    ]


def test_defaults_follow_design() -> None:
    spec = parse_spec({"name": "j"})
    assert spec.store == "./runs"
    assert spec.train.batch_size == 8 and spec.train.input_size == (960, 540)
    assert (spec.train.stride, spec.train.sigma, spec.train.lr) == (2, 3.0, 1e-4)
    assert (spec.train.max_epochs, spec.train.early_stopping_epochs) == (200, 32)
    assert (spec.train.reduce_lr_factor, spec.train.reduce_lr_patience, spec.train.amp) == (0.5, 8, True)
    assert spec.oom.batch_sizes == [8, 4, 2]
    assert spec.oom.input_sizes == [(960, 540), (720, 405), (640, 360)]
    assert (spec.checkpoint.every_minutes, spec.checkpoint.every_epochs, spec.checkpoint.keep_last) == (10, 1, 3)
    assert spec.sync.every_seconds == 60
    assert (spec.session.max_hours, spec.session.margin_minutes, spec.session.start) == (None, 15, "auto")
    assert (spec.resources.gpus, spec.resources.max_restarts) == (1, 3)


def test_odd_input_size_is_valid() -> None:
    spec = parse_spec({"name": "j", "train": {"input_size": [720, 405]}})
    assert spec.train.input_size == (720, 405)


def test_store_urls_accepted() -> None:
    for url in ["./runs", "/content/drive/MyDrive/runs", "../runs", "gs://b/p", "file:///tmp/x", "memory://r"]:
        assert parse_spec({"name": "j", "store": url}).store == url


def test_iso_start_is_parsed() -> None:
    spec = parse_spec({"name": "j", "session": {"start": "2026-11-25T08:00:00+00:00"}})
    assert spec.session.start.hour == 8


def test_resolved_spec_round_trips() -> None:
    spec = load_spec(JOBS / "t4.yaml")
    again = parse_spec_text(dump_spec(spec))
    assert again == spec


def test_yaml_syntax_error_gives_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec_text("name: j\ntrain: [1,\n")
    assert "not valid YAML at line" in str(caught.value.problems[0])


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_spec_text("- a\n- b\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_job_file_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == yaml.safe_load(path.read_text())["name"]


def test_t4_job_carries_the_colab_settings() -> None:
    spec = load_spec(JOBS / "t4.yaml")
    assert spec.model.arch == "hrnet_w48" and spec.data.source == "soccernet"
    assert spec.train.batch_size == 4 and spec.train.input_size == (720, 405)
    assert spec.data.num_workers == 2 and spec.train.amp and spec.train.max_epochs == 200
    assert spec.train.early_stopping_epochs == 32 and spec.train.lr == 1e-4
    assert spec.session.max_hours == 12 and spec.store.startswith("gs://")


def test_a_stored_spec_without_a_newer_default_field_is_the_same_job() -> None:
    spec = parse_spec({"name": "j"})
    old = yaml.safe_load(dump_spec(spec))
    del old["train"]["compile"]
    assert same_spec(yaml.safe_dump(old).encode(), spec)
    assert not same_spec(dump_spec(parse_spec({"name": "j", "train": {"lr": 0.5}})).encode(), spec)
    assert not same_spec(b"name: [not, a, name]", spec)
