"""The New-experiment form: the config's fields, starting from a preset, validated as the CLI does.

The fields come from the pydantic models (tui.config_fields), so new config
fields appear here by themselves. The core fields are always shown, and of the
registered sections only those the chosen kind reads (`engine.api.kind_sections`):
switching the kind hides and shows whole sections, so what was typed in a hidden
one stays there for when it comes back (a hidden section is left out of the
config: its defaults apply). Validation runs `engine.config.config_from_dict` and
the pre-run check of the data and model (`engine.api.check_inputs`, what `run`
checks before a run exists) in a thread worker after each edit, and its one-line message is shown under the
field it names; the status line above the form keeps one line, so the form never
moves under the cursor. A valid config is previewed (`engine.api.preview`: trials,
surrogates, an estimated time) in the ready line; launching more than
`engine.api.CONFIRM_TRIALS` trials asks first. Launch starts a detached run (its
own process session).
"""
from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import Suggester
from textual.widgets import Button, Header, Input, Label, Select, Static, Switch
from textual.worker import Worker

from ..config_fields import FieldSpec, assign, error_target, field_specs, format_value, lookup, parse_text
from ..messages import ConfigValidated, LaunchAsked, PresetLoaded, PreviewReady, RunLaunched, SchemaLoaded
from ..widgets.footer import FitFooter
from .base import BaseScreen

VALIDATE_DELAY_S = 0.25
PREVIEW_DELAY_S = 0.8  # a preview loads data and may measure: wait until the typing stops


def section_titles(specs: list[FieldSpec]) -> list[tuple[str, str, list[FieldSpec]]]:
    """The form's groups in order: (section, title, its fields); top-level fields are "experiment" before the
    sections and "options and plugins" after them."""
    groups: list[tuple[str, str, list[FieldSpec]]] = []
    for spec in specs:
        if not groups or groups[-1][0] != spec.section:
            title = f"[{spec.section}]" if spec.section else ("experiment" if not groups else "options and plugins")
            groups.append((spec.section, title, []))
        groups[-1][2].append(spec)
    return groups


