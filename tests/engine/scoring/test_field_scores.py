"""The field's scores (AUM, TDDS, dynamic uncertainty, uncertainty, GraNd) against independent computations.

The training-dynamics observers run inside one real MNIST training run next to a
recorder that keeps every minibatch's logits; the references recompute each score
from those saved logits with the papers' formulas (loops over epochs and windows,
the `aum` package for AUM) in float64.
"""
import numpy as np
import pytest
import torch
from aum import AUMCalculator

from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.scoring.batch import score_model
from engine.scoring.registry import SCORERS
from engine.scoring.surrogate import compute_scores, surrogate_seed
from engine.scoring.training_dynamics import AUM, TDDS, DynamicUncertainty
from engine.selection.registry import STRATEGIES
from engine.store.cache import Cache
from engine.train_hooks import Observe, TrainHook
from engine.trainer import to_model_layout, train

EPOCHS, BATCH = 12, 50


class Recorder:
    def __init__(self):
        self.batches = []

    def __call__(self, idx, logits, targets):
        self.batches.append((idx.cpu().numpy(), logits.double().cpu().numpy(), targets.cpu().numpy()))


@pytest.fixture(scope="module")
def run(mnist):
    """One training run observed by every observer and by the recorder."""
    n = len(mnist)
    observers = {"aum": AUM(n, "cpu"), "aum_softmax": AUM(n, "cpu", margin="softmax"),
                 "tdds": TDDS(n, "cpu"), "tdds_w4_t9": TDDS(n, "cpu", window=4, trajectory=9, decay=0.5),
                 "du": DynamicUncertainty(n, "cpu"), "du_w3": DynamicUncertainty(n, "cpu", window=3),  # "train" form
                 "du_w20": DynamicUncertainty(n, "cpu", window=20)}
    recorder = Recorder()
    train("mlp", mnist, TrainConfig(epochs=EPOCHS, batch_size=BATCH), seed=3,
          observers=[*observers.values(), recorder], evaluate_every_epoch=False, evaluate_at_end=False)
    per_epoch = -(-n // BATCH)
    probs = np.zeros((EPOCHS, n, 10))
    logits = np.zeros((EPOCHS, n, 10))
    for b, (idx, lg, _) in enumerate(recorder.batches):
        logits[b // per_epoch, idx] = lg
        e = np.exp(lg - lg.max(1, keepdims=True))
        probs[b // per_epoch, idx] = e / e.sum(1, keepdims=True)
    labels = mnist.y_train.cpu().numpy()
    return {name: o.scores() for name, o in observers.items()}, recorder, probs, logits, labels


def test_aum_matches_the_aum_package(run, tmp_path):
    scores, recorder, _, _, labels = run
    calc = AUMCalculator(str(tmp_path), compressed=True)
    for idx, lg, y in recorder.batches:
        calc.update(torch.from_numpy(lg), torch.from_numpy(y), idx.tolist())
    reference = np.array([calc.sums[i] / calc.counts[i] for i in range(len(labels))])
    np.testing.assert_allclose(scores["aum"], -reference, rtol=0, atol=1e-10)


def test_aum_softmax_is_the_margin_on_probabilities(run):
    scores, _, probs, _, labels = run
    target = probs[:, np.arange(len(labels)), labels]
    others = probs.copy()
    others[:, np.arange(len(labels)), labels] = -np.inf
    np.testing.assert_allclose(scores["aum_softmax"], -(target - others.max(2)).mean(0), rtol=0, atol=1e-10)


def tdds_reference(probs, trajectory, window, decay):
    """Zhang et al.'s formula, loop by loop over windows and epochs."""
    total = np.zeros(probs.shape[1])
    for k in range(trajectory - window + 1):
        kd = [np.abs(probs[j + 1] * (np.log(probs[j + 1] + 1e-8) - np.log(probs[j] + 1e-8))).sum(1)
              for j in range(k, k + window - 1)]
        kd = np.array(kd)
        norm = np.sqrt(((kd - kd.mean(0)) ** 2).sum(0))
        total += norm * decay * (1 - decay) ** (trajectory - window - k)
    return total


def test_tdds_matches_the_windowed_formula(run):
    scores, _, probs, _, _ = run
    np.testing.assert_allclose(scores["tdds"], tdds_reference(probs, 10, 10, 0.9), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores["tdds_w4_t9"], tdds_reference(probs, 9, 4, 0.5), rtol=1e-10, atol=1e-12)


def dynamic_uncertainty_reference(target: np.ndarray, window: int) -> np.ndarray:
    """BAAI-DCAI/Dataset-Pruning `get_coreset.py` as its description reads, file by file: a (N, window) history of
    the target probability shifted left and appended each epoch; from the epoch that fills it, the unbiased std of
    each row, except after the last epoch (`idx >= window - 1 and idx < len - 1`); the mean of those (without the
    constant factor 10)."""
    history = np.zeros((target.shape[1], window))
    stds = []
    for idx, p in enumerate(target):
        history = np.concatenate([history[:, 1:], p[:, None]], axis=1)
        if window - 1 <= idx < len(target) - 1:
            stds.append(history.std(1, ddof=1))
    return np.mean(stds, 0)


def test_dynamic_uncertainty_matches_sliding_window_stds(run):
    """On the training forward's probabilities (`logits = "train"`): 12 epochs give 2 windows of 10 (the one ending
    at the last epoch skipped), 9 of 3; with 20 > 12 epochs, the deviation of the first 11."""
    scores, _, probs, _, labels = run
    target = probs[:, np.arange(len(labels)), labels]
    for name, window in (("du", 10), ("du_w3", 3)):
        np.testing.assert_allclose(scores[name], dynamic_uncertainty_reference(target, window), rtol=1e-10,
                                   atol=1e-12)
    np.testing.assert_allclose(scores["du_w20"], target[:-1].std(0, ddof=1), rtol=1e-10, atol=1e-12)


class EvalRecorder(TrainHook):
    """Each trained batch's eval-mode logits of its un-augmented images, before the update: the reference's
    `eval_outputs` (BAAI `main_and_produce.py`), recomputed here by hand, and the training forward's own."""

    def __init__(self, dataset):
        self.dataset, self.eval_batches, self.train_batches = dataset, [], []

    def start(self, state):
        self.model = state.model

    @torch.no_grad()
    def weigh(self, idx):
        ds, model = self.dataset, self.model
        model.eval()
        logits = model(ds.normalize(ds.x_train[idx]).contiguous(memory_format=torch.channels_last))
        model.train()
        self.eval_batches.append((idx.numpy(), logits.double().numpy()))

    def observe(self, idx, logits, y):
        self.train_batches.append((idx.numpy(), logits.double().numpy()))


def test_dynamic_uncertainty_scores_an_eval_mode_forward_of_the_unaugmented_batch(cifar_npz):
    """The default (`logits = "eval"`): on augmented CIFAR-10 (crop and flip), the score is the reference's
    computation on the probabilities of a separate eval-mode forward of each batch's un-augmented images, taken
    before the update, not on the training forward's (which give other numbers)."""
    from engine.scoring.training_dynamics import dynamic_uncertainty

    ds = load_dataset(cifar_npz, device="cpu", train_size=200, test_size=20).replace(augment="crop_flip")
    epochs, window = 6, 3
    evaluated = dynamic_uncertainty(len(ds), "cpu", window=window)
    from_training = dynamic_uncertainty(len(ds), "cpu", window=window, logits="train")
    recorder = EvalRecorder(ds)
    train("cnn", ds, TrainConfig(epochs=epochs, batch_size=BATCH), seed=1,
          hooks=[recorder, evaluated, Observe(from_training)], evaluate_every_epoch=False, evaluate_at_end=False)
    labels = ds.y_train.numpy()
    for batches, scores in ((recorder.eval_batches, evaluated.scores()), (recorder.train_batches,
                                                                          from_training.scores())):
        target = np.zeros((epochs, len(ds)))
        for b, (idx, lg) in enumerate(batches):
            p = np.exp(lg - lg.max(1, keepdims=True))
            target[b // 4, idx] = (p / p.sum(1, keepdims=True))[np.arange(len(idx)), labels[idx]]
        np.testing.assert_allclose(scores, dynamic_uncertainty_reference(target, window), rtol=1e-10, atol=1e-12)
    assert not np.allclose(evaluated.scores(), from_training.scores(), rtol=1e-2)


def test_compute_scores_gathers_observers_during_surrogate_training_and_caches(mnist, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=BATCH)
    cache = Cache(tmp_path)
    first = compute_scores(mnist, "mlp", ["aum", "dynamic_uncertainty", "loss"], epochs=[3], inits=1, train_cfg=cfg,
                           seed=4, cache=cache)
    aum, du = AUM(len(mnist), "cpu"), DynamicUncertainty(len(mnist), "cpu")
    train("mlp", mnist, cfg, seed=4, observers=[aum, du], evaluate_every_epoch=False, evaluate_at_end=False)
    np.testing.assert_allclose(first.get("aum"), aum.scores(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(first.get("dynamic_uncertainty"), du.scores(), rtol=1e-6, atol=1e-6)
    again = compute_scores(mnist, "mlp", ["aum", "entropy"], epochs=[3], inits=1, train_cfg=cfg, seed=4, cache=cache)
    assert again.surrogates_trained == 0  # aum from the cache, entropy rescored from the cached state
    np.testing.assert_array_equal(again.get("aum"), first.get("aum"))


def test_uncertainty_scores_follow_their_formulas(mnist):
    model = train("mlp", mnist, TrainConfig(steps=8, batch_size=BATCH), seed=0).model.double()
    result = score_model(model, mnist, ["entropy", "least_confidence", "margin"], batch_size=64)
    with torch.no_grad():
        logits = model(to_model_layout(mnist.normalize(mnist.x_train, torch.float64))).numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = np.sort(p, 1)[:, ::-1]
    np.testing.assert_allclose(result.scores["entropy"], -(p * np.log(p)).sum(1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.scores["least_confidence"], -logits.max(1), rtol=1e-10, atol=1e-12)
    probability = score_model(model, mnist, ["least_confidence"], options={"least_confidence": {"form": "probability"}})
    np.testing.assert_allclose(probability.scores["least_confidence"], 1 - top[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.scores["margin"], 1 - (top[:, 0] - top[:, 1]), rtol=1e-10, atol=1e-12)
    assert SCORERS["entropy"].average_inits and SCORERS["margin"].average_inits


def test_grand_is_the_grad_norm_averaged_over_k_inits(mnist):
    cfg = TrainConfig(epochs=1, batch_size=BATCH)
    result = compute_scores(mnist, "mlp", ["grand", "grad_norm"], epochs=[0], inits=3, train_cfg=cfg, seed=2)
    singles = []
    for k in range(3):
        from engine.architectures import build_model
        model = build_model("mlp", mnist.input_shape, 10, seed=surrogate_seed(2, k))
        singles.append(score_model(model, mnist, ["grad_norm"]).scores["grad_norm"])
    np.testing.assert_allclose(result.get("grand"), np.mean(singles, 0), rtol=1e-5)
    np.testing.assert_allclose(result.get("grad_norm"), singles[0], rtol=1e-6)
    assert not np.allclose(result.get("grand"), singles[0], rtol=1e-2)


def test_ccs_takes_aum_and_prunes_the_highest_aum_first(run):
    scores, _, _, _, labels = run
    aum = scores["aum"]
    ccs = STRATEGIES["ccs"]
    kept = np.asarray(ccs.fn.load()(aum, 150, labels, 0, None, **{**ccs.defaults, "beta": 0.2}))
    assert len(np.unique(kept)) == 150
    hardest = np.argsort(-aum)[:60]  # beta = 0.2 of 300
    assert not np.isin(hardest, kept).any()


@pytest.fixture(scope="module")
def embedded(mnist):
    """Surrogate 0 at epoch 2 with its embeddings, its embedding scores and its own logits."""
    cfg = TrainConfig(epochs=2, batch_size=BATCH)
    result = compute_scores(mnist, "mlp", ["moderate", "prototypes", "cal"], epochs=[2], inits=1, train_cfg=cfg,
                            seed=6, embeddings=True)
    model = train("mlp", mnist, cfg, seed=6, evaluate_every_epoch=False, evaluate_at_end=False).model.eval()
    with torch.no_grad():
        logits = model(to_model_layout(mnist.normalize(mnist.x_train))).double().numpy()
    return result, result.embeddings[2].astype(np.float64), result.labels, logits


def test_moderate_is_the_distance_to_the_class_median(embedded):
    result, emb, labels, _ = embedded
    reference = np.array([np.linalg.norm(emb[i] - np.median(emb[labels == labels[i]], axis=0))
                          for i in range(len(labels))])
    np.testing.assert_allclose(result.get("moderate"), reference, rtol=1e-5, atol=1e-5)


def test_cal_is_the_mean_symmetric_kl_to_same_class_neighbours(embedded):
    from scipy.spatial.distance import cdist
    from scipy.special import log_softmax
    result, emb, labels, logits = embedded
    logp = log_softmax(logits, axis=1)
    reference = np.zeros(len(labels))
    for i in range(len(labels)):
        same = np.flatnonzero(labels == labels[i])
        same = same[same != i]
        near = same[np.argsort(cdist(emb[i:i + 1], emb[same])[0], kind="stable")[:10]]
        p, q = np.exp(logp[i]), np.exp(logp[near])
        reference[i] = np.mean([(0.5 * p * (logp[i] - lq) + 0.5 * qq * (lq - logp[i])).sum()
                                for qq, lq in zip(q, logp[near])])
    np.testing.assert_allclose(result.get("cal"), -reference, rtol=1e-4, atol=1e-6)  # −KL: DeepCore keeps the lowest


def test_prototypes_with_one_centroid_is_the_cosine_distance_to_the_class_direction(embedded):
    from engine.scoring.embedding_scores import prototypes_score
    result, emb, labels, _ = embedded
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    reference = np.zeros(len(labels))
    for c in np.unique(labels):
        rows = labels == c
        centre = unit[rows].mean(0)
        reference[rows] = 1 - unit[rows] @ (centre / np.linalg.norm(centre))
    np.testing.assert_allclose(prototypes_score(None, emb, labels, clusters=1), reference, atol=1e-5)
    assert np.allclose(prototypes_score(None, emb, labels, clusters=10_000), 0, atol=1e-5)  # each its own centroid
    np.testing.assert_allclose(result.get("prototypes"), prototypes_score(None, emb, labels), atol=1e-6)
    assert (result.get("prototypes") < reference + 1e-5).mean() > 0.9  # ten prototypes fit closer than one


def test_moderate_strategy_keeps_the_band_around_the_median(embedded):
    result, _, labels, _ = embedded
    scores = result.get("moderate").astype(np.float64)
    moderate = STRATEGIES["moderate"]
    kept = np.asarray(moderate.fn.load()(scores, 100, labels, 0, None))
    ascending = np.argsort(scores, kind="stable")
    np.testing.assert_array_equal(np.sort(kept), np.sort(ascending[100:200]))


NOISE_SCORERS = ("aum", "el2n", "forgetting", "loss")
NOISE_RUN = ["kind=noise", "name=noisy-mnist", "data.dataset=mnist", "data.train_size=1000", "data.test_size=100",
             "model=mlp", "surrogate.epochs=3", "surrogate.inits=2", "train.batch_size=64", "noise.fraction=0.1",
             f"noise.methods={list(('random',) + NOISE_SCORERS)!r}".replace("'", '"')]


def noisy_precision_at_k(shared_data, tracking_uri: str, overrides=()) -> dict[str, dict]:
    """The `noise` kind on MNIST: 1000 samples, 10 % flipped, mlp surrogates (3 epochs, batch 64, K = 2);
    each scorer's summary row (precision and recall at k = #flipped, ROC AUC). The table of
    docs/results/noise-detection.md (its second column: overrides data.train_size=2000, surrogate.epochs=4)."""
    import engine
    from engine.config import load_config

    run = engine.run(load_config("quick", NOISE_RUN + [f"data.data_dir={shared_data}", *overrides]),
                     tracking_uri=tracking_uri)
    assert run.status == "FINISHED"
    return {r["method"]: r for r in run.summary}


def test_the_noise_kind_finds_flipped_mnist_labels_far_above_random(shared_data, tmp_path, monkeypatch,
                                                                   fresh_store):
    monkeypatch.chdir(tmp_path)  # the run's cache beside its store
    rows = noisy_precision_at_k(shared_data, fresh_store(tmp_path / "mlflow.db"))
    assert all(rows[m]["k"] == rows[m]["flipped"] == 100 for m in rows)
    assert rows["random"]["precision"] < 0.2  # random finds 0.1 (measured 0.09)
    for name in NOISE_SCORERS:  # docs/results/noise-detection.md; measured 0.80 0.82 0.69 0.78, ROC AUC 0.93 to 0.98
        assert rows[name]["precision"] > 0.5 and rows[name]["auroc"] > 0.9, (name, rows[name])
