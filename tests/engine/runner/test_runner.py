"""Experiments end to end on real MNIST subsets: MLflow structure, cache, resume, kills, concurrency."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import engine
from engine.names import TRIAL_KEY
from engine.store.events import EpochEnd, RunStarted, RunStatus, StageStarted, TrialFinished
from engine.store.progress import ProgressFollower, read_events
from engine.store.tracking import tracker
from tests.builders import as_set_args, tiny_run
from tests.polling import wait_until


def tiny(shared_data, **extra):
    """Fourteen trials (random, loss, grad_norm at two ratios and two seeds, and full data) on 1000 MNIST digits."""
    return tiny_run(shared_data, train_size=1000, test_size=500, **{
        "train.epochs": 2, "train.batch_size": 64, "sweep.methods": ["random", "loss", "grad_norm"],
        "sweep.keep_ratios": [0.3, 0.6], "sweep.seeds": [0, 1], **extra})


@pytest.mark.slow
def test_prune_sweep_lands_in_mlflow_with_its_structure(in_tmp, shared_data):
    events = []
    cfg = engine.load_config("quick", tiny(shared_data, name="structure"))
    result = engine.run(cfg, on_event=events.append)
    assert result.status == "FINISHED" and len(result.trials) == 2 + 3 * 2 * 2
    assert all(t.status == "FINISHED" for t in result.trials)

    track = tracker(None, str(in_tmp))
    parent = track.get_run(result.run_id)
    assert parent.data.tags["prunelab.role"] == "parent" and parent.data.tags["prunelab.kind"] == "prune"
    assert parent.data.params["sweep.keep_ratios"] == "[0.3, 0.6]"
    assert parent.data.metrics["full_data_accuracy"] > 0.6
    children = track.children(result.run_id)
    assert len(children) == 14
    keys = {c.data.tags[TRIAL_KEY] for c in children}
    assert len(keys) == 14
    loss_child = next(c for c in children if c.data.tags["method"] == "loss" and c.data.tags["ratio"] == "0.3")
    assert {"strategy", "seed", "epoch"} <= set(loss_child.data.tags)
    history = track.client.get_metric_history(loss_child.info.run_id, "test_accuracy")
    assert [m.step for m in history] == [1, 2]
    kept = np.load(track.download(loss_child.info.run_id, "selection/kept_indices.npy", in_tmp / "dl"))
    assert len(kept) == 300 and np.all(np.diff(kept) > 0)

    artifacts = {a.path for a in track.client.list_artifacts(result.run_id)}
    assert {"config.toml", "summary.csv", "summary.json", "plots", "scores"} <= artifacts
    plots = {a.path for a in track.client.list_artifacts(result.run_id, "plots")}
    assert "plots/accuracy_vs_ratio_e1.png" in plots
    scores = {a.path for a in track.client.list_artifacts(result.run_id, "scores")}
    assert {"scores/loss@e1.npy", "scores/grad_norm@e1.npy"} <= scores

    rows = result.summary
    assert next(r["method"] for r in rows) == "full"
    assert all(r["seeds"] == 2 for r in rows)
    assert {(r["method"], r["ratio"]) for r in rows if r["method"] != "full"} == \
        {(m, r) for m in ("random", "loss", "grad_norm") for r in (0.3, 0.6)}
    acc = {(r["method"], r["ratio"]): r["mean_accuracy"] for r in rows}
    assert acc[("full", 1.0)] > 0.8 and acc[("random", 0.6)] > 0.7
    assert all(a > 0.1 for a in acc.values())  # chance is 0.1
    # keeping only the hardest 30% of a small set hurts, as the literature finds at high pruning rates
    assert acc[("loss", 0.3)] < acc[("random", 0.3)]
    assert any(isinstance(e, EpochEnd) and e.trial is None for e in events)  # the surrogate trained
    # every selection says so before the first trial trains: "k of 14: <trial name>", in order
    stages = [e for e in events if isinstance(e, StageStarted)]
    selecting = [e.detail for e in stages if e.stage == "selecting"]
    retrained = [e.detail for e in stages if e.stage == "retrain"]  # each child run's name, in order
    assert len(retrained) == 14 and selecting == [f"{k} of 14: {name}" for k, name in enumerate(retrained, 1)]
    first_retrain = next(i for i, e in enumerate(stages) if e.stage == "retrain")
    assert all(e.stage != "selecting" for e in stages[first_retrain:]) and selecting[1].startswith("2 of 14: ")

    # the same config again: the surrogate and its scores come from the cache
    again = []
    engine.run(cfg, on_event=again.append)
    assert not any(isinstance(e, EpochEnd) and e.trial is None for e in again)

    # the CLI reads it back
    show = subprocess.run([sys.executable, "-m", "engine.cli", "show", result.run_id], capture_output=True, text=True,
                          check=False)
    assert show.returncode == 0 and "grad_norm" in show.stdout and "full" in show.stdout
    csv = subprocess.run([sys.executable, "-m", "engine.cli", "export", result.run_id, "--csv"],
                         capture_output=True, text=True, check=False)
    assert csv.stdout.splitlines()[0].startswith("method,strategy,ratio,epoch,mean_accuracy")
    assert len(csv.stdout.strip().splitlines()) == 1 + len(rows)


def _start(args, cwd):
    # SIGINT back to its default in the child: a suite started in the background (`cmd &` in a script)
    # inherits SIGINT ignored, and Python then keeps ignoring Ctrl-C
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "run", "--json", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509 -- no threads run a fork here


def _wait_for_trials(progress_dir, count, timeout=240):
    def finished():
        files = list(progress_dir.glob("*.jsonl")) if progress_dir.exists() else []
        if files and len([e for e in ProgressFollower(files[0]).poll() if isinstance(e, TrialFinished)]) >= count:
            return files[0].stem
        return None

    return wait_until(finished, timeout, f"{count} finished trials in {progress_dir}")


def _finished_by_key(track, run_id):
    counts = {}
    for child in track.children(run_id):
        if child.info.status == "FINISHED":
            key = child.data.tags[TRIAL_KEY]
            counts[key] = counts.get(key, []) + [child.info.run_id]
    return counts


@pytest.mark.slow
def test_killed_hard_then_resumed_runs_every_trial_once(in_tmp, shared_data):
    proc = _start(["--preset", "quick", *as_set_args(tiny(shared_data, name="resume"))], in_tmp)
    run_id = _wait_for_trials(in_tmp / "mlruns" / "progress", 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    runs = subprocess.run([sys.executable, "-m", "engine.cli", "runs", "--json"], cwd=in_tmp,
                          capture_output=True, text=True, check=True)
    assert {r["run_id"]: r["status"] for r in json.loads(runs.stdout)}[run_id] == "KILLED"
    track = tracker(None, str(in_tmp))
    before = _finished_by_key(track, run_id)
    assert len(before) >= 3

    resumed = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--resume", run_id, "--json"], cwd=in_tmp,
                             capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "FINISHED"
    after = _finished_by_key(track, run_id)
    assert len(after) == 14 and all(len(ids) == 1 for ids in after.values())
    assert all(after[k] == ids for k, ids in before.items())  # nothing finished was recomputed
    assert track.get_run(run_id).info.status == "FINISHED"


def test_ctrl_c_ends_the_run_killed(in_tmp, shared_data):
    # 30 epochs a trial: with warm file caches the 2-epoch trials finished before the signal arrived (exit 0)
    proc = _start(["--preset", "quick", *as_set_args(tiny(shared_data, name="interrupt", **{"train.epochs": 30}))],
                  in_tmp)
    run_id = _wait_for_trials(in_tmp / "mlruns" / "progress", 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert tracker(None, str(in_tmp)).get_run(run_id).info.status == "KILLED"


@pytest.mark.slow
def test_two_experiments_share_one_store(bare_tmp, shared_data):
    # bare: no store yet, so the two runs also make it at once (MLflow migrates it under prunelab's lock)
    small = tiny(shared_data, **{"sweep.methods": ["random", "loss"], "sweep.keep_ratios": [0.5]})
    procs = [_start(["--preset", "quick", *as_set_args({**small, "name": f"concurrent-{i}"})], bare_tmp)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
    track = tracker(None, str(bare_tmp))
    for out, _ in outs:
        run_id = json.loads(out)["run_id"]
        assert track.get_run(run_id).info.status == "FINISHED"
        assert len(_finished_by_key(track, run_id)) == 2 + 2 * 2


def test_diverging_trials_fail_with_a_reason_and_the_sweep_goes_on(in_tmp, shared_data):
    cfg = engine.load_config("quick", tiny(shared_data, **{
        "name": "diverge", "sweep.methods": ["random"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0],
        "train.lr": 1e6, "train.schedule": "constant", "train.momentum": 0.0}))
    result = engine.run(cfg)
    assert result.status == "FINISHED" and len(result.trials) == 2
    assert all(t.status == "FAILED" and "training loss became nan" in t.message for t in result.trials)
    children = tracker(None, str(in_tmp)).children(result.run_id)
    assert all(c.info.status == "FAILED" and "lower the learning rate" in c.data.tags["prunelab.error"]
               for c in children)


def test_detached_run_returns_at_once_and_finishes(in_tmp, shared_data):
    small = tiny(shared_data, **{"name": "detached", "sweep.methods": ["loss"], "sweep.keep_ratios": [0.5],
                                 "sweep.seeds": [0]})
    start = time.time()
    out = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--preset", "quick", "--detach", "--json",
                          *as_set_args(small)], cwd=in_tmp, capture_output=True, text=True, check=True)
    assert time.time() - start < 30
    info = json.loads(out.stdout)
    track = tracker(None, str(in_tmp))
    deadline = time.time() + 300
    while track.get_run(info["run_id"]).info.status == "RUNNING" and time.time() < deadline:
        time.sleep(0.5)
    assert track.get_run(info["run_id"]).info.status == "FINISHED"
    words = [e.message for e in read_events(info["progress_file"]) if isinstance(e, RunStatus) and e.status == "RUNNING"]
    assert words == ["started"]  # the detached process's first `--resume` is a start, not a resume


def test_a_cancel_raises_nothing_where_the_signal_lands_and_still_ends_the_run_killed(in_tmp, shared_data):
    """SIGTERM lands wherever the main thread is; were an exception raised there, a weakref callback
    or __del__ (SQLAlchemy has both) would print "Exception ignored" and go on. So the handler only
    sets the run's cancel token, the trainer stops at its next batch, and the run ends KILLED."""
    from engine.store.events import BatchProgress, EpochEnd

    signalled, started, after = [], [], []

    def on_event(event):
        if isinstance(event, RunStarted):
            started.append(event.run_id)
        if signalled and isinstance(event, (BatchProgress, EpochEnd)):
            after.append(event)
        if isinstance(event, BatchProgress) and not signalled:
            signal.raise_signal(signal.SIGTERM)  # returns: nothing is raised here, where nobody would see it
            signalled.append(event)
    cfg = engine.load_config("quick", tiny(shared_data, name="cancel-token", **{"sweep.methods": ["random"],
                                                                              "sweep.keep_ratios": [0.5]}))
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's if a Ray test ran first in this process
    with pytest.raises(KeyboardInterrupt):
        engine.run(cfg, on_event=on_event)
    assert signalled, "the run emitted no batch event"
    assert all(e.epoch == signalled[0].epoch for e in after)  # stopped within the epoch it was signalled in
    track = tracker(None, str(in_tmp))
    assert track.get_run(started[0]).info.status == "KILLED"
    statuses = [e.status for e in read_events(track.store.progress_file(started[0])) if isinstance(e, RunStatus)]
    assert statuses[-1] == "KILLED"
    assert signal.getsignal(signal.SIGTERM) is before  # the run's handler is gone with it


def test_a_second_signal_interrupts_at_once():
    from engine.cancel import CancelToken
    from engine.runner.runner import GRACE_S, cancel_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with cancel_on_signals(CancelToken()) as token:
        signal.raise_signal(signal.SIGTERM)
        assert token.cancelled and token.reason == "SIGTERM"
        signal.raise_signal(signal.SIGTERM)  # a repeat at once is the same request (tests/faults/test_signals.py)
        time.sleep(GRACE_S)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)  # the user insists
    assert signal.getsignal(signal.SIGTERM) is before
