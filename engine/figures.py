"""Matplotlib figures for MLflow artifacts (the terminal draws its own with plotext)."""
from __future__ import annotations

import textwrap
from collections import defaultdict
from typing import Any

import matplotlib
import numpy as np

from . import names

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(rows: list[dict[str, Any]], x_key: str):
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for row in rows:
        if row["method"] == names.FULL:
            continue
        label = row["method"] if row.get("strategy") in (None, "hardest", row["method"]) else f"{row['method']} ({row['strategy']})"
        series[label].append((float(row[x_key]), row["mean_accuracy"], row["std_accuracy"]))
    return {k: sorted(v) for k, v in series.items()}


def _full_line(ax, rows: list[dict[str, Any]]) -> None:
    full = [r for r in rows if r["method"] == names.FULL]
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


def heatmap(matrix, labels: list[str], title: str, percent: bool = True):
    """A methods x methods matrix with the value written in each cell (overlap rates, rank correlations)."""

    m = np.asarray(matrix, dtype=float)
    size = 1.2 + 1.1 * len(labels) + label_inches(labels, 10)  # a long label (a file: scorer's path) has room
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=110)
    image = ax.imshow(m, cmap="viridis", vmin=min(0.0, float(np.nanmin(m))), vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = m[i, j]
            text = f"{value:.2%}" if percent else f"{value:.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def sample_grid(samples: list[dict[str, Any]], title: str, columns: int = 5):
    """Images with their given label, predicted label and score (the top-scored samples)."""

    rows = max(1, -(-len(samples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.2 * rows + 0.4), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples):
        image = np.asarray(s["image"])
        if image.ndim == 3 and image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.transpose(1, 2, 0) if image.ndim == 3 else image)
        wrong = s.get("predicted") is not None and s["predicted"] != s["label"]
        source = s.get("source_index", s["index"])
        where = f"#{s['index']}" + (f" (source #{source})" if source != s["index"] else "")
        label, predicted = s.get("class") or s["label"], s.get("predicted_class") or s.get("predicted", "?")
        ax.set_title(f"{where}  y={label} pred={predicted}\nscore {s['score']:.4g}",  # class names where known
                     fontsize=7, color="crimson" if wrong else "black")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def online_curves(curves: dict[str, list[tuple[float, float, float]]], title: str):
    """Test accuracy against examples backpropagated and against wall time, one line per method.

    `curves[method]` holds (examples backpropagated, wall seconds, test accuracy) points.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, sharey=True)
    for method, points in curves.items():
        if not points:
            continue
        xs, ts, ys = zip(*sorted(points))
        style = {"color": "black", "linestyle": "--"} if method == names.FULL else {"marker": "."}
        left.plot(xs, ys, label=method, **style)
        right.plot(ts, ys, label=method, **style)
    left.set_xlabel("examples backpropagated")
    right.set_xlabel("wall time (s, evaluation excluded)")
    left.set_ylabel("test accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def detection_bars(rows: list[dict[str, Any]], title: str):
    """Precision and recall at k of each scorer at finding the flipped labels, with the random-guess line."""

    rows = [r for r in rows if isinstance(r.get("precision"), float) and not np.isnan(r["precision"])
            and r["method"] not in (names.FULL, names.ORACLE)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["precision"] for r in rows], 0.4, label="precision at k")
    ax.bar(x + 0.2, [r["recall"] for r in rows], 0.4, label="recall at k")
    if rows:
        ax.axhline(rows[0]["noise_fraction"], color="black", linestyle="--", linewidth=1,
                   label=f"random guess ({rows[0]['noise_fraction']:.0%})")
    ax.set_xticks(x, [r["method"] for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_bands(rows: list[dict[str, Any]], title: str):
    """Benchmark rows: test accuracy against keep ratio per method, a band of ±1 std over seeds, full-data line."""
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    by_method: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for r in rows:
        if r["method"] != names.FULL:
            by_method[r["method"]].append((r["ratio"], r["mean_accuracy"], r["std_accuracy"]))
    for method, points in by_method.items():
        xs, ys, es = (np.asarray(v) for v in zip(*sorted(points)))
        style = {"color": "black", "linestyle": ":"} if method == names.RANDOM else {}
        line, = ax.plot(xs, ys, marker="o", label=method, **style)
        ax.fill_between(xs, ys - es, ys + es, color=line.get_color(), alpha=0.15)
    _full_line(ax, rows)
    ax.set_xlabel("keep ratio")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def label_inches(labels: list[str], fontsize: float) -> float:
    """About how wide the longest tick label is, in inches (an average glyph 0.6 em)."""
    return max((len(str(label)) for label in labels), default=0) * 0.6 * fontsize / 72


def text_color(rgba) -> str:
    """Black or white, whichever reads better on a cell of this colour (WCAG relative luminance: the larger
    contrast ratio of the two), so a yellow cell gets black text and a dark purple one white."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "white"


def wrapped_title(fig, text: str, fontsize: float) -> str:
    """`text` wrapped to the figure's width (each line at most as wide as the figure at `fontsize`), so no title is
    cut at the edge; an average glyph is taken as 0.6 em wide."""
    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())


