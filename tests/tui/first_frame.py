"""Time to first frame of `prunelab tui`, measured the way a user sees it (not a test: a tool).

Spawns the real command in a pseudo-terminal (80x24), and times from the spawn
until the footer of the first frame has been written to the terminal. Run:

    .venv/bin/python tests/tui/first_frame.py [--runs 5] [--store DIR]
"""
from __future__ import annotations

import argparse
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

MARKER = " experiment "  # a column header of the runs table, drawn in the first frame


def first_frame(cwd: str, timeout: float = 20.0, marker: str = MARKER) -> float:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real entry point, as a user starts it
        os.chdir(cwd)
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "engine.cli", "tui"])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", default=".", help="working folder whose mlruns/ the TUI opens")
    parser.add_argument("--marker", default=MARKER,
                        help="text to wait for (e.g. FINISHED: until the runs from MLflow are listed)")
    args = parser.parse_args()
    cwd = str(Path(args.store).resolve())
    times = [first_frame(cwd, marker=args.marker) for _ in range(args.runs)]
    print(f"until {args.marker.strip()!r} (s): " + ", ".join(f"{t:.3f}" for t in times))
    print(f"median {statistics.median(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
