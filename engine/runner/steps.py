"""The steps several kinds compose, kept here so that kinds never import each other.

Surrogate scores (one scoring pass, cached) and their artifacts (the embedding map
included), the pruning sweep (plan, selection per trial, summary), and the overlap matrices.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import names
from ..analysis import overlap_matrices, pair_rows, pick_samples, summarize_seeds
from ..architectures import build_model
from ..config import Config
from ..figures import accuracy_vs, embedding_map, heatmap, sample_grid
from ..sample_map import SampleMap, build_map, embeddable, require_umap
from ..scoring.registry import check_scorer
from ..scoring.surrogate import compute_scores, random_scores
from ..selection.base import Selection, select_weighted
from ..selection.registry import STRATEGIES
from .context import RunContext
from .trials import Trial, full_data_trials

ORDERINGS = ("hardest", "easiest")  # strategies that only order by score: on random scores, a uniform subset


# ---------------------------------------------------------------- surrogate scores
@dataclass
class Scored:
    """What one scoring pass gives a run: scores per (method, epoch), embeddings and predictions per epoch."""

    scores: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    predictions: dict[int, np.ndarray] = field(default_factory=dict)
    gradients: dict[int, np.ndarray] = field(default_factory=dict)  # last-layer gradient embeddings per epoch
    # surrogate 0's embeddings at the last score epoch, for the embedding map (whether or not a strategy reads them)
    map_source: tuple[int, np.ndarray] | None = None


def map_wanted(config: Config, dataset: Any, scorers: list[str], embeddings: bool, gradients: bool) -> bool:
    """Whether a scoring step gathers the embeddings the embedding map needs: a surrogate is trained anyway
    (the embeddings come from its scoring pass at no extra forward), the config does not say
    `surrogate.projection = "none"`, and the model has penultimate embeddings to capture. The launch preview
    asks the same, so it counts the pass the run makes."""
    if config.surrogate.projection == "none":
        return False
    if config.surrogate.projection == "umap":
        require_umap()  # before any training
    if embeddings:
        return True
    if not gradients and not any(check_scorer(s).needs_surrogate for s in scorers):
        return False
    return embeddable(build_model(config.model, dataset.input_shape, dataset.num_classes, seed=config.seed))


def surrogate_scores(ctx: RunContext, methods: list[str], epochs: list[int], embeddings: bool = False,
                     gradients: bool = False) -> Scored:
    """Scores of the run's surrogate(s) for every (method, epoch) but random (drawn per use), embeddings per
    epoch if asked, surrogate 0's predictions per epoch (for the top-scored samples), and its embeddings at
    the last epoch for the embedding map. Gathering those changes no score: they are the input of the model's
    head, captured by a hook in the same pass."""
    config = ctx.config
    scorers = [m for m in dict.fromkeys(methods) if m != names.RANDOM]
    if not scorers and not embeddings and not gradients:
        return Scored()
    mapped = map_wanted(config, ctx.dataset, scorers or ["loss"], embeddings, gradients)
    ctx.stage("surrogate", f"{config.surrogate.inits} x {config.model}, {config.surrogate.epochs} epochs, "
                           f"scores at epochs {', '.join(map(str, epochs))}")
    result = compute_scores(
        ctx.dataset, config.model, scorers or ["loss"], epochs=epochs, inits=config.surrogate.inits,
        train_cfg=config.train.model_copy(update={"epochs": config.surrogate.epochs, "steps": None}),
        seed=config.seed, on_event=ctx.on_event, cache=ctx.cache, batch_size=config.surrogate.batch_size,
        embeddings=embeddings or mapped, gradients=gradients, gradient_dtype=config.surrogate.gradient_dtype,
        gradient_mb=config.surrogate.gradient_mb, options=config.scorer_options(scorers), cancel=ctx.cancel)
    if gradients:
        ctx.tracker.set_tags(ctx.parent_id, {names.GRADIENT_PROJECTION: result.gradient_projection})
    return Scored(scores={(m, e): result.scores[m][e] for m in scorers for e in epochs},
                  embeddings={e: result.embeddings[e] for e in epochs} if embeddings else {},
                  predictions={e: result.predictions[e] for e in epochs if e in result.predictions},  # none: file
                  # scores alone train no surrogate
                  gradients={e: result.gradients[e] for e in epochs} if gradients else {},
                  map_source=(max(epochs), result.embeddings[max(epochs)]) if mapped else None)


def log_scores(ctx: RunContext, scores: dict[tuple[str, int], np.ndarray]) -> None:
    for (method, epoch), array in scores.items():
        ctx.log_numpy(np.asarray(array, dtype=np.float32), names.score_artifact(method, epoch))


def log_sample_map(ctx: RunContext, scored: Scored) -> SampleMap | None:
    """The embedding map (engine/sample_map.py): projection, neighbours and their similarities, map.json, and
    the map as a figure coloured by the labels the scorers saw."""
    if scored.map_source is None:
        return None
    config, ds = ctx.config, ctx.dataset
    epoch, emb = scored.map_source
    ctx.stage("embedding map", f"{config.surrogate.projection} and {config.surrogate.neighbours} nearest "
                               f"neighbours of {len(emb)} embeddings (epoch {epoch})")
    found = build_map(emb, epoch, config.surrogate.projection, config.surrogate.neighbours, config.seed, ctx.device)
    for what in ("projection", "neighbours", "similarity"):
        ctx.log_numpy(getattr(found, what), names.embedding_artifact(what, epoch))
    ctx.log_json(found.info(), names.EMBEDDING_MAP_JSON)
    axes = ("PC 1", "PC 2") if found.method == "pca" else (f"{found.method.upper()} 1", f"{found.method.upper()} 2")
    figure = embedding_map(found.projection, ctx.labels, list(ds.classes), map_title(ds.name, config.model, found),
                           axes=axes)
    ctx.log_figure(figure, names.EMBEDDING_MAP_PLOT)
    return found


def map_title(dataset: str, model: str, found: SampleMap) -> str:
    how = (f"PCA ({found.explained[0]:.0%} + {found.explained[1]:.0%} of the variance)" if found.method == "pca"
           else found.method.upper())
    return f"{dataset} / {model}: surrogate embeddings at epoch {found.epoch}, {how}; colour: label"


def log_samples(ctx: RunContext, scored: Scored, n: int = 10) -> None:
    """Log each epoch's surrogate predictions, the embedding map and, at the last epoch, a grid of each method's
    top-n samples (with the labels of `ctx.dataset`, which the scorers saw)."""
    for epoch, pred in scored.predictions.items():
        ctx.log_numpy(np.asarray(pred, dtype=np.int64), names.predictions_artifact(epoch))
    log_sample_map(ctx, scored)
    if not scored.scores:
        return
    last = max(e for _, e in scored.scores)
    ds = ctx.dataset
    for (method, epoch), s in scored.scores.items():
        if epoch != last or method == names.RANDOM:
            continue
        picked = pick_samples(s, ctx.labels, ds.x_train, scored.predictions.get(epoch), n, source_index=ds.train_index,
                              classes=list(ds.classes))
        title = f"{ds.name}: the {len(picked)} highest {method} scores (surrogate epoch {epoch}); red: misclassified"
        ctx.log_figure(sample_grid(picked, title), names.plot_artifact(f"top_{method}"))


def log_scored(ctx: RunContext, scored: Scored) -> None:
    """The scores, predictions and top samples of a fresh run (a resumed one logged them already)."""
    if not ctx.done:
        log_scores(ctx, scored.scores)
        log_samples(ctx, scored)


def scores_at(ctx: RunContext, methods: list[str], epoch: int, scored: Scored) -> dict[str, np.ndarray]:
    """{method: scores} at one surrogate epoch; random drawn from the config's seed."""
    return {m: (random_scores(len(ctx.dataset), ctx.config.seed) if m == names.RANDOM else scored.scores[(m, epoch)])
            for m in methods}


