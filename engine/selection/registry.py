"""The strategy registry: a name -> `Strategy` (description, options with defaults, what it needs).

Read by the config validator, the CLI and the TUI's forms; imports no torch. The
built-in strategies are "module:function" references into ranking.py and
coverage.py, loaded when first used; `register_strategy` adds your own.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..registry import Registry, implementation

# fn(scores, budget, labels, seed, embeddings, [gradients=,] **options) -> kept indices (any order, distinct),
# or a Selection (kept indices and their weights)
StrategyFn = Callable[..., Any]

ORDERS = ("hardest", "easiest", "random")
GREEDY = ("lazy", "stochastic", "plain")
SPACES = ("embeddings", "gradients")  # what a geometric coreset measures distances in  # submodular maximisation: exact lazy, stochastic (Mirzasoleiman 2015), plain


@dataclass(frozen=True)
class Strategy:
    """A named selection strategy and what a form needs to offer it.

    `options` maps an option name to `(default, description)`. `fn` is called as
    `fn(scores, budget, labels, seed, embeddings, **options)` with every option
    filled in, and returns exactly `budget` distinct indices in any order.
    """

    name: str
    description: str
    fn: StrategyFn
    needs_embeddings: bool = False
    options: dict[str, tuple[Any, str]] = field(default_factory=dict)
    needs_gradients: bool = False  # then `fn` also gets gradients=: last-layer per-sample gradients (n, D)

    def inputs(self, options: dict[str, Any] | None = None) -> tuple[bool, bool]:
        """(needs embeddings, needs gradients) under `options`: a `space` option picks one of the two."""
        space = {**self.defaults, **(options or {})}.get("space")
        if space is not None:
            return space == "embeddings", space == "gradients"
        return self.needs_embeddings, self.needs_gradients

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: default for key, (default, _) in self.options.items()}

    def describe(self) -> dict[str, Any]:
        """Plain data for CLIs, forms and JSON: name, description, embeddings flag, options."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_embeddings": self.needs_embeddings,
            "needs_gradients": self.needs_gradients,
            "options": {key: {"default": default, "description": text}
                        for key, (default, text) in self.options.items()},
        }


STRATEGIES: Registry[Strategy] = Registry("selection strategy")


def register_strategy(name: str, fn: StrategyFn | str, description: str = "", needs_embeddings: bool = False,
                      options: dict[str, tuple[Any, str]] | None = None, needs_gradients: bool = False) -> Strategy:
    """Add a strategy; it is then usable by name in configs, the CLI and the TUI.

    Values of options named like the built-in ones (beta, bins, clusters,
    iterations, order) are range-checked by `check_strategy`; a new option's
    values are the strategy's own to check (raise ConfigError from `fn`).
    """
    if not description and callable(fn):
        description = (fn.__doc__ or "").strip().split("\n")[0]
    return STRATEGIES.add(name, Strategy(name, description, implementation(fn), needs_embeddings,
                                         dict(options or {}), needs_gradients))


def describe_strategies() -> list[dict[str, Any]]:
    """Every registered strategy as plain data, in registration order."""
    return [s.describe() for s in STRATEGIES.values()]


# ------------------------------------------------------------------ validation
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


# option name -> (is the value valid, the valid range in words)
_OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "beta": (lambda v: _is_real(v) and 0 <= v < 1, "a number with 0 <= beta < 1"),
    "bins": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "clusters": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "iterations": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "order": (lambda v: v in ORDERS, "one of " + ", ".join(ORDERS)),
    "weighted": (lambda v: isinstance(v, bool), "true or false"),
    "per_class": (lambda v: isinstance(v, bool), "true or false"),
    "greedy": (lambda v: v in GREEDY, "one of " + ", ".join(GREEDY)),
    "epsilon": (lambda v: _is_real(v) and 0 < v < 1, "a number with 0 < epsilon < 1"),
    "lam": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "ridge": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "omp_lam": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "eta": (lambda v: _is_real(v) and v > 0, "a number > 0"),
    "n_neighbor": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "gamma": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "space": (lambda v: v in SPACES, "one of " + ", ".join(SPACES)),
    "validation": (lambda v: _is_real(v) and 0 < v < 1, "a fraction with 0 < validation < 1"),
}


def check_strategy(name: str, options: dict) -> None:
    """Raise UnknownNameError for an unknown strategy, ConfigError for an unknown or out-of-range option."""
    known = STRATEGIES.check(name).options
    for key, value in (options or {}).items():
        if key not in known:
            takes = f"its options are: {', '.join(known)}" if known else "it takes no options"
            raise ConfigError(f"selection strategy {name!r} has no option {key!r}; {takes}")
        rule = _OPTION_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise ConfigError(f"selection option {key}={value!r} is out of range for strategy {name!r}; "
                              f"use {rule[1]}")


def check_keep_ratio(keep_ratio: Any) -> None:
    """Raise ConfigError unless 0 < keep_ratio <= 1."""
    if not (_is_real(keep_ratio) and 0 < keep_ratio <= 1):
        raise ConfigError(f"keep_ratio={keep_ratio!r} is out of range; use a number with 0 < keep_ratio <= 1")


# ------------------------------------------------------------------ the built-ins
_ORDER_OPTION = ("hardest", 'within a group, keep by "hardest", "easiest" or "random"')

