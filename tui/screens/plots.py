"""A run's plots, live while it runs: accuracy vs keep ratio (error bars over seeds, full-data
line), accuracy vs epoch of one trial, accuracy vs the surrogate epoch of the scores, and the
summary table; for a dynamic or online run also accuracy vs samples seen, beside full data.
Drawing is plotext inside textual-plotext; data comes from thread workers.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from engine import names

from ..fmt import pct
from ..messages import DetailLoaded, HistoryLoaded
from ..widgets.footer import FitFooter
from ..widgets.table import Table
from ..widgets.title import TitleLine
from .base import RunScreen

LIVE_S = 2.0
FULL = "full"
# plotext's named terminal colours: the terminal's palette, so they suit its light or dark scheme
# twelve distinct series colours (plotext takes names and RGB): a compare of several runs' methods needs more
# than the six named ones, which repeated ("red for three of eight series")
COLORS = ("blue", "red", "green", "orange", "cyan", "magenta", (188, 189, 34), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (23, 190, 207))
ANSI = {"red": 1, "green": 2, "orange": 3, "blue": 4, "magenta": 5, "cyan": 6, "gray": 8}  # plotext's codes
LEGEND_INSIDE = 4  # more entries than this (or any compare) go in a legend under the plot, not over the curves
STATUS_MARK = {names.FINISHED: "✓", names.FAILED: "✗", names.RUNNING: "▶", names.KILLED: "■"}
POINTS = ("diff", "ci_low", "ci_high")  # differences of accuracies: percentage points, beside accuracies in %


def rich_color(color: Any) -> str:
    """A plotext colour (a name or an RGB tuple) as a Rich colour, the same one the plot draws with."""
    if isinstance(color, tuple):
        return f"rgb({color[0]},{color[1]},{color[2]})"
    return f"color({ANSI.get(color, 7)})"


def legend_text(entries: list[tuple[str, Any]]) -> Text:
    """"■ label" per series in its colour, three spaces apart (wrapping between entries)."""
    out = Text()
    for i, (label, color) in enumerate(entries):
        if i:
            out.append("   ")
        out.append("■ ", style=rich_color(color))
        out.append(label.replace(" ", "\u00a0"))  # no break inside a label
    return out


# ---------------------------------------------------------------- drawing (shared with compare)
def series_label(row: dict[str, Any], group: tuple[str, ...]) -> str:
    """A series' name, written one way everywhere: "scorer/strategy" (the benchmark's own method names), the
    strategy only when it varies and says something ("random", not "random random"), then "e1" or "keep 0.5"."""
    method = str(row.get("method", ""))
    strategy = row.get("strategy") if "strategy" in group else None
    name = f"{method}/{strategy}" if strategy not in (None, "", "none", method) and "/" not in method else method
    extra = []
    if "epoch" in group and row.get("epoch") not in (None, ""):
        extra.append(f"e{row['epoch']}")
    if "ratio" in group and row.get("ratio") not in (None, ""):
        extra.append(f"keep {float(row['ratio']):g}")
    return " ".join([name, *extra])


def series(rows: list[dict[str, Any]], x_key: str, group: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Summary rows as (x, mean %, std %) points per label, the full-data rows left out."""
    out: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        if row.get("method") == FULL or row.get("mean_accuracy") is None or x_key not in row:
            continue  # other kinds (overlap, noise, …) have rows of their own shape
        mean = row["mean_accuracy"]
        if mean != mean:  # NaN: every seed failed
            continue
        out[series_label(row, group)].append((float(row[x_key]), mean * 100, (row.get("std_accuracy") or 0.0) * 100))
    return {k: sorted(v) for k, v in out.items()}


