"""Analyses on real MNIST subsets: overlap matrices, online batch selection, label-noise detection,
top-scored samples, the study kind, and `prunelab show` for them."""
import itertools
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr

import engine
from engine.api import top_samples
from engine.config import load_config
from engine.store.events import StageStarted
from engine.store.tracking import tracker
from tests import builders
from tests.builders import tiny_run


def tiny(shared_data, kind, **extra):
    return load_config("quick", tiny_run(shared_data, train_size=1000,
                                         **{"name": kind, "kind": kind, "sweep.seeds": [0], **extra}))


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    root = tmp_path_factory.mktemp("store")
    return root, fresh_store(root / "mlruns" / "mlflow.db")


@pytest.fixture(scope="module")
def overlap_run(shared_data, store):
    cfg = tiny(shared_data, "overlap", **{"overlap.methods": ["random", "loss", "grad_norm", "el2n"], "overlap.k": 150})
    return engine.run(cfg, tracking_uri=store[1])


def cli(store, *args):
    """`prunelab --tracking-uri STORE ARGS…` in this process (a subprocess would import torch again)."""
    result = builders.cli(["--tracking-uri", store[1], *args])
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def test_overlap_matrix_is_symmetric_with_ones_and_matches_direct_sets(overlap_run, store, tmp_path):
    track = tracker(store[1], str(store[0]))
    matrices = json.loads(track.load_text(overlap_run.run_id, "overlap.json"))
    methods, k = matrices["methods"], matrices["k"]
    assert methods == ["random", "loss", "grad_norm", "el2n"] and k == 150 and matrices["epoch"] == 1
    scores = {m: np.load(track.download(overlap_run.run_id, f"scores/{m}@e1.npy", tmp_path)) for m in methods}
    for name in ("first", "last", "spearman"):
        m = np.array(matrices[name])
        assert m.shape == (4, 4) and np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    top = {m: set(np.argsort(-s)[:k]) for m, s in scores.items()}
    bottom = {m: set(np.argsort(s)[:k]) for m, s in scores.items()}
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            assert matrices["first"][i][j] == pytest.approx(len(top[a] & top[b]) / k)
            assert matrices["last"][i][j] == pytest.approx(len(bottom[a] & bottom[b]) / k)
            assert matrices["spearman"][i][j] == pytest.approx(spearmanr(scores[a], scores[b])[0], abs=1e-9)
    # loss and EL2N rank alike; random agrees with neither beyond chance
    assert matrices["first"][1][3] > 0.5 and matrices["first"][0][1] < 0.3
    assert {"plots/overlap_first.png", "plots/overlap_last.png", "plots/overlap_spearman.png",
            "plots/top_loss.png", "scores/predictions@e1.npy"} <= set(overlap_run.artifacts)


def test_overlap_matrices_pure_function_on_ties():
    from engine.analysis import overlap_matrices

    counts = np.array([3, 1, 1, 0, 2, 1, 0, 0], dtype=np.float32)  # integer scores tie (forgetting)
    out = overlap_matrices({"a": counts, "b": -counts, "c": np.arange(8.0)}, k=3)
    assert out["first"][0][0] == 1.0 and out["first"][0][1] == 0.0  # opposite orders: no common top set
    assert np.allclose(np.array(out["first"]) - np.array(out["first"]).T, 0)
    with pytest.raises(engine.ConfigError, match="overlap.k=9"):
        overlap_matrices({"a": counts, "b": counts}, k=9)


def test_show_prints_the_overlap_matrices_and_top_samples(overlap_run, store):
    proc = cli(store, "show", overlap_run.run_id)
    assert proc.returncode == 0, proc.stderr
    assert "repetition rate of the top-150 sets" in proc.stdout and "Spearman rank correlation" in proc.stdout
    first = json.loads(cli(store, "show", overlap_run.run_id, "--json").stdout)["overlap"]["first"]
    assert f"{first[1][3]:.2%}" in proc.stdout and "grad_norm" in proc.stdout

    proc = cli(store, "show", overlap_run.run_id, "--top", "4", "--method", "loss")
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^│\s+(\d+) │\s+(\d+) │\s+(\d+) │", proc.stdout, flags=re.MULTILINE)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    top = json.loads(cli(store, "show", overlap_run.run_id, "--top", "4", "--json").stdout)["top"]
    assert len(top) == 4 and [t["index"] for t in top] == [int(r[1]) for r in rows]
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(top))

    samples = top_samples(overlap_run.run_id, "loss", n=3, lowest=True, tracking_uri=store[1])
    assert len(samples) == 3 and samples[0]["image"].shape == (1, 28, 28) and samples[0]["image"].dtype == np.uint8
    assert samples[0]["score"] <= samples[-1]["score"] and samples[0]["predicted"] in range(10)
    bad = cli(store, "show", overlap_run.run_id, "--top", "2", "--method", "forgetting")
    assert bad.returncode == 2 and "no scores of 'forgetting'" in bad.stderr


