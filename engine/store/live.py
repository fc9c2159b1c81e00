"""Runs under way, from their progress files: follow every one of a store, a run's learning curves so far, and
cancelling one.

Why from the files and not MLflow: a trial's per-epoch metrics reach MLflow only when it ends, and the files name
the process (pid, host, start time), so a reader anywhere on the host can follow a run, tell a run killed hard from
a live one, and signal the right process, whoever started it (the CLI, a script, an earlier TUI).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

from .. import names
from .events import EpochEnd, RunStarted, StageStarted, TrialFinished, event_from_dict
from .process import process_start
from .progress import ProgressFollower, RunProgress, iter_progress_files, process_alive, read_events

RECENT_S = 15 * 60  # a run that ended stays in a watcher's list this long

Curve = list[tuple[int, dict[str, float]]]  # (epoch, that epoch's metrics)


class ProgressWatcher:
    """Follows every progress file in a folder, like `tail -f`, and folds each into a RunProgress.

    Whoever started a run, its file is here, so a new watcher re-attaches. Old files
    are skipped unless their process still lives (a long silent stage). Safe to poll
    from several threads.
    """

    def __init__(self, progress_dir: str | Path, recent_s: float = RECENT_S):
        self.dir = Path(progress_dir)
        self.recent_s = recent_s
        self._followers: dict[Path, ProgressFollower] = {}
        self._progress: dict[Path, RunProgress] = {}
        self._skipped: dict[Path, float] = {}
        self._lock = threading.Lock()

    def poll(self, now: float | None = None) -> list[RunProgress]:
        """The runs that are live or ended within `recent_s`, live ones first, newest first."""
        now = time.time() if now is None else now
        with self._lock:
            for path in iter_progress_files(self.dir):
                if path in self._followers or self._worth_following(path, now):
                    for event in self._follower(path).poll():
                        self._progress[path].apply(event)
            runs = [(p, p.effective_status) for p in self._progress.values()]
        shown = [(p, status) for p, status in runs
                 if status == names.RUNNING or now - (p.updated or 0) <= self.recent_s]
        shown.sort(key=lambda ps: (ps[1] != names.RUNNING, -(ps[0].started or 0)))
        return [p for p, _ in shown]

    def _follower(self, path: Path) -> ProgressFollower:
        if path not in self._followers:
            self._followers[path] = ProgressFollower(path)
            self._progress[path] = RunProgress()
        return self._followers[path]

    def _worth_following(self, path: Path, now: float) -> bool:
        """A new file: yes if touched lately, else only if its process still lives (checked once per mtime)."""
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return False
        if now - mtime <= self.recent_s:
            return True
        if self._skipped.get(path) == mtime:
            return False
        self._skipped[path] = mtime
        return _first_line_alive(path)


def _first_line_alive(path: Path) -> bool:
    """Whether the process named on a progress file's first line (RunStarted) still lives on this host."""
    try:
        with open(path, encoding="utf-8") as f:
            event = event_from_dict(json.loads(f.readline()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return isinstance(event, RunStarted) and process_alive(event.pid, event.host, event.pid_start) is True


def live_curves(progress_file: str | Path) -> dict[int, tuple[str, Curve]]:
    """Per-epoch metrics of the trials still training: {trial index: (trial name, [(epoch, metrics)])}.
    Trials that finished are left out (MLflow has their history)."""
    titles: dict[int, str] = {}
    curves: dict[int, Curve] = {}
    finished: set[int] = set()
    for event in read_events(progress_file):
        if isinstance(event, StageStarted) and event.trial is not None:
            titles[event.trial] = (event.detail or f"trial {event.trial + 1}").replace(" / ", " ")
            curves[event.trial] = []
        elif isinstance(event, EpochEnd) and event.trial is not None:
            curves.setdefault(event.trial, []).append((event.epoch, dict(event.metrics)))
        elif isinstance(event, TrialFinished):
            finished.add(event.trial)
    return {i: (titles.get(i, f"trial {i + 1}"), c) for i, c in curves.items() if i not in finished}


def cancel(progress: RunProgress) -> str:
    """SIGTERM the run's process, which ends the run KILLED; what happened, in words.

    Only a process that is provably the run's is signalled: on this host, alive, and
    started when the progress file says (a pid plus its start time names one process).
    A file without the start time (an older prunelab wrote it, before issue 18) names a
    pid that may have been reused by anything since, so nothing is sent: the user is told
    how to stop it by hand if it is still the run.
    """
    if not progress.pid:
        return "no process recorded for this run"
    if progress.host and progress.host != socket.gethostname():
        return f"run is on host {progress.host}; cancel it there"
    if progress.alive is False:
        return f"process {progress.pid} already ended"
    if not progress.pid_start:
        return (f"not signalled: the progress file does not say when process {progress.pid} started (an older "
                f"prunelab wrote it), so it may be another program now; if `ps -p {progress.pid}` shows the run, "
                f"stop it with `kill {progress.pid}`")
    now = process_start(progress.pid)  # checked again just before the signal
    if not now:
        return f"not signalled: cannot read when process {progress.pid} started on this system (install psutil)"
    if now != progress.pid_start:
        return f"process {progress.pid} already ended"
    try:
        os.kill(progress.pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"process {progress.pid} already ended"
    return f"sent SIGTERM to process {progress.pid}"