def varying(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys whose value differs between rows (so a label only says what tells series apart)."""
    rows = [r for r in rows if r.get("method") != FULL]
    return tuple(k for k in keys if len({r.get(k) for r in rows}) > 1)


def full_accuracy(rows: list[dict[str, Any]]) -> float | None:
    full = [r["mean_accuracy"] for r in rows
            if r.get("method") == FULL and r.get("mean_accuracy") == r.get("mean_accuracy")]  # not NaN
    return full[0] * 100 if full else None


def curves_of(runs: list[tuple[str, list[dict[str, Any]]]], x_key: str) -> tuple[list[tuple], list[tuple]]:
    """The series of `runs` against x_key: (label, xs, ys, errors) per curve and (label, accuracy) per full-data
    line, each label with its run's prefix."""
    other = "epoch" if x_key == "ratio" else "ratio"
    curves, fulls = [], []
    for prefix, rows in runs:
        group = ("method",) + varying(rows, ("strategy", other))
        for label, points in series(rows, x_key, group).items():
            curves.append((f"{prefix}{label}", *(list(v) for v in zip(*points))))
        full = full_accuracy(rows)
        if full is not None:
            fulls.append((f"{prefix}full data {full:.1f}%", full))
    return curves, fulls


def draw_accuracy_vs(plt: Any, runs: list[tuple[str, list[dict[str, Any]]]], x_key: str, xlabel: str,
                     title: str, legend: bool | None = None) -> list[tuple[str, Any]]:
    """Mean test accuracy (error bars: std over seeds) per method against x_key, with each run's
    full-data line; `runs` is (label prefix, summary rows) per run, one for a run's own plots and
    several for compare. Returns the (label, colour) of each series drawn ([]: nothing to draw); their
    legend is drawn inside the plot when `legend` (default: up to LEGEND_INSIDE series), else it is the
    caller's to show (`legend_text`).

    Full-data lines go first: plotext overwrites a cell with the last series drawn in it, and at
    80 columns a method's curve often shares cells with the reference line.
    """
    plt.clear_figure()
    curves, fulls = curves_of(runs, x_key)
    xs_all = [x for _, xs, _, _ in curves for x in xs]
    ys_all = [y + sign * e for _, _, ys, es in curves for y, e in zip(ys, es) for sign in (-1, 1)]
    lo, hi = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    if x_key == "ratio":
        hi = max(hi, 1.0)  # the full data is keep ratio 1
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    inside = legend if legend is not None else len(curves) + len(fulls) <= LEGEND_INSIDE
    drawn = []
    for i, (label, full) in enumerate(fulls):
        # one run: a neutral grey; several (compare): a colour of its own each, after the curves' colours
        color = COLORS[(len(curves) + i) % len(COLORS)] if len(runs) > 1 else "gray"
        plt.plot([lo, hi], [full, full], marker="dot", color=color, label=label if inside else None)
        ys_all.append(full)
        drawn.append((label, color))
    for i, (label, xs, ys, es) in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        draw = plt.plot if len(xs) > 1 else plt.scatter  # plotext's legend skips error bars
        draw(xs, ys, marker="braille", color=color, label=label if inside else None)
        plt.error(xs, ys, yerr=es, color=color)
        drawn.append((label, color))
    y_range(plt, ys_all)
    plt.title(title)
    plt.xlabel(xlabel)
    plt.ylabel("test accuracy %")
    return drawn


def y_range(plt: Any, ys: list[float]) -> None:
    """Keep the accuracy axis near the data and inside 0-100 % (plotext stretches one point or a lone line over a
    silly range: "115.5 %"); near an end of the scale the span is kept by moving away from that end."""
    if not ys:
        return
    pad = max(1.0, 0.1 * (max(ys) - min(ys)))
    lo, hi = min(ys) - pad, max(ys) + pad
    if hi > 100.0:
        lo, hi = lo - (hi - 100.0), 100.0
    if lo < 0.0:
        lo, hi = 0.0, min(100.0, hi - lo)
    plt.ylim(lo, hi)


def draw_curve(plt: Any, curves: list[tuple[str, list[tuple[int, float]]]], title: str) -> bool:
    """Accuracy (%) against epoch, one line per named curve."""
    plt.clear_figure()
    drawn = False
    ys_all: list[float] = []
    for i, (name, points) in enumerate(curves):
        if not points:
            continue
        xs = [p[0] for p in points]
        ys = [p[1] * 100 for p in points]
        color = COLORS[i % len(COLORS)]
        if len(xs) > 1:
            plt.plot(xs, ys, marker="braille", color=color, label=name)
        else:
            plt.scatter(xs, ys, color=color, label=name)
        ys_all += ys
        drawn = True
    y_range(plt, ys_all)
    plt.title(title)
    plt.xlabel("epoch")
    plt.ylabel("test accuracy %")
    return drawn


SEEN_KINDS = {"dynamic": "samples seen (forward/backward passes)", "online": "examples backpropagated"}


def draw_seen(plt: Any, curves: dict[str, list[tuple[float, float]]], xlabel: str, title: str) -> bool:
    """Test accuracy (%) against samples seen, one line per method, full data first (drawn under the others)."""
    plt.clear_figure()
    drawn = False
    for i, (method, points) in enumerate(sorted(curves.items(), key=lambda kv: kv[0] != FULL)):
        if not points:
            continue
        xs, ys = [p[0] for p in points], [p[1] * 100 for p in points]
        color = "gray" if method == FULL else COLORS[(i - (FULL in curves)) % len(COLORS)]
        label = f"{'full data' if method == FULL else method} {ys[-1]:.1f}% at {xs[-1]:,.0f}"
        (plt.plot if len(xs) > 1 else plt.scatter)(xs, ys, marker="braille", color=color, label=label)
        drawn = True
    plt.title(title)
    plt.xlabel(xlabel)
    plt.ylabel("test accuracy %")
    return drawn


def show_legend(widget: Static, entries: list[tuple[str, Any]]) -> None:
    """A legend under a plot, shown when it has entries (the plot then draws none of its own)."""
    widget.update(legend_text(entries))
    widget.display = bool(entries)


def empty(plot: PlotextPlot, message: str) -> None:
    plot.plt.clear_figure()
    plot.plt.title(message)
    plot.refresh()


SHORT = {"mean_accuracy": "mean acc", "std_accuracy": "std", "test_accuracy": "acc"}


def trial_labels(trials: list[Any]) -> dict[str, str]:
    """A short name per trial (by child run id) that says what tells the trials apart, and only that: "loss keep
    0.5 s1" when the strategy and score epoch are the same in every trial; "scorer/strategy" only for a strategy
    other than hardest (a scorer alone means hardest, as in the benchmark's method names); "full data" (and its
    seed when seeds vary)."""
    pruned = [t for t in trials if t.method != FULL]
    vary = {key: len({getattr(t, key) for t in pruned}) > 1 for key in ("strategy", "ratio", "seed", "epoch")}
    seeds = len({t.seed for t in trials}) > 1
    out = {}
    for t in trials:
        if t.method == FULL:
            out[t.run_id] = "full data" + (f" s{t.seed}" if seeds else "")
            continue
        plain = t.strategy in ("hardest", t.method, "", "none") or not vary["strategy"]
        parts = [t.method if plain else f"{t.method}/{t.strategy}"]
        parts += [f"keep {t.ratio:g}"] if vary["ratio"] else []
        parts += [f"s{t.seed}"] if vary["seed"] else []
        parts += [f"e{t.epoch}"] if vary["epoch"] else []
        out[t.run_id] = " ".join(parts)
    return out


def summary_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key the rows have, in first-seen order: each experiment kind has its own summary shape."""
    return list(dict.fromkeys(k for row in rows for k in row))


def summary_cell(key: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        if key in POINTS:  # a difference of accuracies, in percentage points (the accuracies are in %)
            text = "-" if value != value else f"{value * 100:+.2f} pt"
        else:
            text = pct(value, 2) if "accuracy" in key else f"{value:.4g}"
        return Text(text, justify="right")
    if isinstance(value, int):
        return Text(str(value), justify="right")
    return str(value)


def fill_summary(table: DataTable, rows: list[dict[str, Any]], runs: list[str] | None = None) -> None:
    """Rebuild a summary table (columns too, as they depend on the rows); `runs` adds a first column
    naming each row's run (compare)."""
    table.clear(columns=True)
    columns = summary_columns(rows)
    if runs is not None:
        table.add_column("run", key="_run")
    for key in columns:
        table.add_column(SHORT.get(key, key), key=key)
    for i, row in enumerate(rows):
        cells = [summary_cell(k, row.get(k)) for k in columns]
        table.add_row(*(([Text(runs[i], no_wrap=True)] if runs is not None else []) + cells))


class PlotsScreen(RunScreen):
    """Plots of one run; they refresh every few seconds while it runs."""

    HELP = ("One run's curves. 1-4 pick a tab (5: accuracy vs samples seen, dynamic and online runs); in trial "
            "curves, move in the list to pick a trial.")
    view = "plots"
    BINDINGS = RunScreen.BINDINGS + [
        Binding("1", "tab('tab-ratio')", "vs ratio", show=False, id="plots.tab-ratio",
                tooltip="Accuracy against the keep ratio"),
        Binding("2", "tab('tab-trial')", "trial curve", show=False, id="plots.tab-trial",
                tooltip="One trial's accuracy, epoch by epoch"),
        Binding("3", "tab('tab-epoch')", "vs score epoch", show=False, id="plots.tab-epoch",
                tooltip="Accuracy against the surrogate epoch of the scores"),
        Binding("4", "tab('tab-summary')", "summary", show=False, id="plots.tab-summary",
                tooltip="The run's summary table"),
        Binding("5", "tab('tab-seen')", "vs samples seen", show=False, id="plots.tab-seen",
                tooltip="Accuracy against samples seen, beside full data (dynamic and online runs)"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.detail: Any = None
        self.live: dict[int, Any] = {}
        self.trial_key: str | None = None
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(self.title_text(), classes="run-title")
        with TabbedContent(initial="tab-ratio", id="plot-tabs"):
            with TabPane("1 vs keep ratio", id="tab-ratio"):
                yield PlotextPlot(id="plot-ratio")
                yield Static(id="legend-ratio", classes="legend")
            with TabPane("2 trial curve", id="tab-trial"), Horizontal():
                yield Table(id="trials", cursor_type="row")
                yield PlotextPlot(id="plot-trial")
            with TabPane("3 vs score epoch", id="tab-epoch"):
                yield PlotextPlot(id="plot-epoch")
                yield Static(id="legend-epoch", classes="legend")
            with TabPane("4 summary", id="tab-summary"):
                yield Table(id="summary", cursor_type="row", zebra_stripes=True)
            with TabPane("5 vs samples seen", id="tab-seen"):
                yield PlotextPlot(id="plot-seen")
        yield FitFooter()

    def on_mount(self) -> None:
        self.query_one("#trials", DataTable).add_columns("acc", " ", "trial")  # the status as a mark; the name last
        for plot_id in ("#plot-ratio", "#plot-trial", "#plot-epoch", "#plot-seen"):
            empty(self.query_one(plot_id, PlotextPlot), "loading…")
        self.query_one("#plot-tabs", TabbedContent).hide_tab("tab-seen")  # shown for dynamic and online runs
        self.load()
        self._timer = self.set_interval(LIVE_S, self._tick, pause=True)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Any) -> None:
        if self.detail is not None:  # the trial list's status colours follow the theme
            self._show(self.detail, self.live)

    def action_tab(self, tab: str) -> None:
        self.query_one("#plot-tabs", TabbedContent).active = tab

    def _tick(self) -> None:
        if self.is_current and not self.busy("plots"):
            self.load()

    # ------------------------------------------------------------ loading
    @work(thread=True, exclusive=True, group="plots", exit_on_error=False, description="cannot read the run")
    def load(self) -> None:
        detail = self.backend.run_detail(self.run_id)
        live = self.backend.live_curves(self.run_id) if detail.run.status == names.RUNNING else {}
        seen = self.backend.seen_curves(self.run_id) if detail.run.kind in SEEN_KINDS else None
        self.post_result(DetailLoaded(detail, live, seen))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        self._show(message.detail, message.live)
        if message.seen is not None:
            self._show_seen(message.detail.run, message.seen)

    def _show_seen(self, run: Any, curves: dict[str, list[tuple[float, float]]]) -> None:
        self.query_one("#plot-tabs", TabbedContent).show_tab("tab-seen")
        plot = self.query_one("#plot-seen", PlotextPlot)
        note = " (live)" if run.status == names.RUNNING else ""
        if draw_seen(plot.plt, curves, SEEN_KINDS[run.kind], f"test accuracy vs samples seen{note}"):
            plot.refresh()
        else:
            empty(plot, "no finished trials yet")

    def _show(self, detail: Any, live: dict) -> None:
        self.detail, self.live = detail, live
        self.set_run(detail.run)
        running = detail.run.status == names.RUNNING
        if running:
            self._timer.resume()
        else:
            self._timer.pause()
        rows = detail.summary
        note = " (live)" if running else ""
        for key, what, xlabel in (("ratio", "keep-ratio", "keep ratio"),
                                  ("epoch", "score-epoch", "surrogate epoch of the scores")):
            plot = self.query_one(f"#plot-{key}", PlotextPlot)
            title = f"test accuracy vs {'keep ratio' if key == 'ratio' else 'score epoch'}{note}"
            drawn = draw_accuracy_vs(plot.plt, [("", rows)], key, xlabel, title)
            if drawn:
                plot.refresh()
            else:
                empty(plot, "no finished trials yet" if running else self._nothing(what))
            show_legend(self.query_one(f"#legend-{key}", Static), drawn if len(drawn) > LEGEND_INSIDE else [])
        self._fill_summary(rows)
        self._fill_trials(detail.trials, live)

    def _nothing(self, what: str) -> str:
        kind = self.run.kind if self.run is not None else ""
        return f"no {what} results in this {kind} run (see its summary, tab 4)".replace("  ", " ")

    def _fill_summary(self, rows: list[dict[str, Any]]) -> None:
        fill_summary(self.query_one("#summary", DataTable), rows)

    def _fill_trials(self, trials: list[Any], live: dict) -> None:
        """One row per trial: accuracy, a status mark in the status's colour, and a short name (trial_labels; the
        curve's title has the whole name), the trials still training first."""
        table = self.query_one("#trials", DataTable)
        keep = self.trial_key
        table.clear()
        short = trial_labels(trials)
        by_label = {t.label: short[t.run_id] for t in trials}
        for index, (name, points) in sorted(live.items()):
            acc = points[-1][1].get("test_accuracy") if points else None
            table.add_row(Text(pct(acc), justify="right"), self._mark(names.RUNNING),
                          Text(by_label.get(name, name), no_wrap=True), key=f"live:{index}")
        live_names = {name for name, _ in live.values()}
        for t in trials:
            if t.status == names.RUNNING and t.label in live_names:
                continue  # the live row above shows this trial, with its epochs so far
            table.add_row(Text(pct(t.accuracy), justify="right"), self._mark(t.status),
                          Text(short[t.run_id], no_wrap=True), key=t.run_id)
        if not table.row_count:
            empty(self.query_one("#plot-trial", PlotextPlot), "no trials yet")
            return
        if keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
            self._draw_trial(keep)
        else:
            table.move_cursor(row=0, animate=False)
            self._draw_trial(table.coordinate_to_cell_key((0, 0)).row_key.value)

    def _mark(self, status: str) -> Text:
        """✓ ✗ ▶ ■ in the status's theme colour (tui.fmt.status_text's)."""
        from ..fmt import STATUS_VAR

        color = self.app.theme_variables.get(STATUS_VAR.get(status, ""), "")
        return Text(STATUS_MARK.get(status, "·"), style=f"bold {color}" if color else "bold")

    @on(DataTable.RowHighlighted, "#trials")
    def _trial_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if key and key != self.trial_key:
            self._draw_trial(key)

    def _draw_trial(self, key: str | None) -> None:
        self.trial_key = key
        if not key:
            return
        if key.startswith("live:"):
            name, points = self.live.get(int(key[5:]), (key, []))
            curve = [(e, m["test_accuracy"]) for e, m in points if "test_accuracy" in m]
            self._trial_curve(name, {"test_accuracy": curve}, live=True)
        else:
            self.load_history(key)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False, description="trial history")
    def load_history(self, child_id: str) -> None:
        history = self.backend.history(child_id)
        trial = next((t for t in (self.detail.trials if self.detail else []) if t.run_id == child_id), None)
        self.post_result(HistoryLoaded(trial.label if trial else child_id[:8], history))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        self._trial_curve(message.name, message.history)

    def _trial_curve(self, name: str, history: dict[str, list], live: bool = False) -> None:
        plot = self.query_one("#plot-trial", PlotextPlot)
        title = "test accuracy vs epoch" + (" (training, live)" if live else "")
        if draw_curve(plot.plt, [(name, history.get("test_accuracy", []))], title):
            plot.refresh()
        else:
            empty(plot, f"{name}: no epochs logged")
