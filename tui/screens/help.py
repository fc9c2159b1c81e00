"""The help overlay (every key, read from the bindings themselves) and the yes/no confirmation.

Why read the bindings: a key added to a screen shows up in the help with no
second list to keep in step.
"""
from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

KEY_NAMES = {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc", "enter": "enter",
             "left_square_bracket": "[", "right_square_bracket": "]", "plus": "+", "minus": "-",
             "shift+tab": "shift+tab"}

# keys that widgets handle themselves, worth a line
WIDGET_KEYS = [("↑ ↓ pgup pgdn", "move in tables and lists"), ("tab / shift+tab", "next / previous field"),
               ("ctrl+p", "command palette: screens, actions, recent runs, themes"), ("mouse", "click rows, headers, tabs, buttons")]


def _key(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def _rows(bindings: list[Any]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, tuple):
            b = Binding(*b)
        description = b.tooltip or b.description or b.action
        rows.append((_key(b), description))
    return rows


def help_sections(app_bindings: list, current: Screen | None = None) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, help line, rows) per screen, the current one first, then global (`app_bindings`) and widget keys."""
    from ..widgets.run_table import RunTable
    from .compare import CompareScreen
    from .embedding_map import EmbeddingMapScreen
    from .gallery import GalleryScreen
    from .inspector import InspectorScreen
    from .leaderboard import LeaderboardScreen
    from .monitor import MonitorScreen
    from .new import NewExperimentScreen
    from .overlap import OverlapScreen
    from .plots import PlotsScreen
    from .runs import RunsScreen

    screens = [("Runs", RunsScreen, RunTable.BINDINGS), ("Monitor", MonitorScreen, []),
               ("New experiment", NewExperimentScreen, []), ("Plots", PlotsScreen, []),
               ("Overlap", OverlapScreen, []), ("Gallery", GalleryScreen, []), ("Inspector", InspectorScreen, []),
               ("Embedding map", EmbeddingMapScreen, []), ("Leaderboard", LeaderboardScreen, []),
               ("Compare", CompareScreen, [])]
    if current is not None:
        screens.sort(key=lambda s: not isinstance(current, s[1]))
    sections = [("Everywhere", "", _rows(app_bindings))]
    for title, cls, extra in screens:
        sections.append((title, getattr(cls, "HELP", ""), _rows(list(cls.BINDINGS) + list(extra))))
    sections.insert(2 if current is not None else 1, ("Widgets", "", WIDGET_KEYS))
    return sections


class HelpScreen(ModalScreen[None]):
    """Every key of every screen; the screen you came from comes first."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q,question_mark", "dismiss", "Close help", id="help.close",
                tooltip="Close the help and go back"),
    ]

    def __init__(self, current: Screen | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("prunelab keys  ·  esc closes", id="help-title")
            with VerticalScroll(id="help-body"):
                for title, line, rows in help_sections(type(self.app).BINDINGS, self.current):
                    table = Table(box=None, show_header=False, padding=(0, 1), expand=False)
                    table.add_column(style="bold", min_width=14, no_wrap=True)
                    table.add_column()
                    for key, what in rows:
                        table.add_row(key, what)
                    yield Static(Text(title, style="bold underline"), classes="help-section")
                    if line:
                        yield Static(line, classes="help-line", markup=False)
                    yield Static(table, classes="help-table")

    def action_dismiss(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y or enter says yes, n or escape says no."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Yes, do it"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="No, leave things as they are"),
    ]

    def __init__(self, question: str, yes: str = "Yes (y)", variant: str = "error") -> None:
        super().__init__()
        self.question, self.yes, self.variant = question, yes, variant

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes=self.variant):
            yield Static(self.question, id="confirm-question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(self.yes, id="yes", variant=self.variant)
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
