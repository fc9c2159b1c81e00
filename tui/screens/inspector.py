"""The sample inspector: one training sample of a run, whole.

Its image (half blocks, as the gallery draws them), the label the scorers saw and
surrogate 0's prediction by class name; every score the run logged with its
percentile among the run's samples, and its trajectory over the score epochs
where several were scored; its nearest neighbours in the surrogate's embedding
space as images, with a warning when most carry another label; and which trials
kept or pruned it. Everything comes from `engine.api.sample_inspector` (the
same report as `engine.inspect` and `prunelab show RUN --sample N`), read once
per run in a thread worker.

It opens from the gallery (`i`: its first tile, `[`/`]` then follow the
gallery's ranking), the leaderboard (`i`: the highlighted method's top-scored
sample), the embedding map (enter on a point), the palette, or an index typed
in (`/`).
"""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Header, Input, Label, Static
from textual.worker import Worker

from engine import names

from ..fmt import pct
from ..messages import Loaded, RunLoaded
from ..widgets.footer import FitFooter
from ..widgets.image_grid import ImageGrid, Tile, half_block_lines, shrink
from ..widgets.table import Table
from ..widgets.title import TitleLine
from .base import RunScreen

IMAGE_PIXELS = 32  # the sample's image at up to 32 pixels wide: MNIST and CIFAR at full size
SPARK = "▁▂▃▄▅▆▇█"


class SampleInspected(Loaded):
    """A sample's report (engine.api.SampleReport), and the order [ and ] step through."""

    def __init__(self, report: Any, order: Any, by: str, n: int) -> None:
        super().__init__()
        self.report, self.order, self.by, self.n = report, order, by, n


def trajectory(percentiles: list[float]) -> str:
    """Percentiles over epochs: "12 → 40 → 88" for up to four, else a sparkline with its ends."""
    shown = ["-" if p != p else f"{p:.0f}" for p in percentiles]
    if len(percentiles) <= 4:
        return " → ".join(shown)
    spark = "".join(" " if p != p else SPARK[min(len(SPARK) - 1, int(p / 100 * len(SPARK)))] for p in percentiles)
    return f"{shown[0]} {spark} {shown[-1]}"


def facts(report: Any) -> Text:
    """The lines beside the image: where it is, its label and prediction, the neighbours' verdict, the trials."""
    out = Text()
    where = f"sample #{report.index}"
    if report.source_index != report.index:
        where += f" (source #{report.source_index} of the full data)"
    out.append(where, style="bold")
    out.append("\n\n")
    out.append("label     ")
    out.append(report.class_name(report.label), style="bold")
    if report.clean_label is not None:
        out.append(f"  flipped by the noise run from {report.class_name(report.clean_label)}", style="yellow")
    out.append("\npredicted ")
    if report.predicted is None:
        out.append("- (the run logged no predictions)", style="dim")
    else:
        wrong = report.predicted != report.label
        out.append(report.class_name(report.predicted), style="bold red" if wrong else "bold green")
        out.append(f"  {'✗' if wrong else '✓'} surrogate 0 at epoch {report.prediction_epoch}", style="dim")
    out.append("\n\n")
    if not report.neighbours:
        out.append("no neighbours: the run logged no embedding map", style="dim")
    elif report.disagrees:
        out.append(f"⚠ {report.disagreeing} of its {len(report.neighbours)} nearest neighbours carry another label "
                   f"(most are {report.class_name(report.majority)}): a label worth a second look", style="bold yellow")
    else:
        out.append(f"{report.disagreeing} of its {len(report.neighbours)} nearest neighbours carry another label")
    kept, selecting = report.kept_in()
    out.append(f"\nkept by {kept} of the {selecting} trials that selected" if selecting else
               "\nno trial of this run selected samples (yet)")
    return out


def score_rows(report: Any) -> list[tuple[str, str, str, str, str]]:
    """(score, epoch, value, percentile, trajectory) per method, at its last epoch."""
    by_method: dict[str, list[Any]] = {}
    for reading in report.scores:
        by_method.setdefault(reading.method, []).append(reading)
    rows = []
    for method, readings in by_method.items():
        last = readings[-1]
        path = trajectory([r.percentile for r in readings]) if len(readings) > 1 else ""
        epochs = f"e{readings[0].epoch}–e{last.epoch} " if len(readings) > 1 else ""
        rows.append((method, "-" if last.epoch is None else str(last.epoch), f"{last.value:.4g}",
                     "-" if last.percentile != last.percentile else f"{last.percentile:.1f}%",
                     f"{epochs}{path}".strip()))
    return rows


