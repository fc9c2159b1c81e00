"""Polling for tests: wait until a condition holds, and on timeout say why it did not.

A timeout re-raises the condition's last exception (chained under the timeout's
AssertionError), so a test that waited for a widget or a run shows the real error,
not a bare "timed out".
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition never held within the timeout."""


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Call condition() until it returns something truthy (returned); exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    value: T | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 -- not ready yet (a widget not mounted, a file half written)
            last = error
        else:
            last = None
        if time.monotonic() >= deadline:
            break
        sleep(interval)
    detail = f"; its last error: {type(last).__name__}: {last}" if last else f"; last value {value!r}"
    raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{detail}") from last
