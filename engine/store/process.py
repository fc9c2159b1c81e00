"""Is this pid still the process that started a run? A pid plus its start time names one process.

Pids are reused: a run killed hard long ago may have its pid taken by another
process, which must then be neither called alive nor sent a signal.
"""
from __future__ import annotations

import os
import socket

PID_MAX = 2 ** 22  # Linux's largest pid_max; a recorded pid beyond it is garbage


def process_start(pid: int) -> float:
    """The process's start time: clock ticks since boot from /proc/PID/stat (Linux), else psutil's
    create_time, else 0.0 (unknown). Only ever compared with a value from the same host."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return float(fields[19])  # field 22, starttime; fields[0] is field 3, the state
    except (OSError, IndexError, ValueError):
        pass
    try:
        import psutil
    except ImportError:
        return 0.0
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):  # no such process, access denied
        return 0.0


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def process_alive(pid: int, host: str, start: float = 0.0) -> bool | None:
    """True or False for a process on this host; None when it runs elsewhere (unknown).

    With `start` (the process_start recorded with the pid), a live pid whose start
    time differs is another process that reused the pid: False.
    """
    if host != socket.gethostname():
        return None
    if not isinstance(pid, int) or not 0 < pid < PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _zombie(pid):  # killed, not yet reaped
        return False
    if start:
        now = process_start(pid)
        if now and now != start:
            return False
    return True
