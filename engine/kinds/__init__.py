"""Experiment kinds: one module each, in one registry; kinds never import each other.

A kind has `count_trials(config)` (for progress) and `execute(ctx)`, which
computes what it needs through the RunContext (engine/runner/context.py) and
the shared steps (engine/runner/steps.py) and returns the summary rows; the
runner logs them as summary.csv/json. It names the config sections it reads
(`sections`), each registered with its model (engine/sections.py).

This module imports no torch (the config validator reads it), so the built-in
kinds are "module:function" references, and their sections are declared here,
beside them, rather than in the kind modules: those import the runner (torch,
matplotlib) at their top, and import-linter checks statically that nothing
`engine.config` imports loads torch. A plugin's kind is one module with its
section, its functions and the two registrations (examples/custom_kind.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import ConfigError
from ..registry import Ref, Registry, implementation
from ..scoring.external import split_pair
from ..scoring.registry import check_scorer
from ..sections import (
    SECTIONS,
    BatchScorerNames,
    KeepRatios,
    ScoreEpochs,
    ScorerName,
    ScorerNames,
    Section,
    Seed,
    Seeds,
    StrategyNames,
    checked,
    register_section,
    within_budget,
)
from ..selection.registry import STRATEGIES, check_strategy


@dataclass(frozen=True)
class ExperimentKind:
    """`count_trials(config)` and `execute(ctx) -> summary rows` (or "module:function" strings, imported when
    first called); `sections` names the registered config sections it reads (None: it may read any)."""

    name: str
    description: str
    count_trials: Callable[[Any], int]
    execute: Callable[[Any], list[dict[str, Any]]]
    sections: tuple[str, ...] | None = None


KINDS: Registry[ExperimentKind] = Registry("experiment kind")
EXPERIMENTS = KINDS  # the API's name for it (`engine.experiments`)


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    """Add an experiment kind; `kind = "NAME"` then works in configs, the CLI and the TUI. Each section it reads
    must be registered first (`register_section`)."""
    for section in kind.sections or ():
        if section not in SECTIONS:
            raise ConfigError(f"kind {kind.name!r} reads [{section}], which is not a registered section; "
                              f"call register_section({section!r}, YourSection) first")
    sections = None if kind.sections is None else tuple(kind.sections)
    return KINDS.add(kind.name, replace(kind, count_trials=implementation(kind.count_trials),
                                        execute=implementation(kind.execute), sections=sections))


def check_kind(name: str) -> ExperimentKind:
    return KINDS.check(name)


def kind_names() -> str:
    """"a, b or c": the registered kinds in words."""
    names = list(KINDS)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def used_config(config: Any) -> dict[str, Any]:
    """The config as a dict without the sections its kind never reads (what a run logs and `config check` shows)."""
    dump = config.model_dump(mode="json", exclude_none=True)
    read = set(config.read_sections())
    return {key: value for key, value in dump.items() if key not in SECTIONS or key in read}


# ---------------------------------------------------------------- the built-in kinds' sections
class SweepConfig(Section):
    """The trial grid: method x strategy x keep ratio x seed x score epoch."""

    methods: ScorerNames = Field(["random", "loss", "grad_norm"], min_length=1, description="scorers to compare")
    strategies: StrategyNames = Field(["hardest"], min_length=1, description="selection strategies")
    keep_ratios: KeepRatios = Field([0.5, 0.8], min_length=1, description="fractions of the data kept, in (0, 1]")
    seeds: Seeds = Field([0, 1], min_length=1, description="retraining seeds (mean +- std over them)")
    score_epochs: ScoreEpochs = Field([2], min_length=1, description="surrogate epochs t at which scores are taken")
    budget: Literal["epochs", "steps"] = Field("epochs", description="retrain for the same epochs, or the same "
                                                                      "optimizer steps as on the full data")
    full_data: bool = Field(True, description="also train on all the data, the reference line")

    def check_config(self, config: Any) -> None:
        within_budget(config, "sweep.score_epochs", self.score_epochs)

    def used_strategies(self) -> list[str]:
        return list(self.strategies)


class OverlapConfig(Section):
    """The `overlap` kind: how much two scorers agree on the k highest and k lowest scored samples."""

    methods: ScorerNames = Field(["loss", "grad_norm", "el2n"], min_length=2, description="scorers compared pairwise")
    k: int = Field(1000, ge=1, description="size of the top-k (\"first\") and bottom-k (\"last\") sets")
    epoch: int | None = Field(None, ge=0, description="surrogate epoch whose scores are compared; "
                                                      "default: the surrogate's last epoch")

    def check_config(self, config: Any) -> None:
        within_budget(config, "overlap.epoch", [self.epoch])


class OnlineConfig(Section):
    """The `online` kind: each step draws B samples, scores them with the current model, backpropagates the top k."""

    methods: BatchScorerNames = Field(["random", "loss", "grad_norm"], min_length=1,
                                      description="batch scorers: random, loss, grad_norm, input_grad_norm or el2n")
    batch_size: int = Field(128, ge=2, description="B, the samples drawn and scored per step")
    keep: int = Field(32, ge=1, description="k, the top-scored samples of each batch that are backpropagated")
    seeds: Seeds = Field([0], min_length=1, description="training seeds, one trial per method and seed")
    eval_every: int = Field(50, ge=1, description="evaluate on the test split every this many steps")
    full_batch: bool = Field(True, description="also train on whole batches of B (the reference) with each seed")

    @model_validator(mode="after")
    def _keep_within_batch(self) -> OnlineConfig:
        if self.keep > self.batch_size:
            raise ValueError(f"keep={self.keep} is larger than batch_size={self.batch_size}; "
                             "k must be at most B")
        return self


class NoiseConfig(Section):
    """The `noise` kind: flip a fraction of the training labels and measure which scorer finds them."""

    fraction: float = Field(0.1, gt=0, lt=1, description="fraction p of training labels flipped, each to another class")
    seed: Seed = Field(0, description="seed of which labels flip and to what")
    methods: ScorerNames = Field(["random", "loss", "grad_norm", "el2n"], min_length=1, description="scorers tested")
    k: int | None = Field(None, ge=1, description="precision and recall at k; default: the number flipped")
    retrain: bool = Field(False, description="also prune the top-scored samples and retrain (seeds from sweep.seeds)")
    prune_fraction: float | None = Field(None, gt=0, lt=1, description="fraction pruned before retraining; "
                                                                         "default: the flipped fraction")


class StudyConfig(Section):
    """The `study` kind: the seed study in one run (overlap, pruning-ratio sweep, pre-training epochs)."""

    parts: list[Literal["overlap", "prune", "epochs"]] = Field(
        ["overlap", "prune", "epochs"], min_length=1,
        description="overlap uses [overlap]; prune uses [sweep]; epochs prunes at each study.score_epochs")
    methods: ScorerNames = Field(["loss", "grad_norm", "el2n"], min_length=1,
                                 description="scorers of the epochs part")
    keep_ratios: KeepRatios = Field([0.5], min_length=1, description="keep ratios of the epochs part")
    score_epochs: ScoreEpochs = Field([0, 1, 2], min_length=1,
                                      description="surrogate epochs at which the epochs part takes scores")

    def check_config(self, config: Any) -> None:
        within_budget(config, "study.score_epochs", self.score_epochs)


class BenchmarkConfig(Section):
    """The `benchmark` kind: every (scorer, strategy) pair at every keep ratio and seed, ranked against random."""

    methods: list[str] | Literal["all"] = Field(
        "all", description='"scorer/strategy" pairs ("scorer" alone: hardest), or "all": every registered scorer '
                           "with hardest and every other strategy with strategy_scorer")
    strategy_scorer: ScorerName = Field("el2n", description='with methods = "all": the scores that the strategies '
                                                            "other than hardest/easiest/random select with")
    keep_ratios: KeepRatios = Field([0.3, 0.5, 0.7, 0.9], min_length=1, description="fractions of the data kept")
    seeds: Seeds = Field([0, 1, 2], min_length=1, description="retraining seeds; tests pair methods by seed")
    full_data: bool = Field(True, description="also train on all the data, the reference line")

    @field_validator("methods")
    @classmethod
    def _known_pairs(cls, methods: list[str] | str) -> list[str] | str:
        if methods == []:
            raise ValueError('no methods to rank; name "scorer/strategy" pairs, or "all"')
        for pair in [] if methods == "all" else methods:
            scorer, strategy = split_pair(pair)
            checked(check_scorer, scorer)
            checked(check_strategy, strategy, {})
        return methods

    def used_strategies(self) -> list[str]:
        if self.methods == "all":
            return list(STRATEGIES)
        return list(dict.fromkeys(split_pair(pair)[1] for pair in self.methods))


def dynamic_score(scorer: Any) -> bool:
    """Whether the training forward pass gives this score: a function of the logits (a batch scorer needing no
    gradients), or a training observer's running statistic (not a checkpoint score's per-sample gradients)."""
    if scorer.needs_param_grads or scorer.needs_input_grad:
        return False
    return scorer.kind == "training" or (scorer.kind == "batch" and scorer.fn is not None)


class DynamicConfig(Section):
    """The `dynamic` kind: InfoBatch (Qin et al. 2024) beside full-data training with the same seeds and epochs."""

    ratio: float = Field(0.5, ge=0, lt=1, description="r, the fraction of the below-mean-score samples pruned each "
                         "pruning epoch (above 0.9: 0.9, as the reference clamps it)")
    delta: float = Field(0.875, gt=0, le=1, description="δ: prune in the first δ of the epochs, then train on all")
    score: str = Field("loss", description="the ranking score from the training forward pass: latest loss (the "
                       "paper), any scorer of the logits (el2n, entropy, margin, ...) or a training observer "
                       "(forgetting, aum, ...)")
    seeds: Seeds = Field([0], min_length=1, description="training seeds, one InfoBatch and one full trial each")

    @field_validator("score")
    @classmethod
    def _forward_score(cls, name: str) -> str:
        checked(check_scorer, name)
        if not dynamic_score(check_scorer(name)):
            raise ValueError(f"scorer {name!r} is not computed from the training forward pass (it needs "
                             "gradients, embeddings or no model); use loss, a scorer of the logits (el2n, "
                             "entropy, margin, ...) or a training observer (forgetting, aum, ...)")
        return name


# ---------------------------------------------------------------- the built-in kinds
for _name, _model in (("sweep", SweepConfig), ("overlap", OverlapConfig), ("online", OnlineConfig),
                      ("noise", NoiseConfig), ("study", StudyConfig), ("benchmark", BenchmarkConfig),
                      ("dynamic", DynamicConfig)):
    register_section(_name, _model)


def _builtin(name: str, module: str, description: str, sections: tuple[str, ...]) -> None:
    register_kind(ExperimentKind(name, description, Ref(f"engine.kinds.{module}:count_trials"),
                                 Ref(f"engine.kinds.{module}:execute"), sections))


_builtin("prune", "prune", "prune with each method and strategy at each keep ratio, retrain, compare", ("sweep",))
_builtin("score-epochs", "score_epochs", "prune after different surrogate pre-training epochs", ("sweep",))
_builtin("overlap", "overlap", "repetition rate of the top-k and bottom-k sets of each pair of scorers", ("overlap",))
_builtin("online", "online", "online batch selection: backpropagate the top k of each batch of B", ("online",))
_builtin("noise", "noise", "flip a fraction of the labels; precision and recall at k of each scorer",
         ("noise", "sweep"))
_builtin("study", "study", "the seed study: overlap, pruning-ratio sweep and pre-training epochs in one run",
         ("study", "overlap", "sweep"))
_builtin("benchmark", "benchmark", "every scorer/strategy pair at every keep ratio and seed, ranked against random "
         "with paired tests", ("benchmark",))
_builtin("dynamic", "dynamic", "InfoBatch dynamic pruning beside full-data training: accuracy, passes and time saved",
         ("dynamic",))
