"""Selection strategies on real scores: the per-sample loss and embeddings of a tiny
MLP trained for one epoch on 2000 real MNIST digits (the embedded mnist-mini set)."""
import numpy as np
import pytest
import torch
from torch import nn

from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.errors import ConfigError, DataError, UnknownNameError
from engine.scoring.gradembed import last_layer_gradients
from engine.selection import STRATEGIES, allocate, check_strategy, describe_strategies, keep_count, score_strata, select
from engine.selection.coverage import kmeans, kmeans_cells
from engine.trainer import train

RATIOS = [0.001, 0.1, 0.37, 0.5, 0.9, 1.0]
GRADIENTS = {}  # the surrogate's last-layer gradient embeddings, for the gradient coresets


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def real():
    """(losses, labels, embeddings) of a real surrogate on a stratified 2000-digit subset."""
    ds = load_dataset("mnist-mini", train_size=2000)
    model = train("mlp", ds, TrainConfig(epochs=1, batch_size=128), seed=0, evaluate_every_epoch=False).model
    model.eval()
    with torch.no_grad():
        x = ds.normalize(ds.x_train)
        loss = nn.functional.cross_entropy(model(x), ds.y_train, reduction="none")
        emb = model.embed(x)
        GRADIENTS["real"] = last_layer_gradients(emb, model.head(emb), ds.y_train).numpy()
    return loss.numpy().astype(np.float64), ds.y_train.numpy(), emb.numpy()


def run(name, real, ratio, seed=0, scores=None, **options):
    loss, labels, emb = real
    return select(name, loss if scores is None else scores, ratio, labels, seed=seed,
                  embeddings=emb if STRATEGIES[name].needs_embeddings else None,
                  gradients=GRADIENTS["real"] if STRATEGIES[name].needs_gradients else None, **options)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_exact_sorted_sizes_for_every_strategy(name, real):
    n = len(real[0])
    assert len(np.unique(real[0])) == n  # real losses: no ties, so "hardest" below is well defined
    for ratio in RATIOS:
        kept = run(name, real, ratio)
        assert kept.dtype == np.int64 and len(kept) == keep_count(ratio, n) == max(1, round(ratio * n))
        assert np.all(np.diff(kept) > 0) and kept[0] >= 0 and kept[-1] < n
    assert np.array_equal(run(name, real, 1.0), np.arange(n))
    # integer-valued scores (forgetting-like: heavy ties) and constant scores work too
    ties = np.floor(real[0] * 2)
    assert len(run(name, real, 0.25, scores=ties)) == 500
    assert len(run(name, real, 0.25, scores=np.zeros(n))) == 500
    # the same seed gives the same selection
    assert np.array_equal(run(name, real, 0.3, seed=5), run(name, real, 0.3, seed=5))


def test_hardest_and_easiest_keep_the_extremes(real):
    loss = real[0]
    hard, easy = run("hardest", real, 0.2), run("easiest", real, 0.2)
    assert set(hard) == set(np.argsort(loss)[-400:]) and set(easy) == set(np.argsort(loss)[:400])
    assert loss[hard].min() > np.delete(loss, hard).max()
    for ratio in (0.3, 0.5):
        assert not set(run("hardest", real, ratio)) & set(run("easiest", real, ratio))
    # with ties, a seeded permutation decides, but the kept scores are the same and still disjoint
    ties = np.floor(loss * 2)
    a, b = run("hardest", real, 0.3, seed=0, scores=ties), run("hardest", real, 0.3, seed=1, scores=ties)
    assert not np.array_equal(a, b) and np.array_equal(np.sort(ties[a]), np.sort(ties[b]))
    flat = np.zeros(len(loss))
    assert not set(run("hardest", real, 0.5, scores=flat)) & set(run("easiest", real, 0.5, scores=flat))


def test_random_is_seeded_and_ignores_scores(real):
    a, b = run("random", real, 0.2, seed=0), run("random", real, 0.2, seed=1)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, run("random", real, 0.2, seed=0, scores=-real[0]))


