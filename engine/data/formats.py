"""On-disk formats, read into numpy: MNIST's idx files, CIFAR-10's python batches, npz, and the checks.

Pure numpy (no torch), so the data set registry and the config validator stay light.
Every reader turns a bad file into one DataError line naming the file and the fix.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

ASSETS = Path(__file__).resolve().parent.parent / "assets"

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


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (gzip or plain): MNIST's format."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a damaged deflate stream
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
    raise DataError(f"{raw / stem}[.gz]: file not found; --data-dir must hold torchvision's layout "
                    f"DIR/{raw.parent.name}/raw/")


def load_mnist_arrays(root: Path, folder: str = "MNIST") -> dict[str, np.ndarray]:
    """MNIST's idx files; `folder` is torchvision's name for the set (MNIST, FashionMNIST, KMNIST)."""
    raw = root / folder / "raw"
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
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one array, not the four an npz needs
            raise DataError(f"{path}: a single array (.npy), not an .npz; save the four arrays with "
                            f"np.savez(path, {', '.join(k + '=...' for k in NPZ_KEYS)})")
        with loaded as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path}: npz is missing the key(s) {', '.join(missing)}; it needs {', '.join(NPZ_KEYS)}")
            out = {k: f[k] for k in NPZ_KEYS}
            if "classes" in f.files:  # optional: the class names, label order (shown wherever labels are)
                out["classes"] = np.asarray(f["classes"]).astype(str)
            return out
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated, bit-flipped
        raise DataError(f"{path}: not a readable .npz file ({exc}); the file is damaged, write it again") from None


def to_nchw(x: np.ndarray, source: str, key: str) -> np.ndarray:
    """Accept NHW, NHWC or NCHW uint8 images and return NCHW."""
    if x.dtype != np.uint8:
        raise DataError(f"{source}: {key} has dtype {x.dtype}; images must be uint8 (0-255)")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[3] in (1, 3):
            raise DataError(f"{source}: {key} has shape {x.shape}, ambiguous: channels could be axis 1 or axis 3; "
                            "store the images as NCHW or NHWC with height and width above 3")
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
    sets = torchvision.datasets
    cls = {"mnist": sets.MNIST, "cifar10": sets.CIFAR10, "fashion-mnist": sets.FashionMNIST, "kmnist": sets.KMNIST,
           "cifar100": sets.CIFAR100, "svhn": sets.SVHN, "svhn-extra": sets.SVHN}[kind]
    try:
        if kind.startswith("svhn"):  # SVHN names its splits; `extra` (1.3 GB) only when asked for
            for split in (("extra",) if kind == "svhn-extra" else ("train", "test")):
                cls(str(root), split=split, download=True)
            return
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError/HTTPError are OSErrors; a bad checksum is a RuntimeError
        raise DataError(
            f"could not download {kind} into {root} ({exc}); pass --data-dir with a local copy "
            f"(torchvision's layout) or set PRUNELAB_DATA"
        ) from None


def read_mnist(data_dir: Path | None) -> dict[str, np.ndarray]:
    if data_dir is None:
        data_dir = default_data_root()
        if not (data_dir / "MNIST" / "raw").exists():
            _download("mnist", data_dir)
    return load_mnist_arrays(Path(data_dir))


def read_cifar10(data_dir: Path | None) -> dict[str, np.ndarray]:
    if data_dir is None:
        data_dir = default_data_root()
        if not (data_dir / "cifar-10-batches-py").exists():
            _download("cifar10", data_dir)
    return load_cifar10_arrays(Path(data_dir))


def read_mnist_mini(data_dir: Path | None) -> dict[str, np.ndarray]:
    return load_npz_arrays(ASSETS / "mnist-mini.npz")
