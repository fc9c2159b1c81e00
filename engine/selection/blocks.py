"""Torch building blocks the coreset strategies share: tensors, block-wise distances, per-class budgets,
the device they run on and the thread policy.

Everything runs on `device()` (the CPU unless a caller picks another with `on_device`) in
`dtype()` (float32 unless `on_device(..., dtype=torch.float64)` asks for more: the reference
tests compare with float64 peers at 1e-9 that way), in blocks whose size `block_rows` bounds,
so no strategy holds an N x N matrix.

Threads: every coreset strategy runs under `coreset`, which caps torch's intra-op threads
at `SELECT_THREADS` = 1 for the call (and restores them after). A greedy step is a few
memory-bound vector ops over n samples; spreading each over the pool's threads gains
little on an idle machine (4.0 against 4.4 ms per k-center step at n = 50,000, 2 cores)
and, on a shared box where every core is busy, each op waits for a descheduled worker:
k-center greedy on 50,000 samples took 197 s with 2 threads (load 2.1) against 22 s with
1 (load 1), and did not finish in 300 s with 2 threads at load 12. No
strategy here uses faiss (whose OpenMP pool would be a second set of threads).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .base import Selection, class_quotas

BLOCK_MB = 256.0  # the largest similarity or distance block a strategy holds at once
SELECT_THREADS = 1  # torch intra-op threads while a coreset strategy runs (see the module docstring)
_PLACE = [(torch.device("cpu"), torch.float32)]  # (device, float dtype) the coreset strategies compute in


def device() -> torch.device:
    """Where the coreset strategies compute: the CPU unless `on_device` says otherwise."""
    return _PLACE[-1][0]


def dtype() -> torch.dtype:
    """The float type of the coreset strategies' tensors: float32 unless `on_device` says otherwise."""
    return _PLACE[-1][1]


@contextlib.contextmanager
def on_device(dev: str | torch.device, dtype: torch.dtype | None = None) -> Iterator[None]:
    """Run the coreset strategies called inside this block on `dev` (e.g. "cuda"), in `dtype` if given
    (e.g. torch.float64, for comparisons at float64 precision), else in the current one."""
    _PLACE.append((torch.device(dev), dtype or _PLACE[-1][1]))
    try:
        yield
    finally:
        _PLACE.pop()


def coreset(fn: Callable) -> Callable:
    """Run a strategy with at most SELECT_THREADS torch threads, restored afterwards."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(min(before, SELECT_THREADS))
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return run


def tensor(a: np.ndarray, dev: str | torch.device | None = None) -> torch.Tensor:
    """`a` as a `dtype()` tensor on `dev` (default: `device()`)."""
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype(), device=dev or device())


def block_rows(columns: int, mb: float = BLOCK_MB) -> int:
    """How many rows of a `dtype()` block with `columns` columns fit in `mb` megabytes (at least 1)."""
    return max(1, int(mb * 2**20 // (dtype().itemsize * max(1, columns))))


def sq_dists(x: torch.Tensor, c: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances (len(x), len(c)) by ‖x‖² − 2x·c + ‖c‖², clamped at 0."""
    x_sq = (x * x).sum(1) if x_sq is None else x_sq
    return (x_sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]).clamp_min_(0)


def by_class(pick: Callable[[np.ndarray, int, np.random.Generator], np.ndarray | Selection],
             budget: int, labels: np.ndarray, seed: int, per_class: bool) -> Selection:
    """Run `pick(members, quota, rng)` on each class with a quota proportional to its size (or once on all).

    `pick` returns positions within `members` (or a Selection of them). Each class draws
    from its own child stream of `seed`, so one class does not shift another's draws.
    """
    rng = np.random.default_rng(seed)
    if not per_class:
        groups, quotas = [np.arange(len(labels))], [budget]
    else:
        classes, inverse = np.unique(labels, return_inverse=True)
        inverse = inverse.reshape(-1)
        groups = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        quotas = class_quotas(np.array([len(g) for g in groups]), budget, rng)
    streams = np.random.SeedSequence(seed).spawn(len(groups))
    indices, weights = [], []
    for members, quota, stream in zip(groups, quotas, streams):
        if quota == 0:
            continue
        out = pick(members, int(quota), np.random.default_rng(stream))
        chosen, w = (out.indices, out.weights) if isinstance(out, Selection) else (out, None)
        indices.append(members[np.asarray(chosen, dtype=np.int64)])
        weights.append(w)
    kept = np.concatenate(indices)
    if any(w is None for w in weights):
        return Selection(kept)
    return Selection(kept, np.concatenate(weights))
