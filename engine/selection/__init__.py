"""Selection strategies: the registry (`registry.py`), `select` and its building blocks (`base.py`), and the
strategies by family (`ranking.py`, `coverage.py`). Re-exports the registry and `select` (numpy only)."""
from .base import (
                   Selection,
                   allocate,
                   class_quotas,
                   keep_count,
                   priority,
                   score_strata,
                   select,
                   select_weighted,
                   take_per_group,
)
from .registry import (
                       ORDERS,
                       STRATEGIES,
                       Strategy,
                       StrategyFn,
                       check_keep_ratio,
                       check_strategy,
                       describe_strategies,
                       register_strategy,
)

__all__ = [
                   "ORDERS",
                   "STRATEGIES",
                   "Selection",
                   "Strategy",
                   "StrategyFn",
                   "allocate",
                   "check_keep_ratio",
                   "check_strategy",
                   "class_quotas",
                   "describe_strategies",
                   "keep_count",
                   "priority",
                   "register_strategy",
                   "score_strata",
                   "select",
                   "select_weighted",
                   "take_per_group",
]
