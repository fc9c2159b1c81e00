"""Issue 25's Python-API rows: wrong types and values given to engine.run, show, train, as_dataset, score,
keep_count and clear_cache are one ConfigError naming the argument (engine/arguments.py), raised before any work,
never an AttributeError/TypeError/ValueError from deep inside; clear_cache never selects what the CLI refuses.
The rows of issue 18's matrix that were in tests/engine/test_hostile.py are here too."""
from __future__ import annotations

import math

import numpy as np
import pytest

import engine
from tests.faults.input_support import stored_runs

CFG = {"data": {"train_size": 200}, "model": "mlp"}  # a dict of sections: engine.run's config as a script writes it

# (call, words its ConfigError must hold)
API_CASES = {
    "run(123)": (lambda: engine.run(123), ("engine.run: config", "got 123")),
    "run([1, 2])": (lambda: engine.run([1, 2]), ("engine.run: config", "got [1, 2]")),
    "run(resume=123)": (lambda: engine.run(resume=123), ("engine.run: resume", "run id", "got 123")),
    "run(cfg, executor=42)": (lambda: engine.run(CFG, executor=42), ("engine.run: executor", "'local', 'ray'")),
    "run(cfg, tracking_uri=5)": (lambda: engine.run(CFG, tracking_uri=5), ("engine.run: tracking_uri", "got 5")),
    "run(cfg, on_event=5)": (lambda: engine.run(CFG, on_event=5), ("engine.run: on_event", "function")),
    "run(cfg, retry_failed='yes')": (lambda: engine.run(CFG, retry_failed="yes"), ("retry_failed", "True or False")),
    "run(cfg, bogus=1)": (lambda: engine.run(CFG, bogus=1), ("engine.run", "unexpected keyword argument 'bogus'")),
    "launch_detached(42)": (lambda: engine.launch_detached(42), ("engine.launch_detached: config", "got 42")),
    "show(None)": (lambda: engine.show(None), ("engine.show: run_id", "got None")),
    "show('')": (lambda: engine.show(""), ("engine.show: run_id", "empty")),
    "list_runs(status='DONE')": (lambda: engine.list_runs(status="DONE"), ("status", "'FINISHED'", "'DONE'")),
    "train(model=42)": (lambda: engine.train(model=42), ("engine.train: model", "nn.Module", "got 42")),
    "train(epochs=-1)": (lambda: engine.train(epochs=-1), ("engine.train: epochs", ">= 0")),
    "train(seed=2**64)": (lambda: engine.train(seed=2**64), ("engine.train: seed", "<= 4294967295")),
    "as_dataset(train_size='100')": (lambda: engine.as_dataset(train_size="100"),
                                     ("engine.as_dataset: train_size", "integer", "'100'")),
    "as_dataset(train_size=True)": (lambda: engine.as_dataset(train_size=True), ("train_size", "integer")),
    "as_dataset(device=0)": (lambda: engine.as_dataset(device=0), ("engine.as_dataset: device", "string")),
    "score(scorers=5)": (lambda: engine.score(scorers=5), ("engine.score: scorers", "scorer name", "got 5")),
    "score(epochs='one')": (lambda: engine.score(epochs="one"), ("engine.score: epochs", "got 'one'")),
    "score(epochs=[])": (lambda: engine.score(epochs=[]), ("engine.score: epochs",)),
    "score_result(inits=0)": (lambda: engine.score_result(inits=0), ("engine.score_result: inits", ">= 1")),
    "keep_count(nan)": (lambda: engine.keep_count(math.nan, 100), ("engine.keep_count: keep_ratio", "got nan")),
    "keep_count(1.5)": (lambda: engine.keep_count(1.5, 100), ("keep_ratio", "<= 1")),
    "keep_count(0.5, -1)": (lambda: engine.keep_count(0.5, -1), ("engine.keep_count: n", ">= 0")),
    "clear_cache(-5)": (lambda: engine.clear_cache(-5), ("engine.clear_cache: older_than_seconds", "got -5")),
    "clear_cache(nan)": (lambda: engine.clear_cache(math.nan), ("older_than_seconds", "finite", "got nan")),
    "clear_cache(inf)": (lambda: engine.clear_cache(math.inf), ("older_than_seconds", "finite")),
    "clear_cache(kinds='bogus')": (lambda: engine.clear_cache(kinds="bogus"),
                                   ("engine.clear_cache: kinds", "unknown cache kind 'bogus'", "surrogate")),
    "clear_cache(kinds=5)": (lambda: engine.clear_cache(kinds=5), ("engine.clear_cache: kinds", "got 5")),
    "clear_cache(dry_run='no')": (lambda: engine.clear_cache(dry_run="no"), ("dry_run", "True or False")),
    # issue 18's rows
    "run(a dict with a bad field)": (lambda: engine.run({"sweep": {"keep_ratios": [2.0]}}), ("sweep.keep_ratios",)),
    "Config(kind='x')": (lambda: engine.Config(kind="x"), ("kind",)),
    "load_config(an unknown model)": (lambda: engine.load_config("quick", {"model": "nope"}), ("unknown model",)),
    "load_config(42)": (lambda: engine.load_config(42), ("engine.load_config: path_or_preset", "got 42")),
    "load_config(overrides=5)": (lambda: engine.load_config("quick", 5), ("engine.load_config: overrides", "got 5")),
    "load_config(overrides=[5])": (lambda: engine.load_config("quick", [5]), ("override 5", "KEY=VALUE")),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", API_CASES)
def test_a_wrong_argument_is_one_config_error_naming_it(in_tmp, case):
    call, words = API_CASES[case]
    with pytest.raises(engine.ConfigError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert stored_runs() == []  # refused before any run


@pytest.mark.timeout(60)
def test_clear_cache_selects_only_what_it_is_asked_for(in_tmp):
    """A lone kind is that kind, not its letters; the CLI's kinds; `partial` the unfinished writes."""
    from engine.store.cache import Cache

    root = in_tmp / "mlruns" / "cache"
    cache = Cache(root)
    for kind in ("scores", "surrogate", "forgetting"):
        cache.save_arrays(kind, kind[:2] * 12, {"a": np.arange(3)})
    assert engine.clear_cache(kinds="scores", dry_run=True)["removed"] == 1
    assert engine.clear_cache(kinds=["scores", "forgetting"])["removed"] == 2
    assert [k["kind"] for k in engine.cache_usage()["kinds"]] == ["surrogate"]
    assert engine.clear_cache(3600)["removed"] == 0  # used just now: kept
    assert engine.clear_cache(0)["removed"] == 1


@pytest.mark.timeout(60)
def test_the_api_still_takes_what_it_documents(in_tmp, shared_data):
    """The checks refuse nothing the docs offer: a Path, a lone scorer name, a list of epochs, an nn.Module."""
    import torch

    from engine.arguments import checked, number

    assert engine.keep_count(0.5, 7) == 4 and engine.keep_count(1, 0) == 0
    assert engine.as_dataset("mnist-mini", train_size=100, test_size=50, device="cpu").x_train.shape[0] == 100
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    result = engine.train("mnist-mini", model, epochs=1, train_size=100, test_size=50, device="cpu")
    assert 0 <= result.test_accuracy <= 1
    scores = engine.score("mnist-mini", "mlp", "loss", epochs=[0], train_size=100, test_size=50, device="cpu")
    assert set(scores) == {"loss"} and scores["loss"][0].shape == (100,)
    (in_tmp / "my.toml").write_text(engine.load_config("quick").to_toml())
    assert engine.load_config(in_tmp / "my.toml").name == "quick"  # a pathlib.Path
    assert engine.list_runs(status="finished") == []  # the CLI's case-insensitive statuses
    with pytest.raises(TypeError, match="no argument"):
        checked(nope=number())(lambda x: x)  # a rule for an argument the function lacks is a bug, said at once


@pytest.mark.timeout(120)
def test_what_the_api_takes_and_kept_indices(in_tmp, shared_data):
    """From tests/engine/test_hostile.py (issue 18): a Config by keywords, None as a field's default, and kept
    indices that are integer positions inside the training set."""
    assert engine.Config(name="ok").name == "ok"
    assert issubclass(engine.errors.UnknownNameError, engine.ConfigError)
    default = engine.config.TrainConfig.model_fields["epochs"].default
    assert engine.load_config("quick", {"train.epochs": None}).train.epochs == default  # None: the field default
    assert engine.load_config("quick", {"sweep.seeds": [3, 4]}).sweep.seeds == [3, 4]
    for bad, words in (([10 ** 9], "[0, 500)"), ([-1], "[0, 500)"), ([0.5, 1.0], "integer")):
        with pytest.raises(engine.ConfigError, match=words.replace("[", r"\[").replace(")", r"\)")):
            engine.train("mnist", "mlp", data_dir=shared_data, train_size=500, test_size=100, indices=bad,
                         device="cpu")
