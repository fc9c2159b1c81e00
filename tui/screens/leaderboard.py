"""Leaderboard: a benchmark run's method × keep-ratio grid, coloured by each method's difference from random.

It reads the run's benchmark.json (engine/kinds/benchmark.py) through the backend and recomputes nothing: every
number is the engine's. A cell is the mean test accuracy over seeds, the paired difference from random in points
with `*` where the engine marks it significant (`significant`: p < 0.05 of the paired t-test over seeds at that
ratio, no multiple-comparison correction, as the engine reports it), and the rank at that ratio; ★ marks each
ratio's winner. Colours: a diverging scale over this grid's own largest |difference|, from the theme's error colour
(below random) through its surface (no difference) to its success colour (above), so it reads on any theme.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.widgets import DataTable, Header, Static

from engine import names

from ..messages import BenchmarkLoaded, RunLoaded
from ..widgets.footer import FitFooter
from ..widgets.table import Table
from ..widgets.title import TitleLine
from .base import RunScreen

RANK = "rank"  # the sort key of the average rank; a ratio (float) sorts by that ratio's accuracy
LEGEND_STEPS = 9  # colour swatches in the legend, from -span to +span


def _nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class Board:
    """benchmark.json, arranged for the grid: rows by (method, ratio), methods in average-rank order."""

    methods: list[str]
    ratios: list[float]
    cells: dict[tuple[str, float], dict[str, Any]]
    average_ranks: dict[str, float]
    critical_difference: float
    friedman_p: float
    crossover: dict[str, float]
    full: dict[str, Any] | None = None
    span: float = 0.0  # the largest |difference from random| in the grid (the colour scale's end)
    winners: dict[float, list[str]] = field(default_factory=dict)


def board(report: dict[str, Any]) -> Board:
    rows = report.get("rows") or []
    cells = {(r["method"], float(r["ratio"])): r for r in rows if "rank" in r}
    ratios = sorted({ratio for _, ratio in cells})
    ranks = {m: _nan(v) for m, v in (report.get("average_ranks") or {}).items()}
    methods = sorted({m for m, _ in cells}, key=lambda m: (ranks.get(m, math.inf), m))
    diffs = [abs(_nan(r.get("diff"))) for r in cells.values() if not math.isnan(_nan(r.get("diff")))]
    full = next((r for r in rows if r.get("method") == names.FULL), None)
    winners = {float(k): list(v) for k, v in (report.get("winners") or {}).items()}
    return Board(methods, ratios, cells, ranks, _nan(report.get("critical_difference")),
                 _nan(report.get("friedman_p")), {m: _nan(v) for m, v in (report.get("crossover") or {}).items()},
                 full, max(diffs, default=0.0), winners)


def sorted_methods(b: Board, key: str | float = RANK) -> list[str]:
    """By average rank (best first), or by mean accuracy at one keep ratio (best first; absent ones last)."""
    if key == RANK:
        return list(b.methods)

    def accuracy(m: str) -> float:
        value = _nan(b.cells.get((m, key), {}).get("mean_accuracy"))
        return -value if not math.isnan(value) else math.inf

    return sorted(b.methods, key=lambda m: (accuracy(m), b.average_ranks.get(m, math.inf), m))


def cell_text(row: dict[str, Any] | None) -> str:
    """"★ 82.4 +1.90* #1": winner, mean accuracy %, difference from random in points (* = significant), rank."""
    if row is None:
        return "-"
    mean, diff = _nan(row.get("mean_accuracy")), _nan(row.get("diff"))
    star = "★" if row.get("winner") else " "
    if row.get("method") == names.RANDOM:
        delta = "   base "
    elif math.isnan(diff):
        delta = "     -  "
    else:
        delta = f"{diff * 100:+7.2f}{'*' if row.get('significant') else ' '}"
    acc = "   -" if math.isnan(mean) else f"{mean * 100:5.1f}"
    return f"{star}{acc}{delta} #{_nan(row.get('rank')):g}"


def diverging(value: float, span: float, low: Color, mid: Color, high: Color) -> Color:
    """The colour of `value` on a scale from -span (low) through 0 (mid) to +span (high)."""
    if math.isnan(value) or span <= 0:
        return mid
    t = max(-1.0, min(1.0, value / span))
    return mid.blend(high if t > 0 else low, abs(t))


class LeaderboardScreen(RunScreen):
    """Which method wins at which keep ratio, and whether the win is real."""

    HELP = ("A benchmark run's methods × keep ratios: accuracy, Δ random (* p < 0.05, paired over seeds), rank; "
            "★ wins its ratio. s changes the sort; a click on a header sorts by it.")
    view = "leaderboard"
    BINDINGS = RunScreen.BINDINGS + [
        Binding("s", "cycle_sort", "Sort", id="leaderboard.sort",
                tooltip="Sort by average rank, then by each keep ratio's accuracy in turn"),
        Binding("i", "inspect", "Inspect", id="leaderboard.inspect",
                tooltip="Inspect the highlighted method's top-scored sample; [ and ] there follow its ranking"),
        Binding("e", "app.open_run_view('map')", "Map", id="leaderboard.map",
                tooltip="The run's embedding map: its samples on the surrogate's embeddings"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.board: Board | None = None
        self.sort_key: str | float = RANK

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(self.title_text(), classes="run-title")
        yield Table(id="leaderboard", cursor_type="row", zebra_stripes=False)
        yield Static("", id="leaderboard-legend", classes="leaderboard-lines")
        yield Static("loading benchmark.json…", id="leaderboard-status", classes="leaderboard-lines", markup=False)
        yield FitFooter()

    def on_mount(self) -> None:
        self.load()
        self.app.theme_changed_signal.subscribe(self, lambda theme: self._fill())

    @work(thread=True, exclusive=True, group="leaderboard", exit_on_error=False,
          description="cannot read the benchmark")
    def load(self) -> None:
        self.post_result(RunLoaded(self.backend.run_row(self.run_id)))
        self.post_result(BenchmarkLoaded(self.backend.benchmark(self.run_id)))

    def on_benchmark_loaded(self, message: BenchmarkLoaded) -> None:
        if message.report is None or not board(message.report).methods:
            kind = self.run.kind if self.run is not None else ""
            why = ("it has not finished yet" if self.run is not None and self.run.status == names.RUNNING
                   else "it logged no benchmark.json")
            what = "this benchmark run" if kind == "benchmark" else f"this {kind} run".replace("  ", " ")
            self.query_one("#leaderboard-status", Static).update(
                f"No leaderboard for {what}: {why}. A `benchmark` run writes one when it ends.")
            return
        self.board = board(message.report)
        self._fill()

    # ------------------------------------------------------------ sorting
    def sort_keys(self) -> list[str | float]:
        return [RANK, *(self.board.ratios if self.board else [])]

    def action_cycle_sort(self) -> None:
        keys = self.sort_keys()
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)] if self.sort_key in keys else RANK)

    def sort_by(self, key: str | float) -> None:
        self.sort_key = key
        self._fill()

    @on(DataTable.HeaderSelected, "#leaderboard")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        self.sort_by(float(key) if key not in (RANK, "method") else RANK)

    def action_inspect(self) -> None:
        table = self.query_one("#leaderboard", DataTable)
        method = None
        if self.board is not None and table.row_count:
            method = str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
        self.app.inspect_sample(self.run_id, ranking=method)

    # ------------------------------------------------------------ drawing
    def _colors(self) -> tuple[Color, Color, Color]:
        theme = self.app.theme_variables
        return (Color.parse(theme.get("error", "#ba3c5b")), Color.parse(theme.get("surface", "#1e1e1e")),
                Color.parse(theme.get("success", "#4EBF71")))

    def _style(self, diff: float) -> Style:
        bg = diverging(diff, self.board.span if self.board else 0.0, *self._colors())
        return Style(color=bg.get_contrast_text(1.0).rich_color, bgcolor=bg.rich_color)

    def _fill(self) -> None:
        b = self.board
        if b is None:
            return
        table = self.query_one("#leaderboard", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        sort = self.sort_key
        table.add_column("avg rank" + (" ▲" if sort == RANK else ""), key=RANK)
        table.add_column("method", key="method")
        for ratio in b.ratios:
            table.add_column(f"keep {ratio:g}" + (" ▼" if sort == ratio else ""), key=f"{ratio:g}")
        for method in sorted_methods(b, sort):
            cells = []
            for ratio in b.ratios:
                row = b.cells.get((method, ratio))
                cells.append(Text(cell_text(row), style=self._style(_nan((row or {}).get("diff"))), no_wrap=True))
            rank = b.average_ranks.get(method, math.nan)
            table.add_row(Text(f"{rank:.2f}", justify="right"), Text(method, no_wrap=True), *cells, key=method)
        table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)
        self.query_one("#leaderboard-legend", Static).update(self._legend())
        self.query_one("#leaderboard-status", Static).update(self._lines())

    def _legend(self) -> Text:
        span = (self.board.span if self.board else 0.0) * 100
        out = Text("Δ random ")
        out.append(f"{-span:+.1f} ")
        for i in range(LEGEND_STEPS):
            value = (2 * i / (LEGEND_STEPS - 1) - 1) * span / 100
            out.append("  ", style=self._style(value))
        out.append(f" {span:+.1f} pts   * p < 0.05 (paired t-test, uncorrected)   ★ winner   #rank at that ratio")
        return out

    def _lines(self) -> str:
        b = self.board
        sort = "average rank" if self.sort_key == RANK else f"accuracy at keep {self.sort_key:g}"
        cd, fp = b.critical_difference, b.friedman_p
        ranks = (f"average rank over {len(b.ratios)} ratio(s); critical difference {cd:.2f} (Nemenyi: closer average "
                 f"ranks are not told apart)" + ("" if math.isnan(fp) else f", Friedman p = {fp:.3g}"))
        cross = [f"{m} ≈ {c:.2f}" for m, c in b.crossover.items() if not math.isnan(c)]
        none = [m for m, c in b.crossover.items() if math.isnan(c)]
        crossing = ("crossover (stops beating random below keep): " + (", ".join(cross) if cross else "none")
                    + (f"; none for {len(none)} other(s)" if cross and none else ""))
        full = ""
        if b.full is not None:
            full = (f"full data {_nan(b.full.get('mean_accuracy')) * 100:.1f}% "
                    f"± {_nan(b.full.get('std_accuracy')) * 100:.1f} · ")
        return f"sorted by {sort} (s) · {full}{ranks}\n{crossing}"
