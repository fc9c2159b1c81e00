"""Typed experiment config: TOML files and presets, `--set key=value` overrides, validation.

A bad config becomes one `ConfigError` line that names the field and the fix.
The registries (datasets, models, scorers, strategies, experiment kinds and
their config sections) are read here, so the CLI, the TUI's form and scripts
all validate the same way. `Config` holds the fields every kind reads; each
kind's section (`[sweep]`, `[online]`, a plugin's) comes from the section
registry (engine/sections.py, filled by engine/kinds and plugins), and per-method
options are tables: `[scoring.NAME]` and `[selection.NAME]`. No torch here.
"""
from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from .data.registry import DATASETS, check_dataset_name, check_dataset_options
from .errors import ConfigError, PrunelabError
from .kinds import KINDS, check_kind, kind_names
from .nets import MODELS, check_model_name
from .plugins import load_plugins
from .scoring.registry import check_scorer_options
from .sections import RESERVED, SECTIONS, Registered, Section, Seed, checked, register_section
from .selection.registry import check_strategy, strategy_tables

__all__ = ["Config", "ConfigError", "DataConfig", "Section", "SurrogateConfig", "TrainConfig", "choices_for",
           "config_error", "config_from_dict", "describe", "load_config", "register_section", "sections"]

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def _named(check: Callable[[str], Any]) -> Callable[[str], str]:
    """A validator of one registered name: the registry's error becomes the field's message."""
    def valid(name: str) -> str:
        checked(check, name)
        return name
    return valid


KindName = Annotated[str, AfterValidator(_named(check_kind)), Registered(KINDS)]
ModelName = Annotated[str, AfterValidator(_named(check_model_name)), Registered(MODELS)]
DatasetName = Annotated[str, AfterValidator(_named(check_dataset_name)), Registered(DATASETS)]


