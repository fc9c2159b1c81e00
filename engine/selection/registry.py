"""The strategy registry: a name -> `Strategy` (description, options with defaults, what it needs).

Read by the config validator, the CLI and the TUI's forms; imports no torch. The
built-in strategies are "module:function" references into ranking.py and
coverage.py, loaded when first used; `register_strategy` adds your own.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..options import (
    Option,
    as_options,
    check_options,
    choice,
    describe_options,
    flag,
    integer,
    is_real,
    number,
)
from ..registry import MethodDoc, Registry, implementation

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
    options: dict[str, Option] = field(default_factory=dict)  # name -> its default, help and check
    needs_gradients: bool = False  # then `fn` also gets gradients=: last-layer per-sample gradients (n, D)
    doc: MethodDoc = field(default_factory=MethodDoc)  # formula, paper, reference code, differences, pinning tests (docs/methods/)

    def inputs(self, options: dict[str, Any] | None = None) -> tuple[bool, bool]:
        """(needs embeddings, needs gradients) under `options`: a `space` option picks one of the two."""
        space = {**self.defaults, **(options or {})}.get("space")
        if space is not None:
            return space == "embeddings", space == "gradients"
        return self.needs_embeddings, self.needs_gradients

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: spec.default for key, spec in self.options.items()}

    def describe(self) -> dict[str, Any]:
        """Plain data for CLIs, forms and JSON: name, description, embeddings flag, options."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_embeddings": self.needs_embeddings,
            "needs_gradients": self.needs_gradients,
            "options": describe_options(self.options),
        }


STRATEGIES: Registry[Strategy] = Registry("selection strategy")


def register_strategy(name: str, fn: StrategyFn | str, description: str = "", needs_embeddings: bool = False,
                      options: dict[str, Option | tuple[Any, str]] | None = None,
                      needs_gradients: bool = False, doc: MethodDoc | None = None) -> Strategy:
    """Add a strategy; it is then usable by name in configs, the CLI and the TUI.

    `options` declare its settings: `engine.options.Option` objects (default, help
    and the check `check_strategy` applies), or (default, help) pairs whose values
    are the strategy's own to check (raise ConfigError from `fn`).
    """
    if not description and callable(fn):
        description = (fn.__doc__ or "").strip().split("\n")[0]
    return STRATEGIES.add(name, Strategy(name, description, implementation(fn), needs_embeddings,
                                         as_options(options), needs_gradients, doc or MethodDoc()))


def describe_strategies() -> list[dict[str, Any]]:
    """Every registered strategy as plain data, in registration order."""
    return [s.describe() for s in STRATEGIES.values()]


# ------------------------------------------------------------------ validation
def check_strategy(name: str, options: dict | None) -> dict[str, Any]:
    """Every option of `name`, checked; UnknownNameError for an unknown strategy, ConfigError for an unknown or
    out-of-range option."""
    return check_options(f"selection strategy {name!r}", STRATEGIES.check(name).options, options or {})


def strategy_tables(given: Any) -> Any:
    """A config's `[selection]` as one table per strategy (`[selection.craig] per_class = false`).

    A key that names no strategy but an option is the old flat form (`selection.per_class = true`), still in
    the configs stored with earlier runs and re-read by `--resume`: it applies to every strategy that declares
    that option, as it always did; a strategy's own table wins over it. Anything but a table is left for the
    validator to reject.
    """
    if not isinstance(given, Mapping):
        return given
    tables = {key: dict(value) if isinstance(value, Mapping) else value for key, value in given.items()
              if key in STRATEGIES or isinstance(value, Mapping)}
    for key, value in given.items():
        if key not in tables:
            _apply_flat(tables, key, value)
    return tables


def _apply_flat(tables: dict[str, Any], key: str, value: Any) -> None:
    """An old flat option, into the table of every strategy that declares it (unless the table sets it)."""
    owners = [name for name, strategy in STRATEGIES.items() if key in strategy.options]
    if not owners:
        raise ConfigError(f"{key!r} is neither a strategy nor an option of one; options go in their strategy's "
                          "table, e.g. [selection.ccs] beta = 0.2 (see `prunelab config show`)")
    for name in owners:
        table = tables.setdefault(name, {})
        if isinstance(table, dict):
            table.setdefault(key, value)


def check_keep_ratio(keep_ratio: Any) -> None:
    """Raise ConfigError unless 0 < keep_ratio <= 1."""
    if not (is_real(keep_ratio) and 0 < keep_ratio <= 1):
        raise ConfigError(f"keep_ratio={keep_ratio!r} is out of range; use a number with 0 < keep_ratio <= 1")


