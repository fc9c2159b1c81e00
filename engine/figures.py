"""Matplotlib figures for MLflow artifacts (the terminal draws its own with plotext)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _series(rows: list[dict[str, Any]], x_key: str):
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for row in rows:
        if row["method"] == "full":
            continue
        label = row["method"] if row.get("strategy") in (None, "hardest") else f"{row['method']} ({row['strategy']})"
        series[label].append((float(row[x_key]), row["mean_accuracy"], row["std_accuracy"]))
    return {k: sorted(v) for k, v in series.items()}


def _full_line(ax, rows: list[dict[str, Any]]) -> None:
    full = [r for r in rows if r["method"] == "full"]
    if full:
        ax.axhline(full[0]["mean_accuracy"], color="black", linestyle="--", linewidth=1,
                   label=f"full data ({full[0]['mean_accuracy']:.2%})")


def accuracy_vs(rows: list[dict[str, Any]], x_key: str, xlabel: str, title: str):
    """Test accuracy (mean +- std over seeds) per method against `x_key`, with the full-data line."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, points in _series(rows, x_key).items():
        xs, ys, es = zip(*points)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
    _full_line(ax, rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
