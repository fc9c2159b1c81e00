"""Run control: a cancel token that long work polls, instead of exceptions raised from signal handlers or sinks.

Why a token: an exception raised inside a signal handler lands wherever the main
thread happens to be (a weakref callback, a __del__, a SQLite busy wait) and can be
swallowed there. A handler that only sets a flag is safe anywhere; the trainer (once
per batch, no host sync), the scoring pass and the runner (between trials) look at it
and stop at a point where the state is consistent.
"""
from __future__ import annotations

import threading


class Cancelled(KeyboardInterrupt):
    """Raised by `CancelToken.check()`. A KeyboardInterrupt, so every place that already ends work KILLED on
    Ctrl-C (the runner, a trial, the CLI's exit code 130) treats a cancel the same way."""


class CancelToken:
    """Set once (by a signal handler, the TUI or a caller's thread); polled by whoever does the work."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if the token is set; else return at once (a flag read: cheap in a hot loop)."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on a cancel; whether it was cancelled."""
        return self._event.wait(seconds)


def check(token: CancelToken | None) -> None:
    """`token.check()` for an optional token."""
    if token is not None:
        token.check()
