"""Per-scorer options ([scoring.NAME]): each changes its score as the formula predicts, keys the cache, fails cleanly.

The references recompute TDDS, dynamic uncertainty and AUM in float64 from the
logits of an independent training run with the same seed (a recorder observer);
the surrogate run stores float32, hence rtol 1e-5.
"""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.config import TrainConfig, load_config
from engine.data.dataset import load_dataset
from engine.errors import ConfigError
from engine.scoring.registry import SCORERS
from engine.scoring.surrogate import compute_scores
from engine.store.cache import Cache
from engine.trainer import train
from tests.conftest import TEST_DEVICE
from tests.engine.scoring.test_field_scores import Recorder, tdds_reference

EPOCHS, BATCH, SEED = 6, 50, 5
TDDS_OPTS = {"window": 3, "trajectory": 5, "decay": 0.5}
OPTIONS = {"tdds": TDDS_OPTS, "dynamic_uncertainty": {"window": 3}, "aum": {"margin": "softmax"}, "prototypes": {"clusters": 2}}


@pytest.fixture(scope="module")
def mnist(shared_data):
    return load_dataset("mnist", shared_data, TEST_DEVICE, train_size=200, test_size=100)


@pytest.fixture(scope="module")
def probs(mnist):
    """(EPOCHS, N, C) softmax outputs of each sample's minibatch forward, from a run with the surrogate's seed."""
    recorder, n = Recorder(), len(mnist)
    train("mlp", mnist, TrainConfig(epochs=EPOCHS, batch_size=BATCH), seed=SEED, observers=[recorder],
          evaluate_every_epoch=False, evaluate_at_end=False)
    out = np.zeros((EPOCHS, n, 10))
    for b, (idx, lg, _) in enumerate(recorder.batches):
        e = np.exp(lg - lg.max(1, keepdims=True))
        out[b // -(-n // BATCH), idx] = e / e.sum(1, keepdims=True)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return Cache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def optioned(mnist, cache):
    """One surrogate run with options for every training scorer (and prototypes), cached."""
    return scores(mnist, ["tdds", "dynamic_uncertainty", "aum", "prototypes"], cache, **OPTIONS)


def scores(mnist, names, cache=None, **options):
    return compute_scores(mnist, "mlp", names, epochs=[EPOCHS], inits=1, seed=SEED, cache=cache, options=options,
                          train_cfg=TrainConfig(epochs=EPOCHS, batch_size=BATCH))


def test_training_options_change_the_scores_as_the_formulas_say(mnist, probs, optioned):
    labels = mnist.y_train.cpu().numpy()
    target = probs[:, np.arange(len(labels)), labels]
    others = probs.copy()
    others[:, np.arange(len(labels)), labels] = -np.inf
    got = optioned
    np.testing.assert_allclose(got.get("tdds"), tdds_reference(probs, 5, 3, 0.5), rtol=1e-5, atol=1e-7)
    # dynamic uncertainty through compute_scores (its eval-mode pass: on MNIST and an mlp, the training forward's
    # numbers), windows of 3 except the one that ends at the last epoch
    stds = np.mean([target[i:i + 3].std(0, ddof=1) for i in range(EPOCHS - 3)], 0)
    np.testing.assert_allclose(got.get("dynamic_uncertainty"), stds, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.get("aum"), -(target - others.max(2)).mean(0), rtol=1e-5, atol=1e-7)


def test_el2n_inits_and_epoch_options_pick_the_surrogates_and_the_checkpoint(mnist, tmp_path):
    cfg, cache = TrainConfig(epochs=3, batch_size=BATCH), Cache(tmp_path)
    both = compute_scores(mnist, "mlp", ["el2n", "loss"], epochs=[3], inits=1, train_cfg=cfg, seed=2, cache=cache,
                          options={"el2n": {"inits": 3, "epoch": 1}})
    assert both.surrogates_trained == 3 and both.epochs == [3]
    k3_e1 = compute_scores(mnist, "mlp", ["el2n"], epochs=[1], inits=3, train_cfg=cfg, seed=2, cache=cache)
    assert k3_e1.surrogates_trained == 0  # the same three surrogates, from the cache
    np.testing.assert_array_equal(both.get("el2n", 3), k3_e1.get("el2n", 1))
    loss3 = compute_scores(mnist, "mlp", ["loss"], epochs=[3], inits=1, train_cfg=cfg, seed=2, cache=cache)
    np.testing.assert_array_equal(both.get("loss", 3), loss3.get("loss", 3))  # the other scorer: epoch 3, K = 1
    k2 = compute_scores(mnist, "mlp", ["el2n"], epochs=[1], inits=1, train_cfg=cfg, seed=2, cache=cache,
                        options={"el2n": {"inits": 2}})
    per = [compute_scores(mnist, "mlp", ["el2n"], epochs=[1], inits=k, train_cfg=cfg, seed=2, cache=cache)
           .get("el2n").astype(np.float64) for k in (1, 2)]
    np.testing.assert_allclose(k2.get("el2n"), per[1], rtol=1e-6)
    assert not np.allclose(k2.get("el2n"), per[0], rtol=1e-3)  # K = 2 is not surrogate 0 alone
    with pytest.raises(ConfigError, match=r"scoring.el2n.epoch = 4 is beyond"):
        compute_scores(mnist, "mlp", ["el2n"], epochs=[1], inits=1, train_cfg=cfg, options={"el2n": {"epoch": 4}})


def test_options_key_the_cache(mnist, cache, optioned):
    same = scores(mnist, ["tdds", "prototypes"], cache, tdds=dict(TDDS_OPTS), prototypes={"clusters": 2})
    assert same.surrogates_trained == 0
    np.testing.assert_array_equal(same.get("tdds"), optioned.get("tdds"))
    np.testing.assert_array_equal(same.get("prototypes"), optioned.get("prototypes"))
    other = scores(mnist, ["tdds", "prototypes"], cache, tdds={**TDDS_OPTS, "decay": 0.8}, prototypes={"clusters": 3})
    assert other.surrogates_trained == 1  # an observer's new option needs the training it observes
    assert not np.allclose(other.get("tdds"), optioned.get("tdds"), rtol=1e-3)
    assert not np.allclose(other.get("prototypes"), optioned.get("prototypes"), rtol=1e-3)
    tdds = SCORERS["tdds"]  # the key is made of the resolved options: defaults spelled out or left out are one
    assert tdds.resolve({}) == tdds.resolve({"window": 10, "trajectory": 10, "decay": 0.9}) == \
        {"window": 10, "trajectory": 10, "decay": 0.9}


@pytest.mark.parametrize("assignment, message", [
    ("scoring.tdds.windw=5", "scorer 'tdds' has no option 'windw'; its options are: window, trajectory, decay"),
    ("scoring.tdds.decay=1.5", "scorer 'tdds': option decay = 1.5 is out of range; use a number with 0 < decay < 1"),
    ("scoring.tdds.trajectory=4", "trajectory = 4 is shorter than window = 10"),
    ("scoring.tdds.window=2", "window = 2 holds one KL difference"),
    ("scoring.aum.margin=prob", "option margin = 'prob' is out of range; use one of 'logit', 'softmax'"),
    ("scoring.loss.window=3", "scorer 'loss' has no option 'window'; it takes no options"),
    ("scoring.window=3", "'window' is not a scorer; options go in a scorer's own table"),
    ("scoring.el2n.epoch=9", "scoring.el2n.epoch = 9 is beyond the surrogate's budget of 1 epochs"),
])
def test_bad_scorer_options_are_one_line_and_exit_2(assignment, message):
    with pytest.raises(ConfigError, match=None) as err:
        load_config("quick", [assignment])
    assert message in str(err.value)
    result = CliRunner().invoke(main, ["config", "check", "quick", "--set", assignment])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and message in result.output


def test_the_scorers_command_lists_options_and_configs_pass_them_on():
    result = CliRunner().invoke(main, ["scorers", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)["scorers"]}
    assert {k: v["default"] for k, v in rows["tdds"]["options"].items()} == {"window": 10, "trajectory": 10,
                                                                            "decay": 0.9}
    assert rows["aum"]["options"]["margin"]["default"] == "logit" and set(rows["el2n"]["options"]) == {"inits", "epoch"}
    cfg = load_config("quick", ["scoring.tdds.window=4", "scoring.aum.margin=\"softmax\""])
    assert cfg.scorer_options(["tdds", "loss"]) == {"tdds": {"window": 4}}
    assert "scoring" in cfg.to_toml() and load_config("quick").scorer_options() == {}
