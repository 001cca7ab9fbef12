"""The store's data cache (runner/data_cache.py) on a real local store and on the GCS emulator:
a session adds its prepared data, a fresh one restores it instead of rendering, unzipping or
deriving; whatever is wrong in the cache costs one log line and a fallback, never the session.

Each "session" here is what `Supervisor._prepare_data` does, in order: the trainer's plan,
restore, the trainer's preparation, upload, with a real lease on the job.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from contract.files import sha256_of
from runner import layout
from runner.data_cache import DataCache, Outcome, Plan, PlanFile, manifest_key, object_key
from runner.lease import LeaseHolder
from runner.store import DataStore, Store, StoreError
from trainer.data.cache import CACHE_NAME, store_object_name
from trainer.data.download import TASK, count_frames, ensure_soccernet
from trainer.data.prepare import cache_plan, prepare, prepare_keypoints

FRAMES, VALID_FRAMES, SEED = 3, 2, 11
SYNTHETIC = f"synthetic-gen1-f{FRAMES}-v{VALID_FRAMES}-s{SEED}"
KP = store_object_name()
NAMES = ["train.tar", f"train/{KP}", "valid.tar", f"valid/{KP}"]


def plan_of(source: str, root: Path, **options: int) -> Plan:
    """The runner's view of `python -m trainer prepare --plan`, from the same trainer function."""
    name, files = cache_plan(source, root, "train", "valid", **options)
    return Plan(cache=name, files=[PlanFile(name=f.name, path=f.path, needed=f.needed, folder=f.folder) for f in files])


@dataclass
class Session:
    outcomes: list[Outcome]
    uploaded: list[str]
    derived: int


def lease(store_url: str, job: str, session: str) -> LeaseHolder:
    holder = LeaseHolder(Store(store_url).job(job), session, ttl_s=600)
    holder.acquire(take_over=True)
    return holder


def synthetic_session(store_url: str, root: Path, job: str = "demo", session: str = "s1") -> Session:
    plan = plan_of("synthetic", root, frames=FRAMES, valid_frames=VALID_FRAMES, seed=SEED)
    cache = DataCache(Store(store_url).data(plan.cache), job, session)
    outcomes = cache.restore(plan)
    dirs = prepare("synthetic", root, "train", "valid", frames=FRAMES, valid_frames=VALID_FRAMES, seed=SEED)
    derived = sum(s["derived"] for s in prepare_keypoints(dirs).values())
    return Session(outcomes, cache.upload(outcomes, lease(store_url, job, session).check), derived)


def frames_of(root: Path) -> dict[str, bytes]:
    return {f"{d.name}/{p.name}": p.read_bytes() for d in (root / "train", root / "valid") for p in sorted(d.iterdir())
            if not p.name.startswith(".")}


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "data cache" in r.getMessage()]


@pytest.fixture
def seeded(store_url: str, tmp_path: Path) -> Path:
    """A store whose data cache a first session filled; its data root, as the reference."""
    first = synthetic_session(store_url, tmp_path / "first")
    assert first.uploaded == NAMES and first.derived == FRAMES + VALID_FRAMES
    assert not any(o.restored for o in first.outcomes)
    return tmp_path / "first"


def test_a_fresh_session_restores_instead_of_rendering_and_deriving(store_url: str, seeded: Path,
                                                                     tmp_path: Path, caplog) -> None:
    second = synthetic_session(store_url, tmp_path / "second", session="s2")
    assert [o.file.name for o in second.outcomes if o.restored] == NAMES
    assert second.derived == 0 and second.uploaded == []
    assert frames_of(tmp_path / "second") == frames_of(seeded)
    assert (tmp_path / "second" / "train" / CACHE_NAME).read_bytes() == (seeded / "train" / CACHE_NAME).read_bytes()
    assert not cache_warnings(caplog)
    data = Store(store_url).data(SYNTHETIC)
    objects = {name: [manifest_key(name), object_key(name, _sha(data, name))] for name in NAMES}
    assert data.list("") == sorted(objects["train.tar"] + objects["valid.tar"])
    assert data.list("train") == sorted(key.removeprefix("train/") for key in objects[f"train/{KP}"])


def _sha(data: DataStore, name: str) -> str:
    return json.loads(data.get_bytes(manifest_key(name)) or b"")["sha256"]


