"""On-disk formats, read into numpy: MNIST's idx files, CIFAR-10's python batches, npz, and the checks.

Pure numpy (no torch), so the data set registry and the config validator stay light.
Every reader turns a bad file into one DataError line naming the file and the fix.
"""
from __future__ import annotations

import contextlib
import contextvars
import gzip
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


IDX_DIMS = {1: "labels", 3: "images"}
CHUNK = 1 << 20  # bytes read at a time: a file's size never decides how much is read at once


def _idx_kind(key: str) -> int:
    """The idx dimensionality an MNIST key holds: 3 for images (x_…), 1 for labels (y_…)."""
    return 3 if key.startswith("x") else 1


def _idx_header(f, path: Path, ndim: int | None) -> tuple[int, ...]:
    """The dims from an idx header; DataError naming the file when the magic is not the one expected."""
    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: truncated idx file ({len(head)} bytes, no header)")
    zero, dtype_code, dims = struct.unpack(">HBB", head)
    if zero != 0 or dtype_code != 0x08 or dims not in IDX_DIMS:
        raise DataError(
            f"{path}: wrong idx magic 0x{int.from_bytes(head, 'big'):08x}; expected 0x00000801 (labels) "
            "or 0x00000803 (images): this is not an MNIST idx file"
        )
    if ndim is not None and dims != ndim:
        raise DataError(f"{path}: idx magic 0x{int.from_bytes(head, 'big'):08x} marks {IDX_DIMS[dims]}, but this "
                        f"file must hold {IDX_DIMS[ndim]} (0x0000080{ndim}); the files are swapped or misnamed")
    raw = f.read(4 * dims)
    if len(raw) < 4 * dims:
        raise DataError(f"{path}: truncated idx header")
    return struct.unpack(f">{dims}I", raw)


def _read_idx_data(path: Path, ndim: int | None, keep: bool) -> tuple[tuple[int, ...], bytearray | None]:
    """The header's dims and (with `keep`) exactly the bytes it promises, read in chunks: a file that holds fewer
    bytes is truncated, one that holds more is refused before the rest is inflated (memory stays bounded by what
    the header promises). Reading to the end lets gzip check its CRC."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            dims = _idx_header(f, path, ndim)
            expected = int(np.prod(dims, dtype=np.int64))
            data, count = (bytearray() if keep else None), 0
            while count < expected:
                chunk = f.read(min(CHUNK, expected - count))
                if not chunk:
                    raise DataError(f"{path}: truncated idx file: header promises {expected} bytes of data, "
                                    f"found {count}")
                count += len(chunk)
                if data is not None:
                    data += chunk
            if f.read(1):
                raise DataError(f"{path}: holds more than the {expected} bytes its header promises (shape "
                                f"{'x'.join(map(str, dims))}); the file is damaged or not an MNIST idx file, fetch it "
                                "again")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a damaged deflate stream; OSError: a bad CRC
        raise DataError(f"{path}: cannot read ({exc}); the file is damaged or truncated, fetch it again") from None
    return dims, data


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an idx file (gzip or plain): MNIST's format. `ndim` (1 labels, 3 images) is the kind it must hold."""
    dims, data = _read_idx_data(Path(path), ndim, keep=True)
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)  # a bytearray: the array is writable, no copy


def scan_idx(path: str | Path, ndim: int | None = None) -> tuple[int, ...]:
    """An idx file's dims, the whole file read (CRC, length) but not kept: the pre-run check of images."""
    return _read_idx_data(Path(path), ndim, keep=False)[0]


def _find_mnist_file(raw: Path, stem: str) -> Path:
    for candidate in (raw / f"{stem}.gz", raw / stem):
        if candidate.exists():
            return candidate
    raise DataError(f"{raw / stem}[.gz]: file not found; --data-dir must hold torchvision's layout "
                    f"DIR/{raw.parent.name}/raw/")


def load_mnist_arrays(root: Path, folder: str = "MNIST") -> dict[str, np.ndarray]:
    """MNIST's idx files; `folder` is torchvision's name for the set (MNIST, FashionMNIST, KMNIST)."""
    raw = root / folder / "raw"
    return {key: read_idx(_find_mnist_file(raw, stem), _idx_kind(key)) for key, stem in MNIST_FILES.items()}


def probe_mnist_arrays(root: Path, folder: str = "MNIST") -> dict[str, Any]:
    """What `load_mnist_arrays` would return, as shapes for the images (each file read through, not kept) and
    the labels themselves: the pre-run check."""
    raw = root / folder / "raw"
    out: dict[str, Any] = {}
    for key, stem in MNIST_FILES.items():
        path = _find_mnist_file(raw, stem)
        out[key] = ArrayHeader(scan_idx(path, 3), np.dtype(np.uint8)) if key.startswith("x") else read_idx(path, 1)
    return out


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


