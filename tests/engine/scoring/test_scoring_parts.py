"""Scoring as parts: the plan, a scorer's options reaching its function, a component class as a scorer, a cancel
stopping the pass. The scores are checked against an independent float64 computation of the same model."""
import numpy as np
import pytest
import torch

from engine.architectures import build_model
from engine.cancel import Cancelled, CancelToken
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.errors import ConfigError
from engine.options import number
from engine.scoring.batch import score_model
from engine.scoring.components import PARAM_NORMS, Component
from engine.scoring.plan import PassOptions, plan_scores, surrogate_seed
from engine.scoring.registry import COMPONENTS, SCORERS, register_scorer
from engine.scoring.surrogate import compute_scores
from engine.store.cache import Cache
from engine.store.events import StageStarted
from engine.trainer import to_model_layout
from tests.conftest import TEST_DEVICE


@pytest.fixture(scope="module")
def mnist(shared_data):
    return load_dataset("mnist", shared_data, TEST_DEVICE, train_size=200, test_size=100)


@pytest.fixture
def registered():
    """The names a test registers, removed after it."""
    names: list[str] = []
    yield names
    for name in names:
        SCORERS.pop(name, None)
        COMPONENTS.pop(name, None)


def initial_logits(mnist, seed: int) -> torch.Tensor:
    """Surrogate 0 at epoch 0 (the untrained model of the run's seed), in float64."""
    model = build_model("mlp", mnist.input_shape, mnist.num_classes, seed=surrogate_seed(seed, 0)).double().eval()
    with torch.no_grad():
        return model(to_model_layout(mnist.normalize(mnist.x_train, torch.float64)))


def tempered(model, x, y, logits, temperature):
    """Cross-entropy of softmax(logits / temperature)."""
    return torch.nn.functional.cross_entropy(logits / temperature, y, reduction="none")


def test_a_batch_scorers_options_reach_its_function_as_keywords_and_key_the_cache(mnist, tmp_path, registered):
    register_scorer("test_tempered", tempered, options={"temperature": number(1.0, "softmax temperature", 0,
                                                                              low_open=True)})
    registered.append("test_tempered")
    cache, events = Cache(tmp_path), []

    def scores(**options):
        return compute_scores(mnist, "mlp", ["test_tempered", "loss"], epochs=[0], inits=1, seed=4, cache=cache,
                              options={"test_tempered": options}, on_event=events.append)

    default, hot = scores(), scores(temperature=3.0)
    logits = initial_logits(mnist, 4)
    for result, t in ((default, 1.0), (hot, 3.0)):
        expected = torch.nn.functional.cross_entropy(logits / t, mnist.y_train, reduction="none").numpy()
        np.testing.assert_allclose(result.get("test_tempered", 0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(default.get("test_tempered", 0), default.get("loss", 0))  # T = 1: the loss
    assert hot.surrogates_trained == 0  # the cached state, rescored: the option keys the scores, not the surrogate
    before = sum(isinstance(e, StageStarted) and e.stage == "scoring" for e in events)
    again = scores(temperature=3.0)
    assert sum(isinstance(e, StageStarted) and e.stage == "scoring" for e in events) == before  # a cache hit
    np.testing.assert_array_equal(again.get("test_tempered", 0), hot.get("test_tempered", 0))
    with pytest.raises(ConfigError, match="option temperature = 0 is out of range"):
        scores(temperature=0)


class GradNormShare(Component):
    """Each sample's share of the data set's total ‖∇θL‖^power: it needs every batch before it can finish."""

    needs = frozenset({PARAM_NORMS})

    def __init__(self, power: float):
        self.power = power

    def begin(self, n, dtype, device):
        self.out = torch.empty(n, dtype=dtype, device=device)

    def add(self, batch):
        self.out[batch.start:batch.stop] = batch.param_norms ** self.power

    def finish(self):
        return (self.out / self.out.sum()).cpu().numpy()


def test_a_component_class_is_a_scorer_computed_in_the_same_pass(mnist, registered):
    register_scorer("test_share", GradNormShare, options={"power": number(2.0, "exponent of the norm", 0)})
    registered.append("test_share")
    assert SCORERS["test_share"].component == "test_share" and "test_share" in COMPONENTS
    model = build_model("mlp", mnist.input_shape, mnist.num_classes, seed=1).double()
    result = score_model(model, mnist, ["test_share", "grad_norm"], batch_size=64,
                         options={"test_share": {"power": 1.0}})
    norms = result.scores["grad_norm"]
    np.testing.assert_allclose(result.scores["test_share"], norms / norms.sum(), rtol=1e-12)
    squares = score_model(model, mnist, ["test_share"], batch_size=64).scores["test_share"]  # the default, 2
    np.testing.assert_allclose(squares, norms ** 2 / (norms ** 2).sum(), rtol=1e-12)


def test_a_cancel_stops_the_scoring_pass_at_its_next_batch(mnist, registered):
    token, calls = CancelToken(), []

    def counting(model, x, y, logits):
        calls.append(len(y))
        if len(calls) == 2:
            token.cancel("enough")
        return logits[:, 0]

    register_scorer("test_counting", counting)
    registered.append("test_counting")
    with pytest.raises(Cancelled, match="enough"):
        score_model(build_model("mlp", mnist.input_shape, 10, seed=0), mnist, ["test_counting"], batch_size=50,
                    cancel=token)
    assert calls == [50, 50]  # four batches of 50: the last two never ran


def test_the_plan_trains_the_surrogates_the_scorers_need_and_no_more():
    def plan(scorers, inits=4, **options):
        return plan_scores(100, "mlp", scorers, [0, 3], inits, TrainConfig(epochs=3), 7, options, PassOptions())

    names = lambda by_epoch: {t: [s.name for s in ss] for t, ss in by_epoch.items()}  # noqa: E731
    full = plan(["loss", "el2n", "forgetting", "random"], el2n={"inits": 2, "epoch": 1})
    assert [w.k for w in full.surrogates] == [0, 1, 2, 3]  # forgetting averages over the run's K = 4
    assert [w.seed for w in full.surrogates] == [surrogate_seed(7, k) for k in range(4)]
    zero, one, two = full.surrogates[:3]
    assert names(zero.scored_at) == {0: ["loss"], 1: ["el2n"], 3: ["loss"]} and zero.extras_at == {0, 3}
    assert names(one.scored_at) == {0: [], 1: ["el2n"], 3: []} and one.passes == [1]  # el2n's own K = 2, epoch 1
    assert two.passes == [] and names(two.observed_at) == {0: ["forgetting"], 1: [], 3: ["forgetting"]}
    assert full.at == {"loss": [0, 3], "el2n": [1], "forgetting": [0, 3], "random": [0, 3]}
    assert [w.k for w in plan(["loss", "grad_norm"], inits=10).surrogates] == [0]  # nothing averages: one
    assert plan(["random"]).surrogates == []  # no model at all
    with pytest.raises(ConfigError, match="scoring.el2n.epoch = 4 is beyond"):
        plan(["el2n"], el2n={"epoch": 4})
