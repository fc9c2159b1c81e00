"""Helpers for Pilot tests: let thread workers finish, and wait for what they deliver."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

# the tiny experiment every TUI test runs: mlp on 600 mnist-mini samples, 1 epoch, 2 scorers, 1 ratio, 1 seed
TINY = ["model=mlp", "data.train_size=600", "data.test_size=500", "train.epochs=1", "surrogate.epochs=1",
        'sweep.methods=["loss","grad_norm"]', "sweep.keep_ratios=[0.5]", "sweep.seeds=[0]",
        "sweep.score_epochs=[1]"]


def store_uri(folder: Path) -> str:
    """A SQLite store in folder/mlruns, as `prunelab` run there would make."""
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


def tables_measured(app) -> bool:
    """True once every DataTable has measured its new rows (it does so when idle; a snapshot taken
    before that shows columns as wide as their headers)."""
    from textual.widgets import DataTable

    return all(not t._require_update_dimensions and not t._new_rows for t in app.screen.query(DataTable))


async def settle(app, pilot, pause: float = 0.05, rounds: int = 3) -> None:
    """Let running workers finish (a cancelled or failed one is fine) and the UI catch up."""
    from textual.worker import WorkerCancelled, WorkerFailed

    for _ in range(rounds):
        for _ in range(50):
            try:
                await app.workers.wait_for_complete()
                break
            except (WorkerCancelled, WorkerFailed):
                continue
        await pilot.pause(pause)
    for _ in range(100):
        if tables_measured(app):
            break
        await pilot.pause(0.05)


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll the UI until condition() holds (workers deliver on their own schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.1)
        try:
            if condition():
                return
        except Exception:  # a widget not mounted yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