def neighbour_tiles(report: Any) -> list[Tile]:
    def label(c: int) -> str:
        name = report.classes[c] if 0 <= c < len(report.classes) else str(c)
        return name[:7]

    return [Tile(n.image, (f"#{n.index} y={label(n.label)}", f"cos {n.similarity:.3f}"),
                 emphasis=n.label != report.label) for n in report.neighbours]


def trial_rows(report: Any) -> list[tuple[str, str, str, Text]]:
    rows = []
    for m in report.trials:
        if m.kept is None:
            what = Text("all (full data)" if m.trial.method == names.FULL else "-", style="dim")
        else:
            what = Text("kept" if m.kept else "pruned", style="green" if m.kept else "red")
            if m.weight is not None:
                what.append(f" w={m.weight:.3g}")
        rows.append((m.trial.label, m.trial.status, pct(m.trial.accuracy), what))
    return rows


class InspectorScreen(RunScreen):
    """One training sample: image, labels, scores with percentiles, neighbours, and the trials that kept it."""

    HELP = ("One training sample: its scores (percentile among the run's samples, and over the score epochs), its "
            "nearest neighbours in embedding space (⚠ when most carry another label) and which trials kept it. "
            "[ and ] step through the ranking it was opened from (else by index); / takes an index.")
    view = "inspector"
    AUTO_FOCUS = "#inspector-body"
    DEFAULT_CSS = """
    #inspector-bar { height: 1; padding: 0 1; margin-top: 1; }
    #index-label { padding: 0 1 0 0; }
    #sample-index { width: 12; }
    #inspector-where { padding: 0 2; width: 1fr; color: $text-muted; }
    #inspector-body { height: 1fr; padding: 0 1; }
    #inspector-state { color: $text-warning; height: auto; }
    #inspector-top { height: auto; }
    #inspector-image { width: auto; height: auto; margin-right: 2; }
    #inspector-facts { width: 1fr; height: auto; }
    .inspector-heading { margin-top: 1; text-style: bold; color: $text-accent; }
    #inspector-scores, #inspector-trials { height: auto; max-height: 14; }
    """
    BINDINGS = RunScreen.BINDINGS + [
        Binding("left_square_bracket", "step(-1)", "Prev", key_display="[", id="inspector.previous",
                tooltip="The previous sample of the ranking it was opened from (else the previous index)"),
        Binding("right_square_bracket", "step(1)", "Next", key_display="]", id="inspector.next",
                tooltip="The next sample of the ranking it was opened from (else the next index)"),
        Binding("slash", "goto", "Index", key_display="/", id="inspector.goto",
                tooltip="Type a sample's index (its position in the run's training set) and press enter"),
        Binding("e", "map", "Map", id="inspector.map", tooltip="The run's embedding map, its cursor on this sample"),
    ]

    def __init__(self, run_id: str, index: int | None = None, ranking: str | None = None,
                 lowest: bool = False) -> None:
        super().__init__(run_id)
        self.index = index
        self.ranking, self.lowest = ranking, lowest
        self.order: Any = None  # sample indices in the order [ and ] follow (None: by index)
        self.by = ""  # what that order is, in words
        self.report: Any = None
        self.n = 0  # the run's training samples

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(self.title_text(), classes="run-title")
        with Horizontal(id="inspector-bar"):
            yield Label("sample #", id="index-label")
            yield Input(str(self.index) if self.index is not None else "", id="sample-index", type="integer",
                        compact=True, placeholder="index")
            yield Static("", id="inspector-where", markup=False)
        with VerticalScroll(id="inspector-body"):
            yield Static("loading the run's samples…", id="inspector-state", markup=False)
            with Horizontal(id="inspector-top"):
                yield Static("", id="inspector-image")
                yield Static("", id="inspector-facts")
            yield Static("scores", classes="inspector-heading")
            yield Table(id="inspector-scores", cursor_type="none", zebra_stripes=False, show_cursor=False)
            yield Static("nearest neighbours", id="neighbours-heading", classes="inspector-heading", markup=False)
            yield ImageGrid(id="neighbours")
            yield Static("trials", classes="inspector-heading")
            yield Table(id="inspector-trials", cursor_type="none", zebra_stripes=False, show_cursor=False)
        yield FitFooter()

    def on_mount(self) -> None:
        for table_id, columns in (("#inspector-scores", ("score", "epoch", "value", "percentile", "over epochs")),
                                  ("#inspector-trials", ("trial", "status", "accuracy", "this sample"))):
            self.query_one(table_id, Table).add_columns(*columns)
        self.load(self.index)

    # ------------------------------------------------------------ loading
    @work(thread=True, exclusive=True, group="inspector", exit_on_error=False,
          description="cannot inspect this sample")
    def load(self, index: int | None) -> None:
        self.post_result(RunLoaded(self.backend.run_row(self.run_id)))
        inspector = self.backend.inspector(self.run_id)
        order, by = self.order, self.by
        if order is None and self.ranking is not None:
            ranked = inspector.ranking(self.ranking, self.lowest)
            if ranked is not None:
                name, order = ranked
                by = f"{'lowest' if self.lowest else 'highest'} {name} first"
        if index is None:
            index = int(order[0]) if order is not None else 0
        self.post_result(SampleInspected(inspector.sample(index), order, by, len(inspector)))

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "inspector":
            state = self.query_one("#inspector-state", Static)
            state.update(f"{worker.description}: {worker.error}")
            state.display = True

    def on_sample_inspected(self, message: SampleInspected) -> None:
        report = self.report = message.report
        self.order, self.by, self.index, self.n = message.order, message.by, report.index, message.n
        self.query_one("#inspector-state", Static).display = False
        self.query_one("#sample-index", Input).value = str(report.index)
        self.query_one("#inspector-where", Static).update(self.position())
        image = shrink(report.image, IMAGE_PIXELS)
        self.query_one("#inspector-image", Static).update(Text("\n").join(half_block_lines(image)))
        self.query_one("#inspector-facts", Static).update(facts(report))
        scores = self.query_one("#inspector-scores", Table)
        scores.clear()
        for row in score_rows(report):
            scores.add_row(*row)
        if not report.scores:
            scores.add_row("no per-sample scores in this run", "", "", "", "")
        heading = "nearest neighbours"
        if report.neighbour_epoch is not None:
            heading += (f" (cosine of surrogate 0's embeddings at epoch {report.neighbour_epoch}; "
                        "highlighted: another label)")
        self.query_one("#neighbours-heading", Static).update(heading)
        self.query_one("#neighbours", ImageGrid).tiles = neighbour_tiles(report)
        trials = self.query_one("#inspector-trials", Table)
        trials.clear()
        for row in trial_rows(report):
            trials.add_row(*row)

    def position(self) -> str:
        if self.report is None:
            return ""
        if self.order is None:
            return f"by index: {self.report.index + 1} of {self.n}"
        at = int((self.order == self.report.index).argmax()) if (self.order == self.report.index).any() else None
        return f"{'?' if at is None else at + 1} of {len(self.order)}, {self.by}"

    # ------------------------------------------------------------ keys
    def action_step(self, step: int) -> None:
        if self.report is None:
            return
        if self.order is None:
            self.load((self.report.index + step) % max(1, self.n))
            return
        hits = (self.order == self.report.index).nonzero()[0]
        at = int(hits[0]) if len(hits) else -step
        self.load(int(self.order[(at + step) % len(self.order)]))

    def action_goto(self) -> None:
        field = self.query_one("#sample-index", Input)
        field.focus()
        field.select_all()

    @on(Input.Submitted, "#sample-index")
    def _typed(self, event: Input.Submitted) -> None:
        try:
            index = int(event.value)
        except ValueError:
            self.notify(f"{event.value!r} is not a sample index", severity="warning")
            return
        self.query_one("#inspector-body").focus()
        self.load(index)

    def action_map(self) -> None:
        from .embedding_map import EmbeddingMapScreen

        stack = self.app.screen_stack
        below = stack[-2] if len(stack) > 1 else None
        if isinstance(below, EmbeddingMapScreen) and below.run_id == self.run_id:
            below.move_to(self.index)  # back to the map it was opened from, its cursor here
            self.app.pop_screen()
        else:
            self.app.push_screen(EmbeddingMapScreen(self.run_id, cursor=self.index))
