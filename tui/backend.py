"""Everything the TUI reads from the store or starts, behind one object: a thin adapter over engine.api.

Why an object: it is the seam the snapshot tests use to swap in fixed data
(tests/tui/fixed_backend.py), so what they draw does not depend on clocks or run
ids. Why nothing more: every read and action is one engine.api call, which a
script can make too; this adds only what the screens need on top (a clock, the
store's URI, arrays kept for the session). Every method but `uri` and `now`
blocks on MLflow or files, so screens call them in thread workers; engine.api
loads MLflow, numpy and torch inside its functions, never at import.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine import api
from engine.api import Preview, RunDetail, RunInfo, RunProgress, TrialRow, overlap_matrices
from engine.api import split_score_name as split_name

if TYPE_CHECKING:  # numpy costs ~0.2 s at startup; the screens get arrays only from workers
    import numpy as np

    from engine.api import RunInspector
    from engine.config import Config

__all__ = ["Backend", "BackendProtocol", "Preview", "RunDetail", "SampleSet", "TrialRow", "overlap_matrices",
           "parse_overlap_json", "run_duration", "split_name"]


def run_duration(run: RunInfo, now: float) -> float | None:
    """Seconds a run took, or has taken so far while it runs (`now` is injected, for fixed snapshots);
    a resumed run's time between its sessions does not count."""
    return run.duration_at(now)


@dataclass
class SampleSet:
    """The training images a run's scores are aligned with, for the gallery."""

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int (N,)
    classes: list[str]
    paths: list[str] | None = None  # each image's file, for folder data


