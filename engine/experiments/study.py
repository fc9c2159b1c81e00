"""`study`: the seed study in one parent run.

Three parts, each the code of its own kind: the overlap of the scorers' top-k
and bottom-k sets ([overlap]), the pruning-ratio sweep ([sweep]), and pruning
after different pre-training epochs of the surrogate (the [sweep] grid with
[study].methods, keep_ratios and score_epochs). One scoring call covers every
method and epoch of all parts, so the surrogates train once; a trial that two
parts share (same method, ratio, seed and epoch, e.g. the full-data runs) trains once.
"""
from __future__ import annotations

import copy
from typing import Any

from . import ExperimentKind, register_kind
from .base import RunContext, summary_to_csv

OVERLAP, PRUNE, EPOCHS = "overlap", "prune", "epochs"


def epochs_config(config):
    """The config of the epochs part: the sweep grid over study.score_epochs at study.keep_ratios."""
    study = config.study
    sweep = config.sweep.model_copy(update={"methods": study.methods, "keep_ratios": study.keep_ratios,
                                            "score_epochs": study.score_epochs})
    return config.model_copy(update={"sweep": sweep})


def part_configs(config) -> dict[str, Any]:
    parts = {PRUNE: config, EPOCHS: epochs_config(config)}
    return {name: parts[name] for name in config.study.parts if name in parts}


def count_trials(config) -> int:
    from .prune import plan

    return len({t.key for c in part_configs(config).values() for t in plan(c)})


def shared_scores(ctx: RunContext):
    """One scoring pass for every part: the union of methods and epochs (logged once, with the top samples)."""
    from .overlap import log_samples
    from .prune import log_scores, needs_embeddings, surrogate_scores

    config = ctx.config
    methods, epochs = [], set()
    if OVERLAP in config.study.parts:
        methods += config.overlap.methods
        epochs.add(config.overlap.epoch if config.overlap.epoch is not None else config.surrogate.epochs)
    for part in part_configs(config).values():
        methods += part.sweep.methods
        epochs.update(part.sweep.score_epochs)
    methods = list(dict.fromkeys(methods))
    scored = surrogate_scores(ctx, methods, sorted(epochs), needs_embeddings(config))
    if not ctx.done:
        log_scores(ctx, scored[0])
        log_samples(ctx, scored[0], scored[2])
    return scored


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    from .overlap import run_overlap
    from .prune import execute as prune_execute, log_epoch_figures, run_sweep

    config = ctx.config
    scored = shared_scores(ctx)
    if OVERLAP in config.study.parts:
        run_overlap(ctx, scored)
    rows: list[dict[str, Any]] = []
    for name, part_config in part_configs(config).items():
        ctx.stage(name, f"{name} part of the study")
        part = copy.copy(ctx)  # the same run, records and artifacts; its own sweep
        part.config = part_config
        part.done = {**ctx.done, **{r.key: r for r in ctx.records}}  # trials an earlier part ran are not rerun
        if name == PRUNE:
            part_rows = prune_execute(part, scored)
        else:
            part_rows = run_sweep(part, scored)
            log_epoch_figures(part, part_rows)
        rows += [{"part": name, **r} for r in part_rows]
    ctx.log_text(summary_to_csv(rows), "summary.csv")  # replaces the parts' own summaries
    ctx.log_artifact_json(rows, "summary.json")
    ctx.records[:] = list({r.key: r for r in ctx.records}.values())  # a shared trial counts once
    ctx.artifacts[:] = list(dict.fromkeys(ctx.artifacts))
    return rows


register_kind(ExperimentKind("study", "the seed study: overlap, pruning-ratio sweep and pre-training epochs in one run",
                             count_trials, execute))
