"""Experiment kinds: one module each, in one registry.

A kind has `count_trials(config)` (for progress) and `execute(ctx)`, which
computes what it needs through the RunContext and returns the summary rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UnknownNameError


@dataclass(frozen=True)
class ExperimentKind:
    name: str
    description: str
    count_trials: Callable[[Any], int]
    execute: Callable[[Any], list[dict[str, Any]]]


EXPERIMENTS: dict[str, ExperimentKind] = {}


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    EXPERIMENTS[kind.name] = kind
    return kind


def check_kind(name: str) -> None:
    if name not in EXPERIMENTS:
        raise UnknownNameError("experiment kind", name, EXPERIMENTS)


from . import noise, online, overlap, prune, score_epochs, study  # noqa: E402,F401  (each registers itself)
