"""Image folders decoded with pillow into uint8 arrays: Tiny-ImageNet's layout and `folder:PATH` (one subfolder per class).

Decoding thousands of files is slow, so a folder is decoded once into an npz
cached by content (every file's path, mtime and size, plus the options), and a
second load reads that; `progress(done, total)` hears of the decoding (load_dataset
turns it into "decoding" progress events: the CLI's bar, the TUI's monitor).
Corrupt images are listed in one DataError, or skipped with `skip_bad=True`. No torch.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..options import Option, flag, number, seed
from .formats import ArrayHeader, NotFetched, fetch_allowed, probe_npz_arrays

TINYIMAGENET_STATS = ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262))
TINYIMAGENET_DIR = "tiny-imagenet-200"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
FOLDER_OPTIONS = {
    "test_dir": Option(None, "a folder with the same class subfolders, the test split",
                       lambda v: isinstance(v, str) and bool(v), "a folder path (a string)"),
    "test_fraction": number(0.2, "without test_dir: the class-stratified fraction held out for testing", 0, 1,
                            low_open=True, high_open=True),
    "seed": seed(0, "without test_dir: the seed of the held-out draw"),
    "size": Option(None, "resize every image to size×size (without it all images must share one size)",
                   lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096,
                   "an integer from 1 to 4096 (pixels)"),
    "skip_bad": flag(False, "skip unreadable images instead of refusing the folder"),
}


def cache_dir() -> Path:
    """Where decoded folders are kept: $PRUNELAB_CACHE/folders or the user's cache."""
    env = os.environ.get("PRUNELAB_CACHE")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "prunelab"
    return base / "folders"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


Progress = Callable[[int, int], None]  # (images decoded, images in all), a few times a second and at the end


def decode(files: list[Path], size: int | None, skip_bad: bool,
           progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (N, H, W, 3) of the files (resized to size×size when given) and the mask of those kept."""
    from PIL import Image, UnidentifiedImageError

    images, bad, keep = [], [], np.ones(len(files), dtype=bool)
    last = 0.0
    for i, path in enumerate(files):
        if progress is not None and (time.monotonic() - last > 0.2 or i == len(files) - 1):
            last = time.monotonic()
            progress(i + 1, len(files))
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            bad.append(path)
            keep[i] = False
    if bad and not skip_bad:
        listed = ", ".join(str(p) for p in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(f"{len(bad)} unreadable image(s): {listed}; remove or replace them, or set skip_bad = true")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images of different sizes {sorted(shapes)[:3]} under {files[0].parent.parent}; "
                        "set the option size = N to resize them all to N×N")
    if not images:
        raise DataError(f"no readable image under {files[0].parent.parent if files else '?'}")
    return np.stack(images), keep


def _signature(files: list[Path], options: dict) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return h.hexdigest()[:24]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it


def _cache_path(files: list[Path], size: int | None, skip_bad: bool, what: str) -> Path:
    return cache_dir() / f"{_signature(files, {'size': size, 'skip_bad': skip_bad, 'what': what})}.npz"


def _load_cached(path: Path, headers: bool) -> tuple[Any, np.ndarray] | None:
    """A decoded folder's (images, labels), or with `headers` (the images' ArrayHeader, labels); None when the
    entry is missing or damaged (decoded again)."""
    if not path.exists():
        return None
    try:
        if headers:
            found = probe_npz_arrays(path, ("x", "y"), verify=False)
            return found["x"], found["y"]
        with np.load(path, allow_pickle=False) as f:
            return f["x"], f["y"]
    except Exception:  # noqa: BLE001 -- numpy and zipfile raise a dozen types for a damaged file: decode again
        return None


def _save_cached(path: Path, x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> None:
    """Write an entry (a temporary name, then renamed), with which files were kept (`keep`, so `decoded_mask` can
    name each image's file); a cache that cannot be written (read-only, full) is skipped: the next load decodes
    again."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a cache shared by a group must stay readable
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=x, y=y, keep=keep)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def cached(files: list[Path], labels: np.ndarray, size: int | None, skip_bad: bool, what: str,
           progress: Progress | None = None, headers: bool = False) -> tuple[Any, np.ndarray]:
    """decode() through the content-keyed cache: (NHWC images, labels of the images kept); `progress` hears of
    the decoding only (a cached folder opens no image). With `headers` a cached entry gives its images' shape
    only (the pre-run check). Not decoded yet while fetching is off: NotFetched."""
    path = _cache_path(files, size, skip_bad, what)
    hit = _load_cached(path, headers)
    if hit is not None:
        return hit
    if not fetch_allowed():
        raise NotFetched(f"the {len(files)} images under {_common_root(files)} are not decoded yet; a run decodes "
                         "them once (cached afterwards) and checks them then")
    x, keep = decode(files, size, skip_bad, progress)
    y = labels[keep]
    _save_cached(path, x, y, keep)
    return x, y


