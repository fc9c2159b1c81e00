"""The data set registry: a name -> how to read it (numpy) and how to treat it (stats, classes, augmentation).

Imports no torch: the config validator and the TUI's form read it.
`npz:PATH` names any npz file in prunelab's format.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError, UnknownNameError
from ..registry import Registry
from .formats import CIFAR10_CLASSES, CIFAR10_STATS, MNIST_STATS, read_cifar10, read_mnist, read_mnist_mini


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one named data set, and how to treat it."""

    name: str
    load: Callable[[Path | None], dict[str, np.ndarray]]
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None
    classes: list[str]
    augment: str
    description: str


DATASETS: Registry[DatasetSpec] = Registry("dataset")
for _spec in (
    DatasetSpec("mnist-mini", read_mnist_mini, MNIST_STATS, [str(i) for i in range(10)], "none",
                "embedded: 10000 train / 2000 test real MNIST digits (1000/200 per class)"),
    DatasetSpec("mnist", read_mnist, MNIST_STATS, [str(i) for i in range(10)], "none",
                "MNIST, 60000 train / 10000 test (idx files, gzip or plain)"),
    DatasetSpec("cifar10", read_cifar10, CIFAR10_STATS, CIFAR10_CLASSES, "crop_flip",
                "CIFAR-10, 50000 train / 10000 test (python batches)"),
):
    DATASETS.add(_spec.name, _spec)
NPZ_PREFIX = "npz:"


def dataset_names() -> list[str]:
    return list(DATASETS) + [NPZ_PREFIX + "PATH"]


def check_dataset_name(name: str) -> None:
    if name.startswith(NPZ_PREFIX):
        if not name[len(NPZ_PREFIX):]:
            raise DataError("dataset 'npz:' needs a path, as in npz:/data/mine.npz")
        return
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, dataset_names())


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a named data set; it is then valid in configs, the CLI and the TUI's form."""
    return DATASETS.add(spec.name, spec)
