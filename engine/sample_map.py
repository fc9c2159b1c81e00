"""The embedding map a scored run logs: surrogate 0's penultimate embeddings at the last score epoch, reduced to
what the sample inspector and the map need.

- a 2-D projection: PCA (the default: exact, deterministic, no extra package) or UMAP
  (`surrogate.projection = "umap"`, with the optional `umap-learn`: `pip install 'prunelab[umap]'`);
- each sample's k nearest other samples by cosine similarity of the embeddings (exact, block-wise on the run's
  device), with those similarities.

Why not log the embeddings themselves: (N, d) float32 is 102 MB at N = 50,000 and d = 512 (ResNet18's
penultimate layer; 26 MB for the seed's cnn, d = 128), at every score epoch. The projection and the
neighbours are (2 + 2k) · 4 bytes a sample whatever d: 4.4 MB at N = 50,000 and k = 10, once per run.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

NEIGHBOURS = 10  # k of the logged nearest neighbours (surrogate.neighbours)
PROJECTIONS = ("pca", "umap")
BLOCK_MB = 256.0  # the largest similarity block held at once
UMAP_NEIGHBOURS = 15  # umap-learn's default n_neighbors


@dataclass
class SampleMap:
    """What a run logs for the map and the inspector, aligned with its training samples."""

    projection: np.ndarray  # (N, 2) float32
    neighbours: np.ndarray  # (N, k) int32: the k most cosine-similar other samples, most similar first
    similarity: np.ndarray  # (N, k) float32: their cosine similarities
    method: str  # "pca" or "umap"
    epoch: int  # the surrogate epoch of the embeddings
    explained: list[float] = field(default_factory=list)  # PCA: each axis' share of the variance

    def info(self) -> dict[str, Any]:
        """The JSON beside the arrays (names.EMBEDDING_MAP_JSON)."""
        return {"epoch": self.epoch, "projection": self.method, "k": int(self.neighbours.shape[1]),
                "metric": "cosine", "explained_variance": [float(v) for v in self.explained],
                "samples": len(self.projection)}


def embeddable(model: nn.Module) -> bool:
    """Whether the scoring pass can capture this model's penultimate embeddings (scoring/batch.py's rule): a
    `head` layer (every built-in network; timm and torchvision models with a Linear classifier), or an
    `embed(x)` method on a model that does not name a head at all."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return True
    return not hasattr(type(model), "head") and head is None and callable(getattr(model, "embed", None))


def cosine_neighbours(embeddings: np.ndarray | torch.Tensor, k: int = NEIGHBOURS, device: str | torch.device = "cpu",
                      block_mb: float = BLOCK_MB) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's k most cosine-similar other samples, exactly: ((N, k) int32 indices, (N, k) similarities),
    most similar first (ties: the lower index first). Computed in the embeddings' float dtype (float32, or float64
    for a check), in row blocks of at most `block_mb`; a zero embedding is similar to nothing (cosine 0).
    Fewer than k + 1 samples: k shrinks to N − 1."""
    x = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
    x = x.to(device=device, dtype=x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32)
    x = x.flatten(1)
    n = len(x)
    k = max(0, min(int(k), n - 1))
    index = np.zeros((n, k), dtype=np.int32)
    sims = np.zeros((n, k), dtype=np.float64 if x.dtype == torch.float64 else np.float32)
    if k == 0:
        return index, sims
    unit = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    rows = max(1, int(block_mb * 2**20 // (x.element_size() * n)))
    for start in range(0, n, rows):
        block = unit[start:start + rows] @ unit.T
        stop = start + len(block)
        rows_here = torch.arange(len(block), device=block.device)
        block[rows_here, rows_here + start] = -torch.inf  # not its own neighbour
        values, found = block.topk(k, dim=1)
        values, found = values.cpu().numpy(), found.cpu().numpy()
        order = np.lexsort((found, -values), axis=-1)  # most similar first, then the lower index
        index[start:stop] = np.take_along_axis(found, order, axis=1)
        sims[start:stop] = np.take_along_axis(values, order, axis=1)
    return index, sims


def pca_2d(embeddings: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The centred embeddings on their first two principal axes (float64, (N, 2)) and each axis' share of the
    variance. The eigenvectors of the d x d covariance, each signed so its largest loading is positive (so the
    same embeddings always give the same picture); fewer than two non-zero axes leave zeros."""
    x = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out, [0.0, 0.0]
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    total = float(values.clip(min=0).sum())
    explained = []
    for axis, column in enumerate(np.argsort(values)[::-1][:2]):
        v = vectors[:, column]
        v = v if v[np.argmax(np.abs(v))] >= 0 else -v
        out[:, axis] = centred @ v
        explained.append(float(max(values[column], 0.0) / total) if total > 0 else 0.0)
    return out, explained + [0.0] * (2 - len(explained))


def require_umap() -> None:
    """Fail before any training when the config asks for UMAP and umap-learn is missing."""
    if importlib.util.find_spec("umap") is None:
        raise ConfigError("surrogate.projection = 'umap' needs umap-learn: pip install 'prunelab[umap]', "
                          "or use 'pca'")


def umap_2d(embeddings: np.ndarray, seed: int) -> np.ndarray:
    """UMAP (McInnes et al. 2018, umap-learn) of the embeddings to 2-D, cosine metric, its default 15 neighbours,
    seeded."""
    require_umap()
    import umap

    x = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=max(2, min(UMAP_NEIGHBOURS, len(x) - 1)),
                        random_state=seed)
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def build_map(embeddings: np.ndarray, epoch: int, method: str = "pca", k: int = NEIGHBOURS, seed: int = 0,
              device: str | torch.device = "cpu") -> SampleMap:
    """The projection and the neighbours of one epoch's embeddings."""
    if method not in PROJECTIONS:
        raise ConfigError(f"surrogate.projection = {method!r}: use one of {', '.join(PROJECTIONS)} (or 'none')")
    emb = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    if method == "pca":
        projection, explained = pca_2d(emb)
    else:
        projection, explained = umap_2d(emb, seed), []
    index, sims = cosine_neighbours(emb, k, device)
    return SampleMap(projection.astype(np.float32), index, sims.astype(np.float32), method, int(epoch), explained)
