"""prunelab's headless engine: the public API for scripts, the CLI and the TUI.

    import engine
    cfg = engine.load_config("quick", overrides=["sweep.keep_ratios=[0.5]"])
    result = engine.run(cfg, on_event=print)
    print(result.run_id, result.summary)

Attributes are imported on first use, so `import engine` stays cheap (the TUI
draws its first frame before torch or MLflow load).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_config": "engine.config",
    "Config": "engine.config",
    "run": "engine.api",
    "launch_detached": "engine.api",
    "list_runs": "engine.api",
    "show": "engine.api",
    "export_csv": "engine.api",
    "load_dataset": "engine.data",
    "from_arrays": "engine.data",
    "TrainConfig": "engine.train",
    "register_model": "engine.models",
    "register_strategy": "engine.selection",
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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _REGISTRIES:
        module, attr = _REGISTRIES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
