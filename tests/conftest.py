"""Shared fixtures: real data from ../shared/data (read-only) and the embedded set."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNELAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with MNIST/raw/*.gz and cifar10-subset.npz."""
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set PRUNELAB_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cifar_npz(shared_data) -> str:
    return f"npz:{shared_data / 'cifar10-subset.npz'}"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a fresh working directory, so the default store (mlruns/) lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