def test_ccs_is_seeded_and_cuts_the_hardest_beta(real):
    loss = real[0]
    a, b = run("ccs", real, 0.2, seed=0), run("ccs", real, 0.2, seed=1)
    assert not np.array_equal(a, b)
    kept = run("ccs", real, 0.2, beta=0.1)
    hardest_tenth = np.argsort(loss)[-200:]
    assert not set(kept) & set(hardest_tenth) and len(kept) == 400
    # when the cut would leave less than the budget, it shrinks: all but the n - budget hardest
    assert set(run("ccs", real, 0.9, beta=0.3)) == set(np.argsort(loss)[:1800])


def test_ccs_covers_the_score_range(real):
    loss = real[0]
    strata = score_strata(loss, 50)
    nonempty = np.unique(strata)
    ccs = run("ccs", real, 0.1)
    assert np.array_equal(ccs, run("ccs", real, 0.1, bins=50))  # bins=50 is the default
    hard = run("hardest", real, 0.1)
    assert len(nonempty) <= 200  # the budget allows every non-empty stratum
    assert np.array_equal(np.unique(strata[ccs]), nonempty)
    assert len(np.unique(strata[hard])) < len(nonempty)
    # the budget is spread evenly: strata that are not taken whole get the same count, within one
    counts, sizes = np.bincount(strata[ccs], minlength=50), np.bincount(strata, minlength=50)
    partial = counts[counts < sizes]
    assert partial.max() - partial.min() <= 1 and counts.sum() == 200


def test_allocate_is_the_papers_water_filling():
    assert allocate(10, np.array([0, 1, 100, 100])).tolist() == [0, 1, 4, 5]
    assert allocate(9, np.array([3, 3, 3])).tolist() == [3, 3, 3]
    assert allocate(7, np.array([5, 0, 1])).tolist() == [5, 0, 1]  # more budget than samples: all of them
    # budget below the number of groups: the units go to distinct groups, chosen by the seed
    picks = [allocate(3, np.ones(10, int), np.random.default_rng(s)) for s in range(4)]
    assert all(p.sum() == 3 and p.max() == 1 for p in picks) and len({tuple(p) for p in picks}) > 1


def test_class_balanced_is_even_per_class(real):
    loss, labels, _ = real
    for ratio in (0.1, 0.1234, 0.5):
        kept = run("class_balanced", real, ratio)
        counts = np.bincount(labels[kept], minlength=10)
        assert counts.sum() == round(ratio * 2000) and counts.max() - counts.min() <= 1
    kept = run("class_balanced", real, 0.1)  # order="hardest": each class's own top scores
    for c in range(10):
        members = np.flatnonzero(labels == c)
        assert set(kept[labels[kept] == c]) == set(members[np.argsort(loss[members])[-20:]])
    easy = run("class_balanced", real, 0.1, order="easiest")
    assert not set(easy) & set(kept)
    rand = run("class_balanced", real, 0.1, order="random")
    assert not np.array_equal(rand, run("class_balanced", real, 0.1, order="random", seed=1))


def test_class_balanced_is_proportional_on_unbalanced_classes(real):
    loss, labels, _ = real
    part = np.flatnonzero(labels < 7)[:900]  # a real, uneven slice of the classes
    sizes = np.bincount(labels[part], minlength=7)
    kept = select("class_balanced", loss[part], 0.3, labels[part])
    counts = np.bincount(labels[part][kept], minlength=7)
    assert counts.sum() == 270
    assert np.all(np.abs(counts - 0.3 * sizes) < 1)


