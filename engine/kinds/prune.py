"""`prune`: for each method x strategy x keep ratio x seed, score with the surrogate at epoch t, select,
retrain from scratch on the subset, and measure test accuracy beside the full-data reference.

Scores of a surrogate are computed once for the whole sweep (and cached on disk);
`random` scores are drawn per trial seed, so its spread over seeds is real.
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
    steps.log_ratio_figures(ctx, rows)
    if len(ctx.config.sweep.score_epochs) > 1:
        steps.log_epoch_figures(ctx, rows)
    return rows