# ---------------------------------------------------------------- the pruning sweep
def sweep_trials(config: Config) -> list[Trial]:
    """The full-data references, then method x strategy x keep ratio x seed x score epoch.

    The random baseline under an ordering strategy (hardest, easiest) is one trial with
    strategy "random": ordering uniform scores keeps a uniform subset either way.
    """
    sweep = config.sweep
    trials = full_data_trials(sweep.seeds) if sweep.full_data else []
    for method, strategy, ratio, seed, epoch in itertools.product(
            sweep.methods, sweep.strategies, sweep.keep_ratios, sweep.seeds, sweep.score_epochs):
        if method == names.RANDOM and strategy in ORDERINGS:
            strategy = names.RANDOM
        trials.append(Trial(method, strategy, float(ratio), seed, epoch))
    return list(dict.fromkeys(trials))


def needs(config: Config, strategies: list[str] | None = None) -> tuple[bool, bool]:
    """(embeddings, gradient embeddings): whether any of `strategies` (default: the sweep's) needs them,
    under the config's [selection] options (kcenter_greedy's `space` picks one)."""
    wants = [STRATEGIES[s].inputs(config.strategy_options(s)) for s in (strategies or config.sweep.strategies)]
    return any(e for e, _ in wants), any(g for _, g in wants)


