"""The on-device data set every other module uses, and `load_dataset` (by registry name) / `from_arrays`.

Images live on the compute device as uint8 NCHW tensors, or, when they exceed
the device-memory budget, in host memory, streamed batch by batch (placement.py);
`Dataset.batches` / `split_batches` hide which. Normalisation and augmentation run
batched on the device, so the training loop never touches per-sample Python.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..store.events import BatchProgress, EventCallback, LogLine, StageStarted, emit
from . import placement
from .folders import read_folder
from .formats import check_arrays, default_data_root, load_npz_arrays, pixel_stats
from .registry import DATASETS, FOLDER_PREFIX, NPZ_PREFIX, DatasetSpec, check_dataset_name, check_dataset_options


@dataclass
class Dataset:
    """A classification data set with both splits on one device (the images in host memory on the host path)."""

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
    compute_device: torch.device | None = None  # set when the images stay in host memory (the host path)
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
        """The compute device (where labels, batches and models are)."""
        return self.compute_device or self.x_train.device

    @property
    def streamed(self) -> bool:
        """True on the host path: the images stay in host memory and batches are copied to the device."""
        return self.compute_device is not None and self.x_train.device.type == "cpu"  # forced on a CPU too

    @property
    def data_path(self) -> str:
        """"device" or "host", for the tag prunelab.data_path."""
        return placement.HOST if self.streamed else placement.DEVICE

    def __len__(self) -> int:
        return len(self.y_train)

    def to(self, device: torch.device | str, budget_mb: float | None = None) -> Dataset:
        """On `device`: the images too when they fit `budget_mb` (placement.py), else in host memory."""
        device = torch.device(device)
        if device == self.device and budget_mb is None:
            return self
        nbytes = self.x_train.numel() + self.x_test.numel()
        on_device = placement.fits(nbytes, device, budget_mb)
        if device == self.device and on_device != self.streamed:
            return self
        labels = {k: getattr(self, k).to(device) for k in ("y_train", "y_test")}
        if on_device:
            images = {k: getattr(self, k).to(device) for k in ("x_train", "x_test")}
        else:
            images = {k: placement.to_host(getattr(self, k), device) for k in ("x_train", "x_test")}
        copy = self.replace(**images, **labels, compute_device=None if on_device else device)
        copy._digest = self._digest  # the same bytes on another device
        return copy

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """The uint8 training images at `idx` on the compute device (off the hot loop: it syncs on the host path)."""
        if not self.streamed:
            return self.x_train[idx]
        return self.x_train[idx.cpu()].to(self.device)

    def batches(self, order: torch.Tensor, batch_size: int,
                count: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices, uint8 images) on the device for the first `count` slices of `batch_size` of `order`."""
        count = -(-len(order) // batch_size) if count is None else count
        if self.streamed:
            return placement.host_batches(self.x_train, order, batch_size, count, self.device)
        return placement.device_batches(self.x_train, order, batch_size, count)

    def split_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels) of the "train" or "test" split in order, on the device."""
        x, y = (self.x_test, self.y_test) if split == "test" else (self.x_train, self.y_train)
        return placement.slice_batches(x, y, batch_size, self.device)

    def replace(self, **changes) -> Dataset:
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

    def subset(self, train_size: int | None = None, test_size: int | None = None) -> Dataset:
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


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    train_size: int | None = None,
    test_size: int | None = None,
    options: dict | None = None,
    device_budget_mb: float | None = None,
    on_event: EventCallback | None = None,
    fresh: bool = False,
) -> Dataset:
    """Load a data set by name (or `npz:PATH`, `folder:PATH`) onto `device`, optionally a stratified subset.

    `options` are the reader's (registry `DatasetSpec.options`, e.g. cifar100's labels).
    Loaded arrays are kept for the life of the process, so a sweep reads its files once (an npz file
    rewritten since is read again); `fresh` reads the files again whatever was kept, and keeps that.
    `device_budget_mb` bounds the images on the device (None: auto); above it they stay in host
    memory and stream (placement.py). Decoding an image folder (once; then cached) reports to `on_event`:
    StageStarted("decoding") and BatchProgress over the images.
    """
    check_dataset_name(name)
    options = dict(options or {})
    check_dataset_options(name, options)
    data_dir = Path(data_dir).expanduser() if data_dir else None
    key = (name, str(data_dir), tuple(sorted((k, str(v)) for k, v in options.items())), _file_stamp(name))
    if fresh or key not in _CACHE:
        _CACHE[key] = _read(name, data_dir, options, _decode_progress(name, on_event))
    ds = _CACHE[key]
    if train_size is not None or test_size is not None:
        ds = ds.subset(train_size, test_size)
    warn_about_labels(ds, on_event)
    return ds.to(device, device_budget_mb)


def _file_stamp(name: str) -> tuple[int, int] | None:
    """An npz file's size and modification time, so a file rewritten in this process is read again."""
    if not name.startswith(NPZ_PREFIX):
        return None
    try:
        stat = Path(name[len(NPZ_PREFIX):]).expanduser().stat()
    except OSError:
        return None  # missing: the reader says so
    return stat.st_size, stat.st_mtime_ns


