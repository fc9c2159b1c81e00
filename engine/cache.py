"""Content-addressed cache of surrogate checkpoints and score arrays.

A key is the hash of everything that determines the value (data set digest,
subset, model, training config, seed, epoch …), so a sweep never trains the
same surrogate twice and a resumed run reuses what it made before. Entries are
written to a temporary name and renamed, so concurrent runs never read half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


class Cache:
    """Arrays (`.npz`) and model states (`.pt`) under `root/<kind>/<key[:2]>/<key>`."""

    def __init__(self, root: str | Path | None, enabled: bool = True):
        self.root = Path(root) if root else None
        self.enabled = enabled and root is not None
        self.hits = 0
        self.misses = 0

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        assert self.root is not None
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _write(self, path: Path, write) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
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
        except Exception:  # numpy and torch raise many types for a truncated file
            self.misses += 1
            return None
        self.hits += 1
        return value

    def load_arrays(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        def read(path: Path) -> dict[str, np.ndarray]:
            with np.load(path, allow_pickle=False) as f:
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
