"""Golden records: the exact scores, kept indices, weights and accuracies of a few reduced runs.

Recorded once from the code before a refactor (`python -m tests.engine.golden --write`),
compared bit for bit by tests/engine/test_golden.py afterwards. A deliberate change of a
method's behaviour (a fix that makes it follow its reference) rewrites the record in the
same commit and says why there; a refactor never does.

Each array is kept as its dtype, shape and sha256, so equality is bit for bit; floats
(accuracies, summary means) are kept as exact reprs.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RECORD = Path(__file__).with_name("golden.json")

# Every method of the benchmark kind, one ratio and seed: each scorer kind and every strategy's input path
# (embeddings, gradient embeddings, weights) goes through scoring, selection and retraining once.
BENCHMARK_METHODS = [
    "loss", "grad_norm", "input_grad_norm", "el2n", "forgetting", "aum", "aum_softmax", "tdds",
    "dynamic_uncertainty", "entropy", "least_confidence", "margin", "moderate/moderate", "prototypes", "cal",
    "el2n/ccs", "el2n/class_balanced", "el2n/kmeans_coverage", "el2n/kcenter_greedy", "el2n/herding",
    "el2n/facility_location", "el2n/graph_cut", "el2n/log_determinant", "el2n/craig", "el2n/gradmatch",
    "el2n/glister", "el2n/contextual_diversity", "el2n/d2_pruning", "loss/easiest",
]

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "quick": ("quick", {"data.train_size": 1000, "data.test_size": 500, "device": "cpu"}),
    "benchmark": ("benchmark-mnist", {
        "data.train_size": 600, "data.test_size": 300, "train.epochs": 1, "surrogate.epochs": 2,
        "benchmark.methods": BENCHMARK_METHODS, "benchmark.keep_ratios": [0.5], "benchmark.seeds": [0]}),
    "dynamic": ("quick", {"kind": "dynamic", "data.train_size": 1000, "data.test_size": 500, "train.epochs": 4,
                          "model": "mlp", "device": "cpu", "dynamic.seeds": [0, 1]}),
    "online": ("quick", {"kind": "online", "data.train_size": 800, "data.test_size": 300, "train.epochs": 1,
                         "model": "mlp", "device": "cpu", "online.methods": ["random", "loss", "grad_norm"],
                         "online.batch_size": 64, "online.keep": 16, "online.eval_every": 5}),
}

# Every scorer straight from the scoring step: K = 2 for the averaged ones, three score epochs, embeddings and
# gradient embeddings, scorer options off their defaults.
SCORE_CALL = {"scorers": ["loss", "grad_norm", "input_grad_norm", "el2n", "forgetting", "aum", "aum_softmax",
                          "tdds", "dynamic_uncertainty", "entropy", "least_confidence", "margin", "moderate",
                          "prototypes", "cal", "grand", "random"],
              "epochs": [0, 1, 3], "inits": 2, "train_size": 400, "test_size": 200,
              "scorer_options": {"tdds": {"window": 3, "trajectory": 3}, "dynamic_uncertainty": {"window": 2},
                                 "grand": {"epoch": 0}, "aum": {"margin": "softmax"}}}


def timed(key: str) -> bool:
    """Wall-clock figures differ run to run; the record leaves them out."""
    return "seconds" in key or "wall" in key


def digest(array: Any) -> str:
    a = np.ascontiguousarray(np.asarray(array))
    return f"{a.dtype}{list(a.shape)}:{hashlib.sha256(a.tobytes()).hexdigest()[:24]}"


def number(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


def run_record(preset: str, overrides: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A whole run in its own store: score artifacts, each trial's kept indices, weights and accuracies, the
    summary rows."""
    import engine
    from engine.store.tracking import tracker

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = engine.run(engine.load_config(preset, overrides))
        track = tracker(None, str(folder))
        out: dict[str, Any] = {"status": result.status, "scores": {}, "trials": {}}
        scores = track.client.list_artifacts(result.run_id, "scores")
        for art in sorted(scores, key=lambda a: a.path):
            out["scores"][art.path] = digest(np.load(track.download(result.run_id, art.path, folder / "dl")))
        for child in sorted(track.children(result.run_id), key=lambda c: c.data.tags["prunelab.trial_key"]):
            entry: dict[str, Any] = {"status": child.info.status}
            for key, value in sorted(child.data.metrics.items()):
                if not timed(key):
                    entry[key] = number(value)
            for path in ("selection/kept_indices.npy", "selection/weights.npy"):
                local = track.download(child.info.run_id, path, folder / "dl" / child.info.run_id)
                if local is not None and Path(local).exists():
                    entry[path] = digest(np.load(local))
            out["trials"][child.data.tags["prunelab.trial_key"]] = entry
        out["summary"] = [{k: number(v) for k, v in row.items() if not timed(k)} for row in result.summary]
        return out
    finally:
        os.chdir(cwd)


def score_record() -> dict[str, Any]:
    import engine

    call = dict(SCORE_CALL)
    result = engine.score_result("mnist-mini", "cnn", call.pop("scorers"), device="cpu", embeddings=True,
                                 seed=3, **call)
    out = {f"{name}@e{epoch}": digest(values) for name, per in result.scores.items() for epoch, values in per.items()}
    out.update({f"predictions@e{e}": digest(v) for e, v in result.predictions.items()})
    out.update({f"embeddings@e{e}": digest(v) for e, v in (result.embeddings or {}).items()})
    return out


def gradient_record() -> dict[str, Any]:
    """The last-layer gradient embeddings CRAIG, GradMatch and Glister read, straight from compute_scores."""
    from engine.api import as_dataset
    from engine.config import TrainConfig
    from engine.scoring.surrogate import compute_scores

    ds = as_dataset("mnist-mini", device="cpu", train_size=300, test_size=100)
    result = compute_scores(ds, "mlp", ["el2n"], epochs=[1], inits=1, train_cfg=TrainConfig(epochs=1), seed=5,
                            gradients=True, embeddings=True)
    return {"gradients@e1": digest(result.gradients[1]), "embeddings@e1": digest(result.embeddings[1]),
            "el2n@e1": digest(result.scores["el2n"][1]), "projection": result.gradient_projection}


def record(names: list[str] | None = None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    out: dict[str, Any] = {}
    for name, (preset, overrides) in CONFIGS.items():
        if names and name not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = run_record(preset, overrides, Path(tmp))
    if not names or "score" in names:
        out["score"] = score_record()
    if not names or "gradients" in names:
        out["gradients"] = gradient_record()
    return out


if __name__ == "__main__":
    if "--write" not in sys.argv:
        print(json.dumps(record(sys.argv[1:] or None), indent=1))
    else:
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORD}")
