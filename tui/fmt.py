"""Small formatters shared by the screens, so every screen writes numbers and states the same way."""
from __future__ import annotations

import math
import time
from typing import Any

# the theme's text-on-background variants: darker on light themes, lighter on dark ones
STATUS_VAR = {"RUNNING": "text-warning", "FINISHED": "text-success", "FAILED": "text-error", "KILLED": "text-error",
              "SCHEDULED": "text-secondary"}


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * 100:.{digits}f}%"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(round(seconds))
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


def trial_name(params: dict[str, Any]) -> str:
    """A trial's name from its params, as the engine names it ("el2n / hardest / keep 0.5 / seed 0 / e2")."""
    if "method" not in params:
        return ""
    if params["method"] == "full":
        return f"full-data / seed {params.get('seed', '?')}"
    try:
        ratio = f"{float(params.get('ratio')):g}"
    except (TypeError, ValueError):
        ratio = str(params.get("ratio", "?"))
    return (f"{params['method']} / {params.get('strategy', '?')} / keep {ratio} / seed {params.get('seed', '?')}"
            f" / e{params.get('epoch', '?')}")


def trial_line(event: Any) -> str:
    """The monitor's log line for a finished trial (an engine.events.TrialFinished): which trial, its name,
    and its test accuracy, or why it failed."""
    name = getattr(event, "name", "") or trial_name(event.params or {})
    parts = [f"trial {event.trial + 1}/{event.trials} {event.status}"]
    if name:
        parts.append(name)
    accuracy = (event.metrics or {}).get("test_accuracy")
    if event.status == "FINISHED" and accuracy is not None:
        parts.append(f"acc {pct(accuracy, 2)}")
    elif event.message:
        parts.append(event.message)
    return "  ".join(parts)
