"""TracIn, gradient alignment and MoSo (engine/scoring/influence.py): exact over the surrogate's checkpoints, against a
per-sample autograd loop over the same checkpoints in float64 at rtol 1e-10; their learning rates against the
optimizer's; and inside a run."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from engine.architectures import build_model
from engine.bench.scores import bench_scores
from engine.cli import main
from engine.config import TrainConfig, load_config
from engine.data.dataset import load_dataset
from engine.errors import ConfigError
from engine.scoring.influence import GradientAlignment, MoSo, TracIn, gradient_products, mean_gradient
from engine.scoring.registry import SCORERS
from engine.scoring.surrogate import compute_scores
from engine.store.cache import Cache
from engine.train_hooks import TrainHook, TrainStart
from engine.trainer import to_model_layout, train
from tests.conftest import TEST_DEVICE

EXACT = 1e-10
N = 64
# three epochs of three steps; "step" halves the rate every epoch, so η_c = 0.05 · 0.5^(c − 1) by hand
CFG = TrainConfig(epochs=3, batch_size=32, schedule="step", gamma=0.5, lr=0.05)
QUIET = {"evaluate_every_epoch": False, "evaluate_at_end": False}


@pytest.fixture(scope="module")
def mnist(shared_data):
    return load_dataset("mnist", shared_data, TEST_DEVICE, train_size=N, test_size=50)


class Capture(TrainHook):
    """Keeps what the trainer tells the hooks and the model's state at every epoch end."""

    def __init__(self):
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        self.state: TrainStart | None = None

    def start(self, state: TrainStart) -> None:
        self.state = state

    def epoch_end(self, epoch: int, model: nn.Module) -> None:
        self.states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def run(mnist):
    """One mlp training run with the three scores as hooks (float32, as in a surrogate run) and its checkpoints."""
    capture = Capture()
    hooks = {"tracin": TracIn(N, mnist.device), "gradient_alignment": GradientAlignment(N, mnist.device),
             "moso": MoSo(N, mnist.device)}
    train("mlp", mnist, CFG, seed=0, hooks=[capture, *hooks.values()], **QUIET)
    return capture, hooks


def checkpoint64(mnist, state: dict[str, torch.Tensor]) -> nn.Module:
    model = build_model("mlp", mnist.input_shape, mnist.num_classes, seed=0).double().to(mnist.device)
    model.load_state_dict(state)
    return model.eval()


def slow_stats(model: nn.Module, dataset) -> tuple[np.ndarray, np.ndarray, float, torch.Tensor]:
    """The definitions, one sample at a time: ‖g_n‖², g_n · ḡ, ‖ḡ‖² and ḡ (flat), g_n = ∇θ ℓ(x_n, y_n)."""
    params = [p for p in model.parameters() if p.requires_grad]
    x = to_model_layout(dataset.normalize(dataset.x_train, torch.float64))
    grads = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        nn.functional.cross_entropy(model(x[i:i + 1]), dataset.y_train[i:i + 1]), params)])
        for i in range(len(dataset))])
    mean = grads.mean(0)
    return (grads.square().sum(1).cpu().numpy(), (grads @ mean).cpu().numpy(), float(mean.square().sum()),
            mean.cpu())


@pytest.fixture(scope="module")
def slow(mnist, run):
    """Per checkpoint c = 1, 2, 3: the autograd loop's (‖g‖², g·ḡ, ‖ḡ‖², ḡ) in float64."""
    capture, _ = run
    return {c: slow_stats(checkpoint64(mnist, state), mnist) for c, state in capture.states.items()}


def replay(cls, mnist, run, **options) -> np.ndarray:
    """The hook's scores from the run's checkpoints in float64 (its passes run in the model's dtype)."""
    capture, _ = run
    hook = cls(N, mnist.device, **options)
    hook.start(capture.state)
    for c, state in capture.states.items():
        hook.epoch_end(c, checkpoint64(mnist, state))
    return hook.scores()


def test_checkpoint_learning_rates_are_the_optimizers(mnist, monkeypatch):
    """TrainStart.epoch_lr(e) is the mean of the rates the optimizer really stepped with in epoch e: the one-cycle
    schedule, a steps budget that ends inside the last epoch; and "step" gives 0.05 · 0.5^(e − 1)."""
    used: list[float] = []
    step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    capture = Capture()
    train("mlp", mnist, TrainConfig(steps=8, batch_size=24, lr=0.1), seed=0, hooks=[capture], **QUIET)
    assert len(used) == 8 and len(set(used)) == 8  # three epochs: 3 + 3 + 2 steps, every rate different
    for epoch, steps in ((1, used[:3]), (2, used[3:6]), (3, used[6:])):
        assert capture.state.epoch_lr(epoch) == pytest.approx(np.mean(steps), rel=1e-12)
    capture = Capture()
    train("mlp", mnist, CFG, seed=0, hooks=[capture], **QUIET)
    assert [capture.state.epoch_lr(c) for c in (1, 2, 3)] == pytest.approx([0.05, 0.025, 0.0125], rel=1e-15)