_WARNED: set[str] = set()  # warnings already on stderr in this process (every trial loads the data again)


def label_warnings(ds: Dataset) -> list[str]:
    """What about the labels makes accuracies meaningless: one training class, or test classes never trained on."""
    train = set(ds.y_train.cpu().unique().tolist())
    absent = sorted(set(ds.y_test.cpu().unique().tolist()) - train)
    warnings = []
    if len(train) == 1:
        warnings.append(f"{ds.name}: the training split holds one class ({ds.classes[train.pop()]}), so a model "
                        "learns to predict it alone; add samples of other classes")
    if absent:
        shown = ", ".join(ds.classes[c] for c in absent[:10]) + (" ..." if len(absent) > 10 else "")
        warnings.append(f"{ds.name}: {len(absent)} test class(es) never occur in the training split ({shown}), "
                        "so their test samples can only be misclassified; train on them or drop them from the test "
                        "split")
    return warnings


def warn_about_labels(ds: Dataset, on_event: EventCallback | None = None) -> None:
    """Accepted, but said: one line on stderr (once per process) and a LogLine for the run's log and the TUI."""
    for message in label_warnings(ds):
        if message not in _WARNED:
            _WARNED.add(message)
            print(f"prunelab: warning: {message}", file=sys.stderr)
        emit(on_event, LogLine(message=f"warning: {message}", level="warning"))


def _decode_progress(name: str, on_event: EventCallback | None):
    """A folder reader's progress(done, total) as events: one StageStarted per decoded split, then BatchProgress."""
    if on_event is None:
        return None

    def progress(done: int, total: int) -> None:
        if done == 1:
            emit(on_event, StageStarted("decoding", detail=f"{name}: {total} images, once (cached afterwards)"))
        emit(on_event, BatchProgress(epoch=0, epochs=0, batch=done, batches=total))

    return progress


def _takes_progress(reader) -> bool:
    try:
        return "progress" in inspect.signature(reader).parameters
    except (TypeError, ValueError):  # no signature to read (a C function): no progress
        return False


def _read(name: str, data_dir: Path | None, options: dict | None = None, progress=None) -> Dataset:
    options = dict(options or {})
    if name.startswith(NPZ_PREFIX):
        path = Path(name[len(NPZ_PREFIX):]).expanduser()
        raw = load_npz_arrays(path)
        named = raw["classes"].tolist() if "classes" in raw else None
        arrays = check_arrays(raw, str(path), len(named) if named else None)
        num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
        spec = DatasetSpec(name, lambda _d: arrays, pixel_stats(arrays["x_train"]),
                           named or [str(i) for i in range(num_classes)], "none", str(path))
        source = str(path)
    elif name.startswith(FOLDER_PREFIX):
        path = Path(name[len(FOLDER_PREFIX):]).expanduser()
        raw = read_folder(path, progress=progress, **options)
        arrays = check_arrays(raw, str(path), len(raw["classes"]))
        spec = DatasetSpec(name, lambda _d: arrays, pixel_stats(arrays["x_train"]), raw["classes"].tolist(), "none",
                           str(path))
        source = str(path)
    else:
        spec = DATASETS[name]
        source = str(data_dir) if data_dir else ("package asset" if name == "mnist-mini" else str(default_data_root()))
        if progress is not None and _takes_progress(spec.load):  # readers that decode images
            options["progress"] = progress
        raw = spec.load(data_dir, **options) if options else spec.load(data_dir)
        if "classes" in raw:  # the reader knows the class names (and count) from the files
            spec = DatasetSpec(spec.name, spec.load, spec.stats, np.asarray(raw["classes"]).tolist(), spec.augment,
                               spec.description, spec.options)
        arrays = check_arrays(raw, f"{name} ({source})", len(spec.classes))
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
    ds = Dataset(
        name=name,
        x_train=torch.from_numpy(arrays["x_train"]), y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]), y_test=torch.from_numpy(arrays["y_test"]),
        classes=[str(i) for i in range(num_classes)],
        mean=mean, std=std, augment=augment, source=name,
    )
    warn_about_labels(ds)
    return ds