def test_kmeans_coverage_touches_every_cell(real):
    loss, labels, emb = real
    cells = kmeans_cells(labels, emb, clusters=10, seed=0)
    occupied = np.unique(cells)
    assert len(occupied) >= 90  # real embeddings: nearly every class splits into 10 clusters
    kept = run("kmeans_coverage", real, 0.1)  # 20 per class >= 10 clusters
    assert np.array_equal(np.unique(cells[kept]), occupied)
    counts = np.bincount(labels[kept], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 200
    # within each cell, order="hardest" takes the cell's top scores
    for cell in occupied[:5]:
        members = np.flatnonzero(cells == cell)
        chosen = kept[cells[kept] == cell]
        assert set(chosen) == set(members[np.argsort(loss[members])[len(members) - len(chosen):]])
    other = run("kmeans_coverage", real, 0.1, seed=1)
    assert not np.array_equal(kept, other)
    assert len(run("kmeans_coverage", real, 0.1, clusters=3, order="random")) == 200


def test_kmeans_converges_to_nearest_centers(real):
    _, labels, emb = real
    points = emb[labels == 3].astype(np.float64)
    assign, centers = kmeans(points, 5, np.random.default_rng(0), iterations=100)
    dist = ((points[:, None] - centers[None]) ** 2).sum(-1)
    assert np.array_equal(assign, dist.argmin(1))
    inertia = dist[np.arange(len(points)), assign].sum()
    one = ((points - points.mean(0)) ** 2).sum()
    assert inertia < 0.8 * one  # five clusters explain a real share of the spread


def test_describe_and_defaults_validate():
    described = {d["name"]: d for d in describe_strategies()}
    assert set(described) == {"hardest", "easiest", "random", "ccs", "class_balanced", "kmeans_coverage", "moderate",
                              "kcenter_greedy", "herding", "facility_location", "graph_cut", "log_determinant",
                              "craig", "gradmatch", "glister", "contextual_diversity", "d2_pruning", "semdedup"}
    assert described["ccs"]["options"]["beta"]["default"] == 0.0
    assert described["ccs"]["options"]["bins"]["default"] == 50
    assert described["kmeans_coverage"]["needs_embeddings"] is True
    for name, strategy in STRATEGIES.items():
        assert strategy.description
        check_strategy(name, strategy.defaults)


@pytest.mark.parametrize("name, options, message", [
    ("ccs", {"beta": 1.0}, r"beta = 1.0 .*0 <= beta < 1"),
    ("ccs", {"beta": -0.1}, r"beta = -0.1 .*0 <= beta < 1"),
    ("ccs", {"bins": 0}, r"bins = 0 .*integer >= 1"),
    ("ccs", {"bins": 2.5}, r"bins = 2.5 .*integer >= 1"),
    ("kmeans_coverage", {"clusters": 0}, r"clusters = 0 .*integer >= 1"),
    ("class_balanced", {"order": "middle"}, r"order = 'middle' .*'hardest', 'easiest', 'random'"),
    ("hardest", {"beta": 0.1}, r"has no option 'beta'; it takes no options"),
    ("ccs", {"bin": 10}, r"has no option 'bin'; its options are: beta, bins"),
])
def test_bad_options_name_the_option_and_the_range(real, name, options, message):
    with pytest.raises(ConfigError, match=message):
        check_strategy(name, options)
    with pytest.raises(ConfigError, match=message):
        run(name, real, 0.5, **options)


def test_bad_inputs(real):
    loss, labels, _ = real
    with pytest.raises(UnknownNameError, match="unknown selection strategy 'hardst'"):
        select("hardst", loss, 0.5, labels)
    for ratio in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"keep_ratio=.* 0 < keep_ratio <= 1"):
            select("random", loss, ratio, labels)
    with pytest.raises(ConfigError, match="needs embeddings"):
        select("kmeans_coverage", loss, 0.5, labels)
    with pytest.raises(DataError, match="NaN"):
        select("hardest", np.where(labels == 3, np.nan, loss), 0.5, labels)
    with pytest.raises(DataError, match="labels must be 2000 integers"):
        select("hardest", loss, 0.5, labels[:10])
    with pytest.raises(DataError, match=r"embeddings must be .*\(2000, d\)"):
        select("kmeans_coverage", loss, 0.5, labels, embeddings=real[2][:10])