def test_tracin_is_the_lr_weighted_sum_of_squared_norms(mnist, run, slow):
    """Σ_c η_c ‖g_n(θ_c)‖² over the run's three checkpoints at 1e-10, and its options: `every`, `last`,
    `lr_weight`; the float32 hook inside training agrees with float64 to float32's precision."""
    eta = {1: 0.05, 2: 0.025, 3: 0.0125}
    sq = {c: stats[0] for c, stats in slow.items()}
    expected = sum(eta[c] * sq[c] for c in (1, 2, 3))
    np.testing.assert_allclose(replay(TracIn, mnist, run), expected, rtol=EXACT)
    np.testing.assert_allclose(replay(TracIn, mnist, run, every=2), eta[2] * sq[2], rtol=EXACT)
    np.testing.assert_allclose(replay(TracIn, mnist, run, last=2), eta[2] * sq[2] + eta[3] * sq[3], rtol=EXACT)
    np.testing.assert_allclose(replay(TracIn, mnist, run, lr_weight=False), sq[1] + sq[2] + sq[3], rtol=EXACT)
    in_training = run[1]["tracin"]
    assert in_training.checkpoints == [1, 2, 3] and in_training.weights == pytest.approx([0.05, 0.025, 0.0125])
    relative = np.abs(in_training.scores() / expected - 1)
    assert np.median(relative) < 1e-5 and relative.max() < 1e-3


def test_gradient_alignment_and_moso_match_the_autograd_loop(mnist, run, slow):
    """Σ_c η_c g_n · ḡ_c, and MoSo's mean over the checkpoints of η_c ∇L(S∖n) · g_n in both forms, at 1e-10;
    `mean_gradient` is the autograd mean and `gradient_products` the loop's inner products."""
    eta = {1: 0.05, 2: 0.025, 3: 0.0125}
    alignment = sum(eta[c] * slow[c][1] for c in (1, 2, 3))
    np.testing.assert_allclose(replay(GradientAlignment, mnist, run), alignment, rtol=EXACT,
                               atol=EXACT * np.abs(alignment).max())
    paper = sum(eta[c] * (N * slow[c][1] - slow[c][0]) / (N - 1) for c in (1, 2, 3)) / 3
    np.testing.assert_allclose(replay(MoSo, mnist, run), paper, rtol=EXACT, atol=EXACT * np.abs(paper).max())
    reference = sum(eta[c] * ((2 * N - 3) / (N - 1) ** 2 * slow[c][2] - slow[c][0] / (N - 1) ** 2
                              + (2 * N - 4) / (N - 1) ** 2 * (slow[c][1] - slow[c][0] / N)) for c in (1, 2, 3)) / 3
    np.testing.assert_allclose(replay(MoSo, mnist, run, form="reference"), reference, rtol=EXACT,
                               atol=EXACT * np.abs(reference).max())
    model = checkpoint64(mnist, run[0].states[2])
    mean = mean_gradient(model, mnist, batch_size=40)
    flat = torch.cat([mean[name].reshape(-1) for name, _ in model.named_parameters()]).cpu()
    np.testing.assert_allclose(flat.numpy(), slow[2][3].numpy(), rtol=EXACT, atol=1e-15)
    sq, dots = gradient_products(model, mnist, [mean, mean], batch_size=40)
    np.testing.assert_allclose(sq.cpu().numpy(), slow[2][0], rtol=EXACT)
    np.testing.assert_allclose(dots.cpu().numpy(), np.stack([slow[2][1]] * 2, 1), rtol=EXACT,
                               atol=EXACT * np.abs(slow[2][1]).max())
    for name in ("gradient_alignment", "moso"):  # the float32 hooks inside training
        got, want = run[1][name].scores(), alignment if name == "gradient_alignment" else paper
        assert np.abs(got - want).max() < 1e-3 * np.abs(want).max(), name