def select_for(ctx: RunContext, trial: Trial, scored: Scored) -> Selection:
    """The selection (kept indices, weights) of one sweep trial. Random scores are drawn per trial seed."""
    n = len(ctx.dataset)
    if trial.method == names.RANDOM:
        scores = random_scores(n, trial.seed)
        strategy = "hardest" if trial.strategy == names.RANDOM else trial.strategy
    else:
        scores, strategy = scored.scores[(trial.method, trial.epoch)], trial.strategy
    return select_weighted(strategy, scores, trial.ratio, ctx.labels, seed=trial.seed,
                           embeddings=scored.embeddings.get(trial.epoch), gradients=scored.gradients.get(trial.epoch),
                           **ctx.config.strategy_options(strategy))


def sweep_scores(ctx: RunContext) -> Scored:
    """One scoring pass for the sweep's methods and epochs, logged."""
    config = ctx.config
    scored = surrogate_scores(ctx, config.sweep.methods, config.sweep.score_epochs, *needs(config))
    log_scored(ctx, scored)
    return scored


def run_sweep(ctx: RunContext, scored: Scored) -> list[dict[str, Any]]:
    """Every trial of the sweep grid (selection here, retraining in the executor); the summary rows."""
    jobs = [(t, (lambda t=t: None if t.method == names.FULL else select_for(ctx, t, scored)))
            for t in sweep_trials(ctx.config)]
    return summarize_seeds(ctx.run_trials(jobs))


def log_ratio_figures(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """Accuracy against keep ratio, one figure per score epoch."""
    config = ctx.config
    for epoch in config.sweep.score_epochs:
        at_epoch = [r for r in rows if r["epoch"] == epoch or r["method"] == names.FULL]
        fig = accuracy_vs(at_epoch, "ratio", "keep ratio", f"{config.data.dataset} / {config.model}: scores at "
                                                           f"epoch {epoch}")
        ctx.log_figure(fig, names.plot_artifact(f"accuracy_vs_ratio_e{epoch}"))


def log_epoch_figures(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """Accuracy against the surrogate epoch at which scores were taken, one figure per keep ratio."""
    config = ctx.config
    for ratio in config.sweep.keep_ratios:
        at_ratio = [r for r in rows if r["ratio"] == ratio or r["method"] == names.FULL]
        fig = accuracy_vs(at_ratio, "epoch", "surrogate epoch t at which scores are taken",
                          f"{config.data.dataset} / {config.model}: keep {ratio:g}")
        ctx.log_figure(fig, names.plot_artifact(f"accuracy_vs_epoch_keep{ratio:g}"))


# ---------------------------------------------------------------- overlap
def overlap_epoch(config: Config) -> int:
    return config.overlap.epoch if config.overlap.epoch is not None else config.surrogate.epochs


def log_overlap(ctx: RunContext, scores: dict[str, np.ndarray], epoch: int) -> list[dict[str, Any]]:
    """The three matrices of [overlap] (overlap.json and heatmaps); one summary row per pair of methods."""
    config = ctx.config
    methods = list(scores)
    ctx.stage("overlap", f"{len(methods)} methods, k={config.overlap.k}")
    matrices = {**overlap_matrices(scores, config.overlap.k), "epoch": epoch}
    ctx.log_json(matrices, names.OVERLAP_JSON)
    what = {"first": f"top-{matrices['k']} (highest scores)", "last": f"bottom-{matrices['k']} (lowest scores)"}
    for name in ("first", "last", "spearman"):
        title = (f"Spearman rank correlation, epoch {epoch}" if name == "spearman"
                 else f"repetition rate of the {what[name]} sets, epoch {epoch}")
        ctx.log_figure(heatmap(matrices[name], methods, f"{config.data.dataset}: {title}", percent=name != "spearman"),
                       names.plot_artifact(f"overlap_{name}"))
    return pair_rows(matrices, epoch)
