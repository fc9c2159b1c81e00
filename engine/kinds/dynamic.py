"""`dynamic`: InfoBatch-style dynamic pruning (engine/selection/infobatch.py) inside the trainer's own loop, beside
full-data training with the same seeds and epochs: test accuracy, forward/backward passes saved, wall time saved.

Each (method, seed) is one `dynamic` trial (engine/runner/tasks.py), so it runs on the executor, on Ray too; each
child logs accuracy per epoch against the samples seen.
"""
from __future__ import annotations

from typing import Any

from .. import names
from ..analysis import savings, summarize_seeds
from ..config import Config
from ..runner.context import RunContext
from ..runner.trials import Trial, full_data_trials

METHOD = "infobatch"


def plan(config: Config) -> list[Trial]:
    dyn = config.dynamic
    return full_data_trials(dyn.seeds) + [Trial(METHOD, dyn.score, 1 - dyn.ratio, seed, 0) for seed in dyn.seeds]


def count_trials(config: Config) -> int:
    return len(plan(config))


def trial_name(config: Config, trial: Trial) -> str:
    dyn = config.dynamic
    if trial.method == names.FULL:
        return f"dynamic: full data / seed {trial.seed}"
    return f"dynamic: InfoBatch r={dyn.ratio:g} δ={dyn.delta:g} ({dyn.score}) / seed {trial.seed}"


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    config = ctx.config
    records = ctx.run_trials([(t, lambda: None) for t in plan(config)], task="dynamic",
                             name_of=lambda t: trial_name(config, t))
    rows = summarize_seeds(records, keys=("method",), means=("forward", "backward", "wall_seconds", "samples"))
    return [{"method": r["method"], "r": 0.0 if r["method"] == names.FULL else config.dynamic.ratio,
             "delta": config.dynamic.delta, **{k: v for k, v in r.items() if k != "method"}} for r in savings(rows)]