def rank_heatmap(rows: list[dict[str, Any]], title: str):
    """Benchmark rows: each method's rank (1 = best) at each keep ratio, methods by average rank; * = p < 0.05."""
    ranked = [r for r in rows if "rank" in r]
    ratios = sorted({r["ratio"] for r in ranked})
    cell = {(r["method"], r["ratio"]): r for r in ranked}
    mean_rank = defaultdict(list)
    for r in ranked:
        mean_rank[r["method"]].append(r["rank"])
    methods = sorted(mean_rank, key=lambda m: (np.mean(mean_rank[m]), m))
    m = np.array([[cell[(a, x)]["rank"] if (a, x) in cell else np.nan for x in ratios] for a in methods])
    labels = [f"{a} ({np.mean(mean_rank[a]):.1f})" for a in methods]
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * len(ratios) + label_inches(labels, 10), 1.8 + 0.35 * len(methods)),
                           dpi=110)
    image = ax.imshow(m, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(ratios)), [f"{x:g}" for x in ratios])
    ax.set_yticks(range(len(methods)), labels)
    for i, a in enumerate(methods):
        for j, x in enumerate(ratios):
            if (a, x) in cell:
                star = "*" if cell[(a, x)].get("significant") else ""
                ax.text(j, i, f"{m[i, j]:g}{star}", ha="center", va="center", fontsize=7,
                        color=text_color(image.cmap(image.norm(m[i, j]))))
    ax.set_xlabel("keep ratio")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="rank")
    fig.suptitle(wrapped_title(fig, f"{title}\nrank per keep ratio (average rank); * p < 0.05 against random", 9),
                 fontsize=9)
    fig.tight_layout()
    return fig


def embedding_map(projection: np.ndarray, labels: np.ndarray, classes: list[str], title: str,
                  kept: np.ndarray | None = None, axes: tuple[str, str] = ("axis 1", "axis 2")):
    """The 2-D embedding map: one dot per sample coloured by its class; with `kept` (a boolean mask), the samples
    a trial kept as dots and those it pruned as small grey crosses (the TUI's map draws the same)."""
    xy = np.asarray(projection, dtype=np.float64)
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(7.5, 6), dpi=110)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    size = float(np.clip(3000 / max(1, len(xy)), 0.5, 12))  # 50,000 points must not become one blot
    shown = np.ones(len(xy), dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    if kept is not None and (~shown).any():
        ax.scatter(xy[~shown, 0], xy[~shown, 1], s=size, marker="x", linewidths=0.5, color="0.7",
                   label=f"pruned ({int((~shown).sum())})", rasterized=True)
    for c, name in enumerate(classes):
        mine = shown & (labels == c)
        if mine.any():
            ax.scatter(xy[mine, 0], xy[mine, 1], s=size, color=colours(c % colours.N), label=name, linewidths=0,
                       rasterized=True)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=max(1.0, 12 / size) ** 0.5, loc="best", ncol=1 if len(classes) <= 12 else 2)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return fig
