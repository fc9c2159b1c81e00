"""The data set registry: a name -> how to read it (numpy) and how to treat it (stats, classes, augmentation).

Imports no torch: the config validator and the TUI's form read it.
`npz:PATH` names any npz file in prunelab's format, `folder:PATH` any folder of images with one subfolder per
class. A reader may take options (`DatasetSpec.options`, set as `data.options` in a config) and may return its
class names as an extra array "classes".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, UnknownNameError
from ..registry import Registry
from .classic import (
    CIFAR100_STATS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_STATS,
    KMNIST_CLASSES,
    KMNIST_STATS,
    SVHN_STATS,
    read_cifar100,
    read_fashion_mnist,
    read_kmnist,
    read_svhn,
)
from .folders import FOLDER_OPTIONS, TINYIMAGENET_STATS, read_tinyimagenet
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
    options: dict[str, object] = field(default_factory=dict)  # option name -> default, passed to `load` as keywords


DATASETS: Registry[DatasetSpec] = Registry("dataset")
for _spec in (
    DatasetSpec("mnist-mini", read_mnist_mini, MNIST_STATS, [str(i) for i in range(10)], "none",
                "embedded: 10000 train / 2000 test real MNIST digits (1000/200 per class)"),
    DatasetSpec("mnist", read_mnist, MNIST_STATS, [str(i) for i in range(10)], "none",
                "MNIST, 60000 train / 10000 test (idx files, gzip or plain)"),
    DatasetSpec("cifar10", read_cifar10, CIFAR10_STATS, CIFAR10_CLASSES, "crop_flip",
                "CIFAR-10, 50000 train / 10000 test (python batches)"),
    DatasetSpec("fashion-mnist", read_fashion_mnist, FASHION_MNIST_STATS, FASHION_MNIST_CLASSES, "none",
                "Fashion-MNIST (Xiao et al. 2017), 60000 / 10000, idx files in FashionMNIST/raw/"),
    DatasetSpec("kmnist", read_kmnist, KMNIST_STATS, KMNIST_CLASSES, "none",
                "Kuzushiji-MNIST (Clanuwat et al. 2018), 60000 / 10000, idx files in KMNIST/raw/"),
    DatasetSpec("cifar100", read_cifar100, CIFAR100_STATS, [str(i) for i in range(100)], "crop_flip",
                "CIFAR-100 (Krizhevsky 2009), 50000 / 10000, cifar-100-python/ pickles; labels = fine|coarse",
                {"labels": "fine"}),
    DatasetSpec("svhn", read_svhn, SVHN_STATS, [str(i) for i in range(10)], "none",
                "SVHN (Netzer et al. 2011), 73257 / 26032, train_32x32.mat, test_32x32.mat; extra = true adds "
                "extra_32x32.mat", {"extra": False}),
    DatasetSpec("tinyimagenet", read_tinyimagenet, TINYIMAGENET_STATS, [str(i) for i in range(200)], "crop_flip",
                "Tiny-ImageNet-200 (Le and Yang 2015), 100000 / 10000 (val) 64x64, tiny-imagenet-200/ folders",
                {"skip_bad": False}),
):
    DATASETS.add(_spec.name, _spec)
NPZ_PREFIX = "npz:"
FOLDER_PREFIX = "folder:"


def dataset_names() -> list[str]:
    return list(DATASETS) + [NPZ_PREFIX + "PATH", FOLDER_PREFIX + "PATH"]


def check_dataset_name(name: str) -> None:
    for prefix, example in ((NPZ_PREFIX, "npz:/data/mine.npz"), (FOLDER_PREFIX, "folder:/data/images")):
        if name.startswith(prefix):
            if not name[len(prefix):]:
                raise DataError(f"dataset {prefix!r} needs a path, as in {example}")
            return
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, dataset_names())


def dataset_options(name: str) -> dict[str, object]:
    """The options a data set takes, with their defaults."""
    if name.startswith(FOLDER_PREFIX):
        return dict(FOLDER_OPTIONS)
    if name.startswith(NPZ_PREFIX):
        return {}
    return dict(DATASETS.check(name).options)


def check_dataset_options(name: str, options: dict[str, object]) -> None:
    known = dataset_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"data.options: dataset {name!r} takes no option(s) {', '.join(unknown)}; "
                          f"it takes: {', '.join(known) or 'none'}")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a named data set; it is then valid in configs, the CLI and the TUI's form."""
    return DATASETS.add(spec.name, spec)
