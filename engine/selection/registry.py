"""The strategy registry: a name -> `Strategy` (description, options with defaults, what it needs).

Read by the config validator, the CLI and the TUI's forms; imports no torch. The
built-in strategies are "module:function" references into ranking.py and
coverage.py, loaded when first used; `register_strategy` adds your own.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry, implementation

# fn(scores, budget, labels, seed, embeddings, **options) -> kept indices (any order, distinct)
StrategyFn = Callable[..., np.ndarray]

ORDERS = ("hardest", "easiest", "random")


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

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: default for key, (default, _) in self.options.items()}

    def describe(self) -> dict[str, Any]:
        """Plain data for CLIs, forms and JSON: name, description, embeddings flag, options."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_embeddings": self.needs_embeddings,
            "options": {key: {"default": default, "description": text}
                        for key, (default, text) in self.options.items()},
        }


STRATEGIES: Registry[Strategy] = Registry("selection strategy")


def register_strategy(name: str, fn: StrategyFn | str, description: str = "", needs_embeddings: bool = False,
                      options: dict[str, tuple[Any, str]] | None = None) -> Strategy:
    """Add a strategy; it is then usable by name in configs, the CLI and the TUI.

    Values of options named like the built-in ones (beta, bins, clusters,
    iterations, order) are range-checked by `check_strategy`; a new option's
    values are the strategy's own to check (raise ConfigError from `fn`).
    """
    if not description and callable(fn):
        description = (fn.__doc__ or "").strip().split("\n")[0]
    return STRATEGIES.add(name, Strategy(name, description, implementation(fn), needs_embeddings,
                                         dict(options or {})))


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
