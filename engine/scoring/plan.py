"""The plan of a scoring call: which surrogates k = 0..K−1 are trained, at which epochs each is scored, by which
scorers, and which training observers each runs. Checked up front, so a bad request fails before any training.

Which surrogate a score comes from: scorers that average over initialisations (`el2n`,
`forgetting`, ...) use surrogates 0..K−1 (K = `inits`, or the scorer's own `inits`);
every other scorer, the predictions and the embeddings come from surrogate 0. A
scorer's `epoch` option fixes the surrogate epoch it is taken at, whatever the run's
score epochs. A surrogate with nothing to give is not in the plan.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..errors import ConfigError
from ..nets import check_model_name
from ..trainer import plan_budget
from .gradembed import DEFAULT_GRADIENT_MB
from .gradnorm.persample import DEFAULT_WORKSPACE_MB
from .registry import SURROGATE_OPTIONS, Scorer, resolve_scorers


@dataclass(frozen=True)
class PassOptions:
    """How each scoring pass runs, and the extras surrogate 0 gives at the run's epochs."""

    batch_size: int = 256  # the scoring batch: it changes no score
    workspace_mb: float = DEFAULT_WORKSPACE_MB  # per-layer memory of the exact gradient norms
    embeddings: bool = False  # penultimate features
    gradients: bool = False  # last-layer gradient embeddings (gradembed.py)
    gradient_dtype: str = "float32"
    gradient_mb: float = DEFAULT_GRADIENT_MB


@dataclass
class SurrogateWork:
    """What surrogate k is trained (or loaded from the cache) for."""

    k: int
    seed: int
    scorers: list[Scorer]  # every scorer it serves: all for surrogate 0, the averaged ones for k > 0
    scored_at: dict[int, list[Scorer]]  # epoch -> the batch and embedding scorers scored at it
    observed: list[Scorer]  # training scorers, counted while it trains
    observed_at: dict[int, list[Scorer]]  # epoch -> the training scorers read at it
    extras_at: frozenset[int]  # epochs it gives predictions (and embeddings, gradients) at: surrogate 0's

    @property
    def passes(self) -> list[int]:
        """The epochs it gets a scoring pass at."""
        return [t for t, scorers in self.scored_at.items() if scorers or t in self.extras_at]

    @property
    def has_work(self) -> bool:
        return bool(self.passes) or any(self.observed_at.values())


@dataclass
class ScoringPlan:
    model: str
    train_cfg: TrainConfig
    seed: int
    scorers: list[Scorer]
    options: dict[str, dict[str, Any]]  # scorer -> the options its observer or function gets
    epochs: list[int]  # the run's score epochs
    at: dict[str, list[int]]  # scorer -> the epochs it is computed at
    all_epochs: list[int]
    k_of: dict[str, int]  # scorer -> its K
    inits: int  # K of the run: the surrogates the averaged scorers use (0 when none is trained)
    extras: PassOptions
    surrogates: list[SurrogateWork]


def surrogate_seed(seed: int, init: int) -> int:
    """Seed of surrogate `init`: `seed` itself for 0, else a hash of (seed, init) so sweeps never share one."""
    if init == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, init]).generate_state(1)[0] >> 1)


def check_epochs(epochs: Iterable[int], budget_epochs: int) -> list[int]:
    """Sorted distinct score epochs, each within 0..budget_epochs, or ConfigError."""
    out = sorted({int(e) for e in epochs})
    if not out:
        raise ConfigError("no score epoch given; name at least one, e.g. epochs=[1] (0 scores the untrained model)")
    if out[0] < 0:
        raise ConfigError(f"score epoch {out[0]} is negative; use 0 (at initialisation) or later")
    if out[-1] > budget_epochs:
        raise ConfigError(f"score epoch {out[-1]} is beyond the surrogate's training budget of {budget_epochs} "
                          f"epoch(s); lower the score epoch or raise the surrogate's epochs")
    return out


def _check_inits(inits: Any) -> None:
    if isinstance(inits, bool) or not isinstance(inits, (int, np.integer)) or inits < 1:
        raise ConfigError(f"inits (K, the number of surrogates) is {inits!r}; it must be an integer of at least 1")


def _epochs_of(chosen: list[Scorer], resolved: dict[str, dict[str, Any]], epochs: list[int],
               budget_epochs: int) -> dict[str, list[int]]:
    """Scorer -> the epochs it is computed at: the run's, or its own fixed `epoch`."""
    at: dict[str, list[int]] = {}
    for s in chosen:
        fixed = resolved[s.name].get("epoch")
        if fixed is not None and fixed > budget_epochs:
            raise ConfigError(f"scoring.{s.name}.epoch = {fixed} is beyond the surrogate's training budget of "
                              f"{budget_epochs} epoch(s); raise the surrogate's epochs or lower it")
        at[s.name] = epochs if fixed is None else [int(fixed)]
    return at


def _surrogate_counts(chosen: list[Scorer], resolved: dict[str, dict[str, Any]], inits: int,
                      extras: PassOptions) -> tuple[dict[str, int], int]:
    """Each scorer's K (its own `inits`, else the run's; 1 when it does not average) and how many surrogates are
    trained: the largest K, or none when no scorer and no extra needs a model."""
    k_of = {s.name: int(resolved[s.name].get("inits") or inits) if s.average_inits else 1 for s in chosen}
    needs_model = any(s.needs_surrogate for s in chosen) or extras.embeddings or extras.gradients
    return k_of, max(k_of.values(), default=1) if needs_model else 0


def plan_scores(n: int, model: str, scorers: Sequence[str] | str, epochs: Sequence[int] | None, inits: int,
                train_cfg: TrainConfig | None, seed: int, options: dict[str, dict[str, Any]] | None,
                extras: PassOptions) -> ScoringPlan:
    """The checked plan for scoring n training samples (arguments as `compute_scores`)."""
    chosen = resolve_scorers(scorers)
    _check_inits(inits)
    resolved = {s.name: s.resolve((options or {}).get(s.name)) for s in chosen}
    fn_options = {name: {k: v for k, v in o.items() if k not in SURROGATE_OPTIONS} for name, o in resolved.items()}
    check_model_name(model)
    train_cfg = train_cfg or TrainConfig(epochs=max(epochs) if epochs else 1)
    budget = plan_budget(train_cfg, n)
    epochs = check_epochs(epochs if epochs is not None else [budget.epochs], budget.epochs)
    at = _epochs_of(chosen, resolved, epochs, budget.epochs)
    all_epochs = sorted({t for ts in at.values() for t in ts} | set(epochs))
    k_of, k_total = _surrogate_counts(chosen, resolved, inits, extras)
    plan = ScoringPlan(model, train_cfg, seed, chosen, fn_options, epochs, at, all_epochs, k_of, k_total, extras, [])
    plan.surrogates = [w for w in (_work(plan, k) for k in range(k_total)) if w.has_work]
    return plan


def _work(plan: ScoringPlan, k: int) -> SurrogateWork:
    ours = [s for s in plan.scorers if k < plan.k_of[s.name]]  # surrogate 0 serves every scorer
    scored = [s for s in ours if s.kind in ("batch", "embedding")]  # embedding: after surrogate 0's pass
    observed = [s for s in ours if s.kind == "training"]
    return SurrogateWork(
        k=k, seed=surrogate_seed(plan.seed, k), scorers=ours,
        scored_at={t: [s for s in scored if t in plan.at[s.name]] for t in plan.all_epochs},
        observed=observed, observed_at={t: [s for s in observed if t in plan.at[s.name]] for t in plan.all_epochs},
        extras_at=frozenset(plan.epochs) if k == 0 else frozenset())
