"""Compare: the runs marked on the runs screen, their curves overlaid and their summaries side by side."""
from __future__ import annotations

from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from engine.errors import PrunelabError

from ..fmt import accuracies, short_id
from ..messages import DetailsLoaded
from ..widgets.footer import FitFooter
from ..widgets.table import Table
from ..widgets.title import TitleLine
from .base import BaseScreen
from .plots import draw_accuracy_vs, empty, fill_summary, show_legend


def run_label(detail: Any, all_details: list[Any]) -> str:
    """A short label that tells the runs apart: the experiment name, and where names repeat what differs in the run
    names (`prune mnist cnn · random,loss @ 0.3,0.7`: the methods or the ratios), else a short id."""
    name = detail.run.experiment or detail.run.name
    group = [d for d in all_details if (d.run.experiment or d.run.name) == name]
    if len(group) == 1:
        return name
    words = detail.run.name.split()
    others = [set(d.run.name.split()) for d in group if d is not detail]
    differ = [w for w in words if w not in ("·", "@") and not all(w in o for o in others)]
    if not differ:
        return f"{name}:{short_id(detail.run.run_id)[:4]}"
    after_at = "@" in words and all(words.index(w) > words.index("@") for w in differ)
    return f"{name} {'@ ' if after_at else ''}{' '.join(differ)}"


class CompareScreen(BaseScreen):
    """Overlaid accuracy curves and one summary table for several runs."""

    HELP = "Runs marked with space on the runs screen. 1, 2, 3 pick a tab."
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("1", "tab('cmp-ratio')", "vs ratio", show=False, id="compare.tab-ratio",
                tooltip="Accuracy against the keep ratio"),
        Binding("2", "tab('cmp-epoch')", "vs score epoch", show=False, id="compare.tab-epoch",
                tooltip="Accuracy against the surrogate epoch of the scores"),
        Binding("3", "tab('cmp-summary')", "summary", show=False, id="compare.tab-summary",
                tooltip="The runs' summaries in one table"),
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(f"comparing {len(self.run_ids)} runs", sep=" vs ", id="compare-title", classes="run-title")
        with TabbedContent(initial="cmp-ratio", id="compare-tabs"):
            with TabPane("1 vs keep ratio", id="cmp-ratio"):
                yield PlotextPlot(id="cmp-plot-ratio")
                yield Static(id="cmp-legend-ratio", classes="legend")
            with TabPane("2 vs score epoch", id="cmp-epoch"):
                yield PlotextPlot(id="cmp-plot-epoch")
                yield Static(id="cmp-legend-epoch", classes="legend")
            with TabPane("3 summary", id="cmp-summary"):
                yield Table(id="cmp-table", cursor_type="row", zebra_stripes=True)
        yield FitFooter()

    def on_mount(self) -> None:
        for plot_id in ("#cmp-plot-ratio", "#cmp-plot-epoch"):
            empty(self.query_one(plot_id, PlotextPlot), "loading…")
        self.load()

    def action_tab(self, tab: str) -> None:
        self.query_one("#compare-tabs", TabbedContent).active = tab

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False, description="compare")
    def load(self) -> None:
        """Compare the runs that can be read, then fail naming the others (so one bad run hides nothing)."""
        details, failed = [], []
        for run_id in self.run_ids:
            try:
                details.append(self.backend.run_detail(run_id))
            except (PrunelabError, OSError) as exc:  # a run not found, or a store that cannot be read
                failed.append(f"{run_id[:8]} ({exc or type(exc).__name__})")
        self.post_result(DetailsLoaded(details))
        if failed:
            raise LookupError(f"cannot read run {', '.join(failed)}")

    def on_details_loaded(self, message: DetailsLoaded) -> None:
        details = message.details
        labels = [run_label(d, details) for d in details]
        title = " vs ".join(f"{label} ({accuracies(d.run) or 'no accuracy'})" for label, d in zip(labels, details))
        self.query_one("#compare-title", TitleLine).update(f"comparing: {title}")
        for x_key, xlabel in (("ratio", "keep ratio"), ("epoch", "surrogate epoch of the scores")):
            plot = self.query_one(f"#cmp-plot-{x_key}", PlotextPlot)
            runs = [(f"{label}: ", d.summary) for label, d in zip(labels, details)]
            epochs = sorted({r.get("epoch") for d in details for r in d.summary if r.get("method") != "full"} - {None})
            drawn = []
            if x_key == "epoch" and len(epochs) == 1:  # a pile of error bars at one x says nothing
                empty(plot, f"one score epoch only (e{epochs[0]}): "
                            "accuracy vs keep ratio is tab 1")
            else:  # the legend under the plot: run-prefixed labels over the curves would hide them
                drawn = draw_accuracy_vs(plot.plt, runs, x_key, xlabel, f"test accuracy vs {xlabel}", legend=False)
                if drawn:
                    plot.refresh()
                else:
                    empty(plot, "no results in these runs")
            show_legend(self.query_one(f"#cmp-legend-{x_key}", Static), drawn)
        rows = [(label, row) for label, d in zip(labels, details) for row in d.summary]
        fill_summary(self.query_one("#cmp-table", DataTable), [r for _, r in rows], [label for label, _ in rows])
