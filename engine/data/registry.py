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
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, UnknownNameError
from ..options import Option, choice, flag
from ..registry import Registry
from .classic import (
    CIFAR100_STATS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_STATS,
    KMNIST_CLASSES,
    KMNIST_STATS,
    SVHN_STATS,
    probe_fashion_mnist,
    probe_kmnist,
    probe_mnist,
    read_cifar100,
    read_fashion_mnist,
    read_kmnist,
    read_svhn,
)
from .folders import FOLDER_OPTIONS, TINYIMAGENET_STATS, read_folder, read_tinyimagenet
from .formats import (
    ASSETS,
    CIFAR10_CLASSES,
    CIFAR10_STATS,
    MNIST_STATS,
    DataFacts,
    check_layout,
    probe_npz_arrays,
    read_cifar10,
    read_mnist,
    read_mnist_mini,
)


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one named data set, and how to treat it."""

    name: str
    load: Callable[[Path | None], dict[str, np.ndarray]]
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None
    classes: list[str]
    augment: str
    description: str
    # option name -> Option (default, help, check) or a bare default (unchecked), passed to `load` as keywords
    options: dict[str, Option | object] = field(default_factory=dict)
    # `probe(data_dir, **options)`: the arrays `load` would give, the images as ArrayHeaders (shapes) where that
    # is cheaper, for the pre-run check; None: the check reads the data set through `load`
    probe: Callable[..., dict[str, Any]] | None = None

    def option_specs(self) -> dict[str, Option]:
        return {key: spec if isinstance(spec, Option) else Option(spec, "") for key, spec in self.options.items()}


DATASETS: Registry[DatasetSpec] = Registry("dataset")
for _spec in (
    DatasetSpec("mnist-mini", read_mnist_mini, MNIST_STATS, [str(i) for i in range(10)], "none",
                "embedded: 10000 train / 2000 test real MNIST digits (1000/200 per class)",
                probe=lambda _d: probe_npz_arrays(ASSETS / "mnist-mini.npz", verify=False)),  # shipped: headers
    DatasetSpec("mnist", read_mnist, MNIST_STATS, [str(i) for i in range(10)], "none",
                "MNIST, 60000 train / 10000 test (idx files, gzip or plain)", probe=probe_mnist),
    DatasetSpec("cifar10", read_cifar10, CIFAR10_STATS, CIFAR10_CLASSES, "crop_flip",
                "CIFAR-10, 50000 train / 10000 test (python batches)"),
    DatasetSpec("fashion-mnist", read_fashion_mnist, FASHION_MNIST_STATS, FASHION_MNIST_CLASSES, "none",
                "Fashion-MNIST (Xiao et al. 2017), 60000 / 10000, idx files in FashionMNIST/raw/",
                probe=probe_fashion_mnist),
    DatasetSpec("kmnist", read_kmnist, KMNIST_STATS, KMNIST_CLASSES, "none",
                "Kuzushiji-MNIST (Clanuwat et al. 2018), 60000 / 10000, idx files in KMNIST/raw/", probe=probe_kmnist),
    DatasetSpec("cifar100", read_cifar100, CIFAR100_STATS, [str(i) for i in range(100)], "crop_flip",
                "CIFAR-100 (Krizhevsky 2009), 50000 / 10000, cifar-100-python/ pickles; labels = fine|coarse",
                {"labels": choice("fine", "fine (100 classes) or coarse (20 superclasses)", ("fine", "coarse"))}),
    DatasetSpec("svhn", read_svhn, SVHN_STATS, [str(i) for i in range(10)], "none",
                "SVHN (Netzer et al. 2011), 73257 / 26032, train_32x32.mat, test_32x32.mat; extra = true adds "
                "extra_32x32.mat", {"extra": flag(False, "add the 531131 extra images to training")}),
    DatasetSpec("tinyimagenet", read_tinyimagenet, TINYIMAGENET_STATS, [str(i) for i in range(200)], "crop_flip",
                "Tiny-ImageNet-200 (Le and Yang 2015), 100000 / 10000 (val) 64x64, tiny-imagenet-200/ folders",
                {"skip_bad": flag(False, "skip unreadable images instead of refusing the set")}),
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


def option_specs(name: str) -> dict[str, Option]:
    """The options a data set takes: each with its default, help and check."""
    if name.startswith(FOLDER_PREFIX):
        return dict(FOLDER_OPTIONS)
    if name.startswith(NPZ_PREFIX):
        return {}
    return DATASETS.check(name).option_specs()


def dataset_options(name: str) -> dict[str, object]:
    """The options a data set takes, with their defaults."""
    return {key: spec.default for key, spec in option_specs(name).items()}


def check_dataset_options(name: str, options: dict[str, object]) -> None:
    """Each option one the data set takes, of the type and range it takes (a folder's size = "abc" fails here,
    not in the reader)."""
    known = option_specs(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"data.options: dataset {name!r} takes no option(s) {', '.join(unknown)}; "
                          f"it takes: {', '.join(known) or 'none'}")
    for key, value in options.items():
        problem = known[key].problem(value, key)
        if problem is not None:
            raise ConfigError(f"data.options.{key} = {value!r}: dataset {name!r} takes {problem}")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a named data set; it is then valid in configs, the CLI and the TUI's form."""
    return DATASETS.add(spec.name, spec)


_PROBED: dict[tuple, DataFacts] = {}  # npz files probed in this process, by path, options and (size, mtime)


def probe_dataset(name: str, data_dir: str | Path | None = None, options: dict | None = None) -> DataFacts:
    """What a run needs to know of a data set (split sizes, image shape, classes), read as cheaply as its format
    allows: npz and idx headers with each file read through in chunks (CRC, length) but not kept, an image
    folder's structure and its decoded cache's header; other sets through their reader. Raises the DataError a
    load would raise, or NotFetched when the set is not on disk yet and fetching is off (`formats.fetching`)."""
    check_dataset_name(name)
    options = dict(options or {})
    check_dataset_options(name, options)
    if name.startswith(NPZ_PREFIX):
        path = Path(name[len(NPZ_PREFIX):]).expanduser()
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        except OSError:
            key = None  # missing: the probe says so
        if key is None or key not in _PROBED:
            facts = check_layout(probe_npz_arrays(path), str(path))
            if key is not None:
                _PROBED[key] = facts
            return facts
        return _PROBED[key]
    if name.startswith(FOLDER_PREFIX):
        path = Path(name[len(FOLDER_PREFIX):]).expanduser()
        raw = read_folder(path, headers=True, **options)
        return check_layout(raw, str(path), len(raw["classes"]))
    spec = DATASETS[name]
    folder = Path(data_dir).expanduser() if data_dir else None
    raw = (spec.probe or spec.load)(folder, **options)
    classes = len(raw["classes"]) if "classes" in raw else len(spec.classes)
    return check_layout(raw, f"{name} ({folder or 'default data folder'})", classes)
