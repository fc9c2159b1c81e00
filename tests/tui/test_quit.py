"""`q` quits at once, even while a worker thread is still busy (importing MLflow, reading a slow store)."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# the real entry point (tui.app.run_app) on the fixed data, with a warm-up that blocks for two minutes
SCRIPT = f"""
import sys, time
sys.path[:0] = [{str(HERE)!r}, {str(HERE.parents[1])!r}]
from fixed_backend import FixedBackend
from tui.app import run_app

class Slow(FixedBackend):
    def warm_up(self):
        time.sleep(120)

run_app(backend=Slow())
"""


def read(fd: int, seen: bytes, until: float) -> tuple[bytes, bool]:
    """Read the terminal until the time given; False once the child has closed it."""
    while time.monotonic() < until:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                return seen, False
    return seen, True


@pytest.mark.timeout(200)
def test_q_quits_at_once_while_a_worker_is_busy():
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-c", SCRIPT])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        seen, deadline = b"", time.monotonic() + 60
        while b" experiment " not in seen and time.monotonic() < deadline:  # the runs table's first frame
            seen, _ = read(fd, seen, time.monotonic() + 0.2)
        assert b" experiment " in seen, seen[-500:]
        seen, _ = read(fd, seen, time.monotonic() + 1.0)  # the warm-up worker has started and sleeps
        os.write(fd, b"q")
        asked = time.monotonic()
        while not os.waitpid(pid, os.WNOHANG)[0]:
            read(fd, b"", time.monotonic() + 0.1)
            assert time.monotonic() - asked < 30, "q waited for the worker thread"  # it sleeps 120 s
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
