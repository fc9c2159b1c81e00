"""One sample read back (engine.inspect, `prunelab show --sample`, engine/inspection.py) from a real run,
each part against an independent reading: the score arrays and scipy's percentiles, the neighbours recomputed
from the same surrogate's embeddings, the trials' kept_indices.npy and weights.npy read with MLflow's own client;
and what a scoring run logs for the map (engine/runner/steps.py). On the embedded mnist-mini (600 real digits)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from scipy.stats import percentileofscore

import engine
from engine import names
from engine.config import load_config
from engine.errors import UserError
from engine.sample_map import cosine_neighbours
from tests import builders
from tests.builders import tiny_run

METHODS, EPOCHS = ["loss", "el2n"], [1, 2]


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    root = tmp_path_factory.mktemp("inspect-store")
    return root, fresh_store(root / "mlruns" / "mlflow.db")


@pytest.fixture(scope="module")
def run(store):
    """Two scorers at two surrogate epochs, a weighted coreset (CRAIG), one keep ratio, on mnist-mini."""
    cfg = load_config("quick", tiny_run(**{
        "name": "inspect", "surrogate.epochs": 2, "sweep.score_epochs": EPOCHS, "sweep.methods": METHODS,
        "sweep.strategies": ["craig"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0],
        "surrogate.neighbours": 8}))
    result = engine.run(cfg, tracking_uri=store[1])
    assert result.status == "FINISHED"
    return cfg, result


def artifact(store, run_id: str, path: str, tmp_path) -> np.ndarray | None:
    """An artifact read with MLflow's own client (not the engine's readers)."""
    client = MlflowClient(store[1])
    folder = tmp_path / run_id
    folder.mkdir(exist_ok=True)
    try:
        return np.load(client.download_artifacts(run_id, path, str(folder)))
    except Exception:  # noqa: BLE001 (no such artifact)
        return None


def test_a_scoring_run_logs_its_embedding_map(run, store, tmp_path):
    _, result = run
    assert {names.EMBEDDING_MAP_JSON, names.EMBEDDING_MAP_PLOT, "embedding/projection@e2.npy",
            "embedding/neighbours@e2.npy", "embedding/similarity@e2.npy"} <= set(result.artifacts)
    assert not any(a.startswith("embedding/") and "@e1" in a for a in result.artifacts)  # the last epoch only
    local = MlflowClient(store[1]).download_artifacts(result.run_id, names.EMBEDDING_MAP_JSON, str(tmp_path))
    info = json.loads(Path(local).read_text())
    assert info["epoch"] == 2 and info["projection"] == "pca" and info["k"] == 8 and info["samples"] == 600
    neighbours = artifact(store, result.run_id, "embedding/neighbours@e2.npy", tmp_path)
    assert neighbours.shape == (600, 8) and neighbours.dtype == np.int32
    assert (neighbours != np.arange(600)[:, None]).all()  # never itself


def test_the_logged_neighbours_are_those_of_the_surrogates_embeddings(run, store, tmp_path):
    """The same surrogate scored again from the same config (its predictions equal the logged ones): its
    embeddings at the last score epoch give exactly the logged neighbours and similarities."""
    cfg, result = run
    options = cfg.train.model_dump(exclude={"epochs", "steps"})
    again = engine.score_result("mnist-mini", cfg.model, ["loss"], epochs=[2], surrogate_epochs=2, seed=cfg.seed,
                                train_size=600, test_size=300, device="cpu", embeddings=True, **options)
    np.testing.assert_array_equal(again.predictions[2],
                                  artifact(store, result.run_id, "scores/predictions@e2.npy", tmp_path))
    found, sims = cosine_neighbours(again.embeddings[2].astype(np.float64), 8)
    logged = artifact(store, result.run_id, "embedding/neighbours@e2.npy", tmp_path)
    logged_sims = artifact(store, result.run_id, "embedding/similarity@e2.npy", tmp_path)
    np.testing.assert_allclose(logged_sims, sims, atol=1e-5)
    clear = (np.diff(sims, axis=1) < -1e-5).all(axis=1)
    np.testing.assert_array_equal(logged[clear], found[clear])


def test_inspect_reads_every_score_with_its_percentile(run, store, tmp_path):
    _, result = run
    logged = {f"{m}@e{e}": artifact(store, result.run_id, f"scores/{m}@e{e}.npy", tmp_path).astype(np.float64)
              for m in METHODS for e in EPOCHS}
    for index in (0, 123, 599):
        report = engine.inspect(result.run_id, index, tracking_uri=store[1])
        assert [r.name for r in report.scores] == ["el2n@e1", "el2n@e2", "loss@e1", "loss@e2"]
        for r in report.scores:
            assert r.value == logged[r.name][index]
            assert r.percentile == pytest.approx(percentileofscore(logged[r.name], r.value, kind="mean"), abs=1e-10)
        assert {m: [r.epoch for r in rs] for m, rs in report.trajectories.items()} == {"el2n": [1, 2], "loss": [1, 2]}
        assert report.predicted == artifact(store, result.run_id, "scores/predictions@e2.npy", tmp_path)[index]
        assert report.prediction_epoch == 2 and report.image.shape == (1, 28, 28)


def test_inspect_flags_a_label_most_neighbours_disagree_with(run, store, tmp_path):
    _, result = run
    inspector = engine.sample_inspector(result.run_id, tracking_uri=store[1])
    labels = inspector.samples.labels
    neighbours = artifact(store, result.run_id, "embedding/neighbours@e2.npy", tmp_path)
    flagged = 0
    for index in range(0, 600, 7):
        report = inspector.sample(index)
        assert [n.index for n in report.neighbours] == neighbours[index].tolist()
        other = int((labels[neighbours[index]] != labels[index]).sum())
        assert report.disagreeing == other and report.disagrees == (other > 4)
        counts = Counter(labels[neighbours[index]].tolist())
        assert counts[report.majority] == max(counts.values())
        flagged += report.disagrees
    assert 0 < flagged < 40  # some labels look wrong to their neighbours, most do not
    assert len(inspector.sample(5, k=3).neighbours) == 3


def test_inspect_says_which_trials_kept_the_sample(run, store, tmp_path):
    _, result = run
    inspector = engine.sample_inspector(result.run_id, tracking_uri=store[1])
    trials = inspector.samples.trials
    assert len(trials) == 1 + 2 * 2  # full data, then method x epoch
    kept = {t.run_id: artifact(store, t.run_id, names.KEPT_INDICES, tmp_path) for t in trials}
    weights = {t.run_id: artifact(store, t.run_id, names.SELECTION_WEIGHTS, tmp_path) for t in trials}
    for index in (3, 250, 598):
        report = inspector.sample(index)
        for m in report.trials:
            if m.trial.method == names.FULL:
                assert m.kept is None and kept[m.trial.run_id] is None
                continue
            assert m.kept == (index in kept[m.trial.run_id])
            if m.kept:  # CRAIG's weight of this sample
                assert m.weight == weights[m.trial.run_id][list(kept[m.trial.run_id]).index(index)]
            else:
                assert m.weight is None
        assert report.kept_in() == (sum(bool(m.kept) for m in report.trials), 4)
    trial = trials[1]  # every sample it kept carries its own CRAIG weight (cluster sizes: they differ)
    assert len(set(weights[trial.run_id].tolist())) > 1
    for position, index in enumerate(kept[trial.run_id]):
        membership = next(m for m in inspector.sample(int(index)).trials if m.trial.run_id == trial.run_id)
        assert membership.kept and membership.weight == weights[trial.run_id][position]
    mask = inspector.kept_mask(trials[1].run_id)
    assert mask.sum() == 300 and np.array_equal(np.flatnonzero(mask), np.sort(kept[trials[1].run_id]))


def test_rankings_follow_a_score(run, store, tmp_path):
    _, result = run
    inspector = engine.sample_inspector(result.run_id, tracking_uri=store[1])
    loss = artifact(store, result.run_id, "scores/loss@e2.npy", tmp_path)
    name, order = inspector.ranking("loss")  # a method: its last epoch
    assert name == "loss@e2" and np.array_equal(order, np.argsort(-loss, kind="stable"))
    first = artifact(store, result.run_id, "scores/loss@e1.npy", tmp_path)
    name, order = inspector.ranking("loss@e1", lowest=True)  # a logged name, lowest first
    assert name == "loss@e1" and np.array_equal(order, np.argsort(first, kind="stable"))
    assert inspector.ranking("el2n/ccs")[0] == "el2n@e2" and inspector.ranking("forgetting") is None


def test_show_sample_prints_and_dumps_the_report(run, store):
    _, result = run
    args = ["--tracking-uri", store[1], "show", result.run_id[:10], "--sample", "42"]
    shown = builders.cli(args)
    assert shown.exit_code == 0, shown.stderr
    report = engine.inspect(result.run_id, 42, tracking_uri=store[1])
    assert "sample #42" in shown.stdout and "nearest neighbours" in shown.stdout
    assert f"{report.disagreeing} of its 8 nearest neighbours carry another label" in shown.stdout
    assert f"{report.scores[0].percentile:.1f}" in shown.stdout
    dumped = json.loads(builders.cli([*args, "--json"]).stdout)["sample"]
    assert dumped == json.loads(json.dumps(report.to_dict()))
    bad = builders.cli(["--tracking-uri", store[1], "show", result.run_id, "--sample", "600"])
    assert bad.exit_code == 2 and "has 600 training samples; give an index in 0..599" in bad.stderr
    with pytest.raises(UserError, match="give an index in 0..599"):
        engine.inspect(result.run_id, -1, tracking_uri=store[1])


def test_no_map_without_a_surrogate_or_when_switched_off(store):
    """Random scores train no surrogate, so nothing is logged for the map; `surrogate.projection = "none"`
    logs none either, and neither changes a score."""
    quick = tiny_run(**{"sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.full_data": False})
    plain = engine.run(load_config("quick", {**quick, "name": "random-only", "sweep.methods": ["random"]}),
                       tracking_uri=store[1])
    off = engine.run(load_config("quick", {**quick, "name": "off", "sweep.methods": ["loss"],
                                           "surrogate.projection": "none"}), tracking_uri=store[1])
    for result in (plain, off):
        assert result.status == "FINISHED"
        assert not any(a.startswith("embedding/") or a == names.EMBEDDING_MAP_PLOT for a in result.artifacts)
    assert engine.embedding_map(off.run_id, tracking_uri=store[1]) is None
    report = engine.inspect(off.run_id, 7, tracking_uri=store[1])
    assert report.neighbours == [] and not report.disagrees and report.neighbour_epoch is None
