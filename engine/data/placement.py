"""Where a data set's images live: on the compute device, or in host memory streamed to it batch by batch.

A set that fits the device-memory budget (`data.device_budget_mb`) is copied to
the device once and batches are gathered there. A larger one stays in host
memory (pinned when CUDA is available); each batch is gathered on the host into
one of two pinned staging buffers and copied with `non_blocking=True` on a side
CUDA stream, one batch ahead, so the copy of batch b+1 overlaps the compute of
batch b. The index order is copied to the host once per pass (one sync per
epoch, as on the device path). Labels are small and always sit on the device.

Budget: None (auto) is half the free CUDA memory at load time; on a CPU (or MPS,
unified memory) auto never streams, since the set is in host memory already.
A number applies on every device: images (train + test) above it stream, so
`device_budget_mb = 0` forces the host path, also on the CPU, where a batch is
then a plain host gather (the tests compare both paths bit for bit there).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

AUTO_FRACTION = 0.5  # of free CUDA memory, for the images; training needs the rest
DEVICE, HOST = "device", "host"  # the paths, as the tag prunelab.data_path records them


def budget_bytes(device: torch.device, budget_mb: float | None) -> float:
    """The byte budget for the images on `device` (inf: no limit)."""
    if budget_mb is not None:
        return float(budget_mb) * 2**20
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return AUTO_FRACTION * free
    return float("inf")


def fits(nbytes: int, device: torch.device, budget_mb: float | None) -> bool:
    return nbytes <= budget_bytes(device, budget_mb)


def to_host(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The images for the host path: on the CPU, pinned when they will be copied to a CUDA device."""
    x = x.cpu()
    return x.pin_memory() if device.type == "cuda" and not x.is_pinned() else x


def slice_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive (uint8 images, labels) batches on `device`; host images are copied without blocking."""
    for start in range(0, len(y), batch_size):
        yield x[start:start + batch_size].to(device, non_blocking=True), y[start:start + batch_size]


def device_batches(x: torch.Tensor, order: torch.Tensor, batch_size: int,
                   count: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The device path: (indices, images) of `order`'s consecutive slices, gathered on the device."""
    for b in range(count):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield idx, x[idx]


def host_batches(x: torch.Tensor, order: torch.Tensor, batch_size: int, count: int,
                 device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The host path: the same batches as `device_batches`, gathered in host memory and sent to `device`.

    On CUDA the gather of batch b+1 and its copy (side stream) are issued before batch
    b is handed out; a staging buffer is refilled only after its previous copy is done.
    """
    host_order = order.cpu()  # one sync per pass
    if device.type != "cuda":
        for b in range(count):
            idx = host_order[b * batch_size:(b + 1) * batch_size]
            yield order[b * batch_size:(b + 1) * batch_size], x[idx]
        return
    stream = torch.cuda.Stream(device)
    staging = [torch.empty((batch_size, *x.shape[1:]), dtype=x.dtype, pin_memory=True) for _ in range(2)]
    copied: list[torch.cuda.Event | None] = [None, None]

    def fetch(b: int) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.Event]:
        idx = host_order[b * batch_size:(b + 1) * batch_size]
        slot = b % 2
        if copied[slot] is not None:
            copied[slot].synchronize()  # the copy out of this buffer two batches ago is done
        buf = staging[slot][:len(idx)]
        torch.index_select(x, 0, idx, out=buf)
        with torch.cuda.stream(stream):
            batch = buf.to(device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(stream)
        copied[slot] = ready
        return order[b * batch_size:(b + 1) * batch_size], batch, ready

    main = torch.cuda.current_stream(device)
    pending = fetch(0) if count > 0 else None
    for b in range(count):
        idx, batch, ready = pending
        if b + 1 < count:
            pending = fetch(b + 1)
        main.wait_event(ready)
        batch.record_stream(main)  # allocated on the side stream, used on the main one
        yield idx, batch