def _common_root(files: list[Path]) -> Path | str:
    return files[0].parent.parent if files else "?"


def _take(x: Any, mask: np.ndarray) -> Any:
    """x[mask], for images or their ArrayHeader."""
    if isinstance(x, ArrayHeader):
        return ArrayHeader((int(mask.sum()), *x.shape[1:]), x.dtype)
    return x[mask]


def decoded_mask(files: list[Path], size: int | None, skip_bad: bool, what: str) -> np.ndarray:
    """Which of `files` `cached` returned images of, in its order: all, or with `skip_bad` those it could read
    (the cache entry's `keep`; an entry made before it was recorded, or a damaged one, is decoded again)."""
    if not skip_bad:
        return np.ones(len(files), dtype=bool)
    try:
        with np.load(_cache_path(files, size, skip_bad, what), allow_pickle=False) as f:
            return f["keep"]
    except Exception:  # noqa: BLE001 -- numpy and zipfile raise a dozen types for a damaged file: decode again
        return decode(files, size, skip_bad)[1]


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of `root`, sorted by name; an empty one is an error."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; give a folder with one subfolder of images per class")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class subfolders; put each class's images in its own subfolder")
    for c in classes:
        if not _images_in(c):
            raise DataError(f"{c}: empty class folder (no image files); add images or remove the folder")
    return classes


