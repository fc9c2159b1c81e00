"""Everything the TUI reads from the store or starts, behind one object.

Why one object: MLflow, torch and most of the engine take seconds to import
and their queries block, so every method here is meant to run in a thread
worker (the screens never call it on the UI thread), and everything heavy is
imported inside the methods. It is also the seam the snapshot tests use to
swap in fixed data, so what they draw does not depend on clocks or run ids.
"""
from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine import names

if TYPE_CHECKING:  # numpy costs ~0.2 s at startup, the engine more; the functions import them when they run
    import numpy as np

    from engine.config import Config
    from engine.store.progress import RunProgress
    from engine.store.runs import RunInfo

ACCURACY, TRAIN_LOSS, TEST_LOSS = "test_accuracy", "train_loss", "test_loss"
SAMPLES_SEEN = "samples_seen"  # the dynamic kind's cumulative samples trained on, per epoch
RECENT_S = 15 * 60  # a finished run stays on the monitor this long
PREDICTIONS = names.PREDICTIONS  # scores/predictions@eN.npy: the surrogate's predicted labels, not a score


def run_duration(run: Any, now: float) -> float | None:
    """Seconds a run took, or has taken so far while it runs (`now` is injected, for fixed snapshots);
    a resumed run's time between its sessions does not count."""
    return run.duration_at(now)


@dataclass(frozen=True)
class TrialRow:
    """One child run (a trial): where it sits in the sweep grid and how it ended."""

    run_id: str
    method: str
    strategy: str
    ratio: float
    seed: int
    epoch: int
    status: str
    accuracy: float | None

    @property
    def label(self) -> str:
        """The engine's trial name (as progress events carry it), without its slashes, to fit narrow tables."""
        if self.method == names.FULL:
            return f"full-data seed {self.seed}"
        return f"{self.method} {self.strategy} keep {self.ratio:g} seed {self.seed} e{self.epoch}"


@dataclass
class RunDetail:
    """A parent run with what the plot screens draw: its summary rows and its trials."""

    run: Any  # engine.runs.RunInfo
    summary: list[dict[str, Any]]
    trials: list[TrialRow]


@dataclass
class SampleSet:
    """The training images a run's scores are aligned with, for the gallery."""

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int (N,)
    classes: list[str]


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def split_name(name: str) -> tuple[str, int | None]:
    """A score artifact's name as (method, surrogate epoch): "loss@e3" -> ("loss", 3)."""
    method, sep, epoch = name.rpartition("@e")
    if sep and epoch.isdigit():
        return method, int(epoch)
    return name, None


