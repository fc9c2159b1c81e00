"""Submodular coresets: facility location, graph cut and log-determinant, maximised by lazy,
stochastic or plain greedy; the similarity matrix is precomputed only when it fits in BLOCK_MB, and
otherwise computed in row blocks at each use (never an N x N matrix above the bound).

The similarity is DeepCore's 0.5 + 0.5·cos between last-layer gradient embeddings (`space =
"gradients"`, DeepCore's `Submodular.calc_gradient` + `cossim_np`) or penultimate embeddings
(`space = "embeddings"`)."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .blocks import BLOCK_MB, block_rows, by_class, coreset, dtype, tensor

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (a, d), (b, d) -> (a, b)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """0.5 + 0.5·cos(a, b), in [0, 1]: DeepCore's `cossim`, non-negative as facility location needs."""
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return 0.5 + 0.5 * (a @ b.T)


def unit_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`cosine_similarity` of rows that are already unit vectors."""
    return (a @ b.T).mul_(0.5).add_(0.5)


def prepared(x: torch.Tensor, similarity: Similarity,
             block_mb: float = BLOCK_MB) -> tuple[torch.Tensor, Similarity, torch.Tensor]:
    """The samples, similarity and self-similarities s(i, i) a set function works with.

    When the n x n similarity fits in `block_mb`, it is computed once (in row blocks) and
    the samples become their own indices: similarity(a, b) is then a lookup of rows b
    (every similarity here is symmetric, and rows gather ~20x faster than columns), as
    DeepCore's precomputed matrix, but only below the bound. Above it, similarities are
    recomputed in blocks at each use; the cosine kernel from rows normalised once. The
    cosine kernel's diagonal is exact: 1 (0.5 for a zero vector), not 1 ± rounding, so
    gains that tie in exact arithmetic (log-determinant's first step) tie here too.
    """
    n = len(x)
    diag = None
    if similarity is cosine_similarity:
        norms = x.norm(dim=1, keepdim=True)
        x, similarity = x / norms.clamp_min(1e-12), unit_cosine
        diag = torch.where(norms[:, 0] > 1e-12, 1.0, 0.5).to(x.dtype)
    if x.dtype.itemsize * n * n > block_mb * 2**20:
        if diag is None:  # s(i, i) from small diagonal blocks
            diag = torch.cat([similarity(x[i:i + 1024], x[i:i + 1024]).diagonal() for i in range(0, n, 1024)])
        return x, similarity, diag
    step = block_rows(n, block_mb)
    kernel = torch.cat([similarity(x[start:start + step], x) for start in range(0, n, step)])
    if diag is None:
        diag = kernel.diagonal().clone()
    kernel.diagonal().copy_(diag)
    return torch.arange(n, device=x.device), lambda a, b: kernel.index_select(0, b).index_select(1, a).T, diag


class FacilityLocation:
    """F(S) = Σ_i max_{j∈S} s(i, j) over the ground set; gains of a candidate block, rows in blocks."""

    def __init__(self, x: torch.Tensor, similarity: Similarity = cosine_similarity, block_mb: float = BLOCK_MB):
        self.x, self.similarity, _diag = prepared(x, similarity, block_mb)
        self.block_mb = block_mb
        # max_{j∈S} s(i, j); 0 for the empty set (similarities are >= 0)
        self.best = torch.zeros(len(x), dtype=dtype(), device=x.device)

    def gains(self, cand: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(cand), dtype=self.best.dtype, device=self.x.device)
        xc = self.x[cand]
        step = block_rows(len(cand), self.block_mb)
        for start in range(0, len(self.x), step):
            s = self.similarity(self.x[start:start + step], xc)
            out += (s - self.best[start:start + step, None]).clamp_min_(0).sum(0)
        return out

    def add(self, j: int) -> None:
        self.best = torch.maximum(self.best, self.similarity(self.x, self.x[j:j + 1])[:, 0])

    def value(self) -> float:
        return float(self.best.sum())


class GraphCut:
    """f(S) = Σ_{i∈V, j∈S} s(i, j) − λ Σ_{i,j∈S} s(i, j) (submodlib's GraphCut); gain Σ_i s_ij − λ(2Σ_{i∈S} s_ij + s_jj)."""

    def __init__(self, x: torch.Tensor, lam: float, similarity: Similarity = cosine_similarity,
                 block_mb: float = BLOCK_MB):
        x, similarity, self.self_sim = prepared(x, similarity, block_mb)
        self.x, self.similarity, self.lam = x, similarity, lam
        step = block_rows(len(x), block_mb)
        self.total = torch.zeros(len(x), dtype=dtype(), device=x.device)
        for start in range(0, len(x), step):
            self.total += similarity(x[start:start + step], x).sum(0)
        self.chosen_sum = torch.zeros(len(x), dtype=dtype(), device=x.device)

    def gains(self, cand: torch.Tensor) -> torch.Tensor:
        return self.total[cand] - self.lam * (2 * self.chosen_sum[cand] + self.self_sim[cand])

    def add(self, j: int) -> None:
        self.chosen_sum += self.similarity(self.x, self.x[j:j + 1])[:, 0]


class LogDeterminant:
    """f(S) = log det(L_S), L = similarity + ridge·I; exact gains of all samples by incremental Cholesky
    (Chen et al., NeurIPS 2018, fast greedy MAP): gain_i = log d_i², d_i² = L_ii − ‖c_i‖²."""

    def __init__(self, x: torch.Tensor, ridge: float, capacity: int, similarity: Similarity = cosine_similarity):
        self.x, self.similarity, diag = prepared(x, similarity)
        self.d2 = diag + ridge
        self.c = torch.zeros(len(x), capacity, dtype=self.d2.dtype, device=x.device)
        self.k = 0

    def gains(self, cand: torch.Tensor) -> torch.Tensor:
        return torch.log(self.d2[cand].clamp_min(1e-30))

    def add(self, j: int) -> None:
        dj = self.d2[j].clamp_min(1e-30).sqrt()
        e = (self.similarity(self.x, self.x[j:j + 1])[:, 0] - self.c[:, :self.k] @ self.c[j, :self.k]) / dj
        self.c[:, self.k] = e
        self.k += 1
        self.d2 = self.d2 - e * e


def greedy(f, n: int, k: int, method: str, epsilon: float, rng: np.random.Generator,
           lazy_batch: int = 32) -> np.ndarray:
    """Pick k of n elements maximising f greedily; `f` has `gains(candidates)` and `add(j)`.

    plain: all gains every step. lazy (Minoux 1978): gains only shrink (submodularity), so
    stale gains are upper bounds; re-evaluate the `lazy_batch` best bounds until the best
    bound is fresh: the same picks as plain greedy, far fewer evaluations. stochastic
    (Mirzasoleiman et al., AAAI 2015): each step the best of ceil(n/k·ln(1/ε)) unchosen
    samples drawn from `rng`, a (1 − 1/e − ε) approximation in expectation.
    """
    chosen = np.empty(k, dtype=np.int64)
    dev = f.x.device
    taken = torch.zeros(n, dtype=torch.bool, device=dev)
    every = torch.arange(n, device=dev)
    bound = f.gains(every) if method == "lazy" else None
    sample = min(n, math.ceil(n / k * math.log(1 / epsilon)))
    for t in range(k):
        if method == "plain":
            gains = f.gains(every).masked_fill_(taken, -float("inf"))
            j = int(torch.argmax(gains))
        elif method == "stochastic":
            pool = np.flatnonzero(~taken.cpu().numpy())
            cand = torch.as_tensor(rng.choice(pool, size=min(sample, len(pool)), replace=False), device=dev)
            j = int(cand[torch.argmax(f.gains(cand))])
        else:
            fresh = torch.full((n,), t == 0, dtype=torch.bool, device=dev)
            while True:
                j = int(torch.argmax(bound))
                if fresh[j]:
                    break
                cand = torch.topk(bound, min(lazy_batch, n - t)).indices
                cand = torch.cat([cand[~fresh[cand]], torch.tensor([j], device=dev)])  # j itself: with exact
                # ties, topk may hold only fresh bounds equal to j's, and without j the loop would never end
                bound[cand] = f.gains(cand)
                fresh[cand] = True
            bound[j] = -float("inf")
        chosen[t], taken[j] = j, True
        f.add(j)
    return chosen


def _maximise(make, budget, labels, seed, vectors, per_class, greedy_method, epsilon):
    x_all = tensor(vectors)

    def pick(members, quota, rng):
        x = x_all[torch.as_tensor(members, device=x_all.device)]
        return greedy(make(x, quota), len(x), quota, greedy_method, epsilon, rng)

    return by_class(pick, budget, labels, seed, per_class)


def _space(space, embeddings, gradients):
    """The vectors a set function compares: the gradient embeddings (DeepCore's) or the penultimate ones."""
    return gradients if space == "gradients" else embeddings


@coreset
def facility_location(scores, budget, labels, seed, embeddings, per_class, greedy, epsilon, space="gradients",
                      gradients=None):
    """Facility location (DeepCore `methods/submodular.py` + `methods_utils/submodular_function.py`).

    F(S) = Σ_i max_{j∈S} s(i, j) with DeepCore's similarity s = 0.5 + 0.5·cos between the
    last-layer gradients (`space`, as DeepCore) or the penultimate embeddings, per class
    (DeepCore's main.py: `--balance True`). Differences: DeepCore builds the class's full
    similarity matrix; here rows come in blocks of at most BLOCK_MB, and the greedy is one of
    lazy (exact, the default), stochastic or plain (see `greedy`).
    """
    return _maximise(lambda x, k: FacilityLocation(x), budget, labels, seed, _space(space, embeddings, gradients),
                     per_class, greedy, epsilon)


@coreset
def graph_cut(scores, budget, labels, seed, embeddings, per_class, greedy, epsilon, lam, space="gradients",
              gradients=None):
    """Graph cut (submodlib's GraphCut; DeepCore `submodular_function.py` GraphCut).

    f(S) = Σ_{i∈V, j∈S} s_ij − λ Σ_{i,j∈S} s_ij, s = 0.5 + 0.5·cos of the gradients (or
    embeddings): representative (first term) and diverse (second). Column sums are taken
    once, in blocks. DeepCore's `lam` weighs the first term instead: the same function at 1.
    """
    return _maximise(lambda x, k: GraphCut(x, lam), budget, labels, seed, _space(space, embeddings, gradients),
                     per_class, greedy, epsilon)


@coreset
def log_determinant(scores, budget, labels, seed, embeddings, per_class, greedy, epsilon, ridge, space="gradients",
                    gradients=None):
    """Log-determinant (submodlib's LogDeterminant; DeepCore `submodular_function.py` LogDeterminant).

    f(S) = log det(L_S + ridge·I) with L the cosine kernel 0.5 + 0.5·cos (positive semi-definite)
    of the gradients (or embeddings); gains from an incremental Cholesky factor (O(n·k) memory,
    not the n x n kernel). Every gain is exact each step, so lazy and plain pick the same set.
    DeepCore's `calc_gain` returns s_{x,S} L_S⁺ s_{x,S}ᵀ, the part of L_xx that S already explains,
    not this gain (see the method's page).
    """
    return _maximise(lambda x, k: LogDeterminant(x, ridge, k), budget, labels, seed,
                     _space(space, embeddings, gradients), per_class, greedy, epsilon)