def test_influence_scores_from_a_run_and_their_options(mnist, tmp_path):
    """Inside compute_scores: the checkpoint scores are what their hooks give, adding them changes no other score
    (the training is the same), `every` and `epoch` pick the checkpoints, a cached call trains nothing, and bad
    options (or InfoBatch's dynamic.score naming one) fail before any training."""
    cfg = TrainConfig(epochs=2, batch_size=32)
    cache = Cache(tmp_path)
    names = ["loss", "grad_norm", "tracin", "gradient_alignment", "moso"]
    options = {"moso": {"every": 2}, "gradient_alignment": {"epoch": 1}}
    got = compute_scores(mnist, "mlp", names, epochs=[1, 2], inits=1, train_cfg=cfg, options=options, cache=cache)
    alone = compute_scores(mnist, "mlp", ["loss"], epochs=[1, 2], inits=1, train_cfg=cfg)
    for t in (1, 2):
        np.testing.assert_array_equal(got.get("loss", t), alone.get("loss", t))
    hooks = {"tracin": TracIn(N, mnist.device), "moso": MoSo(N, mnist.device, every=2)}
    capture = Capture()
    train("mlp", mnist, cfg, seed=0, hooks=[capture, *hooks.values()], **QUIET)
    np.testing.assert_allclose(got.get("tracin", 2), hooks["tracin"].scores(), rtol=1e-6)
    eta = capture.state.epoch_lr(1)  # one checkpoint: η_1 times the square of grad_norm's exact norm
    np.testing.assert_allclose(got.get("tracin", 1), eta * got.get("grad_norm", 1).astype(np.float64) ** 2, rtol=1e-5)
    np.testing.assert_array_equal(got.get("moso", 1), np.zeros(N, np.float32))  # no checkpoint before epoch 2
    np.testing.assert_allclose(got.get("moso", 2), hooks["moso"].scores(), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(got.get("gradient_alignment", 2), got.get("gradient_alignment", 1))  # epoch = 1
    assert got.get("tracin", 2).min() > got.get("tracin", 1).min() >= 0 and got.surrogates_trained == 1
    again = compute_scores(mnist, "mlp", names, epochs=[1, 2], inits=1, train_cfg=cfg, options=options, cache=cache)
    assert again.surrogates_trained == 0
    for name in names:
        np.testing.assert_array_equal(again.get(name, 2), got.get(name, 2))
    with pytest.raises(ConfigError, match="option every = 0 is out of range"):
        compute_scores(mnist, "mlp", ["tracin"], epochs=[1], inits=1, train_cfg=cfg, options={"tracin": {"every": 0}})
    with pytest.raises(ConfigError, match='option form = \'exact\' is out of range; use one of .paper., .reference.'):
        compute_scores(mnist, "mlp", ["moso"], epochs=[1], inits=1, train_cfg=cfg, options={"moso": {"form": "exact"}})
    with pytest.raises(ConfigError, match="dynamic.score: scorer 'moso' is not computed from the training forward"):
        load_config("quick", ["kind=dynamic", "dynamic.score=moso"])  # InfoBatch reads the training forward only
    listed = CliRunner().invoke(main, ["scorers", "--json"])
    assert listed.exit_code == 0 and all(name in listed.stdout for name in ("tracin", "gradient_alignment", "moso"))
    assert {SCORERS[n].kind for n in ("tracin", "gradient_alignment", "moso")} == {"training"}


@pytest.mark.slow
def test_bench_scores_times_the_checkpoint_scores_against_their_per_sample_loops():
    """`prunelab bench scores` gives each checkpoint score's cost per checkpoint in training epochs beside its
    per-sample loop, and the inner products beside a forward-mode JVP (docs/performance.md's figures)."""
    out = bench_scores(samples=128, rounds=1, memory=False, naive_samples=16, vmap_samples=64,
                       scorers=["tracin", "gradient_alignment", "moso"])
    for name in ("tracin", "gradient_alignment", "moso"):
        entry = out["scorers"][name]
        assert entry["epochs_equivalent"] > 0 and entry["note"].startswith("one checkpoint"), name
        assert entry["speedup_vs_naive"] > 1, name  # docs/performance.md: tens of times a per-sample loop
    assert out["scorers"]["gradient_alignment"]["speedup_vs_jvp"] > 0


def test_checkpoint_scores_in_an_overlap_run(shared_data, tmp_path, fresh_store):
    """The overlap kind takes the checkpoint scores like any other: with one surrogate epoch, tracin is η_1‖g_n‖²,
    the square of grad_norm times one constant, so the two rank alike (Spearman 1, the same top and bottom sets)."""
    import json

    import engine
    from engine.store.tracking import tracker
    from tests.builders import tiny_run

    methods = ["grad_norm", "tracin", "gradient_alignment", "moso"]
    cfg = load_config("quick", tiny_run(shared_data, train_size=300, **{
        "name": "overlap", "kind": "overlap", "sweep.seeds": [0], "overlap.methods": methods, "overlap.k": 60}))
    uri = fresh_store(tmp_path / "mlruns" / "mlflow.db")
    result = engine.run(cfg, tracking_uri=uri)
    track = tracker(uri, str(tmp_path))
    matrices = json.loads(track.load_text(result.run_id, "overlap.json"))
    assert matrices["methods"] == methods and matrices["epoch"] == 1
    for name in ("first", "last", "spearman"):
        m = np.array(matrices[name])
        assert m.shape == (4, 4) and np.allclose(np.diag(m), 1.0), name
        assert m[0][1] == pytest.approx(1.0, abs=1e-6), name
    scores = {m: np.load(track.download(result.run_id, f"scores/{m}@e1.npy", tmp_path)) for m in methods}
    ratio = scores["tracin"] / scores["grad_norm"].astype(np.float64) ** 2  # η_1 for every sample
    assert ratio.min() > 0 and ratio.std() < 1e-5 * ratio.mean()
    assert not np.allclose(scores["gradient_alignment"], scores["moso"])
