"""The embedding map: a run's training samples on the 2-D projection of surrogate 0's embeddings (PCA, or UMAP
when the run asked for it), one point per sample coloured by its class, drawn with plotext.

`[` and `]` choose a trial of the run: its kept samples stay as coloured dots and the ones it pruned turn into
grey crosses. The arrow keys move a cursor to the nearest point in that direction; enter (or `i`) opens that
sample in the inspector, whose `e` comes back here. The run logged the projection when it scored
(engine/sample_map.py, `embedding/*.npy`, and the same picture as `plots/embedding_map.png`); this screen reads it
through `engine.api.sample_inspector`, once per run.

A terminal has far fewer cells than a large data set has samples: above MAX_POINTS the map draws a fixed random
subset of that many (the same every time), and the cursor moves among those.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.widgets import Header, Static
from textual.worker import Worker
from textual_plotext import PlotextPlot

from ..messages import Loaded, RunLoaded
from ..widgets.footer import FitFooter
from ..widgets.title import TitleLine
from .base import RunScreen

MAX_POINTS = 4000  # more than the braille cells of a 120 x 40 plot
# matplotlib's tab10 then the rest of tab20: the PNG artifact's class colours
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229))
PRUNED = (150, 150, 150)
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, 1.0), "down": (0.0, -1.0)}


class MapLoaded(Loaded):
    def __init__(self, inspector: Any, emap: Any, trials: list[Any]) -> None:
        super().__init__()
        self.inspector = inspector  # engine.api.RunInspector
        self.emap = emap  # engine.api.EmbeddingMap, None when the run logged none
        self.trials = trials  # the trials that logged a selection (engine.api.TrialRow)


def shown_points(n: int, keep: int | None = None, limit: int = MAX_POINTS) -> np.ndarray:
    """The sample indices the map draws, sorted: all of them, or a fixed random `limit` of them (and `keep`)."""
    if n <= limit:
        return np.arange(n)
    chosen = np.random.default_rng(0).permutation(n)[:limit]
    if keep is not None:
        chosen = np.append(chosen, keep)
    return np.unique(chosen)


def step_towards(xy: np.ndarray, shown: np.ndarray, current: int, direction: str) -> int:
    """The shown sample the cursor moves to from sample `current`: the nearest one within 45° of `direction`
    (coordinates scaled to the map's extent, as the plot is), else the nearest one on that side; itself if none."""
    pts = xy[shown].astype(np.float64)
    span = pts.max(axis=0) - pts.min(axis=0)
    span[span == 0] = 1.0
    d = (pts - xy[current]) / span
    ux, uy = DIRECTIONS[direction]
    along = d[:, 0] * ux + d[:, 1] * uy
    across = np.abs(d[:, 0] * uy - d[:, 1] * ux)
    ahead = along > 1e-12
    for candidates in (ahead & (across <= along), ahead):
        if candidates.any():
            dist = np.where(candidates, along**2 + across**2, np.inf)
            return int(shown[int(np.argmin(dist))])
    return int(current)


def draw_map(plt: Any, xy: np.ndarray, labels: np.ndarray, shown: np.ndarray, kept: np.ndarray | None,
             cursor: int | None, cursor_colour: tuple[int, int, int]) -> None:
    """The scatter: pruned samples (grey ×) under each class's dots, the cursor (◉) on top."""
    plt.clear_figure()
    labels = np.asarray(labels)[shown]
    pts = xy[shown]
    keep = np.ones(len(shown), dtype=bool) if kept is None else kept[shown]
    if (~keep).any():
        plt.scatter(pts[~keep, 0].tolist(), pts[~keep, 1].tolist(), marker="×", color=PRUNED)
    for c in np.unique(labels):
        mine = keep & (labels == c)
        if mine.any():
            plt.scatter(pts[mine, 0].tolist(), pts[mine, 1].tolist(), marker="•",
                        color=PALETTE[int(c) % len(PALETTE)])
    if cursor is not None:
        plt.scatter([float(xy[cursor, 0])], [float(xy[cursor, 1])], marker="◉", color=cursor_colour)


def rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*colour)


