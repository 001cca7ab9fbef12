"""Every leaf of the job spec is read by someone (issue 9): change any one and what the
supervisor hands out changes: the trainer's attempt config, the data-preparation command, the
ladder, the session deadline, the lease and sync timing, the crash policy, or the store key.
And every leaf of the attempt config is read by the trainer's code.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from contract.config import AttemptConfig
from runner.attempt import attempt_config, prepare_command, train_command
from runner.deadline import deadline, session_start
from runner.notify import session_targets
from runner.policy import next_action
from runner.spec import JobSpec, SpecError, parse_spec
from runner.store import Store
from runner.supervisor import lease_ttl_s

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
BASE = {"name": "j", "store": "./runs", "data": {"source": "synthetic"}, "session": {"max_hours": 12}}
# Leaves with exactly one allowed value today: nothing to read until they allow a second.
SINGLE_VALUED = {"model.num_keypoints", "train.stride"}
# Values for leaves whose alternatives depend on other fields.
ALTERNATIVES: dict[str, list[Any]] = {
    "train.batch_size": [4],
    "train.input_size": [[720, 405]],
    "oom.batch_sizes": [[8, 4]],
    "oom.input_sizes": [[[960, 540], [720, 405]]],
    "session.start": ["2026-11-30T20:00:00+00:00"],
    "model.pretrained": ["backbone.pth"],
    "session.max_hours": [6.0],
    "train.sync_bn": [True],
    "notify": [["${SLACK_URL}"]],
}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        nested = _model_of(field.annotation)
        path = f"{prefix}{name}"
        found += leaves(nested, f"{path}.") if nested and get_origin(field.annotation) is not list else [path]
    return found


def consumers(spec: JobSpec) -> dict[str, Any]:
    """What the supervisor derives from a spec, through the functions it calls."""
    ladder = spec.ladder()
    start = session_start(spec.session.start, T0)
    job = Store(spec.store).job(spec.name)
    return {
        # a first start on the submitting machine: the spec's pretrained file as it is (runner/inputs.py)
        "attempt": attempt_config(spec, ladder[0], Path("train"), Path("valid"),
                                  pretrained=spec.model.pretrained).model_dump(),
        "prepare": prepare_command(spec.data),
        "train": train_command(Path("config.yaml"), Path("work"), None, spec.resources.gpus),
        "ladder": ladder,
        "deadline": deadline(start, spec.session.max_hours, spec.session.margin_minutes),
        "lease_ttl_s": lease_ttl_s(spec.sync.every_seconds),
        "crashes": [next_action(1, "", 0, ladder, n, spec.resources.max_restarts, None).kind for n in range(16)],
        "store": (job.url, job.name),
        "notify": session_targets(spec.notify, {"SLACK_URL": "ntfy://topic"}),
    }


def _get(data: dict, path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def _with(data: dict, path: str, value: Any) -> dict:
    copy = parse_spec(data).model_dump(mode="json")
    *parents, last = path.split(".")
    node = copy
    for part in parents:
        node = node[part]
    node[last] = value
    return copy


def candidates(path: str, value: Any) -> list[Any]:
    if path in ALTERNATIVES:
        return ALTERNATIVES[path]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, (int, float)):
        return [value + 1, value * 2, value / 2]
    if isinstance(value, str):
        field = JobSpec
        *sections, name = path.split(".")
        for part in sections:
            field = _model_of(field.model_fields[part].annotation)
        options = [o for o in get_args(field.model_fields[name].annotation) if isinstance(o, str)]
        return [o for o in options if o != value] or [f"{value}x"]
    return []


def test_every_spec_leaf_changes_what_the_supervisor_hands_out() -> None:
    base = parse_spec(BASE)
    before = consumers(base)
    base_data = base.model_dump(mode="json")
    unread, checked = [], []
    for path in leaves(JobSpec):
        valid = []
        for value in candidates(path, _get(base_data, path)):
            try:
                valid.append(parse_spec(_with(BASE, path, value)))
            except SpecError:
                continue
        if not valid:
            assert path in SINGLE_VALUED, f"{path}: no alternative value to try; add one to ALTERNATIVES"
            continue
        assert path not in SINGLE_VALUED, f"{path} now allows other values: it must be read, then leave SINGLE_VALUED"
        checked.append(path)
        if consumers(valid[0]) == before:
            unread.append(path)
    assert not unread, f"spec fields nobody reads: {unread}"
    assert len(checked) >= 35


def test_resources_gpus_above_one_launches_torchrun_ranks() -> None:
    spec = parse_spec({"name": "j", "resources": {"gpus": 4}})
    command = train_command(Path("c.yaml"), Path("w"), Path("ckpt.pt"), spec.resources.gpus)
    assert command[-4:] == ["--resume", "ckpt.pt", "--nproc-per-node", "4"]
    assert "--nproc-per-node" not in train_command(Path("c.yaml"), Path("w"), None, 1)


def test_every_attempt_config_leaf_is_read_by_the_trainer() -> None:
    source = "\n".join(p.read_text() for p in (Path(__file__).parents[2] / "trainer").rglob("*.py"))
    unread = [path for path in leaves(AttemptConfig)
              if not re.search(rf"\.{re.escape(path.rsplit('.', 1)[-1])}\b", source)]
    assert not unread, f"attempt config fields the trainer never reads: {unread}"
