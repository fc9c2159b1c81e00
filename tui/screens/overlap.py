"""The overlap view: how much two scorers agree, as a methods x methods heatmap with numbers.

"first" is the repetition rate R = |A ∩ B| / k of the top-k sets, "last" of the
bottom-k sets, "spearman" the rank correlation of all scores. Matrices are
recomputed from the run's scores/*.npy for any k (so k is free); an overlap
run's overlap.json is used as logged where it has the chosen k.
"""
from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Header, Input, Label, Static
from textual.worker import Worker

from engine import names

from ..backend import overlap_matrices, parse_overlap_json, split_name
from ..messages import OverlapComputed, RunLoaded, ScoresListed
from ..widgets.footer import FitFooter
from ..widgets.heatmap import Heatmap
from ..widgets.title import TitleLine
from .base import RunScreen

MODES = {"first": "top-k overlap R = |A∩B|/k", "last": "bottom-k overlap R = |A∩B|/k",
         "spearman": "Spearman rank correlation"}


class OverlapScreen(RunScreen):
    """Heatmap of the overlap between every pair of scorers of one run."""

    HELP = "f/l/s: top-k, bottom-k, Spearman; + and - change k (or type it); e: next score epoch."
    view = "overlap"
    AUTO_FOCUS = "#overlap-body"  # not the k box: letters are keys here
    BINDINGS = RunScreen.BINDINGS + [
        Binding("f", "mode('first')", "Top-k", id="overlap.top-k", tooltip="Overlap of the top-k samples"),
        Binding("l", "mode('last')", "Bottom-k", id="overlap.bottom-k", tooltip="Overlap of the bottom-k samples"),
        Binding("s", "mode('spearman')", "Spearman", id="overlap.spearman",
                tooltip="Spearman rank correlation of all the scores"),
        Binding("plus,equals_sign", "k(1)", "k+", key_display="+", id="overlap.k-up", tooltip="A larger k"),
        Binding("minus", "k(-1)", "k-", key_display="-", id="overlap.k-down", tooltip="A smaller k"),
        Binding("e", "next_epoch", "Epoch", id="overlap.epoch", tooltip="Scores of the next surrogate epoch"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.mode = "first"
        self.k = 0
        self.n = 0
        self.names: list[str] = []
        self.logged: dict[int, dict[str, Any]] = {}
        self.epochs: list[int | None] = []
        self.epoch: int | None = None
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield TitleLine(self.title_text(), classes="run-title")
        with Horizontal(id="overlap-bar"):
            yield Label("k", id="k-label")
            yield Input(id="k-input", type="integer", placeholder="k", compact=True)
            yield Static("", id="overlap-mode", markup=False)
        with VerticalScroll(id="overlap-body"):
            yield Static("loading scores…", id="overlap-state", markup=False)
            yield Heatmap(id="heatmap")
            yield Static("", id="overlap-note", markup=False)
        yield FitFooter()

    def on_mount(self) -> None:
        self.query_one(Heatmap).display = False
        self.load()

    # ------------------------------------------------------------ loading
    @work(thread=True, exclusive=True, group="overlap-load", exit_on_error=False,
          description="cannot read this run's scores")
    def load(self) -> None:
        self.post_result(RunLoaded(self.backend.run_row(self.run_id)))
        names = self.backend.score_names(self.run_id)
        logged = self.backend.overlap(self.run_id)
        n = len(self.backend.scores(self.run_id, names[0])) if names else 0
        self.post_result(ScoresListed(names, parse_overlap_json(logged) if logged else {}, n))

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "overlap-load":
            self._state(f"cannot read this run's scores: {worker.error}")

    def on_scores_listed(self, message: ScoresListed) -> None:
        names, logged = message.names, message.logged
        self.names, self.logged, self.n = names, logged, message.n
        self.epochs = sorted({split_name(x)[1] for x in names}, key=lambda e: -1 if e is None else e)
        self.epoch = self.epochs[-1] if self.epochs else None
        methods = {split_name(x)[0] for x in names}
        if len(methods) < 2 and not logged:
            self._state("no overlap for this run: it needs per-sample scores from two or more scorers, and "
                        + (f"it logged only {', '.join(sorted(methods))}." if methods else "it logged none.")
                        + " Run an overlap experiment, or a prune sweep with several scoring methods.")
            return
        self.k = min(logged) if logged else max(1, round(0.1 * self.n))
        self.query_one("#k-input", Input).value = str(self.k)
        self.compute()

    def _state(self, message: str) -> None:
        state = self.query_one("#overlap-state", Static)
        state.update(message)
        state.display = True
        self.query_one(Heatmap).display = False

    # ------------------------------------------------------------ computing
    def compute(self) -> None:
        self.query_one("#overlap-mode", Static).update(self._mode_text())
        if self.k in self.logged:  # what the overlap run itself computed
            entry = self.logged[self.k]
            if entry.get(self.mode) is not None:
                self._show({**entry, "k": self.k, "source": names.OVERLAP_JSON})
                return
        if not self.names:
            self._state(f"this run logged overlap for k = {', '.join(map(str, sorted(self.logged)))} only "
                        "and no scores to recompute from; pick one of those k")
            return
        self.recompute(self.k, self.epoch)

    @work(thread=True, exclusive=True, group="overlap", exit_on_error=False, description="overlap")
    def recompute(self, k: int, epoch: int | None) -> None:
        chosen = [x for x in self.names if split_name(x)[1] == epoch]
        logged = next(iter(self.logged.values()), {}).get("methods") or []
        rank = {m: i for i, m in enumerate(logged)}
        chosen.sort(key=lambda x: (rank.get(split_name(x)[0], len(rank)), x))
        scores = {split_name(x)[0]: self.backend.scores(self.run_id, x) for x in chosen}
        result = overlap_matrices(scores, k)
        result["source"] = "recomputed from scores/*.npy"
        self.post_result(OverlapComputed(result))

    def on_overlap_computed(self, message: OverlapComputed) -> None:
        self._show(message.result)

    def _show(self, result: dict[str, Any]) -> None:
        self.result = result
        matrix = result.get(self.mode)
        if matrix is None:
            self._state(f"{self.mode} is not in this run's overlap.json for k = {self.k}")
            return
        self.query_one("#overlap-state", Static).display = False
        heatmap = self.query_one(Heatmap)
        heatmap.display = True
        heatmap.show(result["methods"], matrix, signed=self.mode == "spearman")
        epoch = f" · scores at surrogate epoch {self.epoch}" if self.epoch is not None else ""
        share = f" ({self.k / self.n:.0%} of {self.n} samples)" if self.n else ""
        note = (f"{MODES[self.mode]}, k = {self.k}{share}{epoch} · {result.get('source', '')}\n"
                "1.00 on the diagonal; off it, 1.00 means the two scorers pick the same samples"
                if self.mode != "spearman" else
                f"{MODES[self.mode]} over all {self.n} samples{epoch} · {result.get('source', '')}")
        self.query_one("#overlap-note", Static).update(note)

    def _mode_text(self) -> str:
        return "  ".join(("●" if m == self.mode else "○") + f" {key} {m}" for key, m in
                         (("f", "first"), ("l", "last"), ("s", "spearman")))

    # ------------------------------------------------------------ keys
    def action_mode(self, mode: str) -> None:
        self.mode = mode
        if self.result is not None and self.result.get(mode) is not None and self.result.get("k") == self.k:
            self.query_one("#overlap-mode", Static).update(self._mode_text())
            self._show(self.result)
        elif self.names or self.logged:
            self.compute()

    def action_k(self, step: int) -> None:
        if not (self.names or self.logged):
            return
        if self.logged and not self.names:
            ks = sorted(self.logged)
            i = ks.index(self.k) if self.k in ks else 0
            self.k = ks[max(0, min(len(ks) - 1, i + step))]
        else:
            delta = max(1, round(0.05 * self.n)) if self.n else 1
            self.k = max(1, min(self.n or self.k + 1, self.k + step * delta))
        self.query_one("#k-input", Input).value = str(self.k)
        self.compute()

    @on(Input.Submitted, "#k-input")
    def _k_typed(self, event: Input.Submitted) -> None:
        try:
            k = int(event.value)
        except ValueError:
            self.notify("k must be a whole number", severity="warning")
            return
        if k < 1 or (self.n and k > self.n):
            self.notify(f"k must be between 1 and {self.n}", severity="warning")
            return
        self.k = k
        self.compute()

    def action_next_epoch(self) -> None:
        if len(self.epochs) > 1:
            self.epoch = self.epochs[(self.epochs.index(self.epoch) + 1) % len(self.epochs)]
            self.compute()
        elif self.epochs:
            self.notify(f"This run logged scores at one surrogate epoch only (e{self.epochs[0]})", timeout=4)
        else:
            self.notify("This run logged no scores to switch between", severity="warning", timeout=4)
