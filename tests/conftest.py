"""Shared fixtures: a fake GCS server for the session, and a store URL on each backend; and the
`gpu` marker's skip where there is no CUDA device."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gcs_emulator import EmulatorUnavailable, GcsEmulator


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA: without a device they are skipped, saying so."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch  # only when a gpu test was collected: the runner's tests run without torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)


def started_emulator(root: Path | None = None) -> GcsEmulator:
    """A running emulator, or a skip that says why this machine cannot run one."""
    emulator = GcsEmulator(root=root)
    try:
        emulator.start()
    except EmulatorUnavailable as error:
        emulator.close()
        pytest.skip(f"no GCS emulator on this machine: {error}")
    return emulator


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """One fake-gcs-server for the session; its environment is set so gcsfs (here and in
    subprocesses that inherit it) talks to it, without credentials."""
    emulator = started_emulator()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in emulator.env().items():
            patch.setenv(name, value)
        yield emulator
    emulator.close()


@pytest.fixture
def private_gcs_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GcsEmulator]:
    """An emulator of the test's own, for tests that stop and restart it; its objects live on
    disk, so they outlast the outage as a real bucket's do."""
    emulator = started_emulator(tmp_path / "gcs-objects")
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    yield emulator
    emulator.close()


@pytest.fixture(params=["local", "gcs"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store root: a local directory, or a new bucket on the session's emulator."""
    if request.param == "local":
        return str(tmp_path / "store")
    emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    emulator.create_bucket(bucket)
    return f"gs://{bucket}/runs"
