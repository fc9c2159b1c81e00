"""Small formatters shared by the screens, so every screen writes numbers and states the same way."""
from __future__ import annotations

import math
import time
from typing import Any

from engine import names

# the theme's text-on-background variants: darker on light themes, lighter on dark ones
STATUS_VAR = {names.RUNNING: "text-warning", names.FINISHED: "text-success", names.FAILED: "text-error", names.KILLED: "text-error",
              names.SCHEDULED: "text-secondary"}


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * 100:.{digits}f}%"


def accuracies(run: Any) -> str:
    """A run's headline accuracies, each when known: "full 60.7% · best pruned 28.3%".

    Why not best_test_accuracy: it is the best of every setting, full data included, so it can be the
    full-data run's accuracy while it reads as what pruning achieved (the runs table has the same two columns).
    """
    parts = []
    if run.full_accuracy is not None:
        parts.append(f"full {pct(run.full_accuracy)}")
    if run.best_pruned is not None:
        parts.append(f"best pruned {pct(run.best_pruned)}")
    return " · ".join(parts)


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def clock(epoch_seconds: float | None) -> str:
    if not epoch_seconds:
        return "-"
    return time.strftime("%m-%d %H:%M", time.localtime(epoch_seconds))


def short_id(run_id: str) -> str:
    return run_id[:8]


def status_text(status: str, theme_vars: dict[str, Any]):
    """The status word in its theme colour (text-success, -warning, -error), readable on dark and light themes."""
    from rich.text import Text

    color = theme_vars.get(STATUS_VAR.get(status, ""), "")
    return Text(status, style=f"bold {color}" if color else "bold")
