"""Executors run trial jobs: locally in this process, or on Ray (optional extra).

An executor takes picklable `TrialJob`s and yields `TrialRecord`s as they
finish; events from the trials reach the caller's `on_event`.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from .events import EventCallback


class LocalExecutor:
    """Runs trials one after another in this process (they share its device)."""

    name = "local"

    def run(self, jobs: Iterable, on_event: EventCallback | None = None) -> Iterator:
        from .experiments.base import execute_trial

        for job in jobs:
            yield execute_trial(job, on_event)


EXECUTORS = {"local": LocalExecutor}


def make_executor(name: str = "local", **options):
    from .errors import UnknownNameError

    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    return EXECUTORS[name](**options)
