"""TUI test fixtures: a tiny real store, made once per session, and a pinned time zone.

The store holds two real prunelab runs (mlp on 600 mnist-mini samples, 1 epoch,
methods loss and grad_norm, one keep ratio, one seed), so every screen reads
what the engine really writes: child runs, summary.json, scores/*.npy.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# the helper modules here import by their own names, whether or not tests/ is a package
sys.path.insert(0, str(Path(__file__).parent))

from tui_helpers import TINY


@dataclass
class Store:
    workdir: Path
    uri: str
    run_id: str  # the first run ("tui-a", keep 0.5)
    other_id: str  # a second run ("tui-b", keep 0.3), for compare


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, fresh_store) -> Store:
    """Two tiny real runs in a fresh store; the second reuses the first's cached surrogate scores."""
    from engine.api import load_config, run

    workdir = tmp_path_factory.mktemp("tui-store")
    uri = fresh_store(workdir / "mlruns" / "mlflow.db")
    cwd = os.getcwd()
    os.chdir(workdir)  # the engine's cache and default paths live beside the store
    try:
        a = run(load_config("quick", TINY + ["name=tui-a"]), tracking_uri=uri)
        b = run(load_config("quick", TINY + ["name=tui-b", "sweep.keep_ratios=[0.3]"]), tracking_uri=uri)
    finally:
        os.chdir(cwd)
    assert a.status == b.status == "FINISHED"
    return Store(workdir, uri, a.run_id, b.run_id)


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Start times print in local time: pin the zone so snapshots do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def anyio_backend() -> str:
    """Textual runs on asyncio."""
    return "asyncio"
