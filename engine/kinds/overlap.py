"""`overlap`: how much scorers agree, as the repetition rate of their top-k and bottom-k sets.

R(a, b) = |S_a ∩ S_b| / k for the k highest ("first") and k lowest ("last")
scored samples, beside Spearman's rank correlation of the whole score vectors
(the computation is engine.analysis.overlap_matrices).
"""
from __future__ import annotations

from typing import Any

from ..config import Config
from ..runner import steps
from ..runner.context import RunContext


def count_trials(config: Config) -> int:
    return 0


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    config = ctx.config
    epoch, methods = steps.overlap_epoch(config), config.overlap.methods
    scored = steps.surrogate_scores(ctx, methods, [epoch])
    scores = steps.scores_at(ctx, methods, epoch, scored)
    rows = steps.log_overlap(ctx, scores, epoch)
    steps.log_scores(ctx, {(m, epoch): s for m, s in scores.items()})
    steps.log_samples(ctx, scored)
    return rows
