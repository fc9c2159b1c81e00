"""Progress files: every run appends its events as JSON lines, one file per parent run, and any process follows it.

The file names the run's pid and host (`RunStarted`), so a reader can tell a run
killed hard from a live one.
"""
from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import names
from ..errors import UserError
from .events import (
    BatchProgress,
    EpochEnd,
    Event,
    LogLine,
    RunStarted,
    RunStatus,
    StageStarted,
    TrialFinished,
    event_from_dict,
)
from .process import PID_MAX, process_alive

__all__ = [
    "JsonLinesSink",
    "ProgressFollower",
    "RunProgress",
    "ensure_folder",
    "fold",
    "folder_error",
    "iter_progress_files",
    "process_alive",
    "read_events",
    "trial_line",
    "trial_name",
]


class JsonLinesSink:
    """Appends events to a file, one JSON object per line, each in one write so followers see whole lines at once.

    Batch progress is thinned to a few lines a second so the file stays small. A file
    that ends in half a line (its last writer was killed mid-write) gets a newline first,
    so this run's first line is whole. A folder that cannot take the file (full,
    read-only, a file in its place) is one TrackingError naming it; after one failed
    write the sink drops events, so that the run can still end (FAILED) in the store.
    """

    def __init__(self, path: str | Path, min_batch_interval: float = 0.5):
        self.path = Path(path)
        self._min_batch_interval = min_batch_interval
        self._last_batch = 0.0
        self.broken = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise folder_error(self.path.parent, exc) from None
        if _ends_mid_line(self.path):
            self._write(b"\n")

    def __call__(self, event: Event) -> None:
        if self.broken or self._fd is None:
            return
        if isinstance(event, BatchProgress):
            if event.t - self._last_batch < self._min_batch_interval and event.batch != event.batches:
                return
            self._last_batch = event.t
        self._write((event.to_json() + "\n").encode("utf-8"))

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
            if written != len(data):  # a short write: the disk filled up under it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        except OSError as exc:
            self.broken = True
            raise folder_error(self.path.parent, exc) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


def ensure_folder(folder: Path, what: str = "progress files") -> None:
    """The folder exists and can take new files, or one TrackingError line naming it (a file in its place, a
    read-only or full file system): checked before a run exists, rather than failing it later."""
    from .tracking import full_folder

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(folder, exc, what) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = os.statvfs(folder).f_flag & os.ST_RDONLY
        code = errno.EROFS if read_only else errno.EACCES
        raise folder_error(folder, OSError(code, os.strerror(code), str(folder)), what)
    if full_folder([folder]):
        raise folder_error(folder, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder)), what)


def folder_error(folder: Path, exc: OSError, what: str = "progress files") -> UserError:
    """One line for a folder of the store that cannot hold its files: full, read-only, or a file in its place."""
    from .tracking import TrackingError, no_space_error

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return no_space_error(folder)
    if exc.errno == errno.EROFS:
        return TrackingError(f"the {what} folder {folder} is read-only; run from a folder you can write, or pass "
                             "--tracking-uri to a writable store")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) or (folder.exists() and not folder.is_dir()):
        culprit = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        return TrackingError(f"{culprit} is a file, where prunelab keeps its {what}; move it away")
    return TrackingError(f"cannot write the {what} folder {folder} ({exc.strerror or exc}); check it, or pass "
                         "--tracking-uri")


