"""`online`: online batch selection ("biggest losers", Jiang et al. 2019).

Each step draws a batch of B samples, scores it with the model being trained
(the exact batched pass: loss, grad_norm, input_grad_norm, el2n, or random),
and backpropagates only the top k, beside whole-batch training with the same
seed. Accuracy is reported against examples backpropagated and against wall
time (scoring included, evaluation excluded). Each trial is one `online` job
(engine/runner/tasks.py), so it runs where the executor runs it, on Ray too.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from .. import names
from ..analysis import savings, summarize_seeds
from ..config import Config
from ..figures import online_curves
from ..runner.context import RunContext
from ..runner.trials import Trial, full_data_trials
from ..store.runs import TrialRecord


def plan(config: Config) -> list[Trial]:
    online = config.online
    trials = full_data_trials(online.seeds) if online.full_batch else []
    ratio = online.keep / online.batch_size
    return trials + [Trial(m, names.TOP_K, ratio, seed, 0) for m in online.methods for seed in online.seeds]


def count_trials(config: Config) -> int:
    return len(plan(config))


def trial_name(config: Config, trial: Trial) -> str:
    b = config.online.batch_size
    if trial.method == names.FULL:
        return f"online: whole batches of {b} / seed {trial.seed}"
    return f"online: {trial.method}, top {config.online.keep} of {b} / seed {trial.seed}"


def curves_of(ctx: RunContext, records: list[TrialRecord]) -> dict[str, list[tuple[float, float, float]]]:
    """Per method, the mean over seeds of (backpropagated, wall seconds, accuracy), read back from the children."""
    per: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    client = ctx.tracker.client
    for r in records:
        if r.status != names.FINISHED or not r.child_run_id:
            continue
        wall = {m.step: m.value for m in client.get_metric_history(r.child_run_id, "wall_seconds")}
        for m in client.get_metric_history(r.child_run_id, "test_accuracy"):
            per[r.tags["method"]][m.step].append((wall.get(m.step, float("nan")), m.value))
    return {method: [(step, float(np.mean([w for w, _ in v])), float(np.mean([a for _, a in v])))
                     for step, v in sorted(points.items())] for method, points in per.items()}


def summarize(config: Config, records: list[TrialRecord]) -> list[dict[str, Any]]:
    """Final accuracy (mean ± std over seeds), examples backpropagated and wall time per method, and beside whole
    batches: accuracy difference and the forward passes, backward passes and wall time saved (analysis.savings).
    Scoring counts: a forward pass per drawn sample (random: none), a backward one too for gradient scorers."""
    b, k = config.online.batch_size, config.online.keep
    return [{"method": row["method"], "batch_size": b, "keep": b if row["method"] == names.FULL else k,
             **{key: value for key, value in row.items() if key != "method"}}
            for row in savings(summarize_seeds(records, keys=("method",),
                                               means=("backpropagated", "wall_seconds", "forward", "backward")))]


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    config = ctx.config
    records = ctx.run_trials([(t, lambda: None) for t in plan(config)], task="online",
                             name_of=lambda t: trial_name(config, t))
    rows = summarize(config, records)
    title = (f"{config.data.dataset} / {config.model}: online batch selection, top {config.online.keep} "
             f"of {config.online.batch_size} (mean over {len(config.online.seeds)} seed(s))")
    ctx.log_figure(online_curves(curves_of(ctx, records), title), names.plot_artifact("online"))
    return rows
