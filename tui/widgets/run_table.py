"""The runs table: a DataTable that filters, sorts, marks and refreshes without losing the cursor.

Why rebuild rows instead of patching cells: a refresh may add, drop or reorder
runs; rebuilding from RunInfo values (a few hundred at most) is simple and fast,
and the cursor is put back on the same run by its id.

Why its own column plan: at 80 columns not every column fits. The run id, the
status, the kind and the accuracies always stay whole (a benchmark row must be
told from a prune row, and `show` takes the id); the start time, the data set and
the duration give way in that order, and then a long experiment name or model
(`timm:resnet10t`) is cut with "…" rather than pushing the id off the screen.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from ..backend import run_duration
from ..fmt import clock, duration, pct, short_id, status_text
from .table import Table


def _accuracy(value: float | None) -> float:
    return value if value is not None else -1.0  # runs without one sort last


# column key, label, sort key, newest/largest first by default
COLUMNS: list[tuple[str, str, Callable[[Any, float], Any], bool]] = [
    ("mark", " ", lambda r, now: 0, False),
    ("status", "status", lambda r, now: r.status, False),
    ("experiment", "experiment", lambda r, now: r.experiment.lower(), False),
    ("kind", "kind", lambda r, now: r.kind, False),
    ("full", "full", lambda r, now: _accuracy(r.full_accuracy), True),  # full-data accuracy (80 columns: short)
    ("best", "best pruned", lambda r, now: _accuracy(r.best_pruned), True),
    ("trials", "trials", lambda r, now: (r.trials_done, r.trials), True),
    ("duration", "time", lambda r, now: run_duration(r, now) or 0.0, True),
    ("started", "started", lambda r, now: r.start_time, True),
    ("dataset", "dataset", lambda r, now: r.dataset, False),
    ("model", "model", lambda r, now: r.model, False),
    ("run_id", "run id", lambda r, now: r.run_id, False),
]
SORTABLE = [c[0] for c in COLUMNS if c[0] != "mark"]
GIVE_WAY = ("started", "dataset", "duration")  # the columns left out, in this order, until the rest fit
CUT = (("experiment", 10), ("model", 8))  # then these are cut (to no less than this), in this order
NARROW_LABELS = {"best": "pruned"}  # shorter headers once columns give way ("full" and "pruned" side by side)
PADDING = 2  # a DataTable cell's padding, both sides


def ellipsis(cell: Any, width: int) -> Any:
    """A cell's text cut to `width` cells with "…" (a short one unchanged)."""
    text = str(cell)
    return text if cell_len(text) <= width else text[:max(1, width - 1)] + "…"


def plan_columns(rows: list[list[Any]], width: int, sort_key: str = "") -> tuple[tuple[str, ...], dict[str, int]]:
    """(the columns that give way, {column: width its cells are cut to}) for rows of cells in COLUMNS' order to fit
    `width` cells (the `sort_key` column's header has an arrow)."""
    def natural(i: int, key: str, label: str, narrow: bool) -> int:
        header = cell_len(NARROW_LABELS.get(key, label) if narrow else label) + (2 if key == sort_key else 0)
        return max([header, *(cell_len(str(row[i])) for row in rows)]) + PADDING

    keys = [c[0] for c in COLUMNS]
    hidden: tuple[str, ...] = ()
    widths = {key: natural(i, key, label, False) for i, (key, label, *_) in enumerate(COLUMNS)}
    for drop in GIVE_WAY:
        if sum(w for k, w in widths.items() if k not in hidden) <= width:
            break
        hidden += (drop,)
        widths = {key: natural(i, key, label, True) for i, (key, label, *_) in enumerate(COLUMNS)}
    over = sum(w for k, w in widths.items() if k not in hidden) - width
    cut: dict[str, int] = {}
    for key, least in CUT:
        if over <= 0:
            break
        cells = widths[key] - PADDING
        if cells > least:
            cut[key] = max(least, cells - over)
            over -= cells - cut[key]
    return tuple(k for k in keys if k in hidden), cut