def _files_of(root: Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for label, name in enumerate(names):
        found = _images_in(root / name) if (root / name).is_dir() else []
        files += found
        labels += [label] * len(found)
    return files, np.asarray(labels, dtype=np.int64)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of test samples: round(fraction·n_c) of each class c (at least one), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(len(members) - 1, max(1, round(fraction * len(members))))
        test[rng.choice(members, size=k, replace=False)] = True
    return test


def read_folder(path: str | Path, test_dir: str | None = None, test_fraction: float = 0.2, seed: int = 0,
                size: int | None = None, skip_bad: bool = False,
                progress: Progress | None = None, headers: bool = False) -> dict[str, Any]:
    """`folder:PATH`: one subfolder per class; the test split from `test_dir` (same class names) or a seeded,
    class-stratified `test_fraction` of PATH. With `headers`, images already decoded come as ArrayHeaders."""
    root = Path(path).expanduser()
    names = [c.name for c in class_folders(root)]
    files, labels = _files_of(root, names)
    test_files = test_labels = None
    if test_dir is not None:
        test_root = Path(test_dir).expanduser()
        extra = sorted({c.name for c in class_folders(test_root)} - set(names))
        if extra:
            raise DataError(f"{test_root}: class folder(s) {', '.join(extra)} are not in {root}; "
                            "the test folder must use the training folder's class names")
        test_files, test_labels = _files_of(test_root, names)
    else:
        if not 0 < test_fraction < 1:
            raise DataError(f"folder option test_fraction={test_fraction}; it must lie strictly between 0 and 1")
        _two_per_class(labels, names, root, "images")  # before decoding: the files alone say so
    x, y = cached(files, labels, size, skip_bad, "folder", progress, headers)
    out: dict[str, Any] = {"classes": np.asarray(names)}
    if test_files is not None:
        out["x_test"], out["y_test"] = cached(test_files, test_labels, size, skip_bad, "folder", progress, headers)
        out["x_train"], out["y_train"] = x, y
    else:
        _two_per_class(y, names, root, "readable images")
        test = stratified_split(y, test_fraction, seed)
        out["x_train"], out["y_train"], out["x_test"], out["y_test"] = _take(x, ~test), y[~test], _take(x, test), y[test]
    return out


def train_files(path: str | Path, test_dir: str | None = None, test_fraction: float = 0.2, seed: int = 0,
                size: int | None = None, skip_bad: bool = False) -> list[str]:
    """The file of each training image of `folder:PATH` with these options, in the order of `read_folder`'s
    x_train (a run's kept indices name positions in it): what `prunelab subset` writes for folder data."""
    root = Path(path).expanduser()
    names = [c.name for c in class_folders(root)]
    files, labels = _files_of(root, names)
    keep = decoded_mask(files, size, skip_bad, "folder")
    files, labels = [f for f, k in zip(files, keep) if k], labels[keep]
    if test_dir is not None:
        return [str(f) for f in files]
    test = stratified_split(labels, test_fraction, seed)
    return [str(file) for file, held_out in zip(files, test) if not held_out]


def _two_per_class(labels: np.ndarray, names: list[str], root: Path, what: str) -> None:
    small = [names[c] for c in range(len(names)) if (labels == c).sum() < 2]
    if small:
        raise DataError(f"class folder(s) {', '.join(small)} under {root} hold fewer than 2 {what}; "
                        "a train/test split needs 2 or more per class (or give test_dir)")


def read_tinyimagenet(data_dir: Path | None, skip_bad: bool = False,
                      progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Tiny-ImageNet-200 (Le and Yang 2015) in its original layout: `train/<wnid>/images/*.JPEG`, the labelled
    `val/images` with `val/val_annotations.txt` as the test split, 64×64 RGB. Classes: the wnids, sorted."""
    if data_dir is None:
        raise DataError("tinyimagenet has no download here; pass --data-dir holding DIR/tiny-imagenet-200/ "
                        "(http://cs231n.stanford.edu/tiny-imagenet-200.zip, unzipped)")
    root = Path(data_dir) / TINYIMAGENET_DIR
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"{train}: folder not found; --data-dir must hold DIR/{TINYIMAGENET_DIR}/train/<wnid>/images/")
    wnids = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not wnids:
        raise DataError(f"{train}: no class folders; expected train/<wnid>/images/*.JPEG")
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        found = _images_in(train / wnid / "images") if (train / wnid / "images").is_dir() else []
        if not found:
            raise DataError(f"{train / wnid / 'images'}: empty class folder (no images); fetch Tiny-ImageNet again")
        files += found
        labels += [label] * len(found)
    annotations = root / "val" / "val_annotations.txt"
    try:
        lines = annotations.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{annotations}: file not found; Tiny-ImageNet's val split needs it") from None
    index = {w: i for i, w in enumerate(wnids)}
    val_files, val_labels = [], []
    for n, line in enumerate(lines, 1):
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError(f"{annotations}:{n}: expected 'file<TAB>wnid<TAB>box', got {line!r}")
        if parts[1] not in index:
            raise DataError(f"{annotations}:{n}: wnid {parts[1]!r} has no train/ folder; fetch Tiny-ImageNet again")
        path = root / "val" / "images" / parts[0]
        if not path.is_file():
            raise DataError(f"{path}: file not found (listed in {annotations.name}); fetch Tiny-ImageNet again")
        val_files.append(path)
        val_labels.append(index[parts[1]])
    if not val_files:
        raise DataError(f"{annotations}: empty; Tiny-ImageNet's val split lists 10000 images")
    x_train, y_train = cached(files, np.asarray(labels, dtype=np.int64), 64, skip_bad, "tinyimagenet", progress)
    x_test, y_test = cached(val_files, np.asarray(val_labels, dtype=np.int64), 64, skip_bad, "tinyimagenet", progress)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "classes": np.asarray(wnids)}
