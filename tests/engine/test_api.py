"""The public API for scripts: cheap import, registries, one step at a time, user extensions, MLflow inputs."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import engine
from engine.data.formats import ASSETS
from engine.nets import MODELS
from engine.scoring.registry import SCORERS
from engine.store.tracking import tracker

TINY = {"model": "mlp", "train_size": 600, "test_size": 200, "device": "cpu"}


@pytest.fixture
def registries():
    """Restore the model and scorer registries after a test registers its own."""
    models, scorers = dict(MODELS), dict(SCORERS)
    yield
    MODELS.clear(), MODELS.update(models)
    SCORERS.clear(), SCORERS.update(scorers)


def test_import_is_cheap_and_every_public_name_resolves():
    code = "import sys, engine; print(sorted(m for m in ('torch', 'mlflow', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    assert set(dir(engine)) >= set(engine.__all__)


def test_submodules_import_normally_and_never_shadow_api_names():
    import engine.kinds.noise as noise  # a plain import of a submodule, as any package allows
    import engine.nets
    import engine.trainer

    assert noise.__name__ == "engine.kinds.noise" and engine.trainer.__name__ == "engine.trainer"
    assert callable(engine.train) and engine.train.__module__ == "engine.api"
    assert engine.models is MODELS and "prune" in engine.experiments
    from engine import models
    assert models is engine.nets.MODELS  # the registry, not a module
    here = Path(engine.__file__).parent
    submodules = {p.stem for p in here.glob("*.py")} | {p.name for p in here.iterdir() if (p / "__init__.py").exists()}
    assert not submodules & set(engine.__all__), "an API name equal to a submodule's would change meaning on import"


def test_registries_list_what_exists():
    assert {"mnist-mini", "mnist", "cifar10"} <= set(engine.datasets)
    assert {"cnn", "resnet18", "mlp"} <= set(engine.models)
    assert {"random", "loss", "grad_norm", "input_grad_norm", "el2n", "forgetting"} <= set(engine.scorers)
    assert {"hardest", "easiest", "ccs", "kmeans_coverage"} <= set(engine.strategies)


def test_score_select_train_one_step_at_a_time():
    scores = engine.score("mnist-mini", scorers=["loss", "el2n", "random"], epochs=1, **TINY)
    assert set(scores) == {"loss", "el2n", "random"}
    assert all(s.shape == (600,) and np.isfinite(s).all() for s in scores.values())
    ds = engine.as_dataset("mnist-mini", device="cpu", train_size=600, test_size=200)
    kept = engine.select("easiest", scores["el2n"], 0.5, ds.y_train, seed=0)
    assert len(kept) == engine.keep_count(0.5, 600) == 300 and np.all(np.diff(kept) > 0)
    assert scores["el2n"][kept].max() <= np.sort(scores["el2n"])[300] + 1e-6  # the easiest half
    result = engine.train(ds, "mlp", epochs=2, seed=0, indices=kept, lr=0.1)
    assert result.test_accuracy > 0.5 and len(result.history) == 2  # 300 easy digits, 2 epochs

    per_epoch = engine.score(ds, "mlp", "el2n", epochs=[0, 1], embeddings=True)
    assert set(per_epoch) == {"el2n", "embeddings"} and set(per_epoch["el2n"]) == {0, 1}
    assert per_epoch["embeddings"][1].shape == (600, 64)
    assert np.allclose(per_epoch["el2n"][1], scores["el2n"])  # same seed, same surrogate, same scores


def test_train_on_the_users_own_arrays():
    with np.load(ASSETS / "mnist-mini.npz") as f:
        arrays = (f["x_train"][::10], f["y_train"][::10], f["x_test"][::10], torch.from_numpy(f["y_test"][::10]))
    result = engine.train(arrays, "mlp", epochs=2, device="cpu", lr=0.1)
    assert result.test_accuracy > 0.6


def test_bad_input_names_the_field():
    with pytest.raises(engine.ConfigError, match="lr"):
        engine.train("mnist-mini", "mlp", lr=-1.0, **{k: v for k, v in TINY.items() if k != "model"})
    with pytest.raises(engine.ConfigError, match="unknown key 'learning_rate'"):
        engine.score("mnist-mini", "mlp", learning_rate=0.1)
    with pytest.raises(engine.DataError, match="x_train, y_train, x_test, y_test"):
        engine.train(np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(engine.UserError, match="unknown scorer 'nope'"):
        engine.score("mnist-mini", "mlp", ["nope"])


def negative_margin(model, x, y, logits):
    """Best other logit minus the true class's logit."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return logits.scatter(1, y[:, None], float("-inf")).max(dim=1).values - true


def tiny_net(input_shape, num_classes):
    """A user's model builder: (input_shape, num_classes) -> nn.Module."""
    return engine.models["mlp"](input_shape, num_classes, hidden=32)


