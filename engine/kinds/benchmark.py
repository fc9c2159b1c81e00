"""`benchmark`: every (scorer, strategy) pair at every keep ratio and seed, retrained and ranked against random
with paired tests over seeds, 95 % intervals, average ranks and the crossover ratio (engine/analysis.py).

Surrogates train once and scores (and embeddings, if a strategy needs them) are computed once for the whole grid
at the surrogate's last epoch; each (method, ratio, seed) is one retraining trial on the executor, resumable.
"""
from __future__ import annotations

import csv
import io
from typing import Any

from .. import names
from ..analysis import (
    average_ranks,
    benchmark_rows,
    critical_difference,
    crossover,
    friedman,
)
from ..config import Config
from ..figures import accuracy_bands, rank_heatmap
from ..runner import steps
from ..runner.context import RunContext
from ..runner.trials import Trial, full_data_trials
from ..scoring.external import split_pair
from ..scoring.registry import SCORERS
from ..selection.registry import STRATEGIES


def pairs(config: Config) -> list[tuple[str, str]]:
    """The (scorer, strategy) pairs compared, random first. "all" reads the registries now, at plan time."""
    bench = config.benchmark
    if bench.methods == "all":
        found = [(s, "hardest") for s in SCORERS if s != names.RANDOM]
        found += [(bench.strategy_scorer, s) for s in STRATEGIES if s not in (*steps.ORDERINGS, names.RANDOM)]
    else:
        found = [split_pair(p) for p in bench.methods]
    found = [(names.RANDOM, names.RANDOM) if m == names.RANDOM and s in steps.ORDERINGS else (m, s) for m, s in found]
    return list(dict.fromkeys([(names.RANDOM, names.RANDOM), *found]))


def plan(config: Config) -> list[Trial]:
    bench, epoch = config.benchmark, config.surrogate.epochs
    trials = full_data_trials(bench.seeds) if bench.full_data else []
    return trials + [Trial(m, s, float(r), seed, epoch) for m, s in pairs(config)
                     for r in bench.keep_ratios for seed in bench.seeds]


def count_trials(config: Config) -> int:
    return len(plan(config))


def report(rows: list[dict[str, Any]], hardest: list[str]) -> dict[str, Any]:
    """benchmark.json: the rows, each ratio's winner, average ranks with Nemenyi's critical difference, Friedman's
    p-value, and the crossover ratio of every `scorer/hardest` method."""
    ranked = [r for r in rows if "rank" in r]
    ratios = sorted({r["ratio"] for r in ranked})
    ranks = average_ranks(ranked)
    return {"rows": rows,
            "winners": {f"{ratio:g}": [r["method"] for r in ranked if r["ratio"] == ratio and r["winner"]]
                        for ratio in ratios},
            "average_ranks": ranks, "critical_difference": critical_difference(len(ranks), len(ratios)),
            "friedman_p": friedman(ranked), "crossover": {m: crossover(ranked, m) for m in hardest}}


def to_csv(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, keys)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    config = ctx.config
    compared = pairs(config)
    scored = steps.surrogate_scores(ctx, [m for m, _ in compared], [config.surrogate.epochs],
                                    *steps.needs(config, [s for _, s in compared]))
    steps.log_scored(ctx, scored)
    jobs = [(t, (lambda t=t: None if t.method == names.FULL else steps.select_for(ctx, t, scored)))
            for t in plan(config)]
    rows = benchmark_rows(ctx.run_trials(jobs))
    summary = report(rows, [f"{m}/hardest" for m, s in compared if s == "hardest"])
    ctx.log_json(summary, names.BENCHMARK_JSON)
    ctx.log_text(to_csv(rows), names.BENCHMARK_CSV)
    title = f"{config.data.dataset} / {config.model}: {len(compared)} methods, {len(config.benchmark.seeds)} seed(s)"
    ctx.log_figure(accuracy_bands(rows, title), names.plot_artifact("benchmark_accuracy"))
    ctx.log_figure(rank_heatmap(rows, title), names.plot_artifact("benchmark_ranks"))
    return rows
