"""Launch previews (engine/preview.py, `prunelab run --dry-run`, the confirmation above CONFIRM_TRIALS trials).

Counts are checked against counts made here from the registries and the config; the surrogates to train against
a real run's cache; the time estimate, term by term, against an independent sum over the trials with a pinned
throughput and overheads (a calibration file and a progress file written here); the calibration against the
trainer on real data.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from engine import api, names
from engine.config import load_config
from engine.data.dataset import load_dataset
from engine.preview import (
    CONFIRM_TRIALS,
    History,
    Throughput,
    calibration_key,
    history,
    preview,
    throughput,
)
from engine.scoring.registry import SCORERS
from engine.selection.base import keep_count
from engine.selection.registry import STRATEGIES
from engine.store.events import EpochEnd, RunStarted, RunStatus, StageStarted, TrialFinished
from tests.builders import as_set_args, cli

TINY = {"model": "mlp", "data.train_size": 600, "data.test_size": 300, "train.epochs": 1, "surrogate.epochs": 1,
        "sweep.methods": ["loss"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.score_epochs": [1]}


def test_counts_follow_the_kinds_plans():
    quick = preview(load_config("quick"), measure=False)
    # 3 methods x 1 strategy x 2 ratios x 2 seeds x 1 epoch, and one full-data trial per seed
    assert (quick.trials, quick.selections) == (3 * 2 * 2 + 2, 3 * 2 * 2)
    assert (quick.surrogates, quick.surrogates_cached, quick.scoring_passes) == (1, 0, 1)
    assert quick.seconds is None and "no throughput measured" in quick.basis[0]  # nothing measured, nothing cached

    bench = load_config("benchmark-mnist")
    # random, every other scorer with hardest, every strategy but the orderings with el2n: x 4 ratios x 3 seeds
    pairs = 1 + (len(SCORERS) - 1) + (len(STRATEGIES) - 3)
    seen = preview(bench, measure=False)
    assert seen.trials == pairs * 4 * 3 + 3 == api.trial_count(bench)
    assert seen.selections == pairs * 4 * 3 and seen.needs_confirmation == (seen.trials > CONFIRM_TRIALS)
    assert seen.train_samples == 2000 and seen.test_samples == 1000

    online = preview(load_config("quick", {"kind": "online"}), measure=False)
    assert (online.selections, online.surrogates, online.scoring_passes) == (0, 0, 0)  # it selects as it trains


def test_surrogates_to_train_consult_the_runs_cache(in_tmp):
    """Before a run its surrogate is to train; after it, the same config's is cached and the pass too; another
    seed's is not."""
    config = load_config("quick", TINY)
    before = api.preview(config, measure=False)
    assert (before.surrogates, before.surrogates_cached, before.scoring_passes) == (1, 0, 1)
    assert api.run(config).status == names.FINISHED
    after = api.preview(config, measure=False)
    assert (after.surrogates, after.surrogates_cached, after.scoring_passes) == (0, 1, 0)
    assert after.headline().startswith("2 trials, 0 surrogates (+1 cached)")
    other = api.preview(load_config("quick", {**TINY, "seed": 1}), measure=False)
    assert (other.surrogates, other.surrogates_cached) == (1, 0)
    # a new scorer at the same surrogate: its state is cached, only a scoring pass is left
    more = api.preview(load_config("quick", {**TINY, "sweep.methods": ["loss", "el2n"]}), measure=False)
    assert (more.surrogates, more.surrogates_cached, more.scoring_passes) == (0, 1, 1)


def write_events(path, events) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(e.to_json() + "\n" for e in events))


def a_run(t0: float, trial_seconds: list[float], finished_at: list[float]) -> list:
    """A run's progress events: start, a surrogate stage 2 s in, two selections (0.3 s, 0.2 s), trials that end
    at `finished_at` after `trial_seconds` of training each, and the end 3 s after the last trial."""
    events = [RunStarted(run_id="r", experiment="e", kind="prune", trials=len(trial_seconds), t=t0),
              StageStarted("surrogate", t=t0 + 2), StageStarted("selecting", t=t0 + 10),
              StageStarted("selecting", t=t0 + 10.3)]
    start = t0 + 10.5
    for i, (seconds, end) in enumerate(zip(trial_seconds, finished_at)):
        events += [StageStarted("retrain", trial=i, trials=len(trial_seconds), t=start),
                   EpochEnd(epoch=1, epochs=1, metrics={"seconds": seconds}, trial=i, t=end - 0.1),
                   TrialFinished(trial=i, trials=len(trial_seconds), status=names.FINISHED, t=end)]
        start = end + 0.4
    return [*events, RunStatus(status=names.FINISHED, t=finished_at[-1] + 3)]


def test_overheads_are_the_medians_of_recent_progress_files(tmp_path):
    # trial 2: 14.5 - 12.0 - 1.5 = 1.0 s beyond training; trial 3: 17.0 - 14.5 - 2.0 = 0.5 s (trial 1 has no end
    # before it to measure from); selections 0.3 and 0.2 s; run: 2 s to its first stage + 3 s after its last trial
    write_events(tmp_path / "progress" / "r.jsonl", a_run(100.0, [1.0, 1.5, 2.0], [112.0, 114.5, 117.0]))
    past = history(tmp_path / "progress")
    assert past.trial_s == pytest.approx(0.75, abs=1e-9) and past.trials == 2
    assert past.selection_s == pytest.approx(0.25, abs=1e-9) and past.selections == 2
    assert past.run_s == pytest.approx(5.0, abs=1e-9) and past.runs == 1
    assert history(tmp_path / "nothing") == History()


