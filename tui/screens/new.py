"""The New-experiment form: every config field, starting from a preset, validated as the CLI does.

The fields come from the pydantic models (tui.config_fields), so new config
fields appear here by themselves. Validation runs `engine.config.config_from_dict`
and the pre-run check of the data and model (`engine.api.check_inputs`, what `run`
checks before a run exists) in a thread worker after each edit, and its one-line
message is shown under the field it names. Launch starts a detached run (its own process session).
"""
from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import Suggester
from textual.widgets import Button, Header, Input, Label, Select, Static, Switch
from textual.worker import Worker

from ..config_fields import FieldSpec, assign, error_target, field_specs, format_value, lookup, parse_text
from ..messages import ConfigValidated, PresetLoaded, RunLaunched, SchemaLoaded
from ..widgets.footer import FitFooter
from .base import BaseScreen

VALIDATE_DELAY_S = 0.25


class ListSuggester(Suggester):
    """Completes the last item of a comma-separated list from a registry's names."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.names = names

    async def get_suggestion(self, value: str) -> str | None:
        _head, _, last = value.rpartition(",")
        stem = last.lstrip()
        if not stem:
            return None
        for name in self.names:
            if name.startswith(stem) and name != stem:
                return value + name[len(stem):]
        return None


class NewExperimentScreen(BaseScreen):
    """A form for a Config; ctrl+l launches it detached and switches to the monitor."""

    HELP = "Pick a preset, edit any field (errors show under the field), then launch."
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+l", "launch", "Launch", priority=True, id="new.launch",
                tooltip="Launch the experiment in the background (it survives quitting)"),
        Binding("ctrl+r", "reset", "Reset to preset", id="new.reset", tooltip="Put the preset's values back"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs: list[FieldSpec] = []
        self.config: Any = None  # the last valid Config
        self.error: str | None = "not validated yet"
        self._filling = False
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="new-bar"):
            yield Label("preset", id="preset-label")
            yield Select([], id="preset", allow_blank=True, prompt="loading presets…", compact=True)
            yield Button("Launch (^l)", id="launch", variant="success", disabled=True, compact=True)
        yield Static("", id="form-error", classes="status-line", markup=False)
        yield VerticalScroll(Static("loading the config schema…", id="form-loading"), id="form")
        yield FitFooter()

    def on_mount(self) -> None:
        self.load_schema()

    # ------------------------------------------------------------ building the form
    @work(thread=True, exclusive=True, group="schema", exit_on_error=False,
          description="cannot read the config schema")
    def load_schema(self) -> None:
        from engine.config import Config, preset_names

        specs = field_specs(Config)
        presets = preset_names()
        start = "quick" if "quick" in presets else (presets[0] if presets else None)
        self.post_result(SchemaLoaded(specs, presets, start, self._preset_values(start)))

    @staticmethod
    def _preset_values(name: str | None) -> dict[str, Any]:
        """A preset with every default filled in (what the run would use)."""
        import tomllib

        from engine.config import Config, config_from_dict, preset_text

        if name is None:
            return Config().model_dump(mode="json")
        return config_from_dict(tomllib.loads(preset_text(name))).model_dump(mode="json")

    async def on_schema_loaded(self, message: SchemaLoaded) -> None:
        specs, presets, start, values = message.specs, message.presets, message.start, message.values
        self.specs = specs
        form = self.query_one("#form", VerticalScroll)
        form.query_one("#form-loading").remove()
        section = None
        rows = []
        for spec in specs:
            if spec.section != section:
                section = spec.section
                title = f"[{section}]" if section else "experiment"
                rows.append(Static(title, classes="section-title", markup=False))
            rows.append(self._row(spec))
        await form.mount_all(rows)
        select = self.query_one("#preset", Select)
        select.set_options([(p, p) for p in presets])
        self._filling = True
        if start:
            select.value = start
        self._fill(values)

    def _row(self, spec: FieldSpec) -> Horizontal:
        if spec.kind == "bool":
            widget: Any = Switch(id=spec.widget_id)
        elif spec.kind == "choice":
            widget = Select([(str(c), c) for c in spec.choices], id=spec.widget_id, allow_blank=spec.optional,
                            compact=True)
        else:
            placeholder = {"list": "comma-separated", "dict": "{ key = value, … }"}.get(
                spec.kind, "blank = default" if spec.optional else "")
            suggester = ListSuggester(spec.suggestions) if spec.suggestions else None
            widget = Input(id=spec.widget_id, placeholder=placeholder, suggester=suggester, compact=True)
        widget.tooltip = spec.description or None
        children: list[Any] = [widget]
        if spec.kind == "bool":  # the switch alone is hard to read in a dark theme: say it in words too
            children = [Horizontal(widget, Label("off", id="s-" + spec.widget_id[2:], classes="switch-state"),
                                   classes="switch-row")]
        if spec.description:
            children.append(Static(spec.description, classes="field-help", markup=False))
        error = Static("", id="e-" + spec.widget_id[2:], classes="field-error", markup=False)
        error.display = False
        children.append(error)
        return Horizontal(Label(spec.name, classes="field-label"), Vertical(*children, classes="field-body"),
                          classes="field-row")

    def _fill(self, values: dict[str, Any]) -> None:
        """Put a config's values in the widgets, then validate once (not once per widget)."""
        self._filling = True
        for spec in self.specs:
            value = lookup(values, spec.path)
            widget = self.query_one(f"#{spec.widget_id}")
            if isinstance(widget, Switch):
                widget.value = bool(value)
            elif isinstance(widget, Select):
                widget.value = value if value is not None else Select.NULL
            else:
                widget.value = format_value(spec, value)
        self.call_after_refresh(self._filled)

    def _filled(self) -> None:
        self._filling = False
        self.validate_now()

    # ------------------------------------------------------------ values and validation
    def form_data(self) -> dict[str, Any]:
        """The form as a config dict: blank optional fields are left out (their default, None)."""
        data: dict[str, Any] = {}
        for spec in self.specs:
            widget = self.query_one(f"#{spec.widget_id}")
            if isinstance(widget, Switch):
                value: Any = widget.value
            elif isinstance(widget, Select):
                value = None if widget.value is Select.NULL else widget.value
            else:
                value = parse_text(spec, widget.value)
                if value is None and not spec.optional:
                    value = ""  # an emptied required field: the validator names it
            if value is None:
                continue
            assign(data, spec.path, value)
        return data

    @on(Input.Changed)
    @on(Switch.Changed)
    @on(Select.Changed)
    def _edited(self, event) -> None:
        control = event.control
        if isinstance(control, Switch) and control.id:
            state = self.query_one(f"#s-{control.id[2:]}", Label)
            state.update("on" if control.value else "off")
            state.set_class(control.value, "on")
        if control.id == "preset":
            if not self._filling and event.value is not Select.NULL:
                self.load_preset(str(event.value))
            return
        if self._filling or not (control.id or "").startswith("f-"):
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY_S, self.validate_now)

    def validate_now(self) -> None:
        if self.specs:
            self.validate(self.form_data())

    @work(thread=True, exclusive=True, group="validate", exit_on_error=False, description="validation")
    def validate(self, data: dict[str, Any]) -> None:
        from engine.api import check_inputs
        from engine.config import config_from_dict
        from engine.errors import PrunelabError

        try:
            config, error = config_from_dict(data), None
            check_inputs(config)  # the data and the model, as `prunelab run` checks them before a run exists
        except PrunelabError as exc:
            config, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 -- a plugin's validator may raise anything: still one line
            config, error = None, f"{type(exc).__name__}: {exc}"
        self.post_result(ConfigValidated(config, error))

    def on_config_validated(self, message: ConfigValidated) -> None:
        config, error = message.config, message.error
        self.config, self.error = config, error
        for widget in self.query(".field-error"):
            widget.display = False
        for widget in self.query(".field-row"):
            widget.remove_class("invalid")
        banner = self.query_one("#form-error", Static)
        if error is None:
            banner.update(f"ready: {config.kind} on {config.data.dataset} with {config.model}")
            banner.set_classes("status-line ok")
        else:
            path, message = error_target(error, [s.path for s in self.specs])
            if path is not None:
                spec = next(s for s in self.specs if s.path == path)
                box = self.query_one(f"#e-{spec.widget_id[2:]}", Static)
                box.update(message)
                box.display = True
                box.parent.parent.add_class("invalid")
            banner.update(f"⚠ {message}")
            banner.set_classes("status-line bad")
        self.query_one("#launch", Button).disabled = error is not None

    # ------------------------------------------------------------ presets, launch
    @work(thread=True, exclusive=True, group="preset", exit_on_error=False, description="cannot read the preset")
    def load_preset(self, name: str) -> None:
        self.post_result(PresetLoaded(self._preset_values(name)))

    def on_preset_loaded(self, message: PresetLoaded) -> None:
        self._fill(message.values)

    def action_reset(self) -> None:
        select = self.query_one("#preset", Select)
        if select.value is not Select.NULL:
            self.load_preset(str(select.value))

    @on(Button.Pressed, "#launch")
    def _launch_pressed(self) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        if not self.specs:
            return
        if self._timer is not None:
            self._timer.stop()
        self.query_one("#launch", Button).disabled = True
        self.launch(self.form_data())

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False, description="launch failed")
    def launch(self, data: dict[str, Any]) -> None:
        from engine.config import config_from_dict
        from engine.errors import PrunelabError

        try:
            config = config_from_dict(data)
        except PrunelabError as exc:
            self.post_result(ConfigValidated(None, str(exc)))
            return
        self.post_result(RunLaunched(self.backend.launch(config)))

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "launch":
            self.query_one("#launch", Button).disabled = self.error is not None  # the form is as valid as it was

    def on_run_launched(self, message: RunLaunched) -> None:
        info = message.info
        self.query_one("#launch", Button).disabled = False
        self.app.notify(f"launched run {info['run_id'][:8]} (pid {info['pid']}); it keeps running if you quit",
                        timeout=6)
        self.app.switch_mode("monitor")