# ------------------------------------------------------------------ the built-ins
_ORDER_OPTION = choice("hardest", 'within a group, keep by "hardest", "easiest" or "random"', ORDERS)

register_strategy("hardest", "engine.selection.ranking:hardest", "keep the highest scores (ties broken by a seeded permutation)")
register_strategy("easiest", "engine.selection.ranking:easiest", "keep the lowest scores (ties broken by a seeded permutation)")
register_strategy("random", "engine.selection.ranking:random", "seeded uniform subset; ignores the scores")
register_strategy(
    "ccs", "engine.selection.coverage:ccs",
    "coverage-centric coreset selection (Zheng et al. 2023): cut the hardest beta, "
    "then sample evenly across equal-width score strata",
    options={"beta": number(0.0, "fraction of hardest samples pruned first", 0, 1, high_open=True),
             "bins": integer(50, "number of equal-width score strata", 1)},
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
    options={"clusters": integer(10, "k-means clusters per class", 1),
             "order": _ORDER_OPTION,
             "iterations": integer(10, "at most this many Lloyd iterations", 1)},
)

# ------------------------------------------------------------------ coresets (geometric.py, submodular.py, gradient.py)
_PER_CLASS = flag(False, "split the budget over classes in proportion to their sizes")
_PER_CLASS_ON = flag(True, "split the budget over classes in proportion to their sizes")
_GREEDY = choice("lazy", "submodular maximiser: lazy (exact), stochastic (large n) or plain", GREEDY)
_EPSILON = number(0.01, "stochastic greedy's epsilon: each step looks at n/k*ln(1/epsilon) samples", 0, 1,
                  low_open=True, high_open=True)
_WEIGHTED = flag(True, "train with the coreset's per-sample weights; false drops them (an ablation)")

register_strategy(
    "kcenter_greedy", "engine.selection.geometric:kcenter_greedy",
    "k-center greedy (Sener & Savarese 2018): farthest-first traversal of the embeddings",
    needs_embeddings=True, options={"per_class": _PER_CLASS, "space": choice(
        "embeddings", "the distances' space: embeddings (penultimate features) or gradients (last-layer gradients)",
        SPACES)})
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
    needs_embeddings=True, options={**_SUBMODULAR, "lam": number(1.0, "weight of the redundancy term", 0)})
register_strategy(
    "log_determinant", "engine.selection.submodular:log_determinant",
    "log-determinant of the embeddings' cosine kernel (diversity), maximised greedily",
    needs_embeddings=True, options={**_SUBMODULAR, "ridge": number(1e-4, "added to the kernel's diagonal", 0)})
register_strategy(
    "craig", "engine.selection.gradient:craig",
    "CRAIG (Mirzasoleiman et al. 2020): per-class facility location on gradients, weights = samples covered",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON,
                                   "weighted": _WEIGHTED})
register_strategy(
    "gradmatch", "engine.selection.gradient:gradmatch",
    "GradMatch (Killamsetty et al. 2021): per-class non-negative OMP matching the gradient sum",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "omp_lam": number(1.0, "ridge on the OMP weights", 0),
                                   "weighted": _WEIGHTED})
register_strategy(
    "glister", "engine.selection.gradient:glister",
    "GLISTER (Killamsetty et al. 2021): greedy one-step Taylor gain on a class-stratified validation holdout",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON,
                                   "validation": number(0.1, "fraction of each class held out as validation", 0, 1,
                                                         low_open=True, high_open=True),
                                   "eta": number(0.1, "the one-step learning rate of the Taylor approximation", 0,
                                                 low_open=True)})
register_strategy(
    "contextual_diversity", "engine.selection.geometric:contextual_diversity",
    "contextual diversity (Agarwal et al. 2020): k-center greedy on the KL divergence of the softmax outputs",
    needs_gradients=True, options={"per_class": _PER_CLASS})
register_strategy(
    "d2_pruning", "engine.selection.d2:d2_pruning",
    "D2-pruning (Maharana et al. 2024): scores passed over a kNN graph of the embeddings, then diverse sampling",
    needs_embeddings=True, options={"n_neighbor": integer(10, "neighbours per sample in the kNN graph", 1),
                                    "gamma": number(0.0, "reverse-message decay exp(-gamma*d); 0 = 1/embedding width",
                                                    0)})