def test_the_estimate_adds_up_the_work_at_the_measured_pace(tmp_path):
    """The whole preview on a pinned throughput (a calibration file) and pinned overheads (a progress file): its
    time is the sum, computed here trial by trial, of what it says it rests on."""
    config = load_config("quick")  # cnn on mnist-mini: 3 methods x 2 ratios x 2 seeds, 2 epochs, surrogate 1 epoch
    ds = load_dataset("mnist-mini", None, "cpu")
    n, n_test = len(ds), len(ds.y_test)
    cache, progress = tmp_path / "cache", tmp_path / "progress"
    key = calibration_key(config, ds, ds.device)
    (cache / "calibration").mkdir(parents=True)
    pinned = Throughput("cnn", "cpu", 1000.0, 4000.0, measured_at=time.time(), load=1.0)
    (cache / "calibration" / f"{key}.json").write_text(json.dumps({k: v for k, v in vars(pinned).items()
                                                                   if k != "cached"}))
    write_events(progress / "r.jsonl", a_run(100.0, [1.0, 1.5, 2.0], [112.0, 114.5, 117.0]))
    got = preview(config, cache, progress, measure=False)

    epochs = config.train.epochs
    trained = 2 * epochs * n + sum(epochs * keep_count(r, n) for _ in range(3) for r in (0.3, 0.7) for _ in range(2))
    evaluated = 14 * epochs * n_test
    surrogate = 1 * n / 1000.0  # one epoch of training, no evaluation
    scoring = n / 1000.0  # grad_norm back-propagates: the pass goes at the training pace
    expected = surrogate + scoring + trained / 1000.0 + evaluated / 4000.0 + 14 * 0.75 + 12 * 0.25 + 5.0
    assert got.seconds == pytest.approx(expected, rel=1e-12)
    assert got.parts["trial overhead"] == pytest.approx(14 * 0.75) and got.parts["run overhead"] == pytest.approx(5.0)
    assert "trains 1,000 and evaluates 4,000 samples/s" in got.basis[0] and "cached" in got.basis[0]
    assert "median of 2 in this store's recent runs" in got.basis[1]


def test_calibration_is_measured_once_and_cached(tmp_path):
    config = load_config("quick", {"model": "mlp"})
    ds = load_dataset("mnist-mini", None, "cpu", 1000, 200)
    assert throughput(config, ds, tmp_path, measure=False) is None  # nothing cached, nothing measured
    first = throughput(config, ds, tmp_path)
    assert not first.cached and 0 < first.train_sps < 1e7 and 0 < first.eval_sps < 1e8
    again = throughput(config, ds, tmp_path, measure=False)
    assert again.cached and (again.train_sps, again.eval_sps, again.measured_at) == \
        (first.train_sps, first.eval_sps, first.measured_at)
    stale = throughput(config, ds, tmp_path, measure=False, now=first.measured_at + 8 * 86400)
    assert stale is None  # older than a week: measured again when measuring is allowed
    other = throughput(load_config("quick", {"model": "cnn"}), ds, tmp_path, measure=False)
    assert other is None  # another model, another key


def test_dry_run_previews_and_creates_no_run(bare_tmp):
    shown = cli(["run", "--dry-run", "--preset", "benchmark-mnist"])
    assert shown.exit_code == 0, shown.output
    trials = api.trial_count(load_config("benchmark-mnist"))
    assert shown.output.startswith(f"dry run, nothing started: {trials} trials, 1 surrogate, ~")
    assert "basis: mlp on cpu trains" in shown.output and f"more than {CONFIRM_TRIALS} trials" in shown.output
    assert not (bare_tmp / "mlruns" / "mlflow.db").exists()  # no store, no run
    as_json = cli(["run", "--dry-run", "--preset", "quick", "--json"])
    data = json.loads(as_json.stdout)
    assert data["trials"] == 14 and data["headline"].startswith("14 trials, 1 surrogate, ~")
    assert data["seconds"] == pytest.approx(sum(data["parts"].values()))
    refused = cli(["run", "--dry-run", "--resume", "abc"])
    assert refused.exit_code == 2 and "--dry-run previews a new run" in refused.output


def test_a_large_run_asks_first_and_a_pipe_is_refused(in_tmp, monkeypatch):
    """Above the threshold (lowered here to 1: the tiny run has 2 trials) a non-terminal stdin is refused in one
    line unless --yes; on a terminal the answer decides."""
    import engine.cli.runs as runs_cli

    monkeypatch.setattr(runs_cli, "CONFIRM_TRIALS", 1)
    args = ["run", "--preset", "quick", *as_set_args(TINY)]
    refused = cli(args)
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "has 2 trials (more than 1)" in refused.stderr and "--yes" in refused.stderr
    assert api.list_runs() == []
    monkeypatch.setattr(runs_cli, "interactive", lambda: True)
    declined = cli(args, input="n\n")
    assert declined.exit_code == 2 and "not started (answered no)" in declined.stderr and api.list_runs() == []
    accepted = cli([*args, "--json"], input="y\n")
    assert accepted.exit_code == 0 and "Start 2 trials" in accepted.stderr
    monkeypatch.setattr(runs_cli, "interactive", lambda: False)
    started = cli([*args, "--yes", "--json"])
    assert started.exit_code == 0 and json.loads(started.stdout)["status"] == names.FINISHED
    assert len(api.list_runs()) == 2 and os.path.exists("mlruns/cache/calibration")  # asked with a measured preview