@dataclass(frozen=True)
class ArrayHeader:
    """An array's shape and dtype, read from its header without its data (what the pre-run check needs)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0


def _npz_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str) -> ArrayHeader:
    """A member's .npy header, checked against the member's size (a header that promises more than the member
    holds would have numpy allocate it all before finding out) and for Python objects (never loaded)."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: {key} holds Python objects; save plain numeric arrays (np.savez)")
    promised = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if promised != info.file_size - offset:
        raise DataError(f"{path}: {key} is damaged: its header promises {shape} {dtype} ({promised} bytes) but "
                        f"it holds {info.file_size - offset}; write the file again")
    return ArrayHeader(tuple(shape), dtype)


def _npz_open(path: Path, read, keys: tuple[str, ...] = NPZ_KEYS, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """`read(zipfile, {key: ZipInfo})` on the npz at `path`, its `keys` checked (and those of `optional` it holds);
    every way a file can be bad is one DataError naming it."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
            missing = [k for k in keys if k not in members]
            if missing:
                raise DataError(f"{path}: npz is missing the key(s) {', '.join(missing)}; it needs {', '.join(keys)}")
            return read(zf, {k: members[k] for k in (*keys, *(o for o in optional if o in members))})
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an .npz file; for a folder of images use folder:PATH") from None
    except zipfile.BadZipFile as exc:
        if _is_npy(path):  # a .npy: one array, not the four an npz needs
            raise DataError(f"{path}: a single array (.npy), not an .npz; save the four arrays with "
                            f"np.savez(path, {', '.join(k + '=...' for k in keys)})") from None
        raise DataError(f"{path}: not a readable .npz file ({exc}); the file is damaged, write it again") from None
    except (ValueError, OSError, EOFError, zlib.error, NotImplementedError) as exc:  # truncated, bit-flipped
        raise DataError(f"{path}: not a readable .npz file ({exc}); the file is damaged, write it again") from None


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def _npz_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str) -> np.ndarray:
    _npz_header(zf, info, path, key)
    with zf.open(info) as f:
        array = np.lib.format.read_array(f, allow_pickle=False)
        f.read()  # to the end (nothing is left: the header matched the size): zipfile checks the member's CRC
    return array


def load_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an npz in prunelab's format, and its optional `classes` (the class names in label order,
    shown wherever labels are)."""
    out = _npz_open(Path(path), lambda zf, members: {k: _npz_array(zf, info, path, k) for k, info in members.items()},
                    optional=("classes",))
    if "classes" in out:
        out["classes"] = np.asarray(out["classes"]).astype(str)
    return out


def probe_npz_arrays(path: Path, keys: tuple[str, ...] = NPZ_KEYS, verify: bool = True) -> dict[str, Any]:
    """What `load_npz_arrays` would return, as headers for the images and the labels themselves (keys y…): the
    pre-run check. With `verify` each image member is read through in chunks (its CRC checked), not kept."""
    def probe(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, info in members.items():
            if key.startswith("y"):
                out[key] = _npz_array(zf, info, path, key)
                continue
            out[key] = _npz_header(zf, info, path, key)
            if verify:
                with zf.open(info) as f:
                    while f.read(CHUNK):
                        pass
        return out

    return _npz_open(Path(path), probe, keys)


def nchw_shape(shape: tuple[int, ...], source: str, key: str) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """The NCHW shape of NHW, NHWC or NCHW images, and the axes to transpose them by (None: none)."""
    if len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2]), None
    if len(shape) == 4:
        if shape[1] in (1, 3) and shape[3] in (1, 3):
            raise DataError(f"{source}: {key} has shape {tuple(shape)}, ambiguous: channels could be axis 1 or axis "
                            "3; store the images as NCHW or NHWC with height and width above 3")
        if shape[1] in (1, 3):
            return tuple(shape), None
        if shape[3] in (1, 3):
            return (shape[0], shape[3], shape[1], shape[2]), (0, 3, 1, 2)
    raise DataError(f"{source}: {key} has shape {tuple(shape)}; expected NHW, NHWC or NCHW with 1 or 3 channels")