def legend(classes: list[str], labels: np.ndarray, kept: np.ndarray | None) -> Text:
    out = Text()
    present = set(np.unique(labels).tolist())
    for c, name in enumerate(classes):
        if c in present:
            out.append("■", style=rgb(PALETTE[c % len(PALETTE)]))
            out.append(f" {name[:10]}  ")
    if kept is not None:
        out.append("• kept  ")
        out.append("×", style=rgb(PRUNED))
        out.append(" pruned  ")
    out.append("◉ cursor", style="bold")
    return out


class EmbeddingMapScreen(RunScreen):
    """The run's samples on the 2-D projection of the surrogate's embeddings, a trial's kept and pruned marked."""

    HELP = ("The 2-D projection (PCA or UMAP) of surrogate 0's embeddings, a point per sample coloured by its "
            "class. [ and ] mark a trial's kept (•) and pruned (×) samples; the arrows move the cursor (◉) to the "
            "nearest point that way; enter or i inspects it.")
    view = "map"
    DEFAULT_CSS = """
    #map-info, #map-legend, #map-cursor { height: auto; padding: 0 1; }
    #map-info { color: $text-muted; }
    #map-cursor { background: $boost; }
    """
    BINDINGS = RunScreen.BINDINGS + [
        Binding("enter,i", "inspect", "Inspect", id="map.inspect", tooltip="Open the sample under the cursor in "
                "the inspector"),
        Binding("left_square_bracket", "trial(-1)", "Prev trial", key_display="[", id="map.previous-trial",
                tooltip="Mark the previous trial's kept and pruned samples (before the first: none)"),
        Binding("right_square_bracket", "trial(1)", "Next trial", key_display="]", id="map.next-trial",
                tooltip="Mark the next trial's kept and pruned samples"),
        Binding("left", "move('left')", "Left", show=False, id="map.left", tooltip="Cursor to the nearest point "
                "on the left"),
        Binding("right", "move('right')", "Right", show=False, id="map.right",
                tooltip="Cursor to the nearest point on the right"),
        Binding("up", "move('up')", "Up", show=False, id="map.up", tooltip="Cursor to the nearest point above"),
        Binding("down", "move('down')", "Down", show=False, id="map.down",
                tooltip="Cursor to the nearest point below"),
    ]

    def __init__(self, run_id: str, cursor: int | None = None) -> None:
        super().__init__(run_id)
        self.cursor = cursor
        self.inspector: Any = None
        self.emap: Any = None
        self.trials: list[Any] = []
        self.trial = -1  # index into self.trials; -1: no trial marked
        self.kept: np.ndarray | None = None
        self.shown = np.arange(0)

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(self.title_text(), classes="run-title")
        yield Static("loading the run's embedding map…", id="map-info", markup=False)
        yield PlotextPlot(id="map-plot")
        yield Static("", id="map-legend")
        yield Static("", id="map-cursor")
        yield FitFooter()

    def on_mount(self) -> None:
        self.load()
        self.app.theme_changed_signal.subscribe(self, lambda theme: self.draw())

    @work(thread=True, exclusive=True, group="map", exit_on_error=False, description="cannot read the map")
    def load(self) -> None:
        self.post_result(RunLoaded(self.backend.run_row(self.run_id)))
        inspector = self.backend.inspector(self.run_id)
        self.post_result(MapLoaded(inspector, inspector.embedding_map(), inspector.selections()))

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "map":
            self.query_one("#map-info", Static).update(f"{worker.description}: {worker.error}")

    def on_map_loaded(self, message: MapLoaded) -> None:
        self.inspector, self.emap, self.trials = message.inspector, message.emap, message.trials
        if self.emap is None:
            self.query_one("#map-info", Static).update(
                "No embedding map in this run: runs that train a surrogate log one (embedding/*.npy) unless "
                "surrogate.projection = \"none\"; runs made before prunelab logged maps have none.")
            return
        n = len(self.emap.labels)
        if self.cursor is None or not 0 <= self.cursor < n:
            self.cursor = 0
        self.shown = shown_points(n, self.cursor)
        self.draw()

    # ------------------------------------------------------------ drawing
    def _cursor_colour(self) -> tuple[int, int, int]:
        return Color.parse(self.app.theme_variables.get("foreground", "#e0e0e0")).rgb

    def draw(self) -> None:
        emap = self.emap
        if emap is None or not self.is_mounted:
            return
        plot = self.query_one("#map-plot", PlotextPlot)
        draw_map(plot.plt, emap.projection, emap.labels, self.shown, self.kept, self.cursor, self._cursor_colour())
        axes = ("PC 1", "PC 2") if emap.method == "pca" else (f"{emap.method.upper()} 1", f"{emap.method.upper()} 2")
        plot.plt.xlabel(axes[0])
        plot.plt.ylabel(axes[1])
        plot.refresh()
        self.query_one("#map-info", Static).update(self.info())
        self.query_one("#map-legend", Static).update(legend(emap.classes, emap.labels, self.kept))
        self.query_one("#map-cursor", Static).update(self.cursor_line())

    def info(self) -> str:
        emap, n = self.emap, len(self.emap.labels)
        how = (f"PCA ({emap.explained[0]:.0%} + {emap.explained[1]:.0%} of the variance)"
               if emap.method == "pca" and len(emap.explained) >= 2 else emap.method.upper())
        drawn = f"{n} samples" if len(self.shown) == n else f"{len(self.shown)} of {n} samples (a fixed subset)"
        line = f"{how} of the epoch-{emap.epoch} embeddings · {drawn}"
        if self.trial < 0:
            marks = f"[ ]: mark one of {len(self.trials)} trials' selections" if self.trials else "no trial selected"
            return f"{line}\n{marks}"
        trial, kept = self.trials[self.trial], int(self.kept.sum()) if self.kept is not None else 0
        return (f"{line}\ntrial {self.trial + 1}/{len(self.trials)}: {trial.label} · kept {kept} •, "
                f"pruned {n - kept} ×")

    def cursor_line(self) -> Text:
        emap, i = self.emap, self.cursor
        if emap is None or i is None:
            return Text("")
        label = int(emap.labels[i])
        out = Text(f"◉ #{i}  label {emap.classes[label] if label < len(emap.classes) else label}")
        if emap.predictions is not None:
            predicted = int(emap.predictions[i])
            name = emap.classes[predicted] if predicted < len(emap.classes) else str(predicted)
            out.append(f"  predicted {name}", style="red" if predicted != label else "")
        if self.kept is not None:
            out.append("  kept" if self.kept[i] else "  pruned", style="green" if self.kept[i] else "red")
        out.append("  ·  enter inspects it", style="dim")
        return out

    # ------------------------------------------------------------ keys
    def move_to(self, index: int | None) -> None:
        """Put the cursor on a sample (shown from now on, if it was not)."""
        if index is None or self.emap is None or not 0 <= index < len(self.emap.labels):
            return
        self.cursor = int(index)
        if not (self.shown == index).any():
            self.shown = np.unique(np.append(self.shown, index))
        self.draw()

    def action_move(self, direction: str) -> None:
        if self.emap is not None and self.cursor is not None:
            self.move_to(step_towards(self.emap.projection, self.shown, self.cursor, direction))

    def action_trial(self, step: int) -> None:
        if self.emap is None or not self.trials:
            return
        self.trial = (self.trial + 1 + step) % (len(self.trials) + 1) - 1  # -1 (none), 0 .. len - 1
        self.kept = None if self.trial < 0 else self.inspector.kept_mask(self.trials[self.trial].run_id)
        self.draw()

    def action_inspect(self) -> None:
        if self.emap is not None and self.cursor is not None:
            self.app.inspect_sample(self.run_id, self.cursor)