def ready_text(config: Any, preview: Any = None, error: str | None = None) -> str:
    """"ready: benchmark on mnist-mini with cnn · 375 trials, 1 surrogate, ~14 min" (a preview being made, or
    failed, says so)."""
    head = f"ready: {config.kind} on {config.data.dataset} with {config.model}"
    if error is not None:
        return f"{head} · no preview ({error})"
    return f"{head} · {preview.headline() if preview is not None else 'counting trials…'}"


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
        self.kinds: dict[str, list[str]] = {}  # kind -> the registered sections it reads
        self.registered: set[str] = set()  # the sections that come and go with the kind
        self.shown: set[str] | None = None  # the registered sections shown now (None: all)
        self.preview: Any = None  # the preview of self.config, once made
        self._preview_key: str | None = None
        self._filling = False
        self._timer = None
        self._preview_timer = None

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
        from engine.api import kind_sections
        from engine.config import Config, choices_for, preset_names

        specs = field_specs(Config)
        presets = preset_names()
        start = "quick" if "quick" in presets else (presets[0] if presets else None)
        kinds = {kind: kind_sections(kind) for kind in choices_for("kind")}
        self.post_result(SchemaLoaded(specs, presets, start, self._preset_values(start), kinds))

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
        self.specs, self.kinds = specs, message.kinds
        self.registered = {name for names in message.kinds.values() for name in names}
        form = self.query_one("#form", VerticalScroll)
        form.query_one("#form-loading").remove()
        groups = []
        for section, title, members in section_titles(specs):
            group = Vertical(Static(title, classes="section-title", markup=False), *(self._row(s) for s in members),
                             classes="form-section")
            group.section = section  # type: ignore[attr-defined]
            groups.append(group)
        await form.mount_all(groups)
        self.show_sections(lookup(values, "kind"))
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

    # ------------------------------------------------------------ the kind's sections
    def section_shown(self, section: str) -> bool:
        return section not in self.registered or self.shown is None or section in self.shown

    def show_sections(self, kind: Any, read: list[str] | None = None) -> None:
        """Show the core fields and the registered sections `kind` reads (`read`, or from the schema's map); an
        unknown kind changes nothing (a typo on the way to a name must not blank the form)."""
        read = read if read is not None else self.kinds.get(str(kind or ""))
        if read is None:
            return
        self.shown = set(read)
        for group in self.query(".form-section"):
            section = getattr(group, "section", "")
            group.display = self.section_shown(section)

    # ------------------------------------------------------------ values and validation
    def form_data(self) -> dict[str, Any]:
        """The form as a config dict: blank optional fields are left out (their default, None)."""
        data: dict[str, Any] = {}
        for spec in self.specs:
            if not self.section_shown(spec.section):
                continue  # a section the kind does not read: its defaults (what was typed stays in its boxes)
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
        if control.id == "f-kind" and str(event.value).strip() in self.kinds:
            self.show_sections(str(event.value).strip())
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY_S, self.validate_now)

    def validate_now(self) -> None:
        if self.specs:
            self.validate(self.form_data())

    @work(thread=True, exclusive=True, group="validate", exit_on_error=False, description="validation")
    def validate(self, data: dict[str, Any]) -> None:
        from engine.api import check_inputs, kind_sections
        from engine.config import config_from_dict
        from engine.errors import PrunelabError

        try:
            config, error = config_from_dict(data), None
            check_inputs(config)  # the data and the model, as `prunelab run` checks them before a run exists
        except PrunelabError as exc:
            config, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 -- a plugin's validator may raise anything: still one line
            config, error = None, f"{type(exc).__name__}: {exc}"
        self.post_result(ConfigValidated(config, error, kind_sections(config.kind) if config is not None else None))

    def on_config_validated(self, message: ConfigValidated) -> None:
        config, error = message.config, message.error
        self.config, self.error = config, error
        for widget in self.query(".field-error"):
            widget.display = False
        for widget in self.query(".field-row"):
            widget.remove_class("invalid")
        banner = self.query_one("#form-error", Static)
        if error is None:
            self.show_sections(config.kind, message.sections)
            self._want_preview(config)
            banner.set_classes("status-line ok")
        else:
            self._show_error(error, banner)
        self.query_one("#launch", Button).disabled = error is not None

    def _show_error(self, error: str, banner: Static) -> None:
        """The message under the field it names (in full), and on the one-line status line (cut to fit)."""
        path, message = error_target(error, [s.path for s in self.specs if self.section_shown(s.section)])
        if path is not None:
            spec = next(s for s in self.specs if s.path == path)
            box = self.query_one(f"#e-{spec.widget_id[2:]}", Static)
            box.update(message)
            box.display = True
            box.parent.parent.add_class("invalid")
        banner.update(Text(f"⚠ {message}", no_wrap=True, overflow="ellipsis"))
        banner.tooltip = message
        banner.set_classes("status-line bad")

    # ------------------------------------------------------------ the preview
    def _want_preview(self, config: Any) -> None:
        """Show the ready line, and preview the config once the typing stops (unless it is previewed already)."""
        key = config.model_dump_json()
        if key == self._preview_key and self.preview is not None:
            self._ready(config, self.preview)
            return
        self.preview, self._preview_key = None, key
        self._ready(config, None)
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DELAY_S, self._start_preview)

    def _ready(self, config: Any, preview: Any, error: str | None = None) -> None:
        banner = self.query_one("#form-error", Static)
        banner.update(Text(ready_text(config, preview, error), no_wrap=True, overflow="ellipsis"))
        banner.tooltip = "\n".join(preview.lines()) if preview is not None else None

    def _start_preview(self) -> None:
        if self.config is not None and self.error is None and not self.busy("preview"):
            self.make_preview(self.config, self._preview_key)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False, description="preview")
    def make_preview(self, config: Any, key: str) -> None:
        from engine.errors import PrunelabError

        try:
            preview, error = self.backend.preview(config), None
        except PrunelabError as exc:
            preview, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 -- a preview that fails must not break the form: say why, in place
            preview, error = None, f"{type(exc).__name__}: {exc}"
        self.post_result(PreviewReady(key, preview, error))

    def on_preview_ready(self, message: PreviewReady) -> None:
        if message.key != self._preview_key:  # the form changed meanwhile: preview the newer config
            self._start_preview()
            return
        self.preview = message.preview
        if self.config is not None and self.error is None:
            self._ready(self.config, message.preview, message.error)

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
    def launch(self, data: dict[str, Any] | None, config: Any = None) -> None:
        """Validate and launch; above CONFIRM_TRIALS trials ask first (LaunchAsked), unless `config` is the
        answered one."""
        from engine.api import CONFIRM_TRIALS
        from engine.config import config_from_dict
        from engine.errors import PrunelabError

        if config is None:
            try:
                config = config_from_dict(data)
            except PrunelabError as exc:
                self.post_result(ConfigValidated(None, str(exc)))
                return
            trials = self.backend.trial_count(config)
            if trials > CONFIRM_TRIALS:
                self.post_result(LaunchAsked(config, trials))
                return
        self.post_result(RunLaunched(self.backend.launch(config)))

    def on_launch_asked(self, message: LaunchAsked) -> None:
        """A yes/no dialog with the preview (when made); yes launches that very config."""
        config, preview = message.config, self.preview
        same = preview is not None and self._preview_key == config.model_dump_json()
        about = preview.headline() if same else f"{message.trials} trials"
        question = (f"Launch {config.kind} on {config.data.dataset} with {config.model}: {about}?\n"
                    "It runs in the background until it ends or is cancelled.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.launch(None, config)
            else:
                self.query_one("#launch", Button).disabled = self.error is not None

        self.app.confirm(question, answered, yes="Launch (y)", variant="warning")

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "launch":
            self.query_one("#launch", Button).disabled = self.error is not None  # the form is as valid as it was

    def on_run_launched(self, message: RunLaunched) -> None:
        info = message.info
        self.query_one("#launch", Button).disabled = False
        self.app.notify(f"launched run {info['run_id'][:8]} (pid {info['pid']}); it keeps running if you quit",
                        timeout=6)
        self.app.switch_mode("monitor")