def to_nchw(x: np.ndarray, source: str, key: str) -> np.ndarray:
    """Accept NHW, NHWC or NCHW uint8 images and return NCHW."""
    if x.dtype != np.uint8:
        raise DataError(f"{source}: {key} has dtype {x.dtype}; images must be uint8 (0-255)")
    _, axes = nchw_shape(x.shape, source, key)
    if x.ndim == 3:
        return x[:, None]
    return np.ascontiguousarray(x.transpose(axes)) if axes else x


MAX_CLASSES = 100_000  # a label above it is a damaged file or a mistake, not a class: the head would not fit


@dataclass(frozen=True)
class DataFacts:
    """What a run needs to know of a data set before it exists: split sizes, image shape (C, H, W; None when
    it is known only once decoded), the class count, and what could not be checked yet."""

    n_train: int
    n_test: int
    shape: tuple[int, int, int] | None
    classes: int
    note: str = ""


def check_layout(arrays: dict[str, Any], source: str, num_classes: int | None = None) -> DataFacts:
    """Shapes, lengths and label ranges of arrays (or ArrayHeaders for the images): every check of
    `check_arrays` that needs no pixel."""
    shapes = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], np.asarray(arrays[f"y_{split}"])
        if x.dtype != np.uint8:
            raise DataError(f"{source}: x_{split} has dtype {x.dtype}; images must be uint8 (0-255)")
        shapes[split] = nchw_shape(tuple(x.shape), source, f"x_{split}")[0]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: y_{split} must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{source}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels; they must match")
        if len(y) == 0:
            raise DataError(f"{source}: the {split} split is empty")
    if shapes["train"][1:] != shapes["test"][1:]:
        raise DataError(f"{source}: train images {shapes['train'][1:]} and test images {shapes['test'][1:]} differ in shape")
    top = max(int(np.max(arrays["y_train"])), int(np.max(arrays["y_test"])))
    if num_classes is None and top >= MAX_CLASSES:
        raise DataError(f"{source}: a label is {top}; labels are 0..C-1 with at most {MAX_CLASSES} classes: "
                        "number the classes from 0")
    classes = num_classes or top + 1
    for split in ("train", "test"):
        y = np.asarray(arrays[f"y_{split}"])
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"{source}: y_{split} has labels out of range [{y.min()}, {y.max()}]; expected 0..{classes - 1}")
    return DataFacts(len(arrays["y_train"]), len(arrays["y_test"]), shapes["train"][1:], classes)


def check_arrays(arrays: dict[str, np.ndarray], source: str, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Validate shapes, lengths and label ranges; return NCHW images and int64 labels."""
    check_layout(arrays, source, num_classes)
    out = {}
    for split in ("train", "test"):
        out[f"x_{split}"] = to_nchw(np.asarray(arrays[f"x_{split}"]), source, f"x_{split}")
        out[f"y_{split}"] = np.asarray(arrays[f"y_{split}"]).astype(np.int64)
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


class NotFetched(DataError):
    """A data set that is not on disk yet (a download, or an image folder's first decoding) while fetching is off:
    the pre-run check of `config check` and the TUI's form says so and goes on; a run fetches it."""


_FETCH = contextvars.ContextVar("prunelab_fetch", default=True)


@contextlib.contextmanager
def fetching(allowed: bool) -> Iterator[None]:
    """Inside, downloads and first decodings happen (allowed) or raise NotFetched."""
    token = _FETCH.set(allowed)
    try:
        yield
    finally:
        _FETCH.reset(token)


def fetch_allowed() -> bool:
    return _FETCH.get()


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: its first line, and its last when it has several (torchvision's
    download errors list every mirror tried)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(exc).__name__
    return f"{lines[0].rstrip(':')} … {lines[-1]}"


def _download(kind: str, root: Path) -> None:
    if not fetch_allowed():
        raise NotFetched(f"{kind} is not in {root} yet; a run downloads it there (or pass --data-dir)")
    import torchvision  # lazy: only needed to download

    try:
        root.mkdir(parents=True, exist_ok=True)
        sets = torchvision.datasets
        cls = {"mnist": sets.MNIST, "cifar10": sets.CIFAR10, "fashion-mnist": sets.FashionMNIST,
               "kmnist": sets.KMNIST, "cifar100": sets.CIFAR100, "svhn": sets.SVHN, "svhn-extra": sets.SVHN}[kind]
        if kind.startswith("svhn"):  # SVHN names its splits; `extra` (1.3 GB) only when asked for
            for split in (("extra",) if kind == "svhn-extra" else ("train", "test")):
                cls(str(root), split=split, download=True)
            return
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError/HTTPError are OSErrors; a bad checksum is a RuntimeError
        raise DataError(
            f"could not download {kind} into {root} ({one_line(exc)}); pass --data-dir with a local copy "
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
