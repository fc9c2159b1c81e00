"""`score-epochs`: prune with scores taken after different pre-training epochs of the surrogate.

The same grid as `prune`, read the other way: accuracy against the epoch t
at which the surrogate's scores were taken, one figure per keep ratio.
"""
from __future__ import annotations

from typing import Any

from ..config import Config
from ..runner import steps
from ..runner.context import RunContext


def count_trials(config: Config) -> int:
    return len(steps.sweep_trials(config))


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    rows = steps.run_sweep(ctx, steps.sweep_scores(ctx))
    steps.log_epoch_figures(ctx, rows)
    return rows