def test_online_selection_backpropagates_exactly_k_of_every_b(shared_data, store):
    from engine.architectures import build_model
    from engine.config import TrainConfig
    from engine.data.dataset import load_dataset
    from engine.runner.tasks import TopK
    from engine.trainer import train

    ds = load_dataset("mnist", shared_data, "cpu", 512, 200)
    model = build_model("mlp", ds.input_shape, ds.num_classes, seed=0)
    selector = TopK(model, ds, "loss", batch_size=64, keep=16, seed=0)
    seen = []
    result = train(model, ds, TrainConfig(epochs=1, batch_size=64), observers=[lambda i, logits, y: seen.append(len(y))],
                   select_batch=selector)
    assert seen == [16] * 8 and result.samples == 128 and (selector.drawn, selector.kept) == (512, 128)
    x, y = ds.x_train[:64], ds.y_train[:64]
    chosen = selector(None, x, y).numpy()  # the 16 highest losses of the batch under the current model
    import torch

    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model.eval()(ds.normalize(x)), y, reduction="none").numpy()
    rest = np.setdiff1d(np.arange(64), chosen)
    assert len(chosen) == 16 and losses[chosen].min() >= losses[rest].max() - 1e-6

    cfg = tiny(shared_data, "online", **{"data.train_size": 512, "online.methods": ["random", "grad_norm"],
                                         "online.batch_size": 64, "online.keep": 16, "online.eval_every": 4})
    run = engine.run(cfg, tracking_uri=store[1])
    assert run.status == "FINISHED" and len(run.trials) == 3
    rows = {r["method"]: r for r in run.summary}
    assert rows["full"]["backpropagated"] == 512 and rows["full"]["keep"] == 64
    assert rows["grad_norm"]["backpropagated"] == 128 and rows["random"]["backpropagated"] == 128
    # the dynamic report: random saves 3/4 of both passes; grad_norm scores all 512 (forward and backward) first
    assert rows["random"]["forward_saved"] == rows["random"]["backward_saved"] == 0.75
    assert rows["grad_norm"]["forward_saved"] == rows["grad_norm"]["backward_saved"] == 1 - (512 + 128) / 512
    assert all(r["mean_accuracy"] > 0.2 for r in run.summary)
    track = tracker(store[1], str(store[0]))
    child = next(t for t in run.trials if t.tags["method"] == "grad_norm").child_run_id
    history = track.client.get_metric_history(child, "test_accuracy")
    assert [m.step for m in history] == [64, 128]  # evaluated every 4 steps of 16 backpropagated
    assert track.get_run(child).data.metrics["drawn"] == 512
    assert "plots/online.png" in run.artifacts