class TrainConfig(BaseModel):
    """How to train one model. The budget is `epochs`, or `steps` optimizer steps when set."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(1, ge=0, description="training epochs (the budget unless steps is set)")
    steps: int | None = Field(None, ge=1, description="budget in optimizer steps; overrides epochs")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "onecycle"
    step_epochs: int = Field(1, ge=1, description="for schedule=step: epochs between decays")
    gamma: float = Field(0.5, gt=0, le=1, description="for schedule=step: decay factor")
    warmup: float = Field(0.15, ge=0, lt=1, description="for schedule=onecycle: fraction of steps warming up")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: bool = Field(True, description="apply the data set's augmentation (CIFAR-10: crop + flip)")
    amp: bool = Field(True, description="bf16 autocast on CUDA")
    compile: bool = Field(False, description="torch.compile the model (CUDA)")
    eval_batch_size: int = Field(1024, ge=1)
    tta: Literal["none", "flip", "flip_translate"] = Field(
        "none", description="test-time augmentation of the test evaluation: mean logits of the image and its mirror "
        "(flip), and of the two 1-pixel translations too (flip_translate, airbench94's level 2)")


class DataConfig(Section):
    dataset: DatasetName = Field("mnist-mini", description="a registered data set (mnist-mini, mnist, cifar10, ...), "
                                 "npz:PATH or folder:PATH")
    data_dir: str | None = Field(None, description="folder in torchvision's layout; read-only")
    train_size: int | None = Field(None, ge=10, description="class-stratified training subset size")
    test_size: int | None = Field(None, ge=10, description="class-stratified test subset size")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="the data set's reader options (cifar100: labels; svhn: extra; folder: "
        "test_dir, test_fraction, seed, size, skip_bad)")
    device_budget_mb: float | None = Field(
        None, ge=0, description="device memory (MB) the uint8 images may take; above it they stay in host memory "
        "and stream batch by batch (tag prunelab.data_path). Default: half the free CUDA memory; on a CPU never "
        "streams. 0 forces streaming")

    @field_validator("data_dir")
    @classmethod
    def _existing_folder(cls, folder: str | None) -> str | None:
        """Checked here, so a typo fails `config check` rather than a run it already created."""
        if folder is not None and not Path(folder).expanduser().is_dir():
            raise ValueError(f"no folder {folder!r}; give the folder that holds the data (e.g. MNIST/raw/)")
        return folder

    @model_validator(mode="after")
    def _known_options(self) -> DataConfig:
        check_dataset_options(self.dataset, self.options)  # its ConfigError names data.options.KEY itself
        return self


class SurrogateConfig(Section):
    """The surrogate models whose checkpoints produce the scores."""

    epochs: int = Field(2, ge=0, description="surrogate training budget in epochs")
    inits: int = Field(1, ge=1, description="K independently initialised surrogates (EL2N averages over them)")
    batch_size: int = Field(256, ge=1, description="scoring batch size")
    gradient_dtype: Literal["float32", "float16"] = Field(
        "float32", description="storage of the gradient embeddings that CRAIG/GradMatch read")
    gradient_mb: float = Field(1024.0, gt=0, description="memory bound (MB) of the gradient embeddings; above it "
                               "they are randomly projected (tag prunelab.gradient_projection)")
    projection: Literal["pca", "umap", "none"] = Field(
        "pca", description="the embedding map a scoring run logs (2-D projection of surrogate 0's embeddings and "
        "their nearest neighbours, for the sample inspector and the TUI's map): pca, umap (needs umap-learn: "
        "pip install 'prunelab[umap]') or none")
    neighbours: int = Field(10, ge=1, le=100, description="k of the nearest neighbours (cosine) the embedding map "
                            "logs per sample")


class Config(Section):
    """One experiment. `kind` picks the module in engine/kinds that runs it.

    Beside these fields every registered section (engine/sections.py: `sweep`, `overlap`, ... and a plugin's)
    is an attribute, validated by its model and at its defaults when not given (`config.sweep.methods`).
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)

    name: str = Field("prunelab", min_length=1, description="the MLflow experiment name")
    kind: KindName = Field("prune", description=kind_names())
    description: str = ""
    seed: Seed = Field(0, description="seed of the surrogates and of every other random choice")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    model: ModelName = Field("cnn", description="a registered model (cnn, resnet18, airbench, ...), timm:NAME or "
                             "torchvision:NAME")
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig(epochs=2)
    surrogate: SurrogateConfig = SurrogateConfig()
    selection: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-strategy options, one table per strategy: { ccs = { beta = 0.2 } } "
        "([selection.ccs] in TOML; `prunelab config show` lists a config's with their help)")
    scoring: dict[str, Any] = Field(default_factory=dict, description="per-scorer options, one table per scorer: "
                                    "{ tdds = { window = 5 } } ([scoring.tdds] in TOML; see `prunelab scorers`)")
    plugins: list[str] = Field(default_factory=list, description="modules or .py files imported first in every "
                               "process that runs this config (your register_scorer/model/strategy/kind calls)")

    def __init__(self, **data: Any) -> None:
        """`engine.Config(...)` in a script: a bad field is a ConfigError naming it, as from a file."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc) from None

    def __getattr__(self, name: str) -> Any:
        """A section registered after this config was made (a plugin's) reads at its defaults."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in SECTIONS:
                return SECTIONS[name]()
            raise

    @model_validator(mode="before")
    @classmethod
    def _plugins_then_sections(cls, data: Any) -> Any:
        """The user's modules register names and sections the other fields may use, so they load first; then
        every registered section is validated (a missing one takes its defaults)."""
        if not isinstance(data, dict):
            return data
        data = lists_from_text(cls, data)
        plugins = data.get("plugins")
        if isinstance(plugins, list) and plugins and all(isinstance(p, str) for p in plugins):
            data = {**data, "plugins": load_plugins(plugins)}
        return _with_sections(data)

    @field_validator("selection", mode="before")
    @classmethod
    def _per_strategy(cls, tables: Any) -> Any:
        return checked(strategy_tables, tables)

    @field_validator("selection")
    @classmethod
    def _known_strategy_options(cls, tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each key a registered strategy, each value a table of the options that strategy declares."""
        for name, table in tables.items():
            checked(check_strategy, name, table)
        return tables

    @field_validator("scoring")
    @classmethod
    def _known_scorer_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Each key a registered scorer, each value a table of the options that scorer declares."""
        for name, table in options.items():
            checked(check_scorer_options, name, table)
        return options

    @model_validator(mode="after")
    def _scorer_epochs_within_budget(self) -> Config:
        for name, table in self.scoring.items():
            epoch = table.get("epoch")
            if epoch is not None and epoch > self.surrogate.epochs:
                raise ValueError(f"scoring.{name}.epoch = {epoch} is beyond the surrogate's budget of "
                                 f"{self.surrogate.epochs} epochs; raise surrogate.epochs or lower the epoch")
        return self

    @model_validator(mode="after")
    def _section_checks(self) -> Config:
        """Each section its kind reads checks itself against the whole config (another kind's defaults never fail)."""
        for name in self.read_sections():
            getattr(self, name).check_config(self)
        return self

    def read_sections(self) -> list[str]:
        """The registered sections this config's kind reads."""
        read = KINDS[self.kind].sections
        return [name for name in SECTIONS if read is None or name in read]

    def used_strategies(self) -> list[str]:
        """The strategies a run of this config selects with, as its kind's sections say."""
        return list(dict.fromkeys(s for name in self.read_sections() for s in getattr(self, name).used_strategies()))

    def strategy_options(self, strategy: str) -> dict[str, Any]:
        """The [selection.NAME] table of `strategy`: the options given (the rest take their defaults)."""
        return dict(self.selection.get(strategy, {}))

    def scorer_options(self, scorers: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The [scoring.NAME] tables, of `scorers` only when given (the rest take their defaults)."""
        return {name: dict(table) for name, table in self.scoring.items() if scorers is None or name in scorers}

    def to_toml(self) -> str:
        import tomli_w  # deferred: only writing TOML needs it, and the GPU check's image lacks it

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def layout(cls) -> dict[str, FieldInfo | type[BaseModel]]:
        """Every top-level entry in the order forms and docs show them: a field's FieldInfo, or a section's
        model, the registered sections right after the ones every kind reads (data, train, surrogate)."""
        entries = [(name, info.annotation if _is_model(info.annotation) else info)
                   for name, info in cls.model_fields.items()]
        last = max(i for i, (_, entry) in enumerate(entries) if _is_model(entry))
        return dict(entries[:last + 1] + list(SECTIONS.items()) + entries[last + 1:])


RESERVED.update(Config.model_fields)


def _is_model(entry: Any) -> bool:
    return isinstance(entry, type) and issubclass(entry, BaseModel)


def _with_sections(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every registered section validated by its model; a ConfigError naming the key otherwise."""
    unknown = [key for key in data if key not in Config.model_fields and key not in SECTIONS]
    if unknown:
        raise ConfigError(_unknown_key(unknown[0]))
    out = dict(data)
    for name, model in SECTIONS.items():
        value = data.get(name, {})
        if isinstance(value, model):
            continue
        value = lists_from_text(model, value)
        try:
            out[name] = model.model_validate(value)
        except ValidationError as exc:
            raise config_error(exc, within=name) from None
    return out


# ---------------------------------------------------------------- lists typed as text
def split_list(text: str) -> list[str]:
    """A list typed as text: `a,b`, `a, b`, `[a, b]` or `["a", "b"]` -> ["a", "b"] (items unquoted, blanks dropped).

    How `--set sweep.methods=random,el2n`, a TOML string where a list is expected and the TUI form's text box all
    give a list; the field's own type then converts each item ("0.3" -> 0.3, "1" -> 1)."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    items = (item.strip() for item in body.split(","))
    return [item[1:-1] if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'" else item
            for item in items if item]


def _list_field(annotation: Any) -> tuple[bool, set[str]]:
    """Whether a field's type takes a list, and the words it takes as they are (`"all"` of list[str] | "all")."""
    if typing.get_origin(annotation) is list or annotation is list:
        return True, set()
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [_list_field(arg) for arg in typing.get_args(annotation)]
        literals = {str(v) for arg in typing.get_args(annotation) if typing.get_origin(arg) is Literal
                    for v in typing.get_args(arg)}
        return any(takes for takes, _ in members), literals | {w for _, words in members for w in words}
    return False, set()


def lists_from_text(model: type[BaseModel], data: Any) -> Any:
    """`data` for `model` with every list field given as text (or as one bare value) made a list, nested models
    too: `"random,el2n"` and `"[random, el2n]"` -> ["random", "el2n"], `0` -> [0]; a word the field takes as it is
    (benchmark.methods = "all") stays."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, value in data.items():
        info = model.model_fields.get(name)
        if info is None:
            continue
        annotation = info.annotation
        inner = next((a for a in typing.get_args(annotation) if _is_model(a)), annotation)  # Optional[Model]
        if _is_model(inner):
            out[name] = lists_from_text(inner, value)
            continue
        takes_list, words = _list_field(annotation)
        if not takes_list or isinstance(value, (list, tuple, dict)) or value is None:
            continue
        if isinstance(value, str):
            out[name] = value if value.strip() in words else split_list(value)
        else:  # one number or boolean for a list of them
            out[name] = [value]
    return out


def sections() -> dict[str, type[BaseModel]]:
    """Every [section] of a config by name, in the order of `Config.layout()`."""
    return {name: entry for name, entry in Config.layout().items() if _is_model(entry)}


def field_info(path: str) -> FieldInfo | None:
    """The pydantic field at a dotted path ("sweep.methods", "kind"), None if there is none."""
    head, _, rest = path.partition(".")
    entry: Any = Config.layout().get(head)
    while rest and _is_model(entry):
        head, _, rest = rest.partition(".")
        entry = entry.model_fields.get(head)
    return entry if isinstance(entry, FieldInfo) and not rest else None


def describe(path: str) -> str:
    """A field's help, as `config show` and the TUI's form print it: `kind`'s names the kinds registered now
    (a plugin's too)."""
    if path == "kind":
        return kind_names()
    info = field_info(path)
    return (info.description or "") if info else ""


def choices_for(path: str) -> list[str]:
    """The registered names a field takes (kind, model, data.dataset, sweep.methods, ...), a plugin's too; [] for
    a field that is no registry's name (the TUI's form completes with these)."""
    info = field_info(path)
    marker = next((m for m in (info.metadata if info else []) if isinstance(m, Registered)), None)
    return marker.names() if marker else []


# ---------------------------------------------------------------- errors
def _field_name(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] += f"[{p}]"
        elif not str(p).startswith("function-") and p not in ("after", "before"):
            parts.append(str(p))
    return ".".join(parts)


def _unknown_key(field: str) -> str:
    section, _, key = field.rpartition(".")
    return (f"unknown key {key!r}{f' in [{section}]' if section else ''}; "
            "see `prunelab config show quick` for the valid keys")


def config_error(exc: ValidationError, source: str = "", within: str = "") -> ConfigError:
    """The first pydantic error as one line: where (`within` a section), what is wrong, and the fix. A check
    across fields (no location) names its fields in its message."""
    err = exc.errors()[0]
    field = _field_name((within, *err["loc"]) if within else err["loc"])
    where = f"{source}: " if source else ""
    if err["type"] == "extra_forbidden":
        return ConfigError(f"{where}{_unknown_key(field)}")
    at = f"{field}: " if field else ""
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, PrunelabError):
        return ConfigError(f"{where}{at}{ctx_error}")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "list_type":
        message += "; write a list as a,b or [a, b] (in TOML: [\"a\", \"b\"])"
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) and "got" not in message else ""
    return ConfigError(f"{where}{at}{message}{shown}")


# ---------------------------------------------------------------- loading
def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def preset_text(name: str) -> str:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.exists():
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")
    return path.read_text()


def parse_value(text: str) -> Any:
    """A `--set` value: any TOML value (numbers, booleans, lists, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    if not isinstance(assignment, str):
        raise ConfigError(f"override {assignment!r}: expected a 'KEY=VALUE' string, as in 'sweep.keep_ratios=[0.3,0.5]'")
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, as in --set sweep.keep_ratios=[0.3,0.5]")
    set_field(data, key, parse_value(value.strip()), f"--set {assignment!r}")


def set_field(data: dict[str, Any], key: str, value: Any, assignment: str) -> None:
    """data[a][b] = value for key "a.b"; a None value removes the key, so the field takes its default."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{assignment}: {part!r} is not a section")
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def config_from_dict(data: dict[str, Any], source: str = "") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source) from None
    except PrunelabError as exc:
        raise ConfigError(f"{source + ': ' if source else ''}{exc}") from None


def config_text(path_or_preset: str | Path) -> tuple[str, str]:
    """The TOML text of a config file or a preset by name, and where it came from (for messages)."""
    if not isinstance(path_or_preset, (str, os.PathLike)):
        raise ConfigError(f"engine.load_config: path_or_preset takes a TOML file's path or a preset's name, got "
                          f"{path_or_preset!r}")
    path = Path(path_or_preset)
    if not (path.suffix == ".toml" or path.exists()):
        return preset_text(str(path_or_preset)), f"preset {path_or_preset}"
    try:
        return path.read_text(encoding="utf-8-sig"), str(path)  # -sig: a BOM is not an error
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; pass a .toml config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def load_config(path_or_preset: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load a TOML file or a preset by name, apply `key=value` overrides, and validate."""
    text, source = config_text("quick" if path_or_preset is None else path_or_preset)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    if overrides is not None and not isinstance(overrides, (dict, list, tuple)):
        raise ConfigError(f"engine.load_config: overrides takes a dict {{'train.epochs': 3}} or a list of "
                          f"'key=value' strings, got {overrides!r}")
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            set_field(data, str(key), value, f"overrides[{key!r}]")
    else:
        for assignment in overrides or []:
            apply_override(data, assignment)
    return config_from_dict(data, source)
