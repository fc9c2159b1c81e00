"""prunelab's headless engine: the public API for scripts, the CLI and the TUI.

Whole experiments, logged to MLflow:

    import engine
    cfg = engine.load_config("quick", overrides={"sweep.keep_ratios": [0.5]})
    result = engine.run(cfg, on_event=print)          # RunResult: run_id, status, summary, artifacts
    print(result.run_id, result.summary)

One step at a time, on a registered data set or your own arrays:

    scores = engine.score("mnist-mini", model="cnn", scorers=["el2n"], epochs=1)
    kept = engine.select("hardest", scores["el2n"], 0.5, labels=engine.as_dataset("mnist-mini").y_train)
    result = engine.train("mnist-mini", model="cnn", epochs=2, indices=kept)   # or (x_tr, y_tr, x_te, y_te)

Registries (`engine.datasets`, `engine.models`, `engine.scorers`, `engine.strategies`,
`engine.experiments`) list what exists; `engine.register_model(name, builder)` and
`engine.register_scorer(name, fn)` add to them, and configs validate against them.

Attributes are imported on first use, so `import engine` stays cheap (the TUI
draws its first frame before torch or MLflow load). `engine.train`, `engine.models`
and `engine.experiments` are the API's function and registries even though
submodules of those names exist: import from the modules (`from engine.models
import build_model`) rather than reaching through the package attribute.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # whole experiments
    "load_config": "engine.config",
    "Config": "engine.config",
    "run": "engine.api",
    "RunResult": "engine.experiments.base",
    "launch_detached": "engine.api",
    "list_runs": "engine.api",
    "show": "engine.api",
    "top_samples": "engine.api",
    "export_csv": "engine.api",
    "cache_usage": "engine.api",
    "clear_cache": "engine.api",
    # one step at a time
    "as_dataset": "engine.api",
    "train": "engine.api",
    "score": "engine.api",
    "score_result": "engine.api",
    "select": "engine.selection",
    "keep_count": "engine.selection",
    "TrainConfig": "engine.train",
    "TrainResult": "engine.train",
    "ScoreResult": "engine.scoring",
    "load_dataset": "engine.data",
    "from_arrays": "engine.data",
    "Dataset": "engine.data",
    # extending the registries
    "register_model": "engine.models",
    "register_scorer": "engine.scoring",
    "register_strategy": "engine.selection",
    # errors
    "PrunelabError": "engine.errors",
    "UserError": "engine.errors",
    "ConfigError": "engine.errors",
    "DataError": "engine.errors",
}
_REGISTRIES = {
    "datasets": ("engine.data", "DATASETS"),
    "models": ("engine.models", "MODELS"),
    "strategies": ("engine.selection", "STRATEGIES"),
    "scorers": ("engine.scoring", "SCORERS"),
    "experiments": ("engine.experiments", "EXPERIMENTS"),
}

__all__ = sorted([*_EXPORTS, *_REGISTRIES])

# API names that are also submodules: importing the submodule sets the package
# attribute to the module, so reads of these names are answered by _resolve.
_HERE = Path(__file__).resolve().parent
_SHADOWED = frozenset(n for n in __all__ if (_HERE / f"{n}.py").exists() or (_HERE / n).is_dir())

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of this loads at run time
    from .api import (as_dataset, cache_usage, clear_cache, export_csv, launch_detached, list_runs, run, score,
                      score_result, show, top_samples, train)
    from .config import Config, load_config
    from .data import DATASETS as datasets, Dataset, from_arrays, load_dataset
    from .errors import ConfigError, DataError, PrunelabError, UserError
    from .experiments import EXPERIMENTS as experiments
    from .experiments.base import RunResult
    from .models import MODELS as models, register_model
    from .scoring import SCORERS as scorers, ScoreResult, register_scorer
    from .selection import STRATEGIES as strategies, keep_count, register_strategy, select
    from .train import TrainConfig, TrainResult


def _resolve(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    module, attr = _REGISTRIES[name]
    return getattr(importlib.import_module(module), attr)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS or name in _REGISTRIES:
        return _resolve(name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _Engine(types.ModuleType):
    """The package's module type: keeps the shadowed names pointing at the API."""

    def __getattribute__(self, name: str) -> Any:
        if name in _SHADOWED:
            return _resolve(name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Engine
