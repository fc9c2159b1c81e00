"""Typed experiment config: TOML files and presets, `--set key=value` overrides, validation.

A bad config becomes one `ConfigError` line that names the field and the fix.
The registries (datasets, models, scorers, strategies, experiment kinds) are
read here, so the CLI, the TUI's form and scripts all validate the same way.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator, model_validator

from .data.registry import check_dataset_name, check_dataset_options
from .errors import ConfigError, PrunelabError
from .kinds import check_kind
from .nets import check_model_name
from .plugins import load_plugins
from .scoring.registry import check_scorer, check_scorer_options
from .selection.registry import STRATEGIES, check_strategy

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def checked(check, *args) -> None:
    """Run a registry check inside a validator: its error becomes the field's message."""
    try:
        check(*args)
    except PrunelabError as exc:
        raise ValueError(str(exc)) from None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _lists_without_duplicates(self):
        """A list entry given twice would run identical trials and count them as independent (seeds, ratios)."""
        for name, value in self:
            if isinstance(value, list):
                seen = set()
                for item in value:
                    key = json.dumps(item, sort_keys=True, default=str)
                    if key in seen:
                        raise ValueError(f"{name} lists {item!r} twice; give each entry once")
                    seen.add(key)
        return self


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
    dataset: str = Field("mnist-mini", description="a registered data set (mnist-mini, mnist, cifar10, ...), "
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

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        checked(check_dataset_name, name)
        return name

    @model_validator(mode="after")
    def _known_options(self) -> DataConfig:
        checked(check_dataset_options, self.dataset, self.options)
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


class SweepConfig(Section):
    """The trial grid: method x strategy x keep ratio x seed x score epoch."""

    methods: list[str] = Field(["random", "loss", "grad_norm"], min_length=1, description="scorers to compare")
    strategies: list[str] = Field(["hardest"], min_length=1, description="selection strategies")
    keep_ratios: list[float] = Field([0.5, 0.8], min_length=1, description="fractions of the data kept, in (0, 1]")
    seeds: list[NonNegativeInt] = Field([0, 1], min_length=1, description="retraining seeds (mean +- std over them)")
    score_epochs: list[int] = Field([2], min_length=1, description="surrogate epochs t at which scores are taken")
    budget: Literal["epochs", "steps"] = Field("epochs", description="retrain for the same epochs, or the same "
                                                                      "optimizer steps as on the full data")
    full_data: bool = Field(True, description="also train on all the data, the reference line")

    @field_validator("keep_ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: list[float]) -> list[float]:
        for r in ratios:
            if not 0 < r <= 1:
                raise ValueError(f"keep ratio {r:g} is outside (0, 1]; use fractions such as 0.3 or 0.7")
        return ratios

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        for m in methods:
            checked(check_scorer, m)
        return methods

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, strategies: list[str]) -> list[str]:
        for s in strategies:
            checked(check_strategy, s, {})
        return strategies

    @field_validator("score_epochs")
    @classmethod
    def _nonnegative(cls, epochs: list[int]) -> list[int]:
        if any(e < 0 for e in epochs):
            raise ValueError("score epochs must be >= 0 (0 scores the untrained surrogate)")
        return epochs


def dynamic_score(scorer: Any) -> bool:
    """Whether the training forward pass gives this score: a function of the logits (a batch scorer needing no
    gradients), or a training observer's running statistic."""
    return scorer.kind == "training" or (scorer.kind == "batch" and scorer.fn is not None
                                         and not scorer.needs_param_grads and not scorer.needs_input_grad)


def _scorer_names(methods: list[str], batch_only: bool = False) -> list[str]:
    """Check scorer names; with batch_only, only those that score a batch with the current model (or random)."""
    for m in methods:
        checked(check_scorer, m)
        if batch_only and check_scorer(m).kind in ("training", "embedding"):
            raise ValueError(f"scorer {m!r} comes from surrogate training or the whole set's embeddings, so it "
                             "cannot score a batch "
                             "online; use random, loss, grad_norm, input_grad_norm or el2n")
    return methods


class OverlapConfig(Section):
    """The `overlap` kind: how much two scorers agree on the k highest and k lowest scored samples."""

    methods: list[str] = Field(["loss", "grad_norm", "el2n"], min_length=2, description="scorers compared pairwise")
    k: int = Field(1000, ge=1, description="size of the top-k (\"first\") and bottom-k (\"last\") sets")
    epoch: int | None = Field(None, ge=0, description="surrogate epoch whose scores are compared; "
                                                      "default: the surrogate's last epoch")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        return _scorer_names(methods)


class OnlineConfig(Section):
    """The `online` kind: each step draws B samples, scores them with the current model, backpropagates the top k."""

    methods: list[str] = Field(["random", "loss", "grad_norm"], min_length=1,
                               description="batch scorers: random, loss, grad_norm, input_grad_norm or el2n")
    batch_size: int = Field(128, ge=2, description="B, the samples drawn and scored per step")
    keep: int = Field(32, ge=1, description="k, the top-scored samples of each batch that are backpropagated")
    seeds: list[NonNegativeInt] = Field([0], min_length=1, description="training seeds, one trial per method and seed")
    eval_every: int = Field(50, ge=1, description="evaluate on the test split every this many steps")
    full_batch: bool = Field(True, description="also train on whole batches of B (the reference) with each seed")

    @field_validator("methods")
    @classmethod
    def _batch_scorers(cls, methods: list[str]) -> list[str]:
        return _scorer_names(methods, batch_only=True)

    @model_validator(mode="after")
    def _keep_within_batch(self) -> OnlineConfig:
        if self.keep > self.batch_size:
            raise ValueError(f"keep={self.keep} is larger than batch_size={self.batch_size}; "
                             "k must be at most B")
        return self


class NoiseConfig(Section):
    """The `noise` kind: flip a fraction of the training labels and measure which scorer finds them."""

    fraction: float = Field(0.1, gt=0, lt=1, description="fraction p of training labels flipped, each to another class")
    seed: int = Field(0, description="seed of which labels flip and to what")
    methods: list[str] = Field(["random", "loss", "grad_norm", "el2n"], min_length=1, description="scorers tested")
    k: int | None = Field(None, ge=1, description="precision and recall at k; default: the number flipped")
    retrain: bool = Field(False, description="also prune the top-scored samples and retrain (seeds from sweep.seeds)")
    prune_fraction: float | None = Field(None, gt=0, lt=1, description="fraction pruned before retraining; "
                                                                         "default: the flipped fraction")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        return _scorer_names(methods)


class StudyConfig(Section):
    """The `study` kind: the seed study in one run (overlap, pruning-ratio sweep, pre-training epochs)."""

    parts: list[Literal["overlap", "prune", "epochs"]] = Field(
        ["overlap", "prune", "epochs"], min_length=1,
        description="overlap uses [overlap]; prune uses [sweep]; epochs prunes at each study.score_epochs")
    methods: list[str] = Field(["loss", "grad_norm", "el2n"], min_length=1,
                               description="scorers of the epochs part")
    keep_ratios: list[float] = Field([0.5], min_length=1, description="keep ratios of the epochs part")
    score_epochs: list[int] = Field([0, 1, 2], min_length=1,
                                    description="surrogate epochs at which the epochs part takes scores")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        return _scorer_names(methods)

    @field_validator("keep_ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: list[float]) -> list[float]:
        return SweepConfig._ratios_in_range(ratios)

    @field_validator("score_epochs")
    @classmethod
    def _nonnegative(cls, epochs: list[int]) -> list[int]:
        return SweepConfig._nonnegative(epochs)


class BenchmarkConfig(Section):
    """The `benchmark` kind: every (scorer, strategy) pair at every keep ratio and seed, ranked against random."""

    methods: list[str] | Literal["all"] = Field(
        "all", description='"scorer/strategy" pairs ("scorer" alone: hardest), or "all": every registered scorer '
                           "with hardest and every other strategy with strategy_scorer")
    strategy_scorer: str = Field("el2n", description='with methods = "all": the scores that the strategies other '
                                                     "than hardest/easiest/random select with")
    keep_ratios: list[float] = Field([0.3, 0.5, 0.7, 0.9], min_length=1, description="fractions of the data kept")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="retraining seeds; tests pair methods by seed")
    full_data: bool = Field(True, description="also train on all the data, the reference line")

    @field_validator("methods")
    @classmethod
    def _known_pairs(cls, methods: list[str] | str) -> list[str] | str:
        for pair in [] if methods == "all" else methods:
            scorer, _, strategy = pair.partition("/")
            checked(check_scorer, scorer)
            checked(check_strategy, strategy or "hardest", {})
        return methods

    @field_validator("strategy_scorer")
    @classmethod
    def _known_scorer(cls, name: str) -> str:
        checked(check_scorer, name)
        return name

    @field_validator("keep_ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: list[float]) -> list[float]:
        return SweepConfig._ratios_in_range(ratios)


class DynamicConfig(Section):
    """The `dynamic` kind: InfoBatch (Qin et al. 2024) beside full-data training with the same seeds and epochs."""

    ratio: float = Field(0.5, ge=0, lt=1, description="r, the probability that a below-mean-score sample is pruned")
    delta: float = Field(0.875, gt=0, le=1, description="δ: prune in the first δ of the epochs, then train on all")
    score: str = Field("loss", description="the ranking score from the training forward pass: latest loss (the "
                       "paper), any scorer of the logits (el2n, entropy, margin, ...) or a training observer "
                       "(forgetting, aum, ...)")
    seeds: list[int] = Field([0], min_length=1, description="training seeds, one InfoBatch and one full trial each")

    @field_validator("score")
    @classmethod
    def _forward_score(cls, name: str) -> str:
        checked(check_scorer, name)
        if not dynamic_score(check_scorer(name)):
            raise ValueError(f"scorer {name!r} is not computed from the training forward pass (it needs "
                             "gradients, embeddings or no model); use loss, a scorer of the logits (el2n, "
                             "entropy, margin, ...) or a training observer (forgetting, aum, ...)")
        return name


class Config(Section):
    """One experiment. `kind` picks the module in engine/kinds that runs it."""

    name: str = Field("prunelab", min_length=1, description="the MLflow experiment name")
    kind: str = Field("prune", description="prune, score-epochs, overlap, online, noise, study, benchmark or dynamic")
    description: str = ""
    seed: int = Field(0, description="seed of the surrogates and of every other random choice")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    model: str = Field("cnn", description="a registered model (cnn, resnet18, airbench, ...), timm:NAME or "
                       "torchvision:NAME")
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig(epochs=2)
    surrogate: SurrogateConfig = SurrogateConfig()
    sweep: SweepConfig = SweepConfig()
    overlap: OverlapConfig = OverlapConfig()
    online: OnlineConfig = OnlineConfig()
    noise: NoiseConfig = NoiseConfig()
    study: StudyConfig = StudyConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    dynamic: DynamicConfig = DynamicConfig()
    selection: dict[str, Any] = Field(default_factory=dict, description="strategy options (see `prunelab strategies`)")
    scoring: dict[str, Any] = Field(default_factory=dict, description="per-scorer options, one table per scorer: "
                                    "{ tdds = { window = 5 } } ([scoring.tdds] in TOML; see `prunelab scorers`)")
    plugins: list[str] = Field(default_factory=list, description="modules or .py files imported first in every "
                               "process that runs this config (your register_scorer/model/strategy calls)")

    def __init__(self, **data: Any) -> None:
        """`engine.Config(...)` in a script: a bad field is a ConfigError naming it, as from a file."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc) from None

    @model_validator(mode="before")
    @classmethod
    def _import_plugins_first(cls, data: Any) -> Any:
        """The user's modules register names the other fields may use, so they load before any check."""
        plugins = data.get("plugins") if isinstance(data, dict) else None
        if isinstance(plugins, list) and plugins and all(isinstance(p, str) for p in plugins):
            data = {**data, "plugins": load_plugins(plugins)}
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        checked(check_kind, kind)
        return kind

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        checked(check_model_name, name)
        return name

    @field_validator("selection")
    @classmethod
    def _known_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        known = {opt for s in STRATEGIES.values() for opt in s.options}
        for key in options:
            if key not in known:
                raise ValueError(f"unknown strategy option {key!r}; valid options: {', '.join(sorted(known))}")
        return options

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
    def _options_fit_strategies(self) -> Config:
        for strategy in STRATEGIES:  # every strategy that declares a given option checks its value
            options = self.strategy_options(strategy)
            if options or strategy in self.sweep.strategies:
                checked(check_strategy, strategy, options)
        return self

    @model_validator(mode="after")
    def _epochs_within_budget(self) -> Config:
        too_late = [e for e in self.sweep.score_epochs if e > self.surrogate.epochs]
        if too_late:
            raise ValueError(f"sweep.score_epochs has epoch {max(too_late)} beyond the surrogate's budget of "
                             f"{self.surrogate.epochs} epochs; raise surrogate.epochs or lower the score epoch")
        return self

    @model_validator(mode="after")
    def _analysis_epochs_within_budget(self) -> Config:
        """Only for the kinds that read these sections, so another kind's defaults never fail."""
        epochs = [("overlap.epoch", self.overlap.epoch)] if self.kind in ("overlap", "study") else []
        if self.kind == "study":
            epochs += [("study.score_epochs", e) for e in self.study.score_epochs]
        late = [(f, e) for f, e in epochs if e is not None and e > self.surrogate.epochs]
        if late:
            field, epoch = late[0]
            raise ValueError(f"{field} has epoch {epoch} beyond the surrogate's budget of {self.surrogate.epochs} "
                             f"epochs; raise surrogate.epochs or lower the epoch")
        return self

    def strategy_options(self, strategy: str) -> dict[str, Any]:
        """The [selection] options that `strategy` declares."""
        return {k: v for k, v in self.selection.items() if k in STRATEGIES[strategy].options}

    def scorer_options(self, scorers: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The [scoring.NAME] tables, of `scorers` only when given (the rest take their defaults)."""
        return {name: dict(table) for name, table in self.scoring.items() if scorers is None or name in scorers}

    def to_toml(self) -> str:
        import tomli_w  # deferred: only writing TOML needs it, and the GPU check's image lacks it

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


# ---------------------------------------------------------------- errors
def _field_name(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] += f"[{p}]"
        elif not str(p).startswith("function-") and p not in ("after", "before"):
            parts.append(str(p))
    return ".".join(parts) or "config"


def config_error(exc: ValidationError, source: str = "") -> ConfigError:
    """The first pydantic error as one line: where, what is wrong, and the fix."""
    err = exc.errors()[0]
    field = _field_name(err["loc"])
    where = f"{source}: " if source else ""
    if err["type"] == "extra_forbidden":
        section, _, key = field.rpartition(".")
        return ConfigError(f"{where}unknown key {key!r}{f' in [{section}]' if section else ''}; "
                           f"see `prunelab config show quick` for the valid keys")
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, PrunelabError):
        return ConfigError(f"{where}{field}: {ctx_error}")
    message = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) and "got" not in message else ""
    return ConfigError(f"{where}{field}: {message}{shown}")


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


def load_config(path_or_preset: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load a TOML file or a preset by name, apply `key=value` overrides, and validate."""
    if path_or_preset is None:
        path_or_preset = "quick"
    path = Path(path_or_preset)
    if path.suffix == ".toml" or path.exists():
        try:
            text, source = path.read_text(encoding="utf-8-sig"), str(path)  # -sig: a BOM is not an error
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder; pass a .toml config file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    else:
        text, source = preset_text(str(path_or_preset)), f"preset {path_or_preset}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            set_field(data, str(key), value, f"overrides[{key!r}]")
    else:
        for assignment in overrides or []:
            apply_override(data, assignment)
    return config_from_dict(data, source)
