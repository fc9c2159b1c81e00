"""prunelab's headless engine: the public API for scripts, the CLI and the TUI.

Whole experiments, logged to MLflow:

    import engine
    cfg = engine.load_config("quick", overrides={"sweep.keep_ratios": [0.5]})
    result = engine.run(cfg)                          # RunResult: run_id, status, summary, artifacts
    print(result.run_id, result.summary)

One step at a time, on a registered data set or your own arrays:

    scores = engine.score("mnist-mini", model="cnn", scorers=["el2n"], epochs=1)
    kept = engine.select("hardest", scores["el2n"], 0.5, labels=engine.as_dataset("mnist-mini").y_train)
    result = engine.train("mnist-mini", model="cnn", epochs=2, indices=kept)   # or (x_tr, y_tr, x_te, y_te)

Registries (`engine.datasets`, `engine.models`, `engine.scorers`, `engine.strategies`,
`engine.experiments`) list what exists; `engine.register_model(name, builder)`,
`engine.register_scorer(name, fn)`, `engine.register_strategy(...)`,
`engine.register_kind(ExperimentKind(...))` with `engine.register_section(name, Section)`
and `engine.register_norm_form(layer_class, fn)` add to them.

Every name here is imported on first use (PEP 562), so `import engine` loads
neither torch nor MLflow; submodules import as usual (`import engine.kinds.noise`).
No API name is also a submodule's name, so importing a submodule never changes
what `engine.<name>` means.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> "module:attribute"
_EXPORTS = {
    # whole experiments
    "load_config": "engine.config:load_config",
    "Config": "engine.config:Config",
    "TrainConfig": "engine.config:TrainConfig",
    "run": "engine.api:run",
    "RunResult": "engine.runner.trials:RunResult",
    "launch_detached": "engine.api:launch_detached",
    "list_runs": "engine.api:list_runs",
    "show": "engine.api:show",
    "top_samples": "engine.api:top_samples",
    "inspect": "engine.api:inspect",
    "sample_inspector": "engine.api:sample_inspector",
    "embedding_map": "engine.api:embedding_map",
    "export_csv": "engine.api:export_csv",
    # results out: a trial's kept subset
    "kept_subset": "engine.api:kept_subset",
    "export_subset": "engine.api:export_subset",
    "subset": "engine.api:subset",
    "sampler": "engine.api:sampler",
    "cache_usage": "engine.api:cache_usage",
    "clear_cache": "engine.api:clear_cache",
    # one step at a time
    "as_dataset": "engine.api:as_dataset",
    "train": "engine.api:train",
    "score": "engine.api:score",
    "score_result": "engine.api:score_result",
    "select": "engine.selection.base:select",
    "keep_count": "engine.api:keep_count",
    "TrainResult": "engine.trainer:TrainResult",
    "ScoreResult": "engine.scoring.surrogate:ScoreResult",
    "load_dataset": "engine.data.dataset:load_dataset",
    "from_arrays": "engine.data.dataset:from_arrays",
    "Dataset": "engine.data.dataset:Dataset",
    # the registries, and extending them
    "datasets": "engine.data.registry:DATASETS",
    "models": "engine.nets:MODELS",
    "scorers": "engine.scoring.registry:SCORERS",
    "strategies": "engine.selection.registry:STRATEGIES",
    "experiments": "engine.kinds:KINDS",
    "register_dataset": "engine.data.registry:register_dataset",
    "register_model": "engine.nets:register_model",
    "register_scorer": "engine.scoring.registry:register_scorer",
    "register_file_scores": "engine.scoring.registry:register_file_scores",
    "register_strategy": "engine.selection.registry:register_strategy",
    "register_kind": "engine.kinds:register_kind",
    "ExperimentKind": "engine.kinds:ExperimentKind",
    "register_section": "engine.sections:register_section",
    "Section": "engine.sections:Section",
    "register_norm_form": "engine.scoring.gradnorm.forms:register_norm_form",
    "Option": "engine.options:Option",
    "MethodDoc": "engine.registry:MethodDoc",
    # errors
    "PrunelabError": "engine.errors:PrunelabError",
    "UserError": "engine.errors:UserError",
    "ConfigError": "engine.errors:ConfigError",
    "DataError": "engine.errors:DataError",
    "UnknownNameError": "engine.errors:UnknownNameError",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of this loads at run time
    from .api import (
        as_dataset,
        cache_usage,
        clear_cache,
        embedding_map,
        export_csv,
        export_subset,
        inspect,
        keep_count,
        kept_subset,
        launch_detached,
        list_runs,
        run,
        sample_inspector,
        sampler,
        score,
        score_result,
        show,
        subset,
        top_samples,
        train,
    )
    from .config import Config, TrainConfig, load_config
    from .data.dataset import Dataset, from_arrays, load_dataset
    from .data.registry import DATASETS as datasets
    from .data.registry import register_dataset
    from .errors import ConfigError, DataError, PrunelabError, UnknownNameError, UserError
    from .kinds import KINDS as experiments
    from .kinds import ExperimentKind, register_kind
    from .nets import MODELS as models
    from .nets import register_model
    from .options import Option
    from .registry import MethodDoc
    from .runner.trials import RunResult
    from .scoring.gradnorm.forms import register_norm_form
    from .scoring.registry import SCORERS as scorers
    from .scoring.registry import register_file_scores, register_scorer
    from .scoring.surrogate import ScoreResult
    from .sections import Section, register_section
    from .selection.base import select
    from .selection.registry import STRATEGIES as strategies
    from .selection.registry import register_strategy
    from .trainer import TrainResult


def __getattr__(name: str) -> Any:
    try:
        module, _, attr = _EXPORTS[name].partition(":")
    except KeyError:
        raise AttributeError(f"module 'engine' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later reads skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
