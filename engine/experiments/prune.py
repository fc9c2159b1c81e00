"""`prune`: for each method x strategy x keep ratio x seed, score with the surrogate
at epoch t, select, retrain from scratch on the subset, and measure test accuracy.

Scores of a surrogate are computed once for the whole sweep (and cached on disk);
`random` scores are drawn per trial seed, so its spread over seeds is real.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import numpy as np

from ..figures import accuracy_vs
from . import ExperimentKind, register_kind
from .base import FULL, RunContext, Trial, TrialRecord, summary_to_csv

RANDOM = "random"


def plan(config) -> list[Trial]:
    sweep = config.sweep
    trials = [Trial(FULL, "none", 1.0, seed, 0) for seed in sweep.seeds] if sweep.full_data else []
    for method, strategy, ratio, seed, epoch in itertools.product(
            sweep.methods, sweep.strategies, sweep.keep_ratios, sweep.seeds, sweep.score_epochs):
        trials.append(Trial(method, strategy, float(ratio), seed, epoch))
    return trials


def count_trials(config) -> int:
    return len(plan(config))


def surrogate_scores(ctx: RunContext, methods: list[str], epochs: list[int], embeddings: bool = False):
    """Scores of the sweep's surrogate(s) for every (method, epoch), embeddings per epoch if asked, and
    surrogate 0's predictions per epoch (for the top-scored samples)."""
    from ..scoring import compute_scores

    config = ctx.config
    scorers = [m for m in methods if m != RANDOM]
    if not scorers and not embeddings:
        return {}, {}, {}
    ctx.stage("surrogate", f"{config.surrogate.inits} x {config.model}, {config.surrogate.epochs} epochs, "
                           f"scores at epochs {', '.join(map(str, epochs))}")
    result = compute_scores(
        ctx.dataset, config.model, scorers or ["loss"], epochs=epochs, inits=config.surrogate.inits,
        train_cfg=config.train.model_copy(update={"epochs": config.surrogate.epochs, "steps": None}),
        seed=config.seed, on_event=ctx.on_event, cache=ctx.cache, batch_size=config.surrogate.batch_size,
        embeddings=embeddings)
    scores = {(m, e): result.scores[m][e] for m in scorers for e in epochs}
    embeds = {e: result.embeddings[e] for e in epochs} if embeddings else {}
    return scores, embeds, {e: result.predictions[e] for e in epochs}


def select_for(ctx: RunContext, trial: Trial, scores, embeds) -> np.ndarray:
    from ..scoring import random_scores
    from ..selection import select

    labels = ctx.dataset.y_train.cpu().numpy()
    s = random_scores(len(labels), trial.seed) if trial.method == RANDOM else scores[(trial.method, trial.epoch)]
    return select(trial.strategy, s, trial.ratio, labels, seed=trial.seed, embeddings=embeds.get(trial.epoch),
                  **ctx.config.strategy_options(trial.strategy))


def summarize(records: list[TrialRecord]) -> list[dict[str, Any]]:
    """Mean +- std of test accuracy over seeds, per (method, strategy, ratio, epoch)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    failed: dict[tuple, int] = defaultdict(int)
    for r in records:
        key = (r.tags["method"], r.tags["strategy"], float(r.tags["ratio"]), int(r.tags["epoch"]))
        if r.status == "FINISHED" and "test_accuracy" in r.metrics:
            groups[key].append(r.metrics["test_accuracy"])
        else:
            failed[key] += 1
    rows = []
    for key in sorted(set(groups) | set(failed), key=lambda k: (k[0] != FULL, k[0], k[1], k[2], k[3])):
        accs = np.array(groups.get(key, []))
        rows.append({"method": key[0], "strategy": key[1], "ratio": key[2], "epoch": key[3],
                     "mean_accuracy": float(accs.mean()) if len(accs) else float("nan"),
                     "std_accuracy": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
                     "seeds": int(len(accs)), "failed": failed.get(key, 0)})
    return rows


def log_scores(ctx: RunContext, scores: dict) -> None:
    for (method, epoch), array in scores.items():
        ctx.log_numpy(np.asarray(array, dtype=np.float32), f"scores/{method}@e{epoch}.npy")


def needs_embeddings(config) -> bool:
    from ..selection import STRATEGIES

    return any(STRATEGIES[s].needs_embeddings for s in config.sweep.strategies)


def run_sweep(ctx: RunContext, scored: tuple | None = None) -> list[dict[str, Any]]:
    """Surrogate scores, then every trial of the grid; returns the summary rows.

    `scored` is surrogate_scores' result for a superset of the sweep, computed and
    logged by the caller (the study shares one scoring pass between its parts).
    """
    from .overlap import log_samples

    config = ctx.config
    if scored is None:
        scored = surrogate_scores(ctx, config.sweep.methods, config.sweep.score_epochs, needs_embeddings(config))
        if not ctx.done:
            log_scores(ctx, scored[0])
            log_samples(ctx, scored[0], scored[2])
    scores, embeds, _ = scored
    trials = plan(config)
    jobs = [(t, (lambda t=t: None if t.method == FULL else select_for(ctx, t, scores, embeds))) for t in trials]
    records = ctx.run_trials(jobs)
    rows = summarize(records)
    ctx.log_text(summary_to_csv(rows), "summary.csv")
    ctx.log_artifact_json(rows, "summary.json")
    return rows


def execute(ctx: RunContext, scored: tuple | None = None) -> list[dict[str, Any]]:
    rows = run_sweep(ctx, scored)
    for epoch in ctx.config.sweep.score_epochs:
        at_epoch = [r for r in rows if r["epoch"] == epoch or r["method"] == FULL]
        fig = accuracy_vs(at_epoch, "ratio", "keep ratio",
                          f"{ctx.config.data.dataset} / {ctx.config.model}: scores at epoch {epoch}")
        ctx.log_figure(fig, f"plots/accuracy_vs_ratio_e{epoch}.png")
    if len(ctx.config.sweep.score_epochs) > 1:
        log_epoch_figures(ctx, rows)
    return rows


def log_epoch_figures(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    for ratio in ctx.config.sweep.keep_ratios:
        at_ratio = [r for r in rows if r["ratio"] == ratio or r["method"] == FULL]
        fig = accuracy_vs(at_ratio, "epoch", "surrogate epoch t at which scores are taken",
                          f"{ctx.config.data.dataset} / {ctx.config.model}: keep {ratio:g}")
        ctx.log_figure(fig, f"plots/accuracy_vs_epoch_keep{ratio:g}.png")


register_kind(ExperimentKind("prune", "prune with each method and strategy at each keep ratio, retrain, compare",
                             count_trials, execute))