def test_loss_finds_flipped_labels_far_better_than_random(shared_data, store):
    from engine.data.dataset import load_dataset
    from engine.data.noise import flip_labels

    clean = load_dataset("mnist", shared_data, "cpu", 2000, 300).y_train.clone()
    noisy, flipped = flip_labels(clean.numpy(), 0.1, 10, seed=0)
    assert len(flipped) == 200 and np.all(noisy[flipped] != clean.numpy()[flipped])
    assert np.array_equal(np.flatnonzero(noisy != clean.numpy()), flipped)

    cfg = tiny(shared_data, "noise", **{"data.train_size": 2000, "surrogate.epochs": 2,
                                        "noise.methods": ["random", "loss"], "noise.fraction": 0.1,
                                        "noise.retrain": True})
    run = engine.run(cfg, tracking_uri=store[1])
    rows = {r["method"]: r for r in run.summary}
    assert len(run.trials) == 4 and all(t.status == "FINISHED" for t in run.trials)  # full, oracle, 2 methods
    assert all(0.3 < rows[m]["mean_accuracy"] <= 1 for m in ("full", "oracle", "random", "loss"))
    assert rows["loss"]["k"] == 200 and rows["loss"]["flipped"] == 200
    assert rows["loss"]["precision"] > 0.5 and rows["loss"]["auroc"] > 0.9
    assert rows["random"]["precision"] < 0.2
    assert torch_equal(load_dataset("mnist", shared_data, "cpu", 2000, 300).y_train, clean)  # the loaded one: clean
    top = top_samples(run.run_id, "loss", n=20, tracking_uri=store[1])
    assert [t["label"] for t in top] == [int(noisy[t["index"]]) for t in top]  # the labels the scorers saw
    assert "plots/noise_detection.png" in run.artifacts and "plots/top_loss.png" in run.artifacts


def test_noise_retraining_honours_the_steps_budget_and_logs_like_a_prune_trial(shared_data, store):
    """The noise kind retrains with the one `retrain` task: sweep.budget, dataset input and train_seconds hold."""
    cfg = tiny(shared_data, "noise", **{"name": "noise-steps", "noise.methods": ["loss"], "noise.fraction": 0.1,
                                        "noise.retrain": True, "noise.prune_fraction": 0.5, "sweep.budget": "steps",
                                        "train.epochs": 2, "train.batch_size": 100})
    run = engine.run(cfg, tracking_uri=store[1])
    assert run.status == "FINISHED" and len(run.trials) == 3  # full noisy data, oracle, loss pruned
    full_steps = 2 * 1000 // 100  # the full data's optimizer steps at batch 100, over 2 epochs
    track = tracker(store[1])
    for record in run.trials:
        child = track.get_run(record.child_run_id)
        assert int(child.data.params["train.steps"]) == full_steps == record.metrics["steps"]
        assert child.data.metrics["train_seconds"] > 0
        assert len(child.inputs.dataset_inputs) == 1  # the data set, with the kept count as an input tag
        kept = 1000 if record.tags["method"] == "full" else 500
        assert int(child.data.params["kept"]) == kept and "flipped_kept" in child.data.params
    # half the data in the same number of steps: twice the epochs of the full-data trial
    pruned = next(r for r in run.trials if r.tags["method"] == "loss")
    history = track.client.get_metric_history(pruned.child_run_id, "test_accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4]


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_study_trains_the_surrogate_once_and_runs_each_trial_once(shared_data, store):
    from engine.kinds import EXPERIMENTS

    cfg = tiny(shared_data, "study", **{
        "data.train_size": 600, "surrogate.epochs": 2, "sweep.score_epochs": [1],
        "sweep.methods": ["random", "loss"], "sweep.keep_ratios": [0.5, 0.8],
        "overlap.methods": ["loss", "el2n"], "overlap.k": 100,
        "study.methods": ["loss"], "study.keep_ratios": [0.5], "study.score_epochs": [0, 1, 2]})
    events = []
    run = engine.run(cfg, tracking_uri=store[1], on_event=events.append)
    assert run.status == "FINISHED"
    trained = [e for e in events if isinstance(e, StageStarted) and e.stage == "surrogate" and "seed" in e.detail]
    assert len(trained) == 1
    # prune: full + 2 methods x 2 ratios; epochs: loss at 3 epochs (e1 at 0.5 and full are shared)
    assert len(run.trials) == EXPERIMENTS["study"].count_trials(cfg) == 5 + 2
    parts = {r["part"] for r in run.summary}
    assert parts == {"prune", "epochs"}
    assert {r["epoch"] for r in run.summary if r["part"] == "epochs" and r["method"] == "loss"} == {0, 1, 2}
    assert {"overlap.json", "plots/accuracy_vs_ratio_e1.png", "plots/accuracy_vs_epoch_keep0.5.png",
            "plots/overlap_first.png", "plots/top_loss.png"} <= set(run.artifacts)
    report = engine.show(run.run_id, tracking_uri=store[1])
    assert report["overlap"]["methods"] == ["loss", "el2n"] and report["overlap"]["epoch"] == 2