class ProgressFollower:
    """Reads new events from a progress file each time it is polled (like `tail -f`).

    A damaged line (not UTF-8, not JSON, not a well-formed event) is skipped, so
    one bad file never breaks a run list.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return []
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        events = []
        for line in lines:
            if line.strip():
                try:
                    event = event_from_dict(json.loads(line.decode("utf-8")))
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    continue
                if isinstance(event, RunStarted) and not 0 <= event.pid < PID_MAX:
                    continue
                events.append(event)
        return events


def read_events(path: str | Path) -> list[Event]:
    return ProgressFollower(path).poll()


def iter_progress_files(progress_dir: str | Path) -> Iterator[Path]:
    folder = Path(progress_dir)
    if folder.is_dir():
        yield from sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)


@dataclass
class RunProgress:
    """What a progress file says about one run, folded from its events."""

    run_id: str = ""
    experiment: str = ""
    kind: str = ""
    pid: int = 0
    pid_start: float = 0.0
    host: str = ""
    status: str = names.RUNNING
    trials: int = 0
    trials_done: int = 0
    stage: str = ""
    stage_detail: str = ""
    trial: int | None = None
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # the current stage's last metrics
    started: float = 0.0
    updated: float = 0.0
    stage_started: float = 0.0  # when the current stage began
    trials_started: float = 0.0  # when this session's first trial began: the trials' pace tells the time left
    trials_done_before: int = 0  # trials done by then (an earlier session's, for a resumed run)
    log: list[str] = field(default_factory=list)

    def apply(self, event: Event) -> None:
        self.updated = event.t
        if isinstance(event, RunStarted):
            self.run_id, self.experiment, self.kind = event.run_id, event.experiment, event.kind
            self.pid, self.host, self.trials, self.started = event.pid, event.host, event.trials, event.t
            self.pid_start = event.pid_start
            self.status = names.RUNNING
            self.trials_started = 0.0  # a resumed run's pace is its own session's
        elif isinstance(event, StageStarted):
            self.stage, self.stage_detail, self.stage_started = event.stage, event.detail, event.t
            if event.trial is not None:
                self.trial = event.trial
                if not self.trials_started:
                    self.trials_started, self.trials_done_before = event.t, self.trials_done
            self.epoch = self.batch = self.batches = 0  # a new stage trains from its first epoch
            self.metrics = {}  # and has metrics of its own: the surrogate's train loss is not trial 1's
        elif isinstance(event, EpochEnd):
            self.epoch, self.epochs = event.epoch, event.epochs
            self.metrics.update(event.metrics)
        elif isinstance(event, BatchProgress):
            self.epoch, self.epochs, self.batch, self.batches = event.epoch, event.epochs, event.batch, event.batches
        elif isinstance(event, TrialFinished):
            self.trials_done += 1
            self.trials = max(self.trials, event.trials)
            self.log.append(trial_line(event))
        elif isinstance(event, LogLine):
            self.log.append(event.message)
        elif isinstance(event, RunStatus):
            self.status = event.status
            if event.message:
                self.log.append(f"{event.status}: {event.message}")
        del self.log[:-200]

    @property
    def epochs_done(self) -> int:
        """Epochs finished: the epoch of a batch report is still under way (epoch 2 of 2 starting is 1/2)."""
        return self.epoch - 1 if 0 < self.batch < self.batches else self.epoch

    @property
    def alive(self) -> bool | None:
        return process_alive(self.pid, self.host, self.pid_start) if self.pid else None

    @property
    def effective_status(self) -> str:
        """RUNNING only while the process lives: a run killed hard reads KILLED."""
        if self.status == names.RUNNING and self.alive is False:
            return names.KILLED
        return self.status


def trial_name(params: dict) -> str:
    """A trial's name from its grid params, as runner.trials.Trial names it (for events that carry no name)."""
    if "method" not in params:
        return ""
    if params["method"] == names.FULL:
        return f"full-data / seed {params.get('seed', '?')}"
    try:
        ratio = f"{float(params.get('ratio')):g}"
    except (TypeError, ValueError):
        ratio = str(params.get("ratio", "?"))
    return (f"{params['method']} / {params.get('strategy', '?')} / keep {ratio} / seed {params.get('seed', '?')}"
            f" / e{params.get('epoch', '?')}")


def trial_line(event: TrialFinished) -> str:
    """The log line of a finished trial: "trial 3/14 FINISHED  el2n / hardest / keep 0.5 / seed 0 / e2  acc 97.31%",
    or why it failed."""
    parts = [f"trial {event.trial + 1}/{event.trials} {event.status}"]
    name = event.name or trial_name(event.params or {})
    if name:
        parts.append(name)
    accuracy = (event.metrics or {}).get("test_accuracy")
    if event.status == names.FINISHED and isinstance(accuracy, (int, float)):
        parts.append(f"acc {100 * accuracy:.2f}%")
    elif event.message:
        parts.append(event.message)
    return "  ".join(parts)


def fold(events: list[Event], progress: RunProgress | None = None) -> RunProgress:
    progress = progress or RunProgress()
    for event in events:
        progress.apply(event)
    return progress
