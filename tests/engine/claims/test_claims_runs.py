"""The docs' claims about runs (docs/guide/experiments.md, selection.md), each on a real run of 600 embedded MNIST
digits: `sweep.budget = "steps"`, the coverage strategies inside a prune run (k-means on the surrogate's embeddings),
the `score-epochs` kind."""
import math

import numpy as np
import pytest

import engine
from engine.data.dataset import load_dataset
from engine.scoring.surrogate import compute_scores
from engine.selection import select
from engine.store.tracking import tracker

TINY = {"model": "mlp", "data.train_size": 600, "data.test_size": 200, "train.epochs": 1, "train.batch_size": 100,
        "surrogate.epochs": 1, "sweep.methods": ["loss"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0]}
COVERAGE = ["ccs", "class_balanced", "kmeans_coverage"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fresh_store):
    """A prune run of the three coverage strategies with the steps budget, and a score-epochs run (t = 0, 1)."""
    folder = tmp_path_factory.mktemp("claims-runs")
    fresh_store(folder / "mlruns" / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        prune = engine.run(engine.load_config("quick", {**TINY, "name": "coverage-steps", "sweep.budget": "steps",
                                                        "sweep.strategies": COVERAGE, "sweep.score_epochs": [1]}))
        epochs = engine.run(engine.load_config("quick", {**TINY, "name": "epochs", "kind": "score-epochs",
                                                         "sweep.score_epochs": [0, 1], "sweep.full_data": False}))
    return folder, tracker(None, str(folder)), prune, epochs


@pytest.fixture(scope="module")
def surrogate(runs):
    """The run's surrogate trained again, uncached: its loss at epochs 0 and 1 and its epoch-1 embeddings."""
    cfg = engine.load_config("quick", {**TINY, "sweep.score_epochs": [0, 1]})
    ds = load_dataset("mnist-mini", None, "cpu", 600, 200)
    result = compute_scores(ds, "mlp", ["loss"], epochs=[0, 1], inits=1, seed=cfg.seed, embeddings=True,
                            train_cfg=cfg.train.model_copy(update={"epochs": 1, "steps": None}),
                            batch_size=cfg.surrogate.batch_size)
    return ds.y_train.numpy(), ds.x_train.reshape(len(ds.y_train), -1).double().numpy(), result


def artifact(runs, run_id, path):
    folder, track = runs[:2]
    return np.load(track.download(run_id, path, folder / "downloads" / run_id))


def kept_of(runs, result):
    return {r.tags["strategy"]: artifact(runs, r.child_run_id, "selection/kept_indices.npy")
            for r in result.trials if r.tags["method"] != "full"}


def test_a_steps_budget_trains_every_child_the_full_data_runs_step_count(runs):
    track, prune = runs[1], runs[2]
    assert prune.status == "FINISHED" and [t.status for t in prune.trials] == ["FINISHED"] * 4
    children = {r.tags["method"] if r.tags["method"] == "full" else r.tags["strategy"]: r for r in prune.trials}
    full = track.get_run(children["full"].child_run_id)
    batch = int(track.get_run(prune.run_id).data.params["train.batch_size"])
    full_epochs = len(track.client.get_metric_history(full.info.run_id, "test_accuracy"))
    full_steps = full_epochs * math.ceil(int(full.data.params["kept"]) / batch)  # what the full-data child trained
    assert full_steps == 6 == children["full"].metrics["steps"]
    for strategy in COVERAGE:
        record = children[strategy]
        child = track.get_run(record.child_run_id)
        assert int(child.data.params["kept"]) == 300
        assert int(child.data.params["train.steps"]) == full_steps == record.metrics["steps"], strategy
        # half the data in the full data's steps: twice its epochs
        history = track.client.get_metric_history(child.info.run_id, "test_accuracy")
        assert sorted(m.step for m in history) == [1, 2], strategy


def test_coverage_strategies_inside_a_run_keep_what_they_promise(runs, surrogate):
    labels, pixels, result = surrogate
    prune = runs[2]
    loss = artifact(runs, prune.run_id, "scores/loss@e1.npy")
    np.testing.assert_allclose(loss, result.scores["loss"][1], rtol=1e-6)  # the run's surrogate, trained again
    kept = kept_of(runs, prune)
    assert set(kept) == set(COVERAGE) and all(len(k) == 300 and np.all(np.diff(k) > 0) for k in kept.values())

    # class_balanced: half of every class (60 each), the hardest half of it
    assert np.bincount(labels[kept["class_balanced"]], minlength=10).tolist() == [30] * 10
    for c in range(10):
        members = np.flatnonzero(labels == c)
        hardest = members[np.argsort(-loss[members], kind="stable")[:30]]
        assert set(kept["class_balanced"][labels[kept["class_balanced"]] == c]) == set(hardest), c

    # ccs (beta 0, 50 bins): every non-empty equal-width loss stratum is kept; strata not kept whole get equal shares
    edges = np.linspace(loss.min(), loss.max(), 51)
    strata = np.clip(np.searchsorted(edges, loss, side="right") - 1, 0, 49)
    sizes = np.bincount(strata, minlength=50)
    taken = np.bincount(strata[kept["ccs"]], minlength=50)
    assert np.all(taken[sizes > 0] > 0)
    partial = taken[(taken < sizes)]
    assert len(partial) and partial.max() - partial.min() <= 1
    assert not np.array_equal(kept["ccs"], np.sort(np.argsort(-loss)[:300]))  # not simply the hardest

    # kmeans_coverage: class quotas, and the cells of the surrogate's epoch-1 embeddings, not of anything else
    assert np.bincount(labels[kept["kmeans_coverage"]], minlength=10).tolist() == [30] * 10
    embeddings = result.embeddings[1]
    assert embeddings.shape == (600, 64)  # the mlp's hidden layer
    assert np.array_equal(kept["kmeans_coverage"], select("kmeans_coverage", loss, 0.5, labels, seed=0,
                                                          embeddings=embeddings))
    assert not np.array_equal(kept["kmeans_coverage"], select("kmeans_coverage", loss, 0.5, labels, seed=0,
                                                              embeddings=pixels))


def test_the_score_epochs_kind_prunes_with_the_scores_of_each_epoch(runs, surrogate):
    track, epochs = runs[1], runs[3]
    result = surrogate[2]
    assert epochs.status == "FINISHED" and len(epochs.trials) == 2  # loss at t = 0 and t = 1
    parent = track.get_run(epochs.run_id)
    assert parent.data.tags["prunelab.kind"] == "score-epochs"
    assert {"plots/accuracy_vs_epoch_keep0.5.png", "summary.json", "scores/loss@e0.npy",
            "scores/loss@e1.npy"} <= set(epochs.artifacts)
    kept = {}
    for record in epochs.trials:
        t = int(record.tags["epoch"])
        loss = artifact(runs, epochs.run_id, f"scores/loss@e{t}.npy")
        np.testing.assert_allclose(loss, result.scores["loss"][t], rtol=1e-6)
        kept[t] = artifact(runs, record.child_run_id, "selection/kept_indices.npy")
        assert np.array_equal(kept[t], np.sort(np.argsort(-loss)[:300])), t  # hardest half at that epoch's scores
    assert sorted(kept) == [0, 1] and len(np.intersect1d(kept[0], kept[1])) < 250  # the epoch changes the subset
    # an untrained surrogate's loss is near ln 10; one epoch lowers it
    e0, e1 = (artifact(runs, epochs.run_id, f"scores/loss@e{t}.npy").mean() for t in (0, 1))
    assert abs(e0 - math.log(10)) < 0.3 and e1 < e0 - 0.3
    # the summary: one row per score epoch, each the accuracy its child logged
    rows = {(r["method"], r["epoch"]): r for r in epochs.summary}
    assert set(rows) == {("loss", 0), ("loss", 1)}
    for record in epochs.trials:
        logged = track.get_run(record.child_run_id).data.metrics["final_test_accuracy"]
        row = rows[(record.tags["method"], int(record.tags["epoch"]))]
        assert row["mean_accuracy"] == pytest.approx(logged, abs=1e-12) and row["seeds"] == 1


@pytest.mark.parametrize("args, message", [
    (["--resume", "abc123", "--preset", "quick"], "--resume takes the config stored with the run; drop CONFIG"),
    (["--resume", "abc123", "--set", "model=mlp"], "--resume takes the config stored with the run; drop CONFIG"),
    (["my.toml", "--preset", "quick"], "give a CONFIG file or --preset, not both"),
    (["--retry-failed"], "--retry-failed needs --resume RUN_ID"),
    (["--ray-address", "localhost:6379"], "the --ray-* options need --executor ray"),
])
def test_run_refuses_options_that_exclude_each_other_before_it_opens_a_store(tmp_path, monkeypatch, args, message):
    from click.testing import CliRunner

    from engine.cli import main

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["run", *args])
    assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "mlruns").exists()