def parse_overlap_json(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The overlap kind's overlap.json ({"methods", "k", "first", "last", "spearman", "epoch"}) as
    {k: matrices}, so the screen can tell the k the run logged from one it must recompute."""
    if not isinstance(data, dict) or data.get("first") is None or not data.get("methods"):
        return {}
    try:
        k = int(float(data.get("k")))
    except (TypeError, ValueError):
        k = 0
    return {k: {key: data.get(key) for key in ("methods", "first", "last", "spearman")}}


@runtime_checkable
class BackendProtocol(Protocol):
    """Every call the screens make on `app.backend`; the real `Backend` and the tests' fixed one implement it.

    All but `uri` and `now` block (MLflow, files, the engine), so screens call them in thread workers.
    """

    @property
    def uri(self) -> str: ...

    def now(self) -> float:
        """The clock the screens use for durations (fixed in snapshot tests)."""
        ...

    def warm_up(self) -> None: ...

    def list_runs(self) -> list[RunInfo]: ...

    def run_row(self, run_id: str) -> RunInfo: ...

    def run_detail(self, run_id: str) -> RunDetail: ...

    def history(self, child_run_id: str) -> dict[str, list[tuple[int, float]]]: ...

    def live_curves(self, run_id: str) -> dict[int, tuple[str, list[tuple[int, dict[str, float]]]]]: ...

    def score_names(self, run_id: str) -> list[str]: ...

    def scores(self, run_id: str, name: str) -> np.ndarray: ...

    def overlap(self, run_id: str) -> dict[str, Any] | None: ...

    def predictions(self, run_id: str, epoch: int | None = None) -> np.ndarray | None: ...

    def benchmark(self, run_id: str) -> dict[str, Any] | None: ...

    def seen_curves(self, run_id: str) -> dict[str, list[tuple[float, float]]]: ...

    def samples(self, run_id: str) -> SampleSet: ...

    def inspector(self, run_id: str) -> RunInspector:
        """A run's per-sample arrays read once: a sample's report, the embedding map, the trials' selections."""
        ...

    def progress(self) -> list[RunProgress]: ...

    def cancel(self, progress: RunProgress) -> str: ...

    def launch(self, config: Config) -> dict[str, Any]: ...

    def preview(self, config: Config) -> Preview: ...

    def trial_count(self, config: Config) -> int: ...

    def run_estimate(self, run_id: str) -> float | None: ...


class Backend:
    """The real store, through engine.api: MLflow, the progress files, and detached launches."""

    def __init__(self, tracking_uri: str | None = None):
        self.store = api.locate_store(tracking_uri)  # light: MLflow loads in warm_up or the first query
        self.watcher = api.ProgressWatcher(self.store.progress_dir)
        self._opened = False  # MLflow loaded and the store open: from then on the run list goes through MLflow
        self._scores: dict[tuple[str, str], np.ndarray] = {}
        self._samples: dict[str, SampleSet] = {}
        self._inspectors: dict[str, RunInspector] = {}
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return self.store.uri

    def now(self) -> float:
        return time.time()

    def warm_up(self) -> None:
        """Import MLflow and open the store off the UI thread, before the first screen needs them."""
        api.open_store(self.uri)
        self._opened = True

    # ------------------------------------------------------------ runs
    def list_runs(self) -> list[RunInfo]:
        """Parent runs, newest first; runs whose process died come back KILLED.

        Until MLflow has loaded (about 12 s after start at load average 6.5), a SQLite store's file is read
        directly (engine.api.list_runs_quick), so the first table waits for nothing but the file.
        """
        if not self._opened:
            runs = api.list_runs_quick(self.uri)
            if runs is not None:
                return runs
        runs = api.list_runs(self.uri)
        self._opened = True
        return runs

    def run_row(self, run_id: str) -> RunInfo:
        return api.run_info(run_id, self.uri)

    def run_detail(self, run_id: str) -> RunDetail:
        return api.run_detail(run_id, self.uri)

    def history(self, child_run_id: str) -> dict[str, list[tuple[int, float]]]:
        """Per-epoch metrics of a trial (step = epoch)."""
        return api.trial_history(child_run_id, tracking_uri=self.uri)

    def seen_curves(self, run_id: str) -> dict[str, list[tuple[float, float]]]:
        return api.samples_seen_curves(run_id, self.uri)

    # ------------------------------------------------------------ artifacts
    def score_names(self, run_id: str) -> list[str]:
        return api.score_names(run_id, self.uri)

    def scores(self, run_id: str, name: str) -> np.ndarray:
        """A score array, downloaded once per session (the gallery and overlap screens come back to them)."""
        key = (run_id, name)
        with self._lock:
            if key in self._scores:
                return self._scores[key]
        array = api.load_scores(run_id, name, self.uri)
        with self._lock:
            self._scores[key] = array
        return array

    def overlap(self, run_id: str) -> dict[str, Any] | None:
        return api.overlap_report(run_id, self.uri)

    def benchmark(self, run_id: str) -> dict[str, Any] | None:
        return api.benchmark_report(run_id, self.uri)

    def predictions(self, run_id: str, epoch: int | None = None) -> np.ndarray | None:
        return api.load_predictions(run_id, epoch, self.uri)

    def samples(self, run_id: str) -> SampleSet:
        """The run's training images and labels, loaded once per session."""
        with self._lock:
            if run_id in self._samples:
                return self._samples[run_id]
        ds = api.run_dataset(run_id, self.uri)
        out = SampleSet(ds.x_train.numpy(), ds.y_train.numpy(), list(ds.classes), api.sample_files(run_id, self.uri))
        with self._lock:
            self._samples[run_id] = out
        return out

    def inspector(self, run_id: str) -> RunInspector:
        """The run's inspector (engine.api.sample_inspector), read once per session: the inspector and the map
        step through many samples and trials of one run."""
        with self._lock:
            if run_id in self._inspectors:
                return self._inspectors[run_id]
        found = api.sample_inspector(run_id, self.uri)
        with self._lock:
            self._inspectors[run_id] = found
        return found

    # ------------------------------------------------------------ runs under way
    def live_curves(self, run_id: str) -> dict[int, tuple[str, list[tuple[int, dict[str, float]]]]]:
        return api.live_curves(run_id, self.uri)

    def progress(self) -> list[RunProgress]:
        return self.watcher.poll(self.now())

    def cancel(self, progress: RunProgress) -> str:
        return api.cancel_run(progress)

    def launch(self, config: Config) -> dict[str, Any]:
        """Start a detached run (its own process session): closing the TUI does not stop it."""
        return api.launch_detached(config, tracking_uri=self.uri)

    def preview(self, config: Config) -> Preview:
        """What a launch would run and about how long it takes (loads the data; measures the model once)."""
        return api.preview(config, self.uri)

    def trial_count(self, config: Config) -> int:
        return api.trial_count(config)

    def run_estimate(self, run_id: str) -> float | None:
        """A run's estimated seconds from its preview (cached measurements only; None when there are none)."""
        return api.preview_run(run_id, self.uri).seconds
