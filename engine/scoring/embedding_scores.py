"""Scores of surrogate 0's penultimate embeddings over the whole training set: moderate, prototypes, cal.

Each is `fn(model, embeddings, labels) -> (N,) float64`, called by the surrogate
run right after the scoring pass of surrogate 0 (which captures the embeddings;
`cal` also maps them through `model.head` to the predictions). Nearest neighbours
and k-means are faiss's (exact flat L2 index, `faiss.Kmeans`), one class at a time.
"""
from __future__ import annotations

import faiss
import numpy as np
import torch

from ..errors import ConfigError

PROTOTYPES_PER_CLASS = 10  # k-means centroids fitted per class for `prototypes`
CAL_NEIGHBOURS = 10  # DeepCore's default k


def moderate_score(model, embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """‖f(x) − median_y‖₂: distance to the coordinate-wise median embedding of the sample's class.

    Moderate-DS (Xia et al., ICLR 2023; tmllab/2023_ICLR_Moderate-DS, `selection.py`).
    The paper's features come from a separately trained extractor; here they are
    surrogate 0's. Pair it with the `moderate` strategy, which keeps the samples
    around the median distance.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    out = np.zeros(len(emb))
    for c in np.unique(labels):
        rows = labels == c
        out[rows] = np.linalg.norm(emb[rows] - np.median(emb[rows], axis=0), axis=1)
    return out


def prototypes_score(model, embeddings: np.ndarray, labels: np.ndarray, clusters: int = PROTOTYPES_PER_CLASS,
                     seed: int = 0) -> np.ndarray:
    """Cosine distance to the nearest k-means centroid of the sample's class (higher: less prototypical).

    Self-supervised prototypes (Sorscher et al., NeurIPS 2022, "Beyond neural scaling
    laws"; no official code, the metric is the paper's Sec. 5). The paper clusters
    self-supervised (SwAV) embeddings of all of ImageNet with k-means; here the
    embeddings are the supervised surrogate's, normalised to the unit sphere, and
    k-means (faiss, `clusters` centroids, at most one per sample) runs within each
    class, so a sample is measured against its own class's prototypes.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = np.zeros(len(emb))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = min(clusters, len(rows))
        km = faiss.Kmeans(emb.shape[1], k, niter=20, seed=seed, spherical=True, min_points_per_centroid=1,
                          max_points_per_centroid=1 << 30)
        km.train(np.ascontiguousarray(emb[rows]))
        centroids = km.centroids / np.maximum(np.linalg.norm(km.centroids, axis=1, keepdims=True), 1e-12)
        out[rows] = np.maximum(0.0, 1 - (emb[rows].astype(np.float64) @ centroids.T.astype(np.float64)).max(1))
    return out


def knn_within_class(embeddings: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each sample's k nearest other samples of its class (Euclidean; fewer: padded with self)."""
    emb = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    out = np.repeat(np.arange(len(emb))[:, None], k, axis=1)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        take = min(k + 1, len(rows))
        index = faiss.IndexFlatL2(emb.shape[1])
        index.add(emb[rows])
        _, found = index.search(emb[rows], take)
        # drop the sample itself (not always column 0 when duplicates tie), else the farthest one
        drop = found == np.arange(len(rows))[:, None]
        drop[~drop.any(1), -1] = True
        keep = np.argsort(drop, axis=1, kind="stable")[:, :take - 1]
        out[rows, :take - 1] = rows[np.take_along_axis(found, keep, axis=1)]
    return out


def cal_score(model, embeddings: np.ndarray, labels: np.ndarray, neighbours: int = CAL_NEIGHBOURS,
              order: str = "deepcore") -> np.ndarray:
    """Mean symmetric KL between a sample's prediction and those of its k nearest same-class neighbours, negated.

    Contrastive active learning (Margatina et al., EMNLP 2021), as DeepCore's
    `deepcore/methods/cal.py` (PatrickZH/DeepCore) adapts it to pruning: kNN within
    each class (balance=True) in Euclidean embedding space, KL = mean over the
    `neighbours` nearest of ½KL(p‖q) + ½KL(q‖p). DeepCore keeps the *lowest* KL of
    each class (`argsort(...)[::1]`); the score is −KL, so that keeping the highest
    scores (`hardest`, `class_balanced`) keeps DeepCore's picks. `order = "paper"`
    gives +KL instead: the most contrastive samples highest, as CAL acquires them.
    DeepCore finds neighbours with a separate pretrained ResNet-18; here the
    embeddings and predictions are both surrogate 0's (predictions =
    softmax(model.head(embedding))).
    """
    if order not in ("deepcore", "paper"):
        raise ConfigError(f"scorer 'cal' order {order!r}: use 'deepcore' or 'paper'")
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Module):
        raise ConfigError(f"scorer 'cal' needs a model with a `head` layer; {type(model).__name__} has none")
    param = next(head.parameters())
    with torch.no_grad():
        logits = head(torch.as_tensor(embeddings, dtype=param.dtype, device=param.device))
        logp = logits.double().log_softmax(1).cpu().numpy()
    near = knn_within_class(embeddings, labels, neighbours)
    p, lp = np.exp(logp)[:, None, :], logp[:, None, :]
    q, lq = np.exp(logp[near]), logp[near]
    kl = (0.5 * p * (lp - lq) + 0.5 * q * (lq - lp)).sum(2).mean(1)
    return kl if order == "paper" else -kl
