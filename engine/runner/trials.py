"""The data of a run: a trial (one cell of a grid), the picklable job that runs it, and a run's result."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import names
from ..store.runs import TrialRecord


@dataclass(frozen=True)
class Trial:
    """One cell of the sweep grid."""

    method: str
    strategy: str
    ratio: float
    seed: int
    epoch: int

    @property
    def key(self) -> str:
        return f"method={self.method}|strategy={self.strategy}|ratio={self.ratio:g}|seed={self.seed}|epoch={self.epoch}"

    @property
    def name(self) -> str:
        if self.method == names.FULL:
            return f"full-data / seed {self.seed}"
        return f"{self.method} / {self.strategy} / keep {self.ratio:g} / seed {self.seed} / e{self.epoch}"

    def tags(self) -> dict[str, Any]:
        return {"method": self.method, "strategy": self.strategy, "ratio": f"{self.ratio:g}",
                "seed": self.seed, "epoch": self.epoch}


def full_data_trials(seeds: list[int]) -> list[Trial]:
    """The reference trials every kind compares with: all the data, one per seed."""
    return [Trial(names.FULL, names.NO_STRATEGY, 1.0, seed, 0) for seed in seeds]


@dataclass
class TrialJob:
    """Everything a worker needs to run one trial and log its child run (picklable)."""

    config: dict[str, Any]
    trial: Trial
    index: int
    total: int
    kept: np.ndarray | None  # sorted kept indices, None = all
    tracking_uri: str
    workdir: str
    parent_id: str
    experiment: str
    task: str = "retrain"  # the TRIAL_TASKS entry that trains it
    name: str = ""  # the child run's name; default: the trial's
    options: dict[str, Any] | None = None  # the task's own options (retrain: label noise)
    weights: np.ndarray | None = None  # a weighted coreset's loss weights, aligned with `kept`

    @property
    def run_name(self) -> str:
        return self.name or self.trial.name


@dataclass
class RunResult:
    """What `engine.run` returns."""

    run_id: str
    experiment: str
    status: str
    summary: list[dict[str, Any]]
    artifacts: list[str]
    trials: list[TrialRecord]
    tracking_uri: str
    progress_file: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["trials"] = [asdict(t) for t in self.trials]
        return out
