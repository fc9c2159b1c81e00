"""The run context a kind works through: its config, data, cache, tracker, executor, event stream and cancel token."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .. import names
from ..cancel import CancelToken
from ..cancel import check as check_cancel
from ..config import Config
from ..data.dataset import Dataset, load_dataset
from ..device import resolve_device
from ..store.cache import Cache
from ..store.events import EventCallback, LogLine, StageStarted, emit
from ..store.runs import TrialRecord
from ..store.tracking import Tracker
from .trials import Trial, TrialJob


class RunContext:
    """Handed to an experiment kind. `derive(...)` forks it for a part of the run (another config, data set or
    set of done trials) that still adds to the same records and artifacts, and shares its cancel token.

    `cancel` is the run's token (the runner's signal handlers set it): pass it to long work
    (`compute_scores(..., cancel=ctx.cancel)`); `run_trials` polls it before each selection
    and hands it to the executor."""

    def __init__(self, config: Config, tracker: Tracker, parent_id: str, on_event: EventCallback | None,
                 executor, done: dict[str, TrialRecord], dataset: Dataset | None = None,
                 cancel: CancelToken | None = None):
        self.config = config
        self.cancel = cancel if cancel is not None else CancelToken()
        self.tracker = tracker
        self.parent_id = parent_id
        self.on_event = on_event
        self.executor = executor
        self.done = done
        self.device = resolve_device(config.device)
        if dataset is None:
            dataset = load_dataset(config.data.dataset, config.data.data_dir, self.device,
                                   config.data.train_size, config.data.test_size, config.data.options,
                                   config.data.device_budget_mb, on_event)
            tracker.log_dataset_input(parent_id, dataset)  # here, not at creation: a detached launch loads no data
            tracker.set_tags(parent_id, {names.DATA_PATH: dataset.data_path})
        self.dataset = dataset
        self.cache = Cache(tracker.store.cache_dir)
        self.artifacts: list[str] = []
        self.records: list[TrialRecord] = []

    def derive(self, *, config: Config | None = None, dataset: Dataset | None = None,
               done: dict[str, TrialRecord] | None = None) -> RunContext:
        """The same run (records, artifacts, tracker, executor) with another config, data set or done trials."""
        part = copy.copy(self)  # shares the records and artifacts lists
        if config is not None:
            part.config = config
        if dataset is not None:
            part.dataset = dataset
        if done is not None:
            part.done = done
        return part

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.y_train.cpu().numpy()

    def stage(self, stage: str, detail: str = "") -> None:
        emit(self.on_event, StageStarted(stage=stage, detail=detail))

    def log(self, message: str) -> None:
        emit(self.on_event, LogLine(message=message))

    def run_trials(self, jobs: list[tuple[Trial, Callable[[], np.ndarray | None]]], task: str = "retrain",
                   name_of: Callable[[Trial], str] | None = None,
                   options: dict[str, Any] | None = None) -> list[TrialRecord]:
        """Run the trials not done yet: selection (`kept()`) happens here, the `task` in the executor."""
        total = len(jobs)
        records: dict[str, TrialRecord] = {}
        pending: list[TrialJob] = []
        to_select = sum(trial.key not in self.done for trial, _ in jobs)
        for i, (trial, kept) in enumerate(jobs):
            if trial.key in self.done:
                records[trial.key] = self.done[trial.key]
                continue
            # every selection is made before the first trial trains: a coreset on 50,000 samples takes a minute
            check_cancel(self.cancel)
            self.stage("selecting", f"{len(pending) + 1} of {to_select}: {name_of(trial) if name_of else trial.name}")
            chosen = kept()  # kept indices, None (all), or a Selection (indices and weights)
            weights = getattr(chosen, "weights", None)
            chosen = getattr(chosen, "indices", chosen)
            pending.append(TrialJob(self.config.model_dump(mode="json"), trial, i, total, chosen,
                                    self.tracker.store.uri, os.getcwd(), self.parent_id, self.config.name,
                                    task=task, name=name_of(trial) if name_of else "", options=options,
                                    weights=weights))
        if len(pending) < total:
            self.log(f"{total - len(pending)} of {total} trials already done (earlier, or shared with another "
                     f"part of this run), {len(pending)} to run")
        for record in self.executor.run(pending, self.on_event, cancel=self.cancel):
            records[record.key] = record
        ordered = [records[t.key] for t, _ in jobs if t.key in records]
        self.records.extend(ordered)
        return ordered

    # artifacts on the parent run, remembered for the RunResult
    def log_json(self, obj: Any, name: str) -> None:
        self.tracker.log_json(self.parent_id, obj, name)
        self.artifacts.append(name)

    def log_figure(self, figure, name: str) -> None:
        self.tracker.log_figure(self.parent_id, figure, name)
        plt.close(figure)
        self.artifacts.append(name)

    def log_text(self, text: str, name: str) -> None:
        self.tracker.log_text(self.parent_id, text, name)
        self.artifacts.append(name)

    def log_numpy(self, array: np.ndarray, name: str) -> None:
        self.tracker.log_numpy(self.parent_id, array, name)
        self.artifacts.append(name)
