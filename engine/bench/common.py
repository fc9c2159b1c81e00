"""What every benchmark shares: device labels, synchronised timing, tiling a data set, untimed-eval options."""
from __future__ import annotations

import time

import torch

NO_EVAL = {"evaluate_every_epoch": False, "evaluate_at_end": False}  # timed training runs skip the test set


def device_label(dev: torch.device) -> str:
    """'cpu', or e.g. 'cuda:0 (NVIDIA H200)': figures are only comparable with the hardware named."""
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def sync() -> None:
    """Wait for queued GPU work: CUDA runs asynchronously, so a timer alone would stop before the work does."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed_seconds(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def tiled(ds, size: int):
    """The training set repeated (in order) to `size` samples.

    For throughput figures at a size the data on disk lacks (the H200 target is all
    50,000 CIFAR-10 images; ../shared holds 10,000): time per sample does not depend
    on which images are scored.
    """
    if size <= len(ds):
        return ds.subset(train_size=size)
    reps = -(-size // len(ds))
    return ds.replace(x_train=ds.x_train.repeat(reps, 1, 1, 1)[:size], y_train=ds.y_train.repeat(reps)[:size],
                      train_index=None)


def rss_kib(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in KiB: peak RSS sees torch's CPU allocator."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")
