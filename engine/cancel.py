"""Run control: a cancel token that long work polls, instead of exceptions raised from signal handlers or sinks.

Why a token: an exception raised inside a signal handler lands wherever the main
thread happens to be (a weakref callback, a __del__, a SQLite busy wait) and can be
swallowed there. A handler that only sets a flag is safe anywhere; the trainer (once
per batch, no host sync), the scoring pass and the runner (between trials) look at it
and stop at a point where the state is consistent.

The store's retry loop polls it too, wherever it is called from: the runner makes its
token `active` for the run (a context variable, so each thread sees only its own run's
token, and nothing outlives the run), and `current()` is what the store reads. A write
that waits on a store another process holds locked therefore gives up when the run is
cancelled, instead of retrying for minutes.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar


class Cancelled(KeyboardInterrupt):
    """Raised by `CancelToken.check()`. A KeyboardInterrupt, so every place that already ends work KILLED on
    Ctrl-C (the runner, a trial, the CLI's exit code 130) treats a cancel the same way."""


class CancelToken:
    """Set once (by a signal handler, the TUI or a caller's thread); polled by whoever does the work."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.cancelled_at: float | None = None  # time.monotonic() of the first cancel
        self._shield = 0

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self.cancelled_at = time.monotonic()
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

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Inside, the work is ending already (the runner records how the run ended): a repeated signal must not
        interrupt that, so the signal handlers leave it alone (`shielding`)."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1

    @property
    def shielding(self) -> bool:
        return self._shield > 0


def check(token: CancelToken | None) -> None:
    """`token.check()` for an optional token."""
    if token is not None:
        token.check()


_ACTIVE: ContextVar[CancelToken | None] = ContextVar("prunelab_cancel_token", default=None)


@contextlib.contextmanager
def active(token: CancelToken) -> Iterator[CancelToken]:
    """Make `token` the one `current()` returns inside (this thread, this context), the previous one after."""
    reset = _ACTIVE.set(token)
    try:
        yield token
    finally:
        _ACTIVE.reset(reset)


def current() -> CancelToken | None:
    """The token of the run under way in this context (the store's retry loop polls it), or None."""
    return _ACTIVE.get()


def absorb_signals(seconds: float, signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """From now, for `seconds`, ignore these signals; the first one after that goes to the handler that was
    installed before (SIGTERM's default: the process ends), which is then put back.

    For a process that a signal already stopped and that is now exiting (the CLI after
    "interrupted"): a repeat of the signal must neither kill it by signal (exit 143, not
    130) nor raise KeyboardInterrupt in its clean-up. Outside the main thread: nothing.
    """
    until = time.monotonic() + seconds
    for signum in signums:
        try:
            previous = signal.getsignal(signum)
        except ValueError:
            return
        if previous is None or getattr(previous, "absorbing", False):  # from C, or absorbing already
            continue

        def handler(num: int, frame, previous=previous) -> None:
            if time.monotonic() < until:
                return
            signal.signal(num, previous)
            if callable(previous):
                previous(num, frame)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(num)

        handler.absorbing = True  # type: ignore[attr-defined]
        handler.previous = previous  # type: ignore[attr-defined]
        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread
            return
