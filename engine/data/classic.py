"""The field's benchmark sets in torchvision's on-disk layouts, read into numpy: Fashion-MNIST, KMNIST, CIFAR-100, SVHN.

No torch (torchvision only to download, when no --data-dir is given). Every bad
file becomes one DataError naming the file and the fix.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError
from .formats import _download, default_data_root, load_mnist_arrays, probe_mnist_arrays

FASHION_MNIST_STATS = ((0.2860,), (0.3530,))
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
KMNIST_STATS = ((0.1918,), (0.3483,))
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))
CIFAR100_LABELS = ("fine", "coarse")


def _root(data_dir: Path | None, kind: str, marker: str) -> Path:
    """--data-dir as given, or the default root, downloaded into when `marker` is not there yet."""
    if data_dir is not None:
        return Path(data_dir)
    root = default_data_root()
    if not (root / marker).exists():
        _download(kind, root)
    return root


def read_fashion_mnist(data_dir: Path | None) -> dict[str, np.ndarray]:
    """Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): MNIST's idx files under DIR/FashionMNIST/raw/."""
    return load_mnist_arrays(_root(data_dir, "fashion-mnist", "FashionMNIST/raw"), "FashionMNIST")


def read_kmnist(data_dir: Path | None) -> dict[str, np.ndarray]:
    """Kuzushiji-MNIST (Clanuwat et al. 2018): MNIST's idx files under DIR/KMNIST/raw/."""
    return load_mnist_arrays(_root(data_dir, "kmnist", "KMNIST/raw"), "KMNIST")


def probe_mnist(data_dir: Path | None) -> dict:
    """MNIST's idx files as the pre-run check reads them: image shapes (each file read through) and labels."""
    return probe_mnist_arrays(_root(data_dir, "mnist", "MNIST/raw"), "MNIST")


def probe_fashion_mnist(data_dir: Path | None) -> dict:
    return probe_mnist_arrays(_root(data_dir, "fashion-mnist", "FashionMNIST/raw"), "FashionMNIST")


def probe_kmnist(data_dir: Path | None) -> dict:
    return probe_mnist_arrays(_root(data_dir, "kmnist", "KMNIST/raw"), "KMNIST")


def _unpickle(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; --data-dir must hold DIR/cifar-100-python/") from None
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as exc:
        raise DataError(f"{path}: not a {what} ({exc}); fetch it again") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a {what} (a pickled {type(batch).__name__}, not a dict); fetch it again")
    return batch


def read_cifar100(data_dir: Path | None, labels: str = "fine") -> dict[str, np.ndarray]:
    """CIFAR-100's python pickles (`cifar-100-python/train`, `test`, `meta`); `labels="coarse"`: the 20 superclasses."""
    if labels not in CIFAR100_LABELS:
        raise DataError(f"cifar100 option labels={labels!r}; choose 'fine' (100 classes) or 'coarse' (20 superclasses)")
    folder = _root(data_dir, "cifar100", "cifar-100-python") / "cifar-100-python"
    key = f"{labels}_labels".encode()
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        path = folder / split
        batch = _unpickle(path, "CIFAR-100 python pickle")
        missing = [k.decode() for k in (b"data", key) if k not in batch]
        if missing:
            raise DataError(f"{path}: missing the key(s) b'{', '.join(missing)}'; a CIFAR-100 pickle has b'data', "
                            "b'fine_labels' and b'coarse_labels'")
        data = np.asarray(batch[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: b'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072)")
        out[f"x_{split}"] = data.reshape(-1, 3, 32, 32)
        out[f"y_{split}"] = np.asarray(batch[key], dtype=np.int64)
    meta = _unpickle(folder / "meta", "CIFAR-100 meta pickle")
    names_key = f"{labels}_label_names".encode()
    if names_key not in meta:
        raise DataError(f"{folder / 'meta'}: missing the key b'{names_key.decode()}'; fetch cifar-100-python again")
    out["classes"] = np.asarray([n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]])
    return out


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    if not path.is_file():
        raise DataError(f"{path}: file not found; --data-dir must hold SVHN's {path.name} (torchvision's layout)")
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError, scipy.io.matlab.MatReadError) as exc:
        raise DataError(f"{path}: not a readable .mat file ({exc}); fetch it again") from None
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise DataError(f"{path}: missing the variable(s) {', '.join(missing)}; an SVHN .mat file has X and y")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X is {x.dtype} {x.shape}; expected uint8 (32, 32, 3, N)")
    if len(y) != x.shape[3]:
        raise DataError(f"{path}: X holds {x.shape[3]} images but y {len(y)} labels; they must match")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: labels out of range [{y.min()}, {y.max()}]; SVHN's are 1..10 (10 is the digit 0)")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), (y % 10).astype(np.int64)  # 10 -> 0, as torchvision


def read_svhn(data_dir: Path | None, extra: bool = False) -> dict[str, np.ndarray]:
    """SVHN cropped digits (`train_32x32.mat`, `test_32x32.mat`; with `extra=True` also `extra_32x32.mat` in training)."""
    root = _root(data_dir, "svhn", "train_32x32.mat")
    if extra and data_dir is None and not (root / "extra_32x32.mat").exists():
        _download("svhn-extra", root)
    x_train, y_train = _read_mat(root / "train_32x32.mat")
    if extra:
        x_extra, y_extra = _read_mat(root / "extra_32x32.mat")
        x_train, y_train = np.concatenate([x_train, x_extra]), np.concatenate([y_train, y_extra])
    x_test, y_test = _read_mat(root / "test_32x32.mat")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
