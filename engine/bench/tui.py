"""`prunelab bench tui`: time from starting `prunelab tui` in an 80x24 pseudo-terminal to its first frame."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import termios
import time
from pathlib import Path

TUI_MARKER = " experiment "  # a column header of the runs table, drawn in the first frame


def _time_to_marker(cwd: str, marker: str, timeout: float) -> float:
    """Start `prunelab tui` in an 80x24 pseudo-terminal; seconds until `marker` reaches the screen."""

    pid, fd = pty.fork()
    if pid == 0:  # the child: the real entry point, as a user starts it
        os.chdir(cwd)
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "tui.cli", "tui"])
    start = time.perf_counter()
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = b""
    elapsed = float("nan")
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if marker.encode() in seen:
                    elapsed = time.perf_counter() - start
                    break
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
    return elapsed


def bench_tui(runs: int = 5, store: str = ".", marker: str = TUI_MARKER, timeout: float = 20.0) -> dict:
    """Time to the TUI's first frame, the way a user sees it: the real command in a terminal."""

    cwd = str(Path(store).resolve())
    times = [_time_to_marker(cwd, marker, timeout) for _ in range(runs)]
    return {"runs": runs, "marker": marker, "seconds": [round(t, 3) for t in times],
            "median_seconds": round(statistics.median(times), 3), "max_seconds": round(max(times), 3)}