class RunTable(Table):
    """Parent runs with status, kind, data, model, full-data and best pruned accuracy, duration and start time."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("space", "toggle_mark", "Mark", id="runs.mark", tooltip="Mark the run for comparison"),
        Binding("s", "next_sort", "Sort", id="runs.sort", tooltip="Sort by the next column"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="runs.reverse-sort", tooltip="Reverse the sort order"),
    ]

    class MarksChanged(Message):
        def __init__(self, marked: list[str]) -> None:
            self.marked = marked
            super().__init__()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.runs: dict[str, Any] = {}
        self.marked: list[str] = []
        self.filter_text = ""
        self.sort_key = "started"
        self.sort_reverse = True
        self.now: Callable[[], float] = lambda: 0.0
        self._shown: list[tuple] = []
        self.hidden: tuple[str, ...] = ()
        self.cut: dict[str, int] = {}  # column -> the cells' widest, when cut to fit

    @property
    def shown_columns(self) -> list[str]:
        return [c[0] for c in COLUMNS if c[0] not in self.hidden]

    def on_mount(self) -> None:
        self._add_columns()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _add_columns(self) -> None:
        for key, label, _, _ in COLUMNS:
            if key not in self.hidden:
                self.add_column(self._label(key, label), key=key)
        self._update_labels()

    def _label(self, key: str, label: str) -> str:
        return NARROW_LABELS.get(key, label) if self.hidden else label

    def on_resize(self) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        """Choose the columns that give way and the cells cut so that the table fits its width (module docstring)."""
        width = (self.scrollable_content_region.width or self.size.width) - 1
        if width <= 0:
            return
        hidden, cut = plan_columns([self._all_cells(r, self.now()) for r in self.runs.values()], width, self.sort_key)
        if (hidden, cut) != (self.hidden, self.cut):
            self.hidden, self.cut = hidden, cut
            self.clear(columns=True)
            self._add_columns()
            self._shown = []
            self.rebuild()

    def _theme_changed(self, theme: Any) -> None:
        """Status colours come from the theme: redraw the rows in the new one."""
        self._shown = []
        self.rebuild()

    # ------------------------------------------------------------ data
    def set_runs(self, runs: list[Any]) -> None:
        self.runs = {r.run_id: r for r in runs}
        self.marked = [m for m in self.marked if m in self.runs]
        self.fit_columns()
        self.rebuild()

    def visible(self) -> list[Any]:
        words = self.filter_text.lower().split()
        rows = [r for r in self.runs.values() if all(w in self._haystack(r) for w in words)]
        sort = next(c[2] for c in COLUMNS if c[0] == self.sort_key)
        now = self.now()
        return sorted(rows, key=lambda r: sort(r, now), reverse=self.sort_reverse)

    @staticmethod
    def _haystack(r: Any) -> str:
        return f"{r.status} {r.experiment} {r.name} {r.kind} {r.dataset} {r.model} {r.run_id}".lower()

    def rebuild(self) -> None:
        """Redraw the rows (only when what they show changed), keeping the cursor on the same run.

        Same runs in the same order (a running run's duration ticking): update the cells in place,
        so the scroll position stays; otherwise rebuild the rows.
        """
        now = self.now()
        rows = [(r.run_id, self._cells(r, now)) for r in self.visible()]
        signature = [(rid, tuple(str(c) for c in cells)) for rid, cells in rows]
        if signature == self._shown:
            return
        if [rid for rid, _ in signature] == [rid for rid, _ in self._shown]:
            for (run_id, cells), (_, old), (_, new) in zip(rows, self._shown, signature):
                for key, cell, before, after in zip(self.shown_columns, cells, old, new):
                    if before != after:
                        self.update_cell(run_id, key, cell, update_width=True)
            self._shown = signature
            return
        self._shown = signature
        current = self.current_run_id
        self.clear()
        for run_id, cells in rows:
            self.add_row(*cells, key=run_id)
        if current and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def _all_cells(self, r: Any, now: float) -> list:
        """Every column's cell, in COLUMNS' order."""
        theme = self.app.theme_variables
        mark = Text("●", style=theme.get("text-accent", "")) if r.run_id in self.marked else " "
        trials = f"{r.trials_done}/{r.trials}" if r.trials else (str(r.trials_done) if r.trials_done else "-")
        return [mark, status_text(r.status, theme), r.experiment, r.kind, Text(pct(r.full_accuracy), justify="right"),
                Text(pct(r.best_pruned), justify="right"),
                Text(trials, justify="right"), Text(duration(run_duration(r, now)), justify="right"),
                clock(r.start_time), r.dataset, r.model, short_id(r.run_id)]

    def _cells(self, r: Any, now: float) -> list:
        """The shown columns' cells, the cut ones cut."""
        return [ellipsis(cell, self.cut[key]) if key in self.cut else cell
                for (key, *_), cell in zip(COLUMNS, self._all_cells(r, now)) if key not in self.hidden]

    @property
    def current_run_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    # ------------------------------------------------------------ filter, sort, marks
    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.rebuild()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        if reverse is None:
            reverse = (not self.sort_reverse) if key == self.sort_key else next(c[3] for c in COLUMNS if c[0] == key)
        self.sort_key, self.sort_reverse = key, reverse
        self._update_labels()
        self.fit_columns()  # the sorted column's header carries an arrow
        self.rebuild()

    def _update_labels(self) -> None:
        for key, label, _, _ in COLUMNS:
            if key in self.columns:
                arrow = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_key else ""
                self.columns[key].label = Text(self._label(key, label) + arrow)
        self._require_update_dimensions = True
        self.refresh()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value in SORTABLE:
            self.sort_by(event.column_key.value)

    def action_next_sort(self) -> None:
        i = SORTABLE.index(self.sort_key) if self.sort_key in SORTABLE else -1
        self.sort_by(SORTABLE[(i + 1) % len(SORTABLE)])

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_key, not self.sort_reverse)

    def action_toggle_mark(self) -> None:
        run_id = self.current_run_id
        if not run_id:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self._shown = []
        self.rebuild()
        self.post_message(self.MarksChanged(list(self.marked)))
