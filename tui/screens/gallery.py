"""The gallery: the top-N or bottom-N training samples by any of a run's scores, drawn in the terminal.

Scores come from the run's scores/*.npy (aligned with the training subset its
config names); images from the engine's own loader. Each tile shows the given
label and the predicted one (when the run logged predictions) by class name, the
score, and for folder data the image's file name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Header, Label, Select, Static
from textual.worker import Worker

from ..backend import split_name
from ..messages import RunLoaded, SamplesLoaded, TilesRanked
from ..widgets.footer import FitFooter
from ..widgets.image_grid import ImageGrid, Tile
from ..widgets.title import TitleLine
from .base import RunScreen

N_DEFAULT, N_STEP, N_MAX = 12, 6, 96


def pick(scores: np.ndarray, n: int, top: bool) -> np.ndarray:
    """Indices of the n highest (or lowest) scores, best first; ties keep index order."""
    order = np.argsort(-scores if top else scores, kind="stable")
    return order[:n]


def tiles_for(samples: Any, scores: np.ndarray, n: int, top: bool, predictions: np.ndarray | None) -> list[Tile]:
    """A tile per sample: its index and label, the prediction where the run logged them (a wrong one emphasised),
    the score, and for folder data the file's name. Labels are class names ("y=ship"), kept short."""
    names = samples.classes
    numeric = all(c.isdigit() for c in names)

    def label(i: int) -> str:
        return str(i) if numeric or i >= len(names) else names[i][:10]

    tiles = []
    for index in pick(scores, n, top):
        given = int(samples.labels[index])
        lines = [f"#{index} y={label(given)}"]
        wrong = False
        if predictions is not None and index < len(predictions):
            predicted = int(predictions[index])
            wrong = predicted != given
            if numeric:
                lines[0] += f" ŷ={label(predicted)}"
            else:  # names are long: the prediction on a line of its own
                lines.append(f"ŷ={label(predicted)}")
        lines.append(f"s={scores[index]:.4g}")
        if samples.paths is not None and index < len(samples.paths):
            lines.append(Path(samples.paths[index]).name)
        strong = 2 if lines[1].startswith("ŷ") else 1
        tiles.append(Tile(samples.images[index], tuple(lines), emphasis=wrong, strong=strong))
    return tiles


class GalleryScreen(RunScreen):
    """Top or bottom samples by a chosen score, as half-block images."""

    HELP = "t: top or bottom; + and -: more or fewer; [ and ]: previous or next score."
    view = "gallery"
    AUTO_FOCUS = "#gallery-body"  # not the score select: letters are keys here
    BINDINGS = RunScreen.BINDINGS + [
        Binding("t", "toggle_top", "Top/bottom", id="gallery.top-bottom",
                tooltip="Switch between the highest and the lowest scores"),
        Binding("plus,equals_sign", "n(1)", "More", key_display="+", id="gallery.more", tooltip="Show more samples"),
        Binding("minus", "n(-1)", "Fewer", key_display="-", id="gallery.fewer", tooltip="Show fewer samples"),
        Binding("left_square_bracket", "score(-1)", "Prev score", key_display="[", id="gallery.previous-score",
                tooltip="Rank by the previous score"),
        Binding("right_square_bracket", "score(1)", "Next score", key_display="]", id="gallery.next-score",
                tooltip="Rank by the next score"),
        Binding("i", "inspect", "Inspect", id="gallery.inspect",
                tooltip="Inspect the first sample shown; [ and ] there follow this ranking"),
        Binding("e", "app.open_run_view('map')", "Map", id="gallery.map",
                tooltip="The run's embedding map: its samples on the surrogate's embeddings"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.top = True
        self.n = N_DEFAULT
        self.names: list[str] = []
        self.samples: Any = None
        self.predictions: dict[int | None, Any] = {}  # per score epoch, None when not logged

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(self.title_text(), classes="run-title")
        with Horizontal(id="gallery-bar"):
            yield Label("score", id="score-label")
            yield Select([], id="score", allow_blank=True, prompt="loading…", compact=True)
            yield Static("", id="gallery-info", markup=False)
        with VerticalScroll(id="gallery-body"):
            yield Static("loading scores and images…", id="gallery-state", markup=False)
            yield ImageGrid(id="grid")
        yield FitFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="gallery-load", exit_on_error=False,
          description="cannot load this run's samples")
    def load(self) -> None:
        self.post_result(RunLoaded(self.backend.run_row(self.run_id)))
        names = self.backend.score_names(self.run_id)
        self.post_result(SamplesLoaded(names, self.backend.samples(self.run_id) if names else None))

    def worker_failed(self, worker: Worker) -> None:
        if worker.group in ("gallery-load", "gallery"):
            self._state(f"{worker.description}: {worker.error}")

    def on_samples_loaded(self, message: SamplesLoaded) -> None:
        names, samples = message.names, message.samples
        self.names, self.samples = names, samples
        if not names:
            self._state("no per-sample scores in this run (scores/*.npy): nothing to rank. "
                        "Runs that score with a surrogate (loss, grad_norm, el2n, …) log them.")
            return
        select = self.query_one("#score", Select)
        select.set_options([(n, n) for n in names])
        select.value = names[0]  # posts Changed, which draws

    def _state(self, message: str) -> None:
        state = self.query_one("#gallery-state", Static)
        state.update(message)
        state.display = True

    @on(Select.Changed, "#score")
    def _score_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.draw()

    def draw(self) -> None:
        value = self.query_one("#score", Select).value
        if value is Select.NULL or self.samples is None:
            return
        self.query_one("#gallery-info", Static).update(
            f"{'top' if self.top else 'bottom'} {self.n} of {len(self.samples.labels)}, highest first"
            if self.top else f"bottom {self.n} of {len(self.samples.labels)}, lowest first")
        self.rank(str(value), self.n, self.top)

    @work(thread=True, exclusive=True, group="gallery", exit_on_error=False, description="cannot rank the samples")
    def rank(self, name: str, n: int, top: bool) -> None:
        scores = self.backend.scores(self.run_id, name)
        if len(scores) != len(self.samples.labels):
            raise ValueError(f"{name} has {len(scores)} scores for {len(self.samples.labels)} samples")
        epoch = split_name(name)[1]
        if epoch not in self.predictions:
            self.predictions[epoch] = self.backend.predictions(self.run_id, epoch)
        self.post_result(TilesRanked(tiles_for(self.samples, scores, n, top, self.predictions[epoch])))

    def on_tiles_ranked(self, message: TilesRanked) -> None:
        self.query_one("#gallery-state", Static).display = False
        self.query_one(ImageGrid).tiles = message.tiles

    def action_toggle_top(self) -> None:
        self.top = not self.top
        self.draw()

    def action_n(self, step: int) -> None:
        self.n = max(1, min(N_MAX, self.n + step * N_STEP))
        self.draw()

    def action_score(self, step: int) -> None:
        if self.names:
            select = self.query_one("#score", Select)
            i = self.names.index(select.value) if select.value in self.names else 0
            select.value = self.names[(i + step) % len(self.names)]

    def action_inspect(self) -> None:
        value = self.query_one("#score", Select).value
        ranking = None if value is Select.NULL else str(value)
        self.app.inspect_sample(self.run_id, ranking=ranking, lowest=not self.top)
