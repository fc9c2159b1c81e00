"""One process at a time per run: an flock on a file beside the run's progress file.

Two `--resume`s of one run would otherwise both run every missing trial. The
lock dies with its process (the kernel drops it), so a run killed hard leaves no
stale lock behind.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Self

from ..errors import UserError
from .progress import fold, folder_error, read_events


def _pid_of(text: str) -> int | None:
    try:
        pid = int(text.strip())
    except ValueError:
        return None
    return pid if pid > 0 else None


class RunLock:
    """Held while a process works on a run; `acquire` fails at once if another holds it."""

    def __init__(self, progress_file: str | Path, run_id: str):
        self.progress_file = Path(progress_file)
        self.path = self.progress_file.with_suffix(".lock")
        self.run_id = run_id
        self._fd: int | None = None

    def _open(self) -> int:
        """The lock file's descriptor; a folder or file in the way is one line naming it."""
        if self.path.exists() and not self.path.is_file():
            from .tracking import TrackingError

            raise TrackingError(f"{self.path} is a folder, where run {self.run_id}'s lock file goes; move it away")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as exc:
            raise folder_error(self.path.parent, exc) from None

    def acquire(self) -> RunLock:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_of(os.pread(fd, 32, 0).decode("ascii", "replace"))
            os.close(fd)
            raise busy_error(self.run_id, holder, self.progress_file) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise folder_error(self.path.parent, exc) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def busy_error(run_id: str, holder: int | None, progress_file: Path) -> UserError:
    """Why another process holds the run: it runs it (its progress file names it, started and alive), or it is
    about to (a resume that has not started the run yet)."""
    progress = fold(read_events(progress_file)) if progress_file.is_file() else None
    who = holder or "?"
    if progress is not None and holder and progress.pid == holder and progress.alive is not False:
        return UserError(f"run {run_id} is still running (pid {holder}); cancel it first")
    return UserError(f"run {run_id} is being resumed by pid {who}; wait for it or cancel it")