register_strategy("hardest", "engine.selection.ranking:hardest", "keep the highest scores (ties broken by a seeded permutation)")
register_strategy("easiest", "engine.selection.ranking:easiest", "keep the lowest scores (ties broken by a seeded permutation)")
register_strategy("random", "engine.selection.ranking:random", "seeded uniform subset; ignores the scores")
register_strategy(
    "ccs", "engine.selection.coverage:ccs",
    "coverage-centric coreset selection (Zheng et al. 2023): cut the hardest beta, "
    "then sample evenly across equal-width score strata",
    options={"beta": (0.0, "fraction of hardest samples pruned first, 0 <= beta < 1"),
             "bins": (50, "number of equal-width score strata, >= 1")},
)
register_strategy(
    "moderate", "engine.selection.moderate:moderate",
    "keep the band of samples around the median score (Moderate-DS, Xia et al. 2023; use with the moderate scorer)",
)
register_strategy(
    "class_balanced", "engine.selection.coverage:class_balanced",
    "keep_ratio of every class (exact total by largest remainders), within a class by order",
    options={"order": _ORDER_OPTION},
)
register_strategy(
    "kmeans_coverage", "engine.selection.coverage:kmeans_coverage",
    "per class, spread the class's quota evenly over k-means clusters of the surrogate's embeddings",
    needs_embeddings=True,
    options={"clusters": (10, "k-means clusters per class, >= 1"),
             "order": _ORDER_OPTION,
             "iterations": (10, "at most this many Lloyd iterations, >= 1")},
)

# ------------------------------------------------------------------ coresets (geometric.py, submodular.py, gradient.py)
_PER_CLASS = (False, "split the budget over classes in proportion to their sizes")
_PER_CLASS_ON = (True, "split the budget over classes in proportion to their sizes")
_GREEDY = ("lazy", "submodular maximiser: lazy (exact), stochastic (large n) or plain")
_EPSILON = (0.01, "stochastic greedy's epsilon: each step looks at n/k*ln(1/epsilon) samples")
_WEIGHTED = (True, "train with the coreset's per-sample weights; false drops them (an ablation)")

register_strategy(
    "kcenter_greedy", "engine.selection.geometric:kcenter_greedy",
    "k-center greedy (Sener & Savarese 2018): farthest-first traversal of the embeddings",
    needs_embeddings=True, options={"per_class": _PER_CLASS, "space": (
        "embeddings", "the distances' space: embeddings (penultimate features) or gradients (last-layer gradients)")})
register_strategy(
    "herding", "engine.selection.geometric:herding",
    "herding (Welling 2009): the running mean of the kept embeddings tracks the mean of all",
    needs_embeddings=True, options={"per_class": _PER_CLASS})
_SUBMODULAR = {"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON}
register_strategy(
    "facility_location", "engine.selection.submodular:facility_location",
    "facility location on the embeddings' cosine similarity, maximised greedily",
    needs_embeddings=True, options=dict(_SUBMODULAR))
register_strategy(
    "graph_cut", "engine.selection.submodular:graph_cut",
    "graph cut on the embeddings' cosine similarity (representative minus lam x redundant)",
    needs_embeddings=True, options={**_SUBMODULAR, "lam": (1.0, "weight of the redundancy term, >= 0")})
register_strategy(
    "log_determinant", "engine.selection.submodular:log_determinant",
    "log-determinant of the embeddings' cosine kernel (diversity), maximised greedily",
    needs_embeddings=True, options={**_SUBMODULAR, "ridge": (1e-4, "added to the kernel's diagonal, >= 0")})
register_strategy(
    "craig", "engine.selection.gradient:craig",
    "CRAIG (Mirzasoleiman et al. 2020): per-class facility location on gradients, weights = samples covered",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON,
                                   "weighted": _WEIGHTED})
register_strategy(
    "gradmatch", "engine.selection.gradient:gradmatch",
    "GradMatch (Killamsetty et al. 2021): per-class non-negative OMP matching the gradient sum",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "omp_lam": (1.0, "ridge on the OMP weights, >= 0"),
                                   "weighted": _WEIGHTED})
register_strategy(
    "glister", "engine.selection.gradient:glister",
    "GLISTER (Killamsetty et al. 2021): greedy one-step Taylor gain on a class-stratified validation holdout",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON,
                                   "validation": (0.1, "fraction of each class held out as validation, 0-1"),
                                   "eta": (0.1, "the one-step learning rate of the Taylor approximation, > 0")})
register_strategy(
    "contextual_diversity", "engine.selection.geometric:contextual_diversity",
    "contextual diversity (Agarwal et al. 2020): k-center greedy on the KL divergence of the softmax outputs",
    needs_gradients=True, options={"per_class": _PER_CLASS})
register_strategy(
    "d2_pruning", "engine.selection.d2:d2_pruning",
    "D2-pruning (Maharana et al. 2024): scores passed over a kNN graph of the embeddings, then diverse sampling",
    needs_embeddings=True, options={"n_neighbor": (10, "neighbours per sample in the kNN graph, >= 1"),
                                    "gamma": (0.0, "reverse-message decay exp(-gamma*d); 0 = 1/embedding width")})
