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


class RunLock:
    """Held while a process works on a run; `acquire` fails at once if another holds it."""

    def __init__(self, progress_file: str | Path, run_id: str):
        self.path = Path(progress_file).with_suffix(".lock")
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise UserError(f"run {self.run_id} is being resumed by pid {holder}; wait for it or cancel it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
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