# ------------------------------------------------------------------ against independent computations
def papers_allocation(budget: int, sizes) -> dict[int, list[int]]:
    """CCS's Algorithm 1 written out: visit the strata from the smallest up; each takes min(its size, what is
    left ÷ strata left). Returned as {size: sorted counts}, since strata of equal size may take their counts in
    any order."""
    left, out = budget, {}
    order = sorted(range(len(sizes)), key=lambda g: sizes[g])
    for visited, g in enumerate(order):
        take = min(int(sizes[g]), left // (len(order) - visited))
        left -= take
        out.setdefault(int(sizes[g]), []).append(take)
    return {size: sorted(counts) for size, counts in out.items()}


def test_keep_count_is_pythons_round_of_r_times_n(real):
    loss = real[0]
    for ratio, n, want in ((0.25, 10, 2), (0.35, 10, 4), (0.1234, 2000, 247), (0.0004, 2000, 1)):
        kept = select("hardest", loss[:n], ratio, real[1][:n])
        assert len(kept) == want == keep_count(ratio, n)  # 2.5 → 2 and 3.5 → 4 (half to even), 246.8 → 247
        assert set(kept) == set(np.argsort(loss[:n])[n - want:])


def test_random_is_numpys_seeded_choice(real):
    for seed in (0, 7):
        want = np.random.default_rng(seed).choice(2000, 740, replace=False)
        assert np.array_equal(run("random", real, 0.37, seed=seed), np.sort(want))


def test_moderate_keeps_the_band_that_starts_at_round_half_of_the_rest(real):
    loss, labels, _ = real
    for budget in (97, 98):  # (2000 − 97) / 2 = 951.5 → 952, (2000 − 98) / 2 = 951
        low = round((2000 - budget) / 2)
        kept = select("moderate", loss, budget / 2000, labels)
        assert set(kept) == set(np.argsort(loss)[low:low + budget])


def test_class_balanced_quotas_are_largest_remainders(surrogate):
    from .conftest import hamilton_quotas

    for ratio in (0.06, 0.08, 0.17):  # at 0.08 and 0.17 rounding each class's r·n_c misses b by one
        kept = select("class_balanced", surrogate.loss, ratio, surrogate.labels)
        quotas = hamilton_quotas(np.bincount(surrogate.labels), len(kept))
        assert np.array_equal(np.bincount(surrogate.labels[kept], minlength=10), quotas)
        for c in range(10):
            members = np.flatnonzero(surrogate.labels == c)
            assert set(kept[surrogate.labels[kept] == c]) == set(members[np.argsort(surrogate.loss[members])[
                len(members) - quotas[c]:]])


def test_ccs_cuts_the_floor_of_beta_n_and_fills_strata_by_the_papers_loop(real):
    loss, labels, _ = real
    for beta, ratio in ((0.1234, 0.2), (0.0, 0.05), (0.25, 0.5)):  # 0.1234·2000 = 246.8: 246 cut
        kept = select("ccs", loss, ratio, labels, beta=beta)
        cut = np.argsort(loss)[2000 - int(np.floor(beta * 2000)):]
        assert not set(kept) & set(cut)
        pool = np.setdiff1d(np.arange(2000), cut)
        low, high = loss[pool].min(), loss[pool].max()
        strata = np.minimum(((loss[pool] - low) / (high - low) * 50).astype(int), 49)
        sizes = np.bincount(strata, minlength=50)
        counts = np.bincount(strata[np.searchsorted(pool, kept)], minlength=50)
        got: dict[int, list[int]] = {}
        for size, count in zip(sizes, counts):
            got.setdefault(int(size), []).append(int(count))
        assert {s: sorted(c) for s, c in got.items()} == papers_allocation(len(kept), sizes)


def test_kmeans_coverage_fills_each_class_quota_over_its_cells_and_keeps_the_hardest(surrogate):
    from .conftest import hamilton_quotas

    kept = select("kmeans_coverage", surrogate.loss, 0.37, surrogate.labels, embeddings=surrogate.embeddings)
    cells = kmeans_cells(surrogate.labels, surrogate.embeddings, clusters=10, seed=0)
    quotas = hamilton_quotas(np.bincount(surrogate.labels), len(kept))
    for c in range(10):
        sizes = np.bincount(cells[surrogate.labels == c] - 10 * c, minlength=10)
        counts = np.bincount(cells[kept][surrogate.labels[kept] == c] - 10 * c, minlength=10)
        got: dict[int, list[int]] = {}
        for size, count in zip(sizes, counts):
            got.setdefault(int(size), []).append(int(count))
        assert {s: sorted(v) for s, v in got.items()} == papers_allocation(int(quotas[c]), sizes)
    for cell in np.unique(cells):
        members = np.flatnonzero(cells == cell)
        chosen = kept[cells[kept] == cell]
        assert set(chosen) == set(members[np.argsort(surrogate.loss[members])[len(members) - len(chosen):]])