def test_a_corrupt_object_falls_back_in_one_line_and_is_mended(store_url: str, seeded: Path, tmp_path: Path,
                                                               caplog) -> None:
    data = Store(store_url).data(SYNTHETIC)
    key = object_key("train.tar", _sha(data, "train.tar"))
    good = data.get_bytes(key)
    data.put_bytes(key, good[:-1] + bytes([good[-1] ^ 1]))  # same size, one bit off
    second = synthetic_session(store_url, tmp_path / "second", session="s2")
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "train.tar" in warnings[0] and "sha256" in warnings[0], warnings
    assert [o.file.name for o in second.outcomes if o.restored] == NAMES[1:]
    assert frames_of(tmp_path / "second") == frames_of(seeded)  # rendered: the same frames
    assert second.derived == 0  # the keypoint caches still came from the store
    assert second.uploaded == ["train.tar"] and data.get_bytes(key) == good  # the same bytes, packed again
    third = synthetic_session(store_url, tmp_path / "third", session="s3")
    assert [o.file.name for o in third.outcomes if o.restored] == NAMES


def test_a_manifest_whose_object_is_missing_falls_back_and_is_left_alone(store_url: str, seeded: Path,
                                                                         tmp_path: Path, caplog) -> None:
    data = Store(store_url).data(SYNTHETIC)
    elsewhere = json.loads(data.get_bytes(manifest_key("valid.tar")) or b"") | {"sha256": "0" * 64}
    data.put_bytes(manifest_key("valid.tar"), json.dumps(elsewhere).encode())
    second = synthetic_session(store_url, tmp_path / "second", session="s2")
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "valid.tar" in warnings[0] and "missing" in warnings[0], warnings
    assert frames_of(tmp_path / "second") == frames_of(seeded) and second.derived == 0
    assert second.uploaded == []  # this machine's tar is not the manifest's: nothing to put back
    assert not data.exists(object_key("valid.tar", "0" * 64))


def test_an_unreadable_manifest_falls_back_and_is_never_replaced(store_url: str, seeded: Path, tmp_path: Path,
                                                                 caplog) -> None:
    data = Store(store_url).data(SYNTHETIC)
    data.put_bytes(manifest_key(f"valid/{KP}"), b"{\xff not a manifest")
    second = synthetic_session(store_url, tmp_path / "second", session="s2")
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and f"valid/{KP}" in warnings[0] and "unreadable" in warnings[0], warnings
    assert second.derived == VALID_FRAMES and second.uploaded == []
    assert data.get_bytes(manifest_key(f"valid/{KP}")) == b"{\xff not a manifest"


def test_crafted_names_never_reach_outside(store_url: str, seeded: Path, tmp_path: Path, caplog) -> None:
    """A manifest naming another object, and an archive whose member climbs out, are refused
    (one line each); the store facade refuses keys and cache names that would leave the prefix."""
    data = Store(store_url).data(SYNTHETIC)
    manifest = data.get_bytes(manifest_key("valid.tar")).replace(b'"valid.tar"', b'"../../../outside"')
    data.put_bytes(manifest_key("valid.tar"), manifest)
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as archive:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    evil_path = tmp_path / "evil.tar"
    evil_path.write_bytes(evil.getvalue())
    digest = sha256_of(evil_path)
    data.put_file(evil_path, object_key("train.tar", digest))
    record = json.loads(data.get_bytes(manifest_key("train.tar")) or b"") | {
        "sha256": digest, "size": evil_path.stat().st_size}
    data.put_bytes(manifest_key("train.tar"), json.dumps(record).encode())

    root = tmp_path / "deep" / "er" / "second"
    second = synthetic_session(store_url, root, session="s2")
    warnings = cache_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert any("valid.tar" in w and "names another object" in w for w in warnings)
    assert any("train.tar" in w and "evil.txt" in w for w in warnings)
    assert not any(p.name in ("evil.txt", "outside") for p in tmp_path.rglob("*"))
    assert frames_of(root) == frames_of(seeded) and second.derived == 0

    with pytest.raises(layout.UnsafeName):
        Store(store_url).data("../demo")
    with pytest.raises(layout.UnsafeName):
        data.put_bytes("../../demo/state.json", b"{}")
    with pytest.raises(StoreError, match="never deleted"):
        data.delete(manifest_key("train.tar"))


def test_the_cache_is_not_a_job(store_url: str, seeded: Path) -> None:
    store = Store(store_url)
    store.job("demo").put_bytes(layout.SPEC, b"name: demo\n")
    assert store.list_jobs() == ["demo"]
    with pytest.raises(layout.UnsafeName):
        store.job(layout.DATA)


