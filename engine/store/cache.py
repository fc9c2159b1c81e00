"""Content-addressed cache of surrogate checkpoints and score arrays.

A key is the hash of everything that determines the value (data set digest,
subset, model, training config, seed, epoch …), so a sweep never trains the
same surrogate twice and a resumed run reuses what it made before. Entries are
written to a temporary name and renamed, so concurrent runs never read half a file.

It only grows (a ResNet18 checkpoint is 45 MB), so `usage` reports it and
`remove_unused` deletes what no run has read or written for a while: a hit
refreshes an entry's modification time, which thus says when it was last used.
A write that fails (a full disk, a read-only cache) skips the cache: the run goes
on and computes the value again next time. The temporary files of writes that a
killed process left behind are the kind `partial`: counted, and removed like entries
(a write in progress whose file goes away skips the cache too).
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..registry import Ref


def cache_key(**parts: Any) -> str:
    """A stable hash of keyword parts (JSON-able values; pydantic models are dumped)."""
    def norm(v: Any) -> Any:
        if hasattr(v, "model_dump"):
            return v.model_dump(mode="json")
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
        return v

    text = json.dumps(norm(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def code_digest(fn: Callable[..., Any] | Ref | None, whole_module: bool = False) -> str:
    """A hash of a function's source code (a `Ref` resolved first), so that changed code under the same name
    never reuses stale cache entries; `whole_module` adds the source of the module that defines it (a model
    builder's blocks live beside it). Code without Python source (a builtin, a C extension) hashes its
    qualified name: such code changes with its package's version, which the cache does not track.
    """
    if fn is None:
        return ""
    if isinstance(fn, Ref):
        fn = fn.load()
    h = hashlib.sha256()
    for target in (fn, inspect.getmodule(fn)) if whole_module else (fn,):
        try:
            h.update(inspect.getsource(target).encode())
        except (OSError, TypeError):
            h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}".encode())
    return h.hexdigest()[:16]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it
PARTIAL_PREFIX = ".tmp-"  # a write in progress, or one a killed process left behind
PARTIAL = "partial"  # their kind, for `usage` and `remove_unused`


class Cache:
    """Arrays (`.npz`) and model states (`.pt`) under `root/<kind>/<key[:2]>/<key>`."""

    def __init__(self, root: str | Path | None, enabled: bool = True):
        self.root = Path(root) if root else None
        self.enabled = enabled and root is not None
        self.hits = 0
        self.misses = 0
        self.failed_writes = 0

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        assert self.root is not None
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _write(self, path: Path, write) -> None:
        """Write an entry under a temporary name, then rename it; any OSError skips the cache (see above)."""
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a store shared by a group must stay readable
            write(tmp)
            os.replace(tmp, path)
        except OSError:
            self.failed_writes += 1
        finally:
            if tmp is not None and os.path.exists(tmp):
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _read(self, kind: str, key: str, suffix: str, reader):
        """The entry read by `reader`, or None on a miss; a damaged entry is a miss, rewritten later."""
        if not self.enabled:
            return None
        path = self._path(kind, key, suffix)
        if not path.exists():
            self.misses += 1
            return None
        try:
            value = reader(path)
        except Exception:  # noqa: BLE001 -- numpy, torch, zipfile and pickle raise a dozen types for a damaged file
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(path)  # last used now: `remove_unused` keeps it
        return value

    def load_arrays(self, kind: str, key: str, require: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        """The arrays of an entry; one that lacks a `require`d name is a miss (and is rewritten), not a KeyError."""
        def read(path: Path) -> dict[str, np.ndarray]:
            with np.load(path, allow_pickle=False) as f:
                missing = [name for name in require if name not in f.files]
                if missing:
                    raise KeyError(f"{path} lacks {missing}")
                return {k: f[k] for k in f.files}

        return self._read(kind, key, ".npz", read)

    def save_arrays(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.enabled:
            def write(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
            self._write(self._path(kind, key, ".npz"), write)

    def load_state(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        return self._read(kind, key, ".pt", lambda path: torch.load(path, map_location="cpu", weights_only=True))

    def save_state(self, kind: str, key: str, state: dict[str, torch.Tensor]) -> None:
        if self.enabled:
            cpu = {k: v.detach().cpu() for k, v in state.items()}
            def write(tmp: str) -> None:  # through a file object: torch.save rejects a dot-file name
                with open(tmp, "wb") as f:
                    torch.save(cpu, f)
            self._write(self._path(kind, key, ".pt"), write)


@dataclass
class KindUsage:
    """What one kind of entry (surrogate, scores, forgetting) takes."""

    kind: str
    entries: int
    bytes: int
    last_used: float  # newest modification time (seconds since the epoch)
    first_used: float


def _entries(root: Path, kinds: list[str] | None = None) -> list[tuple[str, Path, os.stat_result]]:
    """(kind, path, stat) of every entry: a write's temporary file is of the kind `partial`."""
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in folder.glob("*/*"):
            kind = PARTIAL if path.name.startswith(PARTIAL_PREFIX) else folder.name
            if kinds is not None and kind not in kinds:
                continue
            try:
                if path.is_file():
                    out.append((kind, path, path.stat()))
            except FileNotFoundError:  # renamed or removed meanwhile (a write finished, another clear)
                continue
    return out


def usage(root: str | Path) -> list[KindUsage]:
    """Entries and bytes per kind of the cache under `root`."""
    by_kind: dict[str, list[os.stat_result]] = {}
    for kind, _, stat in _entries(Path(root)):
        by_kind.setdefault(kind, []).append(stat)
    return [KindUsage(kind, len(stats), sum(s.st_size for s in stats), max(s.st_mtime for s in stats),
                      min(s.st_mtime for s in stats)) for kind, stats in sorted(by_kind.items())]


def remove_unused(root: str | Path, older_than_seconds: float = 0.0, kinds: list[str] | None = None,
                  dry_run: bool = False) -> tuple[int, int]:
    """Delete entries not used for `older_than_seconds` (0: all); returns (entries, bytes) removed.

    A run in progress re-creates what it still needs (a miss trains or scores again),
    so removing is always safe, only possibly wasteful.
    """
    cutoff = time.time() - older_than_seconds
    removed = freed = 0
    for _, path, stat in _entries(Path(root), kinds):
        if older_than_seconds and stat.st_mtime > cutoff:
            continue
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:  # another process removed it first
                continue
        removed += 1
        freed += stat.st_size
    return removed, freed
