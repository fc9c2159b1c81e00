"""The Ray executor on a local 2-CPU Ray instance (started once for the module).

Same results as the local executor, a worker killed mid-trial is retried, a
shared `mlflow server` receives every run, and without Ray the CLI says how to
install it. Workers logging one new data set at once do not fail a trial, and
a FAILED trial always says why in its child run (the module's store serves these
store-level tests too, to spare a fresh one).
"""
import signal
import sys
from collections import Counter

import pytest
from click.testing import CliRunner

import engine
from engine.cli import main
from engine.errors import UserError
from engine.names import TRIAL_KEY
from engine.runner.executors import RayExecutor, RayNotInstalled, make_executor
from engine.runner.tasks import TRIAL_TASKS
from engine.store.events import BatchProgress, EpochEnd, LogLine, RunStarted, TrialFinished
from engine.store.progress import read_events
from engine.store.runs import records_from_children
from engine.store.tracking import tracker
from tests.builders import tiny_run
from tests.conftest import running_mlflow_server
from tests.engine.test_plugins import write_plugin


def tiny(name: str, **extra):
    """Four trials (random and loss, two seeds) on 600 embedded MNIST digits, one epoch of an MLP."""
    return engine.load_config("quick", tiny_run(test_size=500, name=name, **{
        "sweep.methods": ["random", "loss"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0, 1],
        "sweep.full_data": False, **extra}))


# Test-only fault injection, as a plugin the config names, so every Ray worker imports it: the first worker to
# reach training while the marker file exists deletes it and SIGKILLs itself, mid-trial.
CRASH_ONCE = """
import os
import signal

from engine.runner.tasks import TRIAL_TASKS
from engine.store.events import BatchProgress, EpochEnd

MARKER = {marker!r}
retrain = TRIAL_TASKS["retrain"]


def claim():
    try:
        os.unlink(MARKER)
        return True
    except FileNotFoundError:
        return False


def retrain_or_die(job, config, track, child, on_event, cancel=None):
    def forward(event):
        if on_event is not None:
            on_event(event)
        if isinstance(event, (BatchProgress, EpochEnd)) and claim():
            os.kill(os.getpid(), signal.SIGKILL)

    return retrain(job, config, track, child, forward, cancel)


TRIAL_TASKS["retrain"] = retrain_or_die
"""


@pytest.fixture
def crash_once(tmp_path, monkeypatch):
    """The plugin's path; its marker file exists until a worker claims it. This process's task table is restored
    after (the config's validation imports the plugin here too, where no trial runs under Ray)."""
    marker, plugin = tmp_path / "crash-once", tmp_path / "crash_once.py"
    marker.touch()
    plugin.write_text(CRASH_ONCE.format(marker=str(marker)))
    monkeypatch.setitem(TRIAL_TASKS, "retrain", TRIAL_TASKS["retrain"])
    return plugin, marker


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
        failed = [(t.key, t.status, t.message) for t in result.trials if t.status != "FINISHED"]
        assert not failed and {t.tags["method"] for t in result.trials} == expected, failed
        children = tracker(None, str(store)).children(result.run_id)
        pids = {c.data.tags["prunelab.pid"] for c in children}
        assert pids and str(os.getpid()) not in pids  # every trial ran outside this (the driver's) process
    local_noise = engine.run(noise.model_copy(update={"name": "local-noise"}))
    assert accuracies(local_noise) == accuracies(result)  # the same noisy labels and selections, re-drawn in the workers


def test_a_run_that_loses_the_race_to_log_a_new_data_set_reuses_the_winners_entry(store):
    """Noise trials log the noisy-labelled data set, new to the experiment, as their input. MLflow looks it up,
    then inserts it, in two statements: two workers starting at once both missed it and the second insert broke
    the unique key (the oracle trial ended FAILED with an IntegrityError). Here the other worker's row is
    committed deterministically between the look-up and the insert."""
    import sqlite3

    import sqlalchemy
    from sqlalchemy.engine import Engine

    from engine.data.dataset import load_dataset
    from engine.data.noise import with_label_noise

    track = tracker(None, str(store))
    ds, _ = with_label_noise(load_dataset("mnist-mini", train_size=600, test_size=500), 0.2, seed=12345)
    run = track.start_run("lost-race", "loser", {})
    db = track.store.uri[len("sqlite:///"):]
    won = []

    def other_worker_commits_first(conn, cursor, statement, parameters, context, executemany):
        if won or not statement.lstrip().upper().startswith("INSERT INTO DATASETS"):
            return
        columns = [c.strip() for c in statement[statement.index("(") + 1:statement.index(")")].split(",")]
        row = list(parameters[0] if executemany else parameters)
        row[columns.index("dataset_uuid")] = "0" * 32
        with sqlite3.connect(db, timeout=5) as other:
            other.execute(statement, row)
        won.append(row)

    sqlalchemy.event.listen(Engine, "before_cursor_execute", other_worker_commits_first)
    try:
        track.log_dataset_input(run, ds, kept=480)
    finally:
        sqlalchemy.event.remove(Engine, "before_cursor_execute", other_worker_commits_first)
    assert len(won) == 1  # the race was staged
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT dataset_uuid FROM datasets WHERE digest = ?", (ds.digest(),)).fetchall()
    assert rows == [("0" * 32,)]  # one entry, the winner's
    (logged,) = track.get_run(run).inputs.dataset_inputs
    assert logged.dataset.digest == ds.digest()
    assert {t.key: t.value for t in logged.tags}["prunelab.kept"] == "480"


