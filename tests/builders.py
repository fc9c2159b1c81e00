"""Shared builders for tests: a run of seconds on real MNIST, its `--set` arguments, the CLI in this process.

One place, so a test's run differs from another's only in what it says it changes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def tiny_run(data_dir: str | Path | None = None, *, train_size: int = 600, test_size: int = 300,
             **extra: Any) -> dict[str, Any]:
    """Config overrides for a run of seconds on a CPU: an MLP, one training epoch, one surrogate epoch, scores at
    epoch 1, on `train_size` real digits: MNIST's own files when `data_dir` is their folder (../shared/data), else
    the embedded mnist-mini. `extra` overrides any of it ("sweep.methods": [...], "train.epochs": 2, ...)."""
    overrides: dict[str, Any] = {"model": "mlp", "data.train_size": train_size, "data.test_size": test_size,
                                 "train.epochs": 1, "surrogate.epochs": 1, "sweep.score_epochs": [1]}
    if data_dir is not None:
        overrides.update({"data.dataset": "mnist", "data.data_dir": str(data_dir)})
    overrides.update(extra)
    return overrides


def as_set_args(overrides: dict[str, Any]) -> list[str]:
    """`--set key=value` arguments for overrides (values as JSON, which TOML reads too)."""
    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


def cli(args: list[str], **kwargs: Any):
    """The `prunelab` command in this process (a subprocess costs seconds of imports on a busy 2-core machine);
    click's Result: exit_code, stdout, stderr, exception."""
    from click.testing import CliRunner

    from engine.cli import main

    return CliRunner().invoke(main, args, **kwargs)
