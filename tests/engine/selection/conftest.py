"""The real inputs the reference tests of the strategies share: one `mlp` trained one epoch on 2000 real MNIST
digits (mnist-mini), read back in float64 on an uneven real subset of them, so that per-class budgets have
remainders to distribute."""
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.scoring.gradembed import last_layer_gradients
from engine.trainer import train

from ...conftest import torch_threads


@dataclass(frozen=True)
class Surrogate:
    """Aligned float64 arrays of n samples: loss scores, labels, penultimate embeddings, exact last-layer gradient
    embeddings (prunelab's class-major layout), logits and softmax outputs straight from the model."""

    loss: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray
    gradients: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray


@pytest.fixture(scope="session")
def surrogate() -> Surrogate:
    """The first 120 + 12·c digits of each class c in mnist-mini (at most its 200): 1692 samples, classes of
    120, 132, ..., 192, 200, 200, 200."""
    with torch_threads(1):
        ds = load_dataset("mnist-mini", train_size=2000)
        model = train("mlp", ds, TrainConfig(epochs=1, batch_size=128), seed=0, evaluate_every_epoch=False,
                      evaluate_at_end=False).model.double().eval()
        y = ds.y_train
        keep = np.concatenate([np.flatnonzero(y.numpy() == c)[:120 + 12 * c] for c in range(10)])
        keep = torch.as_tensor(np.sort(keep))
        with torch.no_grad():
            feats = model.embed(ds.normalize(ds.x_train[keep], torch.float64))
            logits = model.head(feats)
            grads = last_layer_gradients(feats, logits, y[keep])
            loss = torch.nn.functional.cross_entropy(logits, y[keep], reduction="none")
    return Surrogate(loss.numpy(), y[keep].numpy(), feats.numpy(), grads.numpy(), logits.numpy(),
                     torch.softmax(logits, 1).numpy())


def hamilton_quotas(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Largest remainders in exact rational arithmetic: ⌊b·n_c/n⌋ each, the leftover units to the largest
    fractional parts. Fails the calling test if a tie at the cut-off would make the answer depend on a draw."""
    from fractions import Fraction

    n = int(np.sum(sizes))
    shares = [Fraction(budget * int(size), n) for size in sizes]
    quotas = np.array([int(share) for share in shares])
    left = budget - int(quotas.sum())
    order = sorted(range(len(sizes)), key=lambda c: shares[c] - int(shares[c]), reverse=True)
    fractions = [shares[c] - int(shares[c]) for c in order]
    assert left == 0 or left == len(order) or fractions[left - 1] != fractions[left], "a tie decides the quotas"
    quotas[order[:left]] += 1
    return quotas


def cosine_kernel(x: np.ndarray) -> np.ndarray:
    """DeepCore's similarity 0.5 + 0.5·cos, in float64, its diagonal exactly 1."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    k = 0.5 + 0.5 * u @ u.T
    np.fill_diagonal(k, 1.0)
    return k
