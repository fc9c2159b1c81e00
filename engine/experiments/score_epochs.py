"""`score-epochs`: prune with scores taken after different pre-training epochs of the surrogate.

The same grid as `prune`, read the other way: accuracy against the epoch t
at which the surrogate's scores were taken, one figure per keep ratio.
"""
from __future__ import annotations

from typing import Any

from . import ExperimentKind, register_kind
from .base import RunContext
from .prune import count_trials, log_epoch_figures, run_sweep


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    rows = run_sweep(ctx)
    log_epoch_figures(ctx, rows)
    return rows


register_kind(ExperimentKind("score-epochs", "prune after different surrogate pre-training epochs",
                             count_trials, execute))
