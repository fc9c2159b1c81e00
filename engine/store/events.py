"""Typed progress events and the one callback they travel through, `on_event(event)`.

Everything that runs reports this way; the engine never prints. The CLI attaches
a progress-bar sink, every run appends its events to a progress file
(`progress.py`), and a script passes its own callback. On disk each event is one
JSON object with a `type` field naming its class.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Event:
    t: float = field(default_factory=time.time, kw_only=True)

    type: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.type = TYPE_OF[type(self)]

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_jsonable)


@dataclass
class RunStarted(Event):
    """First line of a progress file: who runs it, so a dead run can be told from a live one."""

    run_id: str
    experiment: str
    kind: str
    trials: int
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    tracking_uri: str = ""
    pid_start: float = 0.0  # the process's start time (store/process.py), so a reused pid is not taken for it


@dataclass
class StageStarted(Event):
    """A named stage begins: surrogate training, scoring, selection, retraining, evaluation."""

    stage: str
    detail: str = ""
    trial: int | None = None
    trials: int | None = None


@dataclass
class EpochEnd(Event):
    """One training epoch finished, with its metrics."""

    epoch: int
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    trial: int | None = None


@dataclass
class BatchProgress(Event):
    """Progress inside an epoch (throttled by the sender to a few per second)."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    trial: int | None = None


@dataclass
class Metric(Event):
    name: str
    value: float
    step: int | None = None
    trial: int | None = None


@dataclass
class TrialFinished(Event):
    trial: int
    trials: int
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    child_run_id: str = ""
    name: str = ""  # the trial's name, as its child run is named


@dataclass
class LogLine(Event):
    message: str
    level: str = "info"


@dataclass
class RunStatus(Event):
    """The run's state changed: RUNNING, FINISHED, FAILED or KILLED."""

    status: str
    run_id: str = ""
    message: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    "run_started": RunStarted,
    "stage": StageStarted,
    "epoch": EpochEnd,
    "batch": BatchProgress,
    "metric": Metric,
    "trial_finished": TrialFinished,
    "log": LogLine,
    "status": RunStatus,
}
TYPE_OF = {cls: name for name, cls in EVENT_TYPES.items()}

EventCallback = Callable[[Event], None]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


_TYPES = {"int": (int,), "float": (int, float), "str": (str,)}


def event_from_dict(data: dict[str, Any]) -> Event:
    """The event a JSON object describes; TypeError (or KeyError) when it is not a well-formed one.

    Plain int, float and str fields are type-checked, so a damaged progress line
    (a pid of "abc") is rejected here rather than crashing a reader later.
    """
    cls = EVENT_TYPES[data["type"]]
    given = {}
    for f in fields(cls):
        if f.init and f.name in data:
            value = data[f.name]
            expected = _TYPES.get(f.type) if isinstance(f.type, str) else None
            if expected and (isinstance(value, bool) or not isinstance(value, expected)):
                raise TypeError(f"{cls.__name__}.{f.name}: expected {f.type}, got {value!r}")
            given[f.name] = value
    return cls(**given)


def emit(on_event: EventCallback | None, event: Event) -> None:
    if on_event is not None:
        on_event(event)


def fan_out(*callbacks: EventCallback | None) -> EventCallback:
    """One callback that forwards each event to all the given ones."""
    live = [c for c in callbacks if c is not None]

    def forward(event: Event) -> None:
        for callback in live:
            callback(event)

    return forward