def test_registered_model_and_scorer_work_in_configs_and_runs(in_tmp, registries):
    with pytest.raises(engine.ConfigError, match="sweep.methods"):
        engine.load_config("quick", {"sweep.methods": ["user_margin"]})
    engine.register_scorer("user_margin", negative_margin)
    engine.register_model("tiny", tiny_net)
    assert "user_margin" in engine.scorers and "tiny" in engine.models

    config = engine.load_config("quick", {
        "name": "api-extensions", "model": "tiny", "data.train_size": 600, "data.test_size": 200,
        "train.epochs": 1, "surrogate.epochs": 1, "sweep.score_epochs": [1], "sweep.methods": ["user_margin", "el2n"],
        "sweep.keep_ratios": [0.5], "sweep.seeds": [0]})
    result = engine.run(config)
    assert result.status == "FINISHED" and all(t.status == "FINISHED" for t in result.trials)
    assert {row["method"] for row in result.summary} == {"full", "user_margin", "el2n"}

    # every run names its data set as an MLflow input: digest, source, and the kept size as an input tag
    digest = engine.as_dataset("mnist-mini", device="cpu", train_size=600, test_size=200).digest()
    track = tracker(None, str(in_tmp))
    for run in [track.get_run(result.run_id), *track.children(result.run_id)]:
        (inp,) = run.inputs.dataset_inputs
        tags = {t.key: t.value for t in inp.tags}
        assert (inp.dataset.name, inp.dataset.digest, inp.dataset.source_type) == ("mnist-mini", digest, "local")
        assert "mnist-mini.npz" in inp.dataset.source and '"train_samples": 600' in inp.dataset.profile
        expected = "300" if run.data.tags.get("method") in ("user_margin", "el2n") else "600"
        assert tags["mlflow.data.context"] == "train" and tags["prunelab.kept"] == expected

    # and the one-step API scores with the same registered scorer
    scores = engine.score("mnist-mini", "tiny", ["user_margin"], epochs=1, device="cpu", train_size=600, test_size=200)
    assert scores["user_margin"].shape == (600,)
    # and it is the margin of the surrogate's logits, from the same surrogate trained again here (float64)
    ds = engine.as_dataset("mnist-mini", device="cpu", train_size=600, test_size=200)
    surrogate = engine.train(ds, model="tiny", epochs=1, device="cpu", seed=0).model.eval()
    with torch.no_grad():
        logits = surrogate(ds.normalize(ds.x_train)).double()
    y = ds.y_train.long()
    true = logits[torch.arange(len(y)), y]
    other = torch.where(nn.functional.one_hot(y, logits.shape[1]).bool(), -torch.inf, logits).max(1).values
    np.testing.assert_allclose(scores["user_margin"], (other - true).numpy(), rtol=1e-5, atol=1e-6)


def test_a_script_can_use_its_model_instance():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    result = engine.train("mnist-mini", model, epochs=1, device="cpu", train_size=1000, test_size=200, lr=0.1)
    assert result.model is model and result.test_accuracy > 0.6