def test_racing_jobs_keep_the_first_manifest(store_url: str, tmp_path: Path, caplog) -> None:
    """Two jobs prepare the same data at once: both find the cache empty, both upload. Same bytes
    (the deterministic tars) share one object; differing bytes (a keypoint cache written apart)
    leave the loser's object unreferenced; every manifest is the first writer's and verifies."""
    sessions = {}
    for job in ("one", "two"):
        root = tmp_path / job
        plan = plan_of("synthetic", root, frames=FRAMES, valid_frames=VALID_FRAMES, seed=SEED)
        cache = DataCache(Store(store_url).data(plan.cache), job, f"s-{job}")
        outcomes = cache.restore(plan)
        dirs = prepare("synthetic", root, "train", "valid", frames=FRAMES, valid_frames=VALID_FRAMES, seed=SEED)
        prepare_keypoints(dirs)
        sessions[job] = (cache, outcomes)
    kp = tmp_path / "two" / "train" / CACHE_NAME
    with np.load(kp) as arrays:
        np.savez(kp, **dict(arrays), written_by=np.array("two"))  # same keypoints, other bytes
    assert sessions["one"][0].upload(sessions["one"][1], lease(store_url, "one", "s-one").check) == NAMES
    with caplog.at_level(logging.INFO, logger="runner"):
        assert sessions["two"][0].upload(sessions["two"][1], lease(store_url, "two", "s-two").check) == []
    unreferenced = [r.getMessage() for r in caplog.records if "unreferenced" in r.getMessage()]
    assert len(unreferenced) == 1 and f"train/{KP}" in unreferenced[0]
    fresh = synthetic_session(store_url, tmp_path / "fresh", job="three", session="s-three")
    assert [o.file.name for o in fresh.outcomes if o.restored] == NAMES and fresh.derived == 0
    restored = (tmp_path / "fresh" / "train" / CACHE_NAME).read_bytes()
    assert restored == (tmp_path / "one" / "train" / CACHE_NAME).read_bytes()


def test_a_fenced_session_adds_nothing(store_url: str, tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    plan = plan_of("synthetic", root, frames=FRAMES, valid_frames=VALID_FRAMES, seed=SEED)
    cache = DataCache(Store(store_url).data(plan.cache), "demo", "old")
    outcomes = cache.restore(plan)
    prepare_keypoints(prepare("synthetic", root, "train", "valid", frames=FRAMES, valid_frames=VALID_FRAMES, seed=SEED))
    stale = lease(store_url, "demo", "old")
    lease(store_url, "demo", "new")  # taken over
    assert cache.upload(outcomes, stale.check) == []
    assert Store(store_url).data(plan.cache).list("") == [] and Store(store_url).data(plan.cache).list("train") == []
    assert any("data cache not added to" in w for w in cache_warnings(caplog))


def test_soccernet_zips_and_keypoints_restore_without_a_download(store_url: str, tmp_path: Path) -> None:
    """The SoccerNet path: a zip restored before `ensure_soccernet` is unpacked as if downloaded,
    and the restored keypoint cache outlives the unpacking, so nothing is fetched or derived."""
    counts = {"train": 2, "valid": 1}
    frames = tmp_path / "frames"
    prepare("synthetic", frames, "train", "valid", frames=2, valid_frames=1, seed=1)

    def served(root: Path, splits) -> None:
        for split in splits:
            (root / TASK).mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(root / TASK / f"{split}.zip", "w") as archive:
                for path in sorted((frames / split).iterdir()):
                    archive.write(path, f"{split}/{path.name}")

    def refused(root: Path, splits) -> None:
        raise AssertionError(f"downloaded {splits} although the store's data cache had them")

    def session(root: Path, name: str, fetch) -> tuple[list[Outcome], list[str], int]:
        plan = plan_of("soccernet", root)
        cache = DataCache(Store(store_url).data(plan.cache), "demo", name)
        outcomes = cache.restore(plan)
        dirs = ensure_soccernet(root, ("train", "valid"), expected_frames=counts, fetch=fetch)
        derived = sum(s["derived"] for s in prepare_keypoints(dirs).values())
        return outcomes, cache.upload(outcomes, lease(store_url, "demo", name).check), derived

    _, uploaded, derived = session(tmp_path / "first", "s1", served)
    assert uploaded == ["train.zip", f"train/{KP}", "valid.zip", f"valid/{KP}"] and derived == 3
    outcomes, uploaded, derived = session(tmp_path / "second", "s2", refused)
    assert all(o.restored for o in outcomes) and uploaded == [] and derived == 0
    assert count_frames(tmp_path / "second" / TASK / "train") == 2
