"""Every validation rule of the job spec, as a table: the bad input and what the error must say."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from runner.spec import (
    MAX_SPEC_BYTES, SpecError, dump_spec, load_spec, parse_spec, parse_spec_bytes, parse_spec_text, same_spec,
    placeholder_problem,
)

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
    ("zero sync", {"name": "j", "sync": {"every_seconds": 0}}, [("sync.every_seconds", "greater than or equal to 1")]),
    ("microsecond sync", {"name": "j", "sync": {"every_seconds": 1e-6}}, [("sync.every_seconds", "a finite number >= 1 and <= 3600")]),
    ("infinite sync", {"name": "j", "sync": {"every_seconds": float("inf")}}, [("sync.every_seconds", "finite number >= 1")]),
    ("hour-long sync", {"name": "j", "sync": {"every_seconds": 3601}}, [("sync.every_seconds", "<= 3600")]),
    ("huge session", {"name": "j", "session": {"max_hours": 1e300}}, [("session.max_hours", "> 0 and <= 168")]),
    ("infinite session", {"name": "j", "session": {"max_hours": float("inf")}}, [("session.max_hours", "finite number")]),
    ("nan margin", {"name": "j", "session": {"margin_minutes": float("nan")}}, [("session.margin_minutes", ">= 0 and <= 1440")]),
    ("day-long margin", {"name": "j", "session": {"margin_minutes": 1441}}, [("session.margin_minutes", "<= 1440")]),
    ("infinite checkpoint interval", {"name": "j", "checkpoint": {"every_minutes": float("inf")}}, [("checkpoint.every_minutes", "> 0 and <= 1440")]),
    ("huge checkpoint interval", {"name": "j", "checkpoint": {"every_minutes": 1e300}}, [("checkpoint.every_minutes", "<= 1440")]),
    ("infinite lr", {"name": "j", "train": {"lr": float("inf")}}, [("train.lr", "finite number > 0")]),
    ("nan sigma", {"name": "j", "train": {"sigma": float("nan")}}, [("train.sigma", "finite number")]),
    ("nan lr factor", {"name": "j", "train": {"reduce_lr_factor": float("nan")}}, [("train.reduce_lr_factor", "finite number")]),
    ("margin eats session", {"name": "j", "session": {"max_hours": 0.25, "margin_minutes": 15}}, [("session.margin_minutes", "leaves no training time")]),
    ("bad start", {"name": "j", "session": {"start": "yesterday"}}, [("session.start", "'auto' or an ISO 8601 time")]),
    ("future start", {"name": "j", "session": {"start": "2999-01-01T00:00:00+00:00"}}, [("session.start", "is in the future")]),
    ("future naive start", {"name": "j", "session": {"start": "2999-01-01T00:00:00"}}, [("session.start", "no later than now")]),
    ("zero gpus", {"name": "j", "resources": {"gpus": 0}}, [("resources.gpus", "greater than or equal to 1")]),
    ("ftp store", {"name": "j", "store": "ftp://host/runs"}, [("store", "protocol 'ftp', which is not supported")]),
    ("empty store", {"name": "j", "store": " "}, [("store", "must not be empty")]),
    ("credentials in store", {"name": "j", "store": "s3://key:secret@bucket/runs"}, [("store", "credentials come from the environment")]),
    ("credentials in file store", {"name": "j", "store": "file://u:p@x/runs"}, [("store", "must not carry credentials")]),
    ("credentials in memory store", {"name": "j", "store": "memory://u:p@x/runs"}, [("store", "must not carry credentials")]),
    ("credentials in unknown scheme", {"name": "j", "store": "ftp://u:p@x/runs"}, [("store", "must not carry credentials")]),
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


def test_store_credentials_are_never_echoed() -> None:
    for url in ["file://user:hunter2@host/runs", "FILE://user:hunter2@host/runs", "gs://user:hunter2@b/p",
                "ftp://user:hunter2@host/runs", "file:///runs?token=hunter2"]:
        problems = problems_for({"name": "j", "store": url})
        assert len(problems) == 1 and "hunter2" not in problems[0], problems


def test_plain_paths_may_hold_any_character() -> None:
    for url in ["./runs@home", "/content/drive/My Drive/a:b@c", "file:///tmp/x"]:
        assert parse_spec({"name": "j", "store": url}).store == url


def test_past_and_recent_starts_are_accepted() -> None:
    now = datetime.now(timezone.utc)
    for start in [now - timedelta(hours=11), now + timedelta(minutes=1), (now - timedelta(hours=1)).replace(tzinfo=None)]:
        assert parse_spec({"name": "j", "session": {"start": start.isoformat()}}).session.start == start


def test_checkpoint_every_step_stays_allowed() -> None:
    """The e2e tests checkpoint at every step with a tiny interval: the lower bound is only > 0."""
    assert parse_spec({"name": "j", "checkpoint": {"every_minutes": 1e-6}}).checkpoint.every_minutes == 1e-6


def one_problem(text: str | bytes) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec_bytes(text) if isinstance(text, bytes) else parse_spec_text(text)
    assert len(caught.value.problems) == 1, caught.value.problems
    return str(caught.value.problems[0])


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
)


def test_alias_bomb_is_refused_without_expanding() -> None:
    assert len(BILLION_LAUGHS) < 500  # 9 ** 9 "lol"s once expanded
    message = one_problem(BILLION_LAUGHS)
    assert "YAML aliases (*a) are not allowed in a job spec" in message and len(message) < 300


def test_any_alias_is_refused() -> None:
    message = one_problem("name: &n j\nstore: *n\n")
    assert message.startswith("line 2, column 8: YAML aliases (*n)")
    assert "not allowed" in one_problem("name: j\ntrain: &t {lr: 0.1}\noom: {<<: *t}\n")


def test_deep_nesting_is_one_problem() -> None:
    for text in ["name: j\nx: " + "[" * 10_000 + "]" * 10_000 + "\n",
                 "name: j\nx:\n" + "".join(" " * (i + 1) + "- \n" for i in range(1_000)),
                 "name: j\n" + "".join(" " * i + "a:\n" for i in range(100))]:
        message = one_problem(text)
        assert "nest" in message and len(message) < 300, message


def test_too_many_values_is_one_problem() -> None:
    message = one_problem("name: j\nx: [" + ",".join(["1"] * 20_000) + "]\n")
    assert "more than 10,000 YAML values" in message


def test_oversized_text_is_refused_before_parsing() -> None:
    message = one_problem("name: j\n" + "#" * MAX_SPEC_BYTES)
    assert "at most 1,048,576 bytes (1 MiB)" in message


def test_oversized_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as file:
        file.truncate(50 * MAX_SPEC_BYTES)  # sparse: 50 MiB without writing them
    monkeypatch.setattr(Path, "open", lambda *a, **k: pytest.fail("read a file over the limit"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path} is 52,428,800 bytes; a job spec may be at most 1,048,576 bytes (1 MiB)"
    ]


def test_non_utf8_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: j\n# café\n".encode("latin-1"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path} is not UTF-8 text (byte 0xe9 at offset 13); save it as UTF-8"
    ]
    assert not same_spec(path.read_bytes(), parse_spec({"name": "j"}))


@pytest.mark.parametrize("text, fragment", [
    ("name: j\nsync: {every_seconds: .inf}\n", "sync.every_seconds: inf is not allowed"),
    ("name: j\nsync: {every_seconds: 1e-6}\n", "sync.every_seconds: '1e-6' is not allowed"),
    ("name: j\nsession: {max_hours: 1.0e+300}\n", "session.max_hours: 1e+300 is not allowed"),
    ("name: j\ntrain: {lr: .nan}\n", "train.lr: nan is not allowed"),
    ("name: j\nsession: {start: 2999-01-01T00:00:00Z}\n", "session.start: 2999-01-01T00:00:00+00:00 is in the future"),
    ("name: j\nstore: file://u:p@x/runs\n", "store: must not carry credentials"),
    ("name: j\nsession: {start: 2026-02-30}\n", "not a valid YAML value: day is out of range for month"),
    ("name: j\ntrain: {seed: " + "1" * 5000 + "}\n", "not a valid YAML value: Exceeds the limit"),
    ("name: !!python/object/apply:os.system [ls]\n", "not valid YAML at line 1, column 7: could not determine"),
    ("name: j\0\n", "not valid YAML"),
])
def test_bad_yaml_values_are_one_short_problem(text: str, fragment: str) -> None:
    message = one_problem(text)
    assert fragment in message and len(message) < 300, message


def test_messages_repeat_only_an_excerpt_of_the_input() -> None:
    huge = "x" * 100_000
    for data in [{"name": huge}, {"name": "j", "train": {"lr": huge}}, {"name": "j", "model": {"arch": huge}},
                 {"name": "j", "data": {"splits": {"train": "/" + huge}}}, {"name": "j", huge: 1},
                 {"name": "j", "store": "ftp://" + huge}, {"name": "j", "session": {"start": huge}},
                 {"name": "j", "oom": {"input_sizes": [list(range(64, 20_000))]}}]:
        problems = problems_for(data)
        assert len(problems) == 1 and len(problems[0]) < 700, problems
        assert "x" * 100 not in problems[0]


def test_many_problems_are_counted_not_all_listed() -> None:
    problems = problems_for({"name": "j", "train": {f"typo{i}": 1 for i in range(5000)}})
    assert len(problems) == 21 and problems[-1] == "... and more: 5000 problems in all; fix these first"


@pytest.mark.parametrize("section, field, value", [
    ("train", "seed", 2**64), ("train", "seed", -1), ("train", "max_epochs", 10**9), ("data", "seed", 2**40),
    ("data", "frames", 10**12), ("data", "num_workers", 1000), ("train", "lr", 1e6), ("checkpoint", "keep_last", 10**6),
    ("oom", "batch_sizes", [10**6]), ("oom", "input_sizes", [[10**6, 540]]), ("resources", "max_restarts", 10**4),
])
def test_whole_numbers_have_an_upper_bound_named_in_the_message(section: str, field: str, value: object) -> None:
    """A typo (an extra zero, a pasted timestamp) is refused at validate time, naming the field."""
    problems = problems_for({"name": "j", section: {field: value}})
    assert problems and problems[0].startswith(f"{section}.{field}"), problems


def test_the_placeholder_bucket_is_named_with_the_fix() -> None:
    """`jobs/t4.yaml` ships with gs://YOUR-BUCKET/runs: a spec may carry it (submit --store replaces
    it), but validate and opening a store say what to put there."""
    problem = placeholder_problem("gs://YOUR-BUCKET/runs")
    assert problem and "placeholder" in problem and "--store" in problem and "/content/drive" in problem
    assert placeholder_problem("gs://your_bucket") and placeholder_problem("gs://my-runs/x") is None
    assert placeholder_problem("./YOUR-BUCKET/runs") is None  # a local folder is whatever it is named
    assert load_spec(JOBS / "t4.yaml").store == "gs://YOUR-BUCKET/runs"
