"""Helpers for Pilot tests: let thread workers finish, and wait for what they deliver."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.polling import WaitTimeout

# the tiny experiment every TUI test runs: mlp on 600 mnist-mini samples, 1 epoch, 2 scorers, 1 ratio, 1 seed
TINY = ["model=mlp", "data.train_size=600", "data.test_size=500", "train.epochs=1", "surrogate.epochs=1",
        'sweep.methods=["loss","grad_norm"]', "sweep.keep_ratios=[0.5]", "sweep.seeds=[0]",
        "sweep.score_epochs=[1]"]


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


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 30.0,  # noqa: ASYNC109 (a polling deadline)
                   what: str = "condition") -> None:
    """Poll the UI until condition() holds (workers deliver on their own schedule).

    On timeout it raises WaitTimeout from the condition's last exception (tests/polling.py), so the
    real error (a widget not mounted, a wrong value) shows, not only "timed out".
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        await pilot.pause(0.1)
        try:
            if condition():
                return
            last = None
        except Exception as error:  # noqa: BLE001 (kept, whatever it is: a widget not mounted yet, a wrong value)
            last = error
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
    detail = f"; its last error: {type(last).__name__}: {last}" if last else ""
    raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{detail}") from last
