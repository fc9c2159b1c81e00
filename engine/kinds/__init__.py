"""Experiment kinds: one module each, in one registry; kinds never import each other.

A kind has `count_trials(config)` (for progress) and `execute(ctx)`, which
computes what it needs through the RunContext (engine/runner/context.py) and
the shared steps (engine/runner/steps.py) and returns the summary rows; the
runner logs them as summary.csv/json. This module imports no torch (the config
validator reads it): the built-in kinds are "module:function" references.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Ref, Registry


@dataclass(frozen=True)
class ExperimentKind:
    name: str
    description: str
    count_trials: Callable[[Any], int]
    execute: Callable[[Any], list[dict[str, Any]]]


KINDS: Registry[ExperimentKind] = Registry("experiment kind")
EXPERIMENTS = KINDS  # the API's name for it (`engine.experiments`)


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    """Add an experiment kind; `kind = "NAME"` then works in configs, the CLI and the TUI."""
    return KINDS.add(kind.name, kind)


def check_kind(name: str) -> ExperimentKind:
    return KINDS.check(name)


def _builtin(name: str, module: str, description: str) -> None:
    register_kind(ExperimentKind(name, description, Ref(f"engine.kinds.{module}:count_trials"),
                                 Ref(f"engine.kinds.{module}:execute")))


_builtin("prune", "prune", "prune with each method and strategy at each keep ratio, retrain, compare")
_builtin("score-epochs", "score_epochs", "prune after different surrogate pre-training epochs")
_builtin("overlap", "overlap", "repetition rate of the top-k and bottom-k sets of each pair of scorers")
_builtin("online", "online", "online batch selection: backpropagate the top k of each batch of B")
_builtin("noise", "noise", "flip a fraction of the labels; precision and recall at k of each scorer")
_builtin("study", "study", "the seed study: overlap, pruning-ratio sweep and pre-training epochs in one run")
_builtin("benchmark", "benchmark", "every scorer/strategy pair at every keep ratio and seed, ranked against random "
         "with paired tests")
_builtin("dynamic", "dynamic", "InfoBatch dynamic pruning beside full-data training: accuracy, passes and time saved")