def overlap_matrices(scores: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """methods x methods top-k ("first") and bottom-k ("last") repetition rates and Spearman's rho,
    computed by the engine's overlap kind (one definition of R for the run and the TUI)."""
    from engine.analysis import overlap_matrices as compute

    n = min(len(v) for v in scores.values())
    return compute(scores, max(1, min(int(k), n)))


def parse_overlap_json(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The overlap kind's overlap.json ({"methods", "k", "first", "last", "spearman", "epoch"}) as
    {k: matrices}, so the screen can tell the k the run logged from one it must recompute."""
    if not isinstance(data, dict) or data.get("first") is None or not data.get("methods"):
        return {}
    return {_int(data.get("k")): {key: data.get(key) for key in ("methods", "first", "last", "spearman")}}


class ProgressWatcher:
    """Follows every progress file in a folder, like `tail -f`, and folds each into a RunProgress.

    Whoever started a run, its file is here, so reopening the TUI re-attaches.
    Old files are skipped unless their process still lives (a long silent stage).
    """

    def __init__(self, progress_dir: Path, recent_s: float = RECENT_S):
        self.dir = Path(progress_dir)
        self.recent_s = recent_s
        self._followers: dict[Path, Any] = {}
        self._progress: dict[Path, Any] = {}
        self._skipped: dict[Path, float] = {}
        self._lock = threading.Lock()

    def poll(self, now: float | None = None) -> list[Any]:
        """The runs that are live or ended lately, live ones first, newest first."""
        from engine.store.progress import ProgressFollower, RunProgress, iter_progress_files

        now = time.time() if now is None else now
        with self._lock:
            for path in iter_progress_files(self.dir):
                if path not in self._followers:
                    try:
                        mtime = path.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    if now - mtime > self.recent_s and not self._first_line_alive(path, mtime):
                        continue
                    self._followers[path] = ProgressFollower(path)
                    self._progress[path] = RunProgress()
                events = self._followers[path].poll()
                for event in events:  # the log names each finished trial with its accuracy (engine's trial_line)
                    self._progress[path].apply(event)
            runs = []
            for path, progress in self._progress.items():
                status = progress.effective_status
                if status == names.RUNNING or now - (progress.updated or 0) <= self.recent_s:
                    runs.append((progress, status))
        runs.sort(key=lambda ps: (ps[1] != names.RUNNING, -(ps[0].started or 0)))
        return [p for p, _ in runs]

    def _first_line_alive(self, path: Path, mtime: float) -> bool:
        """A file not touched lately is only worth following if its process still lives."""
        if self._skipped.get(path) == mtime:
            return False
        self._skipped[path] = mtime
        from engine.store.events import RunStarted, event_from_dict
        from engine.store.progress import process_alive

        try:
            with open(path, encoding="utf-8") as f:
                first = f.readline()
            event = event_from_dict(json.loads(first))
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return isinstance(event, RunStarted) and process_alive(event.pid, event.host, event.pid_start) is True


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

    def progress(self) -> list[RunProgress]: ...

    def cancel(self, progress: RunProgress) -> str: ...

    def launch(self, config: Config) -> dict[str, Any]: ...


class Backend:
    """The real store: MLflow through the engine's API, progress files, and detached launches."""

    def __init__(self, tracking_uri: str | None = None, workdir: str | Path | None = None):
        from engine.store.tracking import resolve_store  # light: MLflow is imported on first use

        self.tracking_uri = tracking_uri
        self.workdir = str(Path(workdir or os.getcwd()).resolve())
        self.store = resolve_store(tracking_uri, self.workdir)
        self.watcher = ProgressWatcher(self.store.progress_dir)
        self._cache_dir = Path(tempfile.mkdtemp(prefix="prunelab-tui-"))
        self._scores: dict[tuple[str, str], np.ndarray] = {}
        self._samples: dict[str, SampleSet] = {}
        self._lock = threading.Lock()
        self._tracker: Any = None  # MLflow, once warm_up (or the first query) has loaded it
        self._tracker_lock = threading.Lock()  # one MLflow set-up, however many workers ask at once

    # ------------------------------------------------------------ basics
    @property
    def uri(self) -> str:
        return self.store.uri

    def now(self) -> float:
        return time.time()

    def warm_up(self) -> None:
        """Import MLflow and the engine off the UI thread, before the first screen needs them."""
        self._track()

    def _track(self):
        with self._tracker_lock:
            if self._tracker is None:
                from engine.store.tracking import tracker

                self._tracker = tracker(self.store.uri, self.workdir)
            return self._tracker

    # ------------------------------------------------------------ runs
    def list_runs(self) -> list[RunInfo]:
        """Parent runs (engine.runs.RunInfo), newest first; runs whose process died come back KILLED.

        Until MLflow has loaded (about 12 s after start at load average 6.5), a SQLite store is read
        directly (engine.store.sqlite_runs), so the first table waits for nothing but the file.
        """
        if self._tracker is None and self.store.is_sqlite:
            from engine.store.sqlite_runs import list_runs_sqlite

            runs = list_runs_sqlite(self.store)
            if runs is not None:
                return runs
        from engine.store.runs import list_runs

        return list_runs(self._track())

    def run_row(self, run_id: str) -> RunInfo:
        """One parent run as a RunInfo (trials_done is not counted here: the run screens do not show it)."""
        from engine.store.runs import RunInfo, reconcile

        track = self._track()
        run = track.get_run(run_id)
        experiment = track.client.get_experiment(run.info.experiment_id).name
        tags = run.data.tags
        return RunInfo(run_id=run_id, experiment=experiment, name=run.info.run_name or "",
                       kind=tags.get(names.KIND, ""), status=reconcile(track, run),
                       dataset=tags.get(names.DATASET, ""), model=tags.get(names.MODEL, ""),
                       best_accuracy=run.data.metrics.get("best_test_accuracy"), trials_done=0,
                       trials=_int(run.data.metrics.get("trials")), start_time=run.info.start_time / 1000,
                       end_time=run.info.end_time / 1000 if run.info.end_time else None,
                       active_seconds=run.data.metrics.get(names.ACTIVE_SECONDS),
                       full_accuracy=run.data.metrics.get(names.FULL_ACCURACY),
                       best_pruned=run.data.metrics.get(names.BEST_PRUNED))

    def trials(self, run_id: str) -> list[TrialRow]:
        out = []
        for child in self._track().children(run_id):
            tags, metrics = child.data.tags, child.data.metrics
            acc = metrics.get("final_test_accuracy", metrics.get(ACCURACY))
            out.append(TrialRow(child.info.run_id, tags.get("method", "?"), tags.get("strategy", ""),
                                _float(tags.get("ratio")) or 1.0, _int(tags.get("seed")), _int(tags.get("epoch")),
                                child.info.status, _float(acc)))
        out.sort(key=lambda t: (t.method != "full", t.method, t.strategy, t.ratio, t.epoch, t.seed))
        return out

    def run_detail(self, run_id: str) -> RunDetail:
        from engine.store.runs import run_summary

        track = self._track()
        row = self.run_row(run_id)
        trials = self.trials(run_id)
        try:
            summary = run_summary(track, run_id)
        except Exception:  # a run with no summary yet and no finished trial
            summary = []
        return RunDetail(row, summary, trials)

    def history(self, child_run_id: str) -> dict[str, list[tuple[int, float]]]:
        """Per-epoch metrics of a trial (step = epoch)."""
        from engine.store.tracking import retry

        client = self._track().client
        out = {}
        for key in (ACCURACY, TRAIN_LOSS, TEST_LOSS):
            points = retry(client.get_metric_history, child_run_id, key)
            out[key] = sorted((int(m.step), float(m.value)) for m in points)
        return out

    def seen_curves(self, run_id: str) -> dict[str, list[tuple[float, float]]]:
        """Test accuracy against samples seen, per method (full data included), the mean over seeds epoch by
        epoch: the dynamic kind's `samples_seen` (cumulative forward/backward passes) per epoch, or the online
        kind's evaluation steps (their MLflow step is the examples backpropagated so far)."""
        from collections import defaultdict

        from engine.store.tracking import retry

        client = self._track().client
        points: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
        for child in self._track().children(run_id):
            if child.info.status != names.FINISHED:
                continue
            cid, method = child.info.run_id, child.data.tags.get("method", "?")
            seen = {m.step: m.value for m in retry(client.get_metric_history, cid, SAMPLES_SEEN)}
            for m in retry(client.get_metric_history, cid, ACCURACY):
                x = seen.get(m.step) if seen else float(m.step)
                if x is not None:
                    points[method][int(m.step)].append((float(x), float(m.value)))
        return {method: [(sum(x for x, _ in v) / len(v), sum(a for _, a in v) / len(v))
                         for _, v in sorted(steps.items())] for method, steps in sorted(points.items())}

    # ------------------------------------------------------------ artifacts
    def _artifacts(self, run_id: str, path: str) -> list[str]:
        from engine.store.tracking import retry

        try:
            return [Path(f.path).name for f in retry(self._track().client.list_artifacts, run_id, path)
                    if not f.is_dir]
        except Exception:
            return []

    def score_names(self, run_id: str) -> list[str]:
        """The per-sample score arrays a run logged, as "method@eEPOCH" (predictions are not scores)."""
        return sorted(n.removesuffix(".npy") for n in self._artifacts(run_id, "scores")
                      if n.endswith(".npy") and not n.startswith(PREDICTIONS))

    def scores(self, run_id: str, name: str) -> np.ndarray:
        key = (run_id, name)
        with self._lock:
            if key in self._scores:
                return self._scores[key]
        path = self._track().download(run_id, f"{names.SCORES_DIR}/{name}.npy", self._dir(run_id))
        if path is None:
            raise FileNotFoundError(f"run {run_id} has no scores/{name}.npy")
        import numpy as np

        array = np.load(path).astype(np.float64).ravel()
        with self._lock:
            self._scores[key] = array
        return array

    def _dir(self, run_id: str) -> Path:
        folder = self._cache_dir / run_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def overlap(self, run_id: str) -> dict[str, Any] | None:
        """The overlap kind's overlap.json, when the run logged one."""
        text = self._track().load_text(run_id, names.OVERLAP_JSON)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None

    def benchmark(self, run_id: str) -> dict[str, Any] | None:
        """The benchmark kind's benchmark.json (rows, winners, average ranks, CD, Friedman, crossovers), when the
        run logged one (NaN stays NaN: the engine writes it as JSON's NaN)."""
        text = self._track().load_text(run_id, names.BENCHMARK_JSON)
        if not text:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("rows"), list) else None

    def predictions(self, run_id: str, epoch: int | None = None) -> np.ndarray | None:
        """The surrogate's predicted label per training sample at a score epoch (scores/predictions@eN.npy),
        the latest epoch if that one is missing; None if the run logged none (the gallery omits them)."""
        import numpy as np

        logged = {}
        for name in self._artifacts(run_id, "scores"):
            if name.startswith(PREDICTIONS + "@e") and name.endswith(".npy"):
                logged[_int(name[len(PREDICTIONS) + 2:-4], -1)] = name
        if not logged:
            return None
        name = logged.get(epoch) if epoch in logged else logged[max(logged)]
        path = self._track().download(run_id, f"{names.SCORES_DIR}/{name}", self._dir(run_id))
        return np.load(path).astype(np.int64).ravel() if path is not None and path.is_file() else None

    def samples(self, run_id: str) -> SampleSet:
        """The run's training data (the subset its config names), read with the engine's loader."""
        with self._lock:
            if run_id in self._samples:
                return self._samples[run_id]
        import tomllib

        from engine.config import config_from_dict
        from engine.data.dataset import load_dataset

        text = self._track().load_text(run_id, "config.toml")
        if not text:
            raise FileNotFoundError(f"run {run_id} has no config.toml, so its data set is unknown")
        config = config_from_dict(tomllib.loads(text))
        ds = load_dataset(config.data.dataset, config.data.data_dir, "cpu", config.data.train_size,
                          config.data.test_size, config.data.options)
        out = SampleSet(ds.x_train.numpy(), ds.y_train.numpy(), list(ds.classes))
        with self._lock:
            self._samples[run_id] = out
        return out

    # ------------------------------------------------------------ live runs
    def live_curves(self, run_id: str) -> dict[int, tuple[str, list[tuple[int, dict[str, float]]]]]:
        """Per-epoch metrics of the trials still training, from the progress file (MLflow has them only
        once a trial ends): {trial index: (trial name, [(epoch, metrics)])}."""
        from engine.store.events import EpochEnd, StageStarted, TrialFinished
        from engine.store.progress import read_events

        names: dict[int, str] = {}
        curves: dict[int, list[tuple[int, dict[str, float]]]] = {}
        finished: set[int] = set()
        for event in read_events(self.store.progress_file(run_id)):
            if isinstance(event, StageStarted) and event.trial is not None:
                names[event.trial] = (event.detail or f"trial {event.trial + 1}").replace(" / ", " ")
                curves[event.trial] = []
            elif isinstance(event, EpochEnd) and event.trial is not None:
                curves.setdefault(event.trial, []).append((event.epoch, dict(event.metrics)))
            elif isinstance(event, TrialFinished):
                finished.add(event.trial)
        return {i: (names.get(i, f"trial {i + 1}"), c) for i, c in curves.items() if i not in finished}

    def progress(self) -> list[RunProgress]:
        return self.watcher.poll(self.now())

    def cancel(self, progress: RunProgress) -> str:
        """SIGTERM the run's process: the engine turns it into KILLED. Returns what happened, in words."""
        import socket

        if not progress.pid:
            return "no process recorded for this run"
        if progress.host and progress.host != socket.gethostname():
            return f"run is on host {progress.host}; cancel it there"
        if progress.alive is False:  # gone, or its pid now belongs to another process: signal nothing
            return f"process {progress.pid} already ended"
        try:
            os.kill(progress.pid, signal.SIGTERM)
        except ProcessLookupError:
            return f"process {progress.pid} already ended"
        return f"sent SIGTERM to process {progress.pid}"

    def launch(self, config: Config) -> dict[str, Any]:
        """Start a detached run (its own process session): closing the TUI does not stop it."""
        from engine.api import launch_detached

        return launch_detached(config, tracking_uri=self.store.uri)