# ---------------------------------------------------------------- reading runs back (what the TUI reads)
def test_importing_the_api_loads_nothing_heavy():
    """The TUI imports engine.api before its first frame: no numpy, pydantic, MLflow or torch may come with it."""
    code = ("import sys, engine.api; "
            "print(sorted(m for m in ('numpy', 'pydantic', 'mlflow', 'torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory, fresh_store):
    """One real tiny prune run (mlp, 600 digits, loss and grad_norm at keep 0.5, and full data) in its own store."""
    folder = tmp_path_factory.mktemp("api-reads")
    uri = fresh_store(folder / "mlruns" / "mlflow.db")
    config = engine.load_config("quick", {
        "name": "api-reads", "model": "mlp", "data.train_size": 600, "data.test_size": 200, "train.epochs": 1,
        "surrogate.epochs": 1, "sweep.score_epochs": [1], "sweep.methods": ["loss", "grad_norm"],
        "sweep.keep_ratios": [0.5], "sweep.seeds": [0]})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = engine.run(config, tracking_uri=uri)
    assert result.status == "FINISHED"
    return folder, uri, result


def logged_array(folder, uri, run_id, path):
    """An artifact read with MLflow's own client, not through the engine's readers."""
    from mlflow.tracking import MlflowClient

    return np.load(MlflowClient(uri).download_artifacts(run_id, path, str(folder / "raw" / run_id)))


def test_a_run_and_its_trials_read_back_as_the_run_reported_them(stored_run):
    from engine import api

    _folder, uri, result = stored_run
    info = api.run_info(result.run_id, uri)
    listed = {r.run_id: r for r in api.list_runs(uri)}
    assert info == listed[result.run_id] == {r.run_id: r for r in api.list_runs_quick(uri)}[result.run_id]
    assert (info.status, info.trials_done, info.trials, info.kind, info.model) == ("FINISHED", 3, 3, "prune", "mlp")
    assert info.full_accuracy == next(r["mean_accuracy"] for r in result.summary if r["method"] == "full")

    detail = api.run_detail(result.run_id[:10], uri)  # a unique prefix, as the CLI's tables show them
    assert detail.run == info and detail.summary == result.summary
    assert [t.method for t in detail.trials] == ["full", "grad_norm", "loss"]
    accuracy = {t.child_run_id: t.metrics["test_accuracy"] for t in result.trials}
    assert {t.run_id: t.accuracy for t in detail.trials} == accuracy
    assert detail.trials[2].label == "loss hardest keep 0.5 seed 0 e1"

    full = detail.trials[0]
    history = api.trial_history(full.run_id, tracking_uri=uri)
    assert [step for step, _ in history["test_accuracy"]] == [1] and history["test_accuracy"][-1][1] == full.accuracy
    assert set(history) == {"test_accuracy", "train_loss", "test_loss"}


def test_score_arrays_predictions_and_data_read_back_as_logged(stored_run):
    from engine import api
    from engine.data.dataset import load_dataset

    folder, uri, result = stored_run
    run_id = result.run_id
    assert api.score_names(run_id, uri) == ["grad_norm@e1", "loss@e1"]  # predictions are not scores
    for name in api.score_names(run_id, uri):
        scores = api.load_scores(run_id, name, uri)
        raw = logged_array(folder, uri, run_id, f"scores/{name}.npy")
        assert scores.dtype == np.float64 and scores.shape == (600,) and np.array_equal(scores, raw)
    predicted = logged_array(folder, uri, run_id, "scores/predictions@e1.npy")
    assert np.array_equal(api.load_predictions(run_id, 1, uri), predicted)
    assert np.array_equal(api.load_predictions(run_id, 7, uri), predicted)  # not logged at 7: the latest epoch
    with pytest.raises(engine.UserError, match="it has: grad_norm@e1, loss@e1"):
        api.load_scores(run_id, "el2n@e1", uri)
    assert api.overlap_report(run_id, uri) is None and api.benchmark_report(run_id, uri) is None  # a prune run

    ds = api.run_dataset(run_id, uri)
    expected = load_dataset("mnist-mini", None, "cpu", 600, 200)
    assert torch.equal(ds.x_train, expected.x_train) and torch.equal(ds.y_train, expected.y_train)
    assert (predicted == ds.y_train.numpy()).mean() > 0.5  # the predictions are aligned with these samples


def test_a_live_run_is_followed_its_curves_read_and_cancelled_through_the_api(tmp_path):
    """A progress file naming a real process: watched RUNNING, curves of the trial still training, SIGTERM on cancel,
    and then KILLED, with nothing signalled a second time."""
    import socket

    from engine import api
    from engine.store.events import EpochEnd, RunStarted, StageStarted, TrialFinished
    from engine.store.process import process_start

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = api.locate_store(uri).progress_file("r1")
        path.parent.mkdir(parents=True)
        events = [RunStarted(run_id="r1", experiment="e", kind="prune", trials=2, pid=sleeper.pid,
                             host=socket.gethostname(), pid_start=process_start(sleeper.pid)),
                  StageStarted(stage="retrain", detail="full-data / seed 0", trial=0, trials=2),
                  EpochEnd(epoch=1, epochs=2, metrics={"test_accuracy": 0.5}, trial=0),
                  TrialFinished(trial=0, trials=2, status="FINISHED"),
                  StageStarted(stage="retrain", detail="loss / hardest / keep 0.5 / seed 0 / e1", trial=1, trials=2),
                  EpochEnd(epoch=1, epochs=2, metrics={"test_accuracy": 0.25}, trial=1)]
        path.write_text("".join(e.to_json() + "\n" for e in events))
        watcher = api.watch_progress(uri)
        (live,) = watcher.poll()
        assert (live.run_id, live.effective_status, live.trials_done, live.trial) == ("r1", "RUNNING", 1, 1)
        assert api.live_curves("r1", uri) == {1: ("loss hardest keep 0.5 seed 0 e1", [(1, {"test_accuracy": 0.25})])}

        assert api.cancel_run("r1", uri) == f"sent SIGTERM to process {sleeper.pid}"
        assert sleeper.wait(timeout=10) == -15
        (ended,) = watcher.poll()
        assert ended.effective_status == "KILLED"
        assert api.cancel_run(ended) == f"process {sleeper.pid} already ended"
        assert "no progress file" in api.cancel_run("nope", uri)
    finally:
        sleeper.kill()
        sleeper.wait()
