"""Gradient coresets in every kind that selects (study, benchmark), k-center on gradient embeddings, and the
`prunelab bench select` table, on real MNIST and cnn/mlp surrogates."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import engine
from engine.cli.common import main
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.errors import ConfigError
from engine.runner.steps import needs
from engine.scoring.batch import score_model
from engine.selection import select
from engine.store.tracking import tracker
from engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"data.dataset": "mnist", "data.train_size": 300, "data.test_size": 100, "model": "mlp", "train.epochs": 1,
        "train.batch_size": 64, "surrogate.epochs": 1, "sweep.score_epochs": [1]}


def radius(x, kept):
    d = (x * x).sum(1)[:, None] - 2 * x @ x[kept].T + (x[kept] * x[kept]).sum(1)[None]
    return float(np.sqrt(np.clip(d, 0, None).min(1).max()))


def test_kcenter_greedy_on_gradient_embeddings():
    ds = load_dataset("mnist-mini", train_size=600)
    model = train("mlp", ds, TrainConfig(epochs=1, batch_size=128), seed=0, evaluate_every_epoch=False,
                  evaluate_at_end=False).model
    out = score_model(model, ds, ["loss"], embeddings=True, gradients=True)
    loss, labels = out.scores["loss"], ds.y_train.numpy()
    emb, grads = out.embeddings.astype(np.float64), out.gradients.astype(np.float64)
    on_grads = select("kcenter_greedy", loss, 0.05, labels, embeddings=None, gradients=grads, space="gradients")
    on_emb = select("kcenter_greedy", loss, 0.05, labels, embeddings=emb)
    # each set is the better cover of the space it was chosen in
    assert radius(grads, on_grads) < 0.9 * radius(grads, on_emb)
    assert radius(emb, on_emb) < 0.9 * radius(emb, on_grads)
    with pytest.raises(ConfigError, match="needs gradients"):
        select("kcenter_greedy", loss, 0.05, labels, embeddings=emb, space="gradients")
    with pytest.raises(ConfigError, match="space"):
        select("kcenter_greedy", loss, 0.05, labels, embeddings=emb, space="pixels")
    cfg = engine.load_config("quick", {"sweep.strategies": ["kcenter_greedy"], "selection.space": "gradients"})
    assert needs(cfg) == (False, True)


def _weights(track, child, folder):
    return np.load(track.download(child.info.run_id, "selection/weights.npy", folder / child.info.run_id))


def test_gradient_coresets_in_study_and_benchmark(in_tmp, shared_data):
    study = engine.load_config("quick", {**TINY, "name": "g-study", "kind": "study", "data.data_dir": str(shared_data),
                                         "study.parts": ["prune"], "study.methods": ["loss"],
                                         "study.score_epochs": [1], "sweep.methods": ["loss"],
                                         "sweep.strategies": ["craig"], "sweep.keep_ratios": [0.1],
                                         "sweep.seeds": [0], "sweep.full_data": False})
    bench = engine.load_config("benchmark-mnist", {
        **TINY, "name": "g-bench", "data.data_dir": str(shared_data), "benchmark.methods": ["loss/gradmatch"],
        "benchmark.keep_ratios": [0.1], "benchmark.seeds": [0], "benchmark.full_data": False})
    track = tracker(None, str(in_tmp))
    for cfg, weighted in ((study, "craig"), (bench, "gradmatch")):  # the benchmark adds random
        result = engine.run(cfg)
        assert result.status == "FINISHED" and len(result.trials) == (1 if cfg is study else 2)
        assert all(t.status == "FINISHED" for t in result.trials), [t.error for t in result.trials]
        assert track.get_run(result.run_id).data.tags["prunelab.gradient_projection"] == "none"
        children = {c.data.tags["strategy"]: c for c in track.children(result.run_id)}
        w = _weights(track, children[weighted], in_tmp)
        assert len(w) == 30 and w.min() >= 0 and w.sum() > 0


@pytest.mark.slow
def test_bench_select_table_and_speedups():
    runner = CliRunner()
    args = ["bench", "select", "--n", "1000", "--reference-n", "1000", "--fraction", "0.1", "--surrogate-samples",
            "200", "--device", "cpu", "--strategies", "kcenter_greedy,herding,contextual_diversity,d2_pruning,hardest"]
    done = runner.invoke(main, [*args, "--json"])
    assert done.exit_code == 0, done.output
    r = json.loads(done.output)
    rows = {row["strategy"]: row for row in r["strategies"]}
    assert r["samples"] == 1000 and r["dim"] == 128 and r["gradient_dim"] == 1290 and r["reference_samples"] == 1000
    assert list(rows) == ["kcenter_greedy", "herding", "contextual_diversity", "d2_pruning", "hardest"]
    assert all(row["seconds"] > 0 and row["peak_mb"] >= 0 for row in rows.values())
    assert "reference_seconds" not in rows["hardest"]
    for name in ("kcenter_greedy", "herding", "contextual_diversity", "d2_pruning"):  # docs/performance.md's speed-ups
        assert rows[name]["speedup"] > 1, (name, rows[name])
    assert rows["d2_pruning"]["small_peak_mb"] < rows["d2_pruning"]["reference_peak_mb"]
    timed_only = json.loads(runner.invoke(main, [*args[:-1], "hardest", "--no-memory", "--json"]).output)
    assert timed_only["memory_method"] is None and list(timed_only["strategies"][0]) == ["strategy", "seconds"]
    bad = runner.invoke(main, ["bench", "select", "--strategies", "kcenter_greedy/stochastic"])
    assert bad.exit_code == 2 and "greedy option" in bad.output


def test_bench_select_peers_solve_the_same_problem():
    """`bench select --peers` at a small n, with submodlib (fast); apricot's path on one class (it compiles its
    gain function on every fit, seconds each): the peers reach prunelab's objective on the same kernels."""
    pytest.importorskip("submodlib", reason="submodlib-py (the dev extra) is the peer `bench select --peers` times")
    done = CliRunner().invoke(main, ["bench", "select", "--peers", "--libraries", "submodlib", "--n", "600",
                                     "--fraction", "0.1", "--surrogate-samples", "200", "--device", "cpu", "--json"])
    assert done.exit_code == 0, done.output
    r = json.loads(done.output)
    assert r["libraries"] == ["submodlib"] and r["space"] == "gradients" and r["classes"] == 10
    rows = {row["function"]: row for row in r["functions"]}
    assert list(rows) == ["facility_location", "graph_cut", "log_determinant"]
    for row in rows.values():
        assert row["prunelab_seconds"] > 0 and row["submodlib_seconds"] > row["kernel_seconds"] > 0
        assert abs(row["submodlib_objective_vs_prunelab"]) < 1e-2, row
    for name in ("facility_location", "graph_cut"):  # log-determinant's first pick is an exact tie: the sets part
        assert abs(rows[name]["submodlib_objective_vs_prunelab"]) < 1e-5 and rows[name]["submodlib_jaccard"] > 0.9
    bad = CliRunner().invoke(main, ["bench", "select", "--peers", "--libraries", "sklearn"])
    assert bad.exit_code == 2 and "unknown" in bad.output

    apricot = pytest.importorskip("apricot", reason="apricot-select (the dev extra) is the other peer")
    from engine.bench.select import cosine_kernel, peer_call, real_inputs

    inputs = real_inputs(600, 128, None, 200)
    members = np.flatnonzero(inputs["labels"] == 3)
    kept = select("facility_location", inputs["scores"], 0.1, inputs["labels"], gradients=inputs["gradients"])
    ours = np.flatnonzero(np.isin(members, kept))
    theirs = peer_call("apricot", "facility_location", cosine_kernel(inputs["gradients"][members]), len(ours))()
    assert apricot and set(theirs) == set(ours.tolist())
