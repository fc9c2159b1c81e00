"""Config sections: the base model, the registry of the sections experiment kinds read, and the field types
sections share.

Why a registry: a kind brings its own `[section]` (`register_section("sweep", SweepConfig)`), so a new kind is
one module and `engine.config.Config` needs no edit. `Config` validates every registered section, fills the
missing ones with their defaults, and runs each section's `check_config` hook (checks that need the whole
config) for the sections its kind reads. One section may serve several kinds (`sweep` is read by prune,
score-epochs, noise and study). The shared types (`KeepRatios`, `ScorerNames`, ...) check a value the same way
in every section that uses it; `Registered` marks a field whose values are a registry's names, so forms
complete them. No torch here: `prunelab config check` and the TUI's form import it.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from .errors import ConfigError, PrunelabError
from .options import MAX_SEED
from .registry import Registry
from .scoring.registry import SCORERS, check_scorer
from .selection.registry import STRATEGIES, check_strategy


def checked(check: Callable[..., Any], *args: Any) -> Any:
    """Run a registry check inside a validator: its error becomes the field's message."""
    try:
        return check(*args)
    except PrunelabError as exc:
        raise ValueError(str(exc)) from None


class Section(BaseModel):
    """A `[section]` of a config: unknown keys are errors, every field has a default, lists hold each entry once.

    Override `check_config` for checks that need the rest of the config, and `used_strategies` when the section
    makes a run select with strategies (their `[selection.NAME]` tables then apply and `config show` lists them).
    """

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

    def check_config(self, config: Any) -> None:
        """Checks against the whole config, run when its kind reads this section: raise ValueError naming the
        field (`overlap.epoch has epoch 5 beyond ...`)."""

    def used_strategies(self) -> list[str]:
        """The selection strategies this section has a run use."""
        return []


SECTIONS: Registry[type[Section]] = Registry("config section")
# the top-level fields of Config (engine/config.py adds them): a section of the same name would hide one
RESERVED: set[str] = set()


def register_section(name: str, model: type[Section]) -> type[Section]:
    """Add `[name]` to every config, validated by `model` (a subclass of `Section` whose fields all have
    defaults); a kind that reads it names it in `ExperimentKind(sections=(...))`. Registering a name again
    replaces it."""
    if not (isinstance(model, type) and issubclass(model, Section)):
        raise ConfigError(f"section {name!r}: give a subclass of engine.Section, not {model!r}")
    if not name.isidentifier() or name in RESERVED:
        raise ConfigError(f"section name {name!r} is {'a config field' if name in RESERVED else 'not a name'}; "
                          "choose another (letters, digits and _)")
    try:
        model()
    except ValidationError as exc:
        field = ".".join(map(str, exc.errors()[0]["loc"]))
        raise ConfigError(f"section {name!r}: field {field!r} needs a default (a config that does not use the "
                          "section still holds it at its defaults)") from None
    return SECTIONS.add(name, model)


# ---------------------------------------------------------------- field types sections share
@dataclass(frozen=True, eq=False)
class Registered:
    """Marks a field whose values are names in `registry`: forms complete them (`engine.config.choices_for`)."""

    registry: Mapping[str, Any]

    def names(self) -> list[str]:
        return sorted(self.registry)


def _scorers(names: list[str]) -> list[str]:
    for name in names:
        checked(check_scorer, name)
    return names


def _batch_scorers(names: list[str]) -> list[str]:
    """Scorers that score a batch with the current model (or random): no training dynamics, no embeddings."""
    for name in _scorers(names):
        if check_scorer(name).kind in ("training", "embedding", "file"):
            raise ValueError(f"scorer {name!r} comes from surrogate training, the whole set's embeddings or a file, "
                             "so it cannot score a batch online; use random, loss, grad_norm, input_grad_norm or el2n")
    return names


def _scorer(name: str) -> str:
    checked(check_scorer, name)
    return name


def _strategies(names: list[str]) -> list[str]:
    for name in names:
        checked(check_strategy, name, {})
    return names


def _keep_ratios(ratios: list[float]) -> list[float]:
    for r in ratios:
        if not 0 < r <= 1:
            raise ValueError(f"keep ratio {r:g} is outside (0, 1]; use fractions such as 0.3 or 0.7")
    return ratios


def check_seed(seed: int) -> int:
    """A seed every generator takes the same way (numpy, torch, and the derived surrogate seeds)."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed is an integer from 0 to 2**32 - 1 = {MAX_SEED}")
    return seed


def _score_epochs(epochs: list[int]) -> list[int]:
    if any(e < 0 for e in epochs):
        raise ValueError("score epochs must be >= 0 (0 scores the untrained surrogate)")
    return epochs


ScorerName = Annotated[str, AfterValidator(_scorer), Registered(SCORERS)]
ScorerNames = Annotated[list[str], AfterValidator(_scorers), Registered(SCORERS)]
BatchScorerNames = Annotated[list[str], AfterValidator(_batch_scorers), Registered(SCORERS)]
StrategyNames = Annotated[list[str], AfterValidator(_strategies), Registered(STRATEGIES)]
KeepRatios = Annotated[list[float], AfterValidator(_keep_ratios)]
ScoreEpochs = Annotated[list[int], AfterValidator(_score_epochs)]
Seed = Annotated[int, AfterValidator(check_seed)]
Seeds = list[Seed]


def within_budget(config: Any, field: str, epochs: Iterable[int | None]) -> None:
    """ValueError unless every surrogate epoch in `epochs` (None: the last) is within the surrogate's budget."""
    late = [e for e in epochs if e is not None and e > config.surrogate.epochs]
    if late:
        raise ValueError(f"{field} has epoch {max(late)} beyond the surrogate's budget of {config.surrogate.epochs} "
                         f"epochs; raise surrogate.epochs or lower the epoch")
