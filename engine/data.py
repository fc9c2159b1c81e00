"""Datasets: one registry, loaders for MNIST idx files, CIFAR-10 batches and npz,
and the on-device representation every other module uses.

Images live on the compute device as uint8 NCHW tensors. Normalisation and
augmentation run batched on the device (`Dataset.prepare`), so the training
loop never touches per-sample Python.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DataError, UnknownNameError

ASSETS = Path(__file__).resolve().parent / "assets"

MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
MNIST_STATS = ((0.1307,), (0.3081,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


# ---------------------------------------------------------------- the data set
@dataclass
class Dataset:
    """A classification data set with both splits on one device."""

    name: str
    x_train: torch.Tensor  # uint8 (N, C, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"  # "none" or "crop_flip"
    source: str = ""  # where it was read from, for messages and MLflow
    train_index: np.ndarray | None = None  # positions in the full source data, if subset
    _norm: dict = field(default_factory=dict, repr=False)
    _digest: str | None = field(default=None, repr=False)  # same content, same digest: computed once

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def __len__(self) -> int:
        return len(self.y_train)

    def to(self, device: torch.device | str) -> "Dataset":
        device = torch.device(device)
        if device == self.device:
            return self
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        copy = self.replace(**moved)
        copy._digest = self._digest  # the same bytes on another device
        return copy

    def replace(self, **changes) -> "Dataset":
        """A copy with some fields changed; derived state (normalisation constants, digest) is recomputed."""
        return Dataset(**{**self.__dict__, **changes, "_norm": {}, "_digest": None})

    def normalize(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 images to normalised floats, batched on the tensor's device."""
        key = (x.device, dtype)
        if key not in self._norm:
            mean = torch.tensor(self.mean, device=x.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
            std = torch.tensor(self.std, device=x.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
            self._norm[key] = (mean, 1.0 / std)
        mean, inv_std = self._norm[key]
        return (x.to(dtype) - mean) * inv_std

    def augment_batch(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The data set's training augmentation on a uint8 batch, on its device."""
        if self.augment == "crop_flip":
            return random_crop_flip(x, generator, pad=4)
        return x

    def digest(self) -> str:
        """A content hash of the training and test data, for the cache and MLflow (once per data set)."""
        if self._digest is None:
            h = hashlib.sha256()
            for t in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def subset(self, train_size: int | None = None, test_size: int | None = None) -> "Dataset":
        """A class-stratified subset: the first n/C samples of each class, in order."""
        x_tr, y_tr, x_te, y_te = self.x_train, self.y_train, self.x_test, self.y_test
        index = self.train_index if self.train_index is not None else np.arange(len(y_tr))
        if train_size is not None and train_size < len(y_tr):
            keep = stratified_head(y_tr.cpu().numpy(), train_size, self.num_classes)
            x_tr, y_tr, index = x_tr[keep], y_tr[keep], index[keep]
        if test_size is not None and test_size < len(y_te):
            keep = stratified_head(y_te.cpu().numpy(), test_size, self.num_classes)
            x_te, y_te = x_te[keep], y_te[keep]
        return self.replace(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, train_index=index)


def stratified_head(labels: np.ndarray, size: int, num_classes: int) -> np.ndarray:
    """Indices of the first size/C samples of each class (the remainder to the lowest classes)."""
    if size < num_classes:
        raise DataError(f"a subset of {size} samples cannot hold all {num_classes} classes; ask for at least {num_classes}")
    base, extra = divmod(size, num_classes)
    picks = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        picks.append(members[: base + (1 if c < extra else 0)])
    return np.sort(np.concatenate(picks))


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, for a whole batch at once."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols.view(n, 1, 1, w)]


# ---------------------------------------------------------------- file readers
def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (gzip or plain): MNIST's format."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is damaged or truncated, fetch it again") from None
    if len(data) < 4:
        raise DataError(f"{path}: truncated idx file ({len(data)} bytes, no header)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(
            f"{path}: wrong idx magic 0x{int.from_bytes(data[:4], 'big'):08x}; expected 0x00000801 (labels) "
            "or 0x00000803 (images): this is not an MNIST idx file"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header < expected:
        raise DataError(f"{path}: truncated idx file: header promises {expected} bytes of data, found {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def _find_mnist_file(raw: Path, stem: str) -> Path:
    for candidate in (raw / f"{stem}.gz", raw / stem):
        if candidate.exists():
            return candidate
    raise DataError(f"{raw / stem}[.gz]: file not found; --data-dir must hold torchvision's layout DIR/MNIST/raw/")


def load_mnist_arrays(root: Path) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"
    return {key: read_idx(_find_mnist_file(raw, stem)) for key, stem in MNIST_FILES.items()}


def load_cifar10_arrays(root: Path) -> dict[str, np.ndarray]:
    """Read CIFAR-10's python batches directly (no `filenames` key needed)."""
    folder = root / "cifar-10-batches-py"
    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    out: dict[str, np.ndarray] = {}
    for split, names in parts.items():
        xs, ys = [], []
        for name in names:
            path = folder / name
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
            except FileNotFoundError:
                raise DataError(f"{path}: file not found; --data-dir must hold DIR/cifar-10-batches-py/") from None
            except (pickle.UnpicklingError, EOFError, ValueError) as exc:
                raise DataError(f"{path}: not a CIFAR-10 python batch ({exc}); fetch it again") from None
            if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
                raise DataError(f"{path}: a CIFAR-10 batch needs the keys b'data' and b'labels'")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise DataError(f"{path}: b'data' has shape {data.shape}; expected (N, 3072)")
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        out[f"x_{split}"], out[f"y_{split}"] = np.concatenate(xs), np.concatenate(ys)
    return out


def load_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path}: npz is missing the key(s) {', '.join(missing)}; it needs {', '.join(NPZ_KEYS)}")
            return {k: f[k] for k in NPZ_KEYS}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def to_nchw(x: np.ndarray, source: str, key: str) -> np.ndarray:
    """Accept NHW, NHWC or NCHW uint8 images and return NCHW."""
    if x.dtype != np.uint8:
        raise DataError(f"{source}: {key} has dtype {x.dtype}; images must be uint8 (0-255)")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
            return x
        if x.shape[3] in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if x.shape[1] in (1, 3):
            return x
    raise DataError(f"{source}: {key} has shape {x.shape}; expected NHW, NHWC or NCHW with 1 or 3 channels")


def check_arrays(arrays: dict[str, np.ndarray], source: str, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Validate shapes, lengths and label ranges; return NCHW images and int64 labels."""
    out = {}
    for split in ("train", "test"):
        x = to_nchw(np.asarray(arrays[f"x_{split}"]), source, f"x_{split}")
        y = np.asarray(arrays[f"y_{split}"])
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: y_{split} must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{source}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels; they must match")
        if len(y) == 0:
            raise DataError(f"{source}: the {split} split is empty")
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.int64)
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise DataError(f"{source}: train images {out['x_train'].shape[1:]} and test images {out['x_test'].shape[1:]} differ in shape")
    classes = num_classes or int(max(out["y_train"].max(), out["y_test"].max())) + 1
    for split in ("train", "test"):
        y = out[f"y_{split}"]
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"{source}: y_{split} has labels out of range [{y.min()}, {y.max()}]; expected 0..{classes - 1}")
    return out


def pixel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in 0..1) of NCHW uint8 images, for data without known stats."""
    x = x.astype(np.float32) / 255.0
    return tuple(x.mean(axis=(0, 2, 3)).tolist()), tuple(np.maximum(x.std(axis=(0, 2, 3)), 1e-3).tolist())


# ---------------------------------------------------------------- the registry
def default_data_root() -> Path:
    """Where downloads go when no --data-dir is given: $PRUNELAB_DATA or the user's cache."""
    env = os.environ.get("PRUNELAB_DATA")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "prunelab" / "data"


def _download(kind: str, root: Path) -> None:
    import torchvision  # lazy: only needed to download

    root.mkdir(parents=True, exist_ok=True)
    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[kind]
    try:
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"could not download {kind} into {root} ({exc}); pass --data-dir with a local copy "
            f"(torchvision's layout) or set PRUNELAB_DATA"
        ) from None


def _mnist(data_dir: Path | None) -> dict[str, np.ndarray]:
    if data_dir is None:
        data_dir = default_data_root()
        if not (data_dir / "MNIST" / "raw").exists():
            _download("mnist", data_dir)
    return load_mnist_arrays(Path(data_dir))


def _cifar10(data_dir: Path | None) -> dict[str, np.ndarray]:
    if data_dir is None:
        data_dir = default_data_root()
        if not (data_dir / "cifar-10-batches-py").exists():
            _download("cifar10", data_dir)
    return load_cifar10_arrays(Path(data_dir))


def _mnist_mini(data_dir: Path | None) -> dict[str, np.ndarray]:
    return load_npz_arrays(ASSETS / "mnist-mini.npz")


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one named data set, and how to treat it."""

    name: str
    load: Callable[[Path | None], dict[str, np.ndarray]]
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None
    classes: list[str]
    augment: str
    description: str


DATASETS: dict[str, DatasetSpec] = {
    "mnist-mini": DatasetSpec("mnist-mini", _mnist_mini, MNIST_STATS, [str(i) for i in range(10)], "none",
                              "embedded: 10000 train / 2000 test real MNIST digits (1000/200 per class)"),
    "mnist": DatasetSpec("mnist", _mnist, MNIST_STATS, [str(i) for i in range(10)], "none",
                         "MNIST, 60000 train / 10000 test (idx files, gzip or plain)"),
    "cifar10": DatasetSpec("cifar10", _cifar10, CIFAR10_STATS, CIFAR10_CLASSES, "crop_flip",
                           "CIFAR-10, 50000 train / 10000 test (python batches)"),
}
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


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    train_size: int | None = None,
    test_size: int | None = None,
) -> Dataset:
    """Load a data set by name (or `npz:PATH`) onto `device`, optionally a stratified subset.

    Loaded arrays are kept for the life of the process, so a sweep reads its files once.
    """
    check_dataset_name(name)
    data_dir = Path(data_dir).expanduser() if data_dir else None
    key = (name, str(data_dir))
    if key not in _CACHE:
        _CACHE[key] = _read(name, data_dir)
    ds = _CACHE[key]
    if train_size is not None or test_size is not None:
        ds = ds.subset(train_size, test_size)
    return ds.to(device)


def _read(name: str, data_dir: Path | None) -> Dataset:
    if name.startswith(NPZ_PREFIX):
        path = Path(name[len(NPZ_PREFIX):]).expanduser()
        arrays = check_arrays(load_npz_arrays(path), str(path))
        num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
        spec = DatasetSpec(name, lambda _d: arrays, pixel_stats(arrays["x_train"]),
                           [str(i) for i in range(num_classes)], "none", str(path))
        source = str(path)
    else:
        spec = DATASETS[name]
        source = str(data_dir) if data_dir else ("package asset" if name == "mnist-mini" else str(default_data_root()))
        arrays = check_arrays(spec.load(data_dir), f"{name} ({source})", len(spec.classes))
    return Dataset(
        name=name,
        x_train=torch.from_numpy(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]),
        classes=list(spec.classes),
        mean=tuple(spec.stats[0]),
        std=tuple(spec.stats[1]),
        augment=spec.augment,
        source=source,
    )


def from_arrays(x_train, y_train, x_test, y_test, name: str = "arrays", augment: str = "none") -> Dataset:
    """A Dataset from a user's own arrays or tensors (uint8 images, integer labels)."""
    def as_np(a):
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    arrays = check_arrays({"x_train": as_np(x_train), "y_train": as_np(y_train),
                           "x_test": as_np(x_test), "y_test": as_np(y_test)}, name)
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    mean, std = pixel_stats(arrays["x_train"])
    return Dataset(
        name=name,
        x_train=torch.from_numpy(arrays["x_train"]), y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]), y_test=torch.from_numpy(arrays["y_test"]),
        classes=[str(i) for i in range(num_classes)],
        mean=mean, std=std, augment=augment, source=name,
    )
