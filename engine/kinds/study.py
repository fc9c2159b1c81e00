"""`study`: the seed study in one parent run.

Three parts: the overlap of the scorers' top-k and bottom-k sets ([overlap]),
the pruning-ratio sweep ([sweep]), and pruning after different pre-training
epochs of the surrogate (the [sweep] grid with [study].methods, keep_ratios and
score_epochs). One scoring call covers every method and epoch of all parts, so
the surrogates train once; a trial that two parts share (same method, ratio,
seed and epoch, e.g. the full-data runs) trains once.
"""
from __future__ import annotations

from typing import Any

from ..config import Config
from ..runner import steps
from ..runner.context import RunContext

OVERLAP, PRUNE, EPOCHS = "overlap", "prune", "epochs"


def epochs_config(config: Config) -> Config:
    """The config of the epochs part: the sweep grid over study.score_epochs at study.keep_ratios."""
    study = config.study
    sweep = config.sweep.model_copy(update={"methods": study.methods, "keep_ratios": study.keep_ratios,
                                            "score_epochs": study.score_epochs})
    return config.model_copy(update={"sweep": sweep})


def part_configs(config: Config) -> dict[str, Config]:
    parts = {PRUNE: config, EPOCHS: epochs_config(config)}
    return {name: parts[name] for name in config.study.parts if name in parts}


def count_trials(config: Config) -> int:
    return len({t.key for c in part_configs(config).values() for t in steps.sweep_trials(c)})


def scored_methods_and_epochs(config: Config) -> tuple[list[str], list[int]]:
    """The union of every part's methods (in order, once) and score epochs (sorted): the study's one scoring pass,
    as it runs and as the launch preview counts it."""
    methods, epochs = [], set()
    if OVERLAP in config.study.parts:
        methods += config.overlap.methods
        epochs.add(steps.overlap_epoch(config))
    for part in part_configs(config).values():
        methods += part.sweep.methods
        epochs.update(part.sweep.score_epochs)
    return list(dict.fromkeys(methods)), sorted(epochs)


def shared_scores(ctx: RunContext) -> steps.Scored:
    """One scoring pass for every part: the union of methods and epochs (logged once, with the top samples)."""
    config = ctx.config
    methods, epochs = scored_methods_and_epochs(config)
    scored = steps.surrogate_scores(ctx, methods, epochs, *steps.needs(config))
    steps.log_scored(ctx, scored)
    return scored


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    config = ctx.config
    scored = shared_scores(ctx)
    if OVERLAP in config.study.parts:
        epoch = steps.overlap_epoch(config)
        steps.log_overlap(ctx, steps.scores_at(ctx, config.overlap.methods, epoch, scored), epoch)
    rows: list[dict[str, Any]] = []
    for name, part_config in part_configs(config).items():
        ctx.stage(name, f"{name} part of the study")
        # the same run, records and artifacts; its own sweep; trials an earlier part ran are not rerun
        part = ctx.derive(config=part_config, done={**ctx.done, **{r.key: r for r in ctx.records}})
        part_rows = steps.run_sweep(part, scored)
        if name == PRUNE:
            steps.log_ratio_figures(part, part_rows)
        if name == EPOCHS or len(part_config.sweep.score_epochs) > 1:
            steps.log_epoch_figures(part, part_rows)
        rows += [{"part": name, **r} for r in part_rows]
    ctx.records[:] = list({r.key: r for r in ctx.records}.values())  # a shared trial counts once
    ctx.artifacts[:] = list(dict.fromkeys(ctx.artifacts))
    return rows
