"""Experiment kinds: one module each, in one registry; kinds never import each other.

A kind has `count_trials(config)` (for progress) and `execute(ctx)`, which
computes what it needs through the RunContext (engine/runner/context.py) and
the shared steps (engine/runner/steps.py) and returns the summary rows; the
runner logs them as summary.csv/json. This module imports no torch (the config
validator reads it): the built-in kinds are "module:function" references.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Ref, Registry


@dataclass(frozen=True)
class ExperimentKind:
    name: str
    description: str
    count_trials: Callable[[Any], int]
    execute: Callable[[Any], list[dict[str, Any]]]
    # the kind-specific config sections it reads (KIND_SECTIONS); None: it may read any
    sections: tuple[str, ...] | None = None


# the config sections that belong to one kind or a few; the others (data, train, surrogate, ...) every kind reads
KIND_SECTIONS = ("sweep", "overlap", "online", "noise", "study", "benchmark", "dynamic")


KINDS: Registry[ExperimentKind] = Registry("experiment kind")
EXPERIMENTS = KINDS  # the API's name for it (`engine.experiments`)


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    """Add an experiment kind; `kind = "NAME"` then works in configs, the CLI and the TUI."""
    return KINDS.add(kind.name, kind)


def check_kind(name: str) -> ExperimentKind:
    return KINDS.check(name)


def used_config(config: Any) -> dict[str, Any]:
    """The config as a dict without the sections its kind never reads (what a run logs and `config check` shows)."""
    dump = config.model_dump(mode="json", exclude_none=True)
    used = KINDS[config.kind].sections if config.kind in KINDS else None
    if used is None:
        return dump
    return {key: value for key, value in dump.items() if key not in KIND_SECTIONS or key in used}


def _builtin(name: str, module: str, description: str, sections: tuple[str, ...]) -> None:
    register_kind(ExperimentKind(name, description, Ref(f"engine.kinds.{module}:count_trials"),
                                 Ref(f"engine.kinds.{module}:execute"), sections))


_builtin("prune", "prune", "prune with each method and strategy at each keep ratio, retrain, compare", ("sweep",))
_builtin("score-epochs", "score_epochs", "prune after different surrogate pre-training epochs", ("sweep",))
_builtin("overlap", "overlap", "repetition rate of the top-k and bottom-k sets of each pair of scorers", ("overlap",))
_builtin("online", "online", "online batch selection: backpropagate the top k of each batch of B", ("online",))
_builtin("noise", "noise", "flip a fraction of the labels; precision and recall at k of each scorer",
         ("noise", "sweep"))
_builtin("study", "study", "the seed study: overlap, pruning-ratio sweep and pre-training epochs in one run",
         ("study", "overlap", "sweep"))
_builtin("benchmark", "benchmark", "every scorer/strategy pair at every keep ratio and seed, ranked against random "
         "with paired tests", ("benchmark",))
_builtin("dynamic", "dynamic", "InfoBatch dynamic pruning beside full-data training: accuracy, passes and time saved",
         ("dynamic",))