def test_a_trial_that_fails_in_its_worker_before_its_run_starts_is_recorded_failed_with_why(ray_local, store):
    """A plugin file the driver imported but a worker cannot find (another node's disk) fails the trial in the
    worker's config validation, before execute_trial starts a child run; the store must still say it failed, and why."""
    plugin = write_plugin(store, "ray_margins_gone", "plugin_margin_gone")
    cfg = tiny("ray-plugin-gone", plugins=[str(plugin)], **{"sweep.methods": ["plugin_margin_gone"], "sweep.seeds": [0]})
    plugin.unlink()  # imported here already; the workers, fresh to it, look for the file
    result = engine.run(cfg, executor="ray", executor_options={"cpus_per_trial": 1})
    (trial,) = result.trials
    assert result.status == "FINISHED" and trial.status == "FAILED"
    assert trial.message == f"ConfigError: plugin file {plugin} not found"
    track = tracker(None, str(store))
    (child,) = track.children(result.run_id)
    assert child.info.run_id == trial.child_run_id and child.info.status == "FAILED"
    assert child.data.tags["prunelab.error"] == trial.message and child.data.tags[TRIAL_KEY] == trial.key
    assert child.data.tags["prunelab.role"] == "trial" and child.data.tags["method"] == "plugin_margin_gone"
    assert records_from_children(track, result.run_id)[trial.key].message == trial.message  # what a resume reads


def test_a_trial_that_raises_without_a_message_still_says_why(store, monkeypatch):
    """execute_trial, as every executor runs it: an error with an empty message must not leave a FAILED trial
    without its error tag (a bare `raise TrainingDiverged()` used to)."""
    from engine.errors import TrainingDiverged
    from engine.runner.tasks import TRIAL_TASKS
    from engine.runner.trials import Trial, TrialJob
    from engine.runner.worker import execute_trial

    def bare(*_):
        raise TrainingDiverged()

    monkeypatch.setitem(TRIAL_TASKS, "bare-failure", bare)
    track = tracker(None, str(store))
    parent = track.start_run("bare-failure", "parent", {})
    trial = Trial("loss", "hardest", 0.5, 0, 1)
    job = TrialJob(tiny("bare-failure").model_dump(mode="json"), trial, 0, 1, None, track.store.uri, str(store),
                   parent, "bare-failure", task="bare-failure")
    record = execute_trial(job)
    assert record.status == "FAILED" and record.message == "TrainingDiverged"
    child = track.get_run(record.child_run_id)
    assert child.info.status == "FAILED" and child.data.tags["prunelab.error"] == "TrainingDiverged"
    assert records_from_children(track, parent)[trial.key].message == "TrainingDiverged"


def test_a_worker_killed_mid_trial_is_retried(ray_local, store, crash_once):
    plugin, marker = crash_once  # the first worker to reach training deletes the marker and SIGKILLs itself
    events = []
    result = engine.run(tiny("ray-retry", plugins=[str(plugin)]), executor="ray", executor_options={"max_retries": 1},
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


def test_a_cancel_stops_the_clusters_trials_and_ends_the_run_killed(ray_local, store):
    """SIGTERM (the TUI's cancel) only sets the run's token; the driver's wait loop sees it at its next poll,
    cancels what is still in flight and ends those children KILLED."""
    started, signalled = [], []

    def on_event(event):  # the workers' events, drained by the driver while it waits
        if isinstance(event, RunStarted):
            started.append(event.run_id)
        if isinstance(event, (BatchProgress, EpochEnd)) and event.trial is not None and not signalled:  # a trial's
            signal.raise_signal(signal.SIGTERM)
            signalled.append(event)

    with pytest.raises(KeyboardInterrupt):
        engine.run(tiny("ray-cancel", **{"train.epochs": 20}), executor="ray", on_event=on_event)
    assert signalled
    track = tracker(None, str(store))
    assert track.get_run(started[0]).info.status == "KILLED"
    children = track.children(started[0])
    assert children and all(c.info.status in ("KILLED", "FINISHED") for c in children)
    assert Counter(c.info.status for c in children)["FINISHED"] < 4  # 20-epoch trials: stopped, not finished


def test_a_trial_whose_worker_keeps_dying_fails_and_the_sweep_completes(ray_local, store, crash_once):
    plugin, _ = crash_once
    cfg = tiny("ray-give-up", **{"sweep.methods": ["random"], "sweep.seeds": [0], "plugins": [str(plugin)]})
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
