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
from textual.widgets import DataTable, Header, TabbedContent, TabPane
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


# ---------------------------------------------------------------- drawing (shared with compare)
def series(rows: list[dict[str, Any]], x_key: str, group: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Summary rows as (x, mean %, std %) points per label, the full-data rows left out."""
    out: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        if row.get("method") == FULL or row.get("mean_accuracy") is None or x_key not in row:
            continue  # other kinds (overlap, noise, …) have rows of their own shape
        mean = row["mean_accuracy"]
        if mean != mean:  # NaN: every seed failed
            continue
        label = " ".join(str(row.get(k)) for k in group if row.get(k) not in (None, ""))
        out[label].append((float(row[x_key]), mean * 100, (row.get("std_accuracy") or 0.0) * 100))
    return {k: sorted(v) for k, v in out.items()}


def varying(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys whose value differs between rows (so a label only says what tells series apart)."""
    rows = [r for r in rows if r.get("method") != FULL]
    return tuple(k for k in keys if len({r.get(k) for r in rows}) > 1)


def full_accuracy(rows: list[dict[str, Any]]) -> float | None:
    full = [r["mean_accuracy"] for r in rows
            if r.get("method") == FULL and r.get("mean_accuracy") == r.get("mean_accuracy")]  # not NaN
    return full[0] * 100 if full else None


def draw_accuracy_vs(plt: Any, runs: list[tuple[str, list[dict[str, Any]]]], x_key: str, xlabel: str,
                     title: str) -> int:
    """Mean test accuracy (error bars: std over seeds) per method against x_key, with each run's
    full-data line; `runs` is (label prefix, summary rows) per run, one for a run's own plots and
    several for compare. Returns how many series it drew (0: nothing to draw).

    Full-data lines go first: plotext overwrites a cell with the last series drawn in it, and at
    80 columns a method's curve often shares cells with the reference line.
    """
    plt.clear_figure()
    other = "epoch" if x_key == "ratio" else "ratio"
    curves = []  # (label, xs, ys, errors)
    fulls = []  # (label, accuracy)
    for prefix, rows in runs:
        group = ("method",) + varying(rows, ("strategy", other))
        for label, points in series(rows, x_key, group).items():
            curves.append((f"{prefix}{label}", *(list(v) for v in zip(*points))))
        full = full_accuracy(rows)
        if full is not None:
            fulls.append((f"{prefix}full data {full:.1f}%", full))
    xs_all = [x for _, xs, _, _ in curves for x in xs]
    ys_all = [y + sign * e for _, _, ys, es in curves for y, e in zip(ys, es) for sign in (-1, 1)]
    lo, hi = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    if x_key == "ratio":
        hi = max(hi, 1.0)  # the full data is keep ratio 1
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    for i, (label, full) in enumerate(fulls):
        # one run: a neutral grey; several (compare): a colour of its own each, after the curves' colours
        color = COLORS[(len(curves) + i) % len(COLORS)] if len(runs) > 1 else "gray"
        plt.plot([lo, hi], [full, full], marker="dot", color=color, label=label)
        ys_all.append(full)
    for i, (label, xs, ys, es) in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        draw = plt.plot if len(xs) > 1 else plt.scatter  # plotext's legend skips error bars
        draw(xs, ys, marker="braille", color=color, label=label)
        plt.error(xs, ys, yerr=es, color=color)
    if ys_all:  # plotext stretches a lone line over a silly range: keep the axis near the data
        lo_y, hi_y = min(ys_all), max(ys_all)
        pad = max(1.0, 0.1 * (hi_y - lo_y))
        plt.ylim(max(0.0, lo_y - pad), min(100.0, hi_y + pad))
    plt.title(title)
    plt.xlabel(xlabel)
    plt.ylabel("test accuracy %")
    return len(curves) + len(fulls)


def draw_curve(plt: Any, curves: list[tuple[str, list[tuple[int, float]]]], title: str) -> bool:
    """Accuracy (%) against epoch, one line per named curve."""
    plt.clear_figure()
    drawn = False
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
        drawn = True
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


def empty(plot: PlotextPlot, message: str) -> None:
    plot.plt.clear_figure()
    plot.plt.title(message)
    plot.refresh()


SHORT = {"mean_accuracy": "mean acc", "std_accuracy": "std", "test_accuracy": "acc"}


def summary_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key the rows have, in first-seen order: each experiment kind has its own summary shape."""
    return list(dict.fromkeys(k for row in rows for k in row))


def summary_cell(key: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
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
            with TabPane("2 trial curve", id="tab-trial"), Horizontal():
                yield Table(id="trials", cursor_type="row")
                yield PlotextPlot(id="plot-trial")
            with TabPane("3 vs score epoch", id="tab-epoch"):
                yield PlotextPlot(id="plot-epoch")
            with TabPane("4 summary", id="tab-summary"):
                yield Table(id="summary", cursor_type="row", zebra_stripes=True)
            with TabPane("5 vs samples seen", id="tab-seen"):
                yield PlotextPlot(id="plot-seen")
        yield FitFooter()

    def on_mount(self) -> None:
        self.query_one("#trials", DataTable).add_columns("acc", "status", "trial")  # the long name last
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
        ratio = self.query_one("#plot-ratio", PlotextPlot)
        if draw_accuracy_vs(ratio.plt, [("", rows)], "ratio", "keep ratio", f"test accuracy vs keep ratio{note}"):
            ratio.refresh()
        else:
            empty(ratio, "no finished trials yet" if running else self._nothing("keep-ratio"))
        epoch = self.query_one("#plot-epoch", PlotextPlot)
        if draw_accuracy_vs(epoch.plt, [("", rows)], "epoch", "surrogate epoch of the scores",
                            f"test accuracy vs score epoch{note}"):
            epoch.refresh()
        else:
            empty(epoch, "no finished trials yet" if running else self._nothing("score-epoch"))
        self._fill_summary(rows)
        self._fill_trials(detail.trials, live)

    def _nothing(self, what: str) -> str:
        kind = self.run.kind if self.run is not None else ""
        return f"no {what} results in this {kind} run (see its summary, tab 4)".replace("  ", " ")

    def _fill_summary(self, rows: list[dict[str, Any]]) -> None:
        fill_summary(self.query_one("#summary", DataTable), rows)

    def _fill_trials(self, trials: list[Any], live: dict) -> None:
        table = self.query_one("#trials", DataTable)
        keep = self.trial_key
        table.clear()
        theme = self.app.theme_variables
        from ..fmt import status_text

        for index, (name, points) in sorted(live.items()):
            acc = points[-1][1].get("test_accuracy") if points else None
            table.add_row(Text(pct(acc), justify="right"), status_text(names.RUNNING, theme), Text(name, no_wrap=True),
                          key=f"live:{index}")
        live_names = {name for name, _ in live.values()}
        for t in trials:
            if t.status == names.RUNNING and t.label in live_names:
                continue  # the live row above shows this trial, with its epochs so far
            table.add_row(Text(pct(t.accuracy), justify="right"), status_text(t.status, theme),
                          Text(t.label, no_wrap=True), key=t.run_id)
        if not table.row_count:
            empty(self.query_one("#plot-trial", PlotextPlot), "no trials yet")
            return
        if keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
            self._draw_trial(keep)
        else:
            table.move_cursor(row=0, animate=False)
            self._draw_trial(table.coordinate_to_cell_key((0, 0)).row_key.value)

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
