"""A backend with fixed data, for snapshot tests: no clock, no run ids or paths from a real run.

The numbers are real: scores and predictions of a tiny prunelab run (mlp on
mnist-mini, 600 samples, surrogate epoch 1) saved in fixtures/scores.npz, and
the images come from the embedded mnist-mini through the engine's loader. The
embedding map of the same surrogate is fixtures/sample_map.npz, made by
`build_map(engine.score("mnist-mini", "mlp", ["loss", "grad_norm"], epochs=1,
train_size=600, device="cpu", embeddings=True)["embeddings"], 1)` (its loss
agrees with scores.npz to 5e-7); the trials' selections are the engine's
`hardest` on those scores.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np

from engine.inspection import RunInspector, RunSamples
from engine.preview import Preview
from engine.sample_map import SampleMap
from engine.selection.base import select
from engine.store.events import TrialFinished
from engine.store.progress import RunProgress, trial_line
from engine.store.runs import RunInfo
from tui.backend import RunDetail, SampleSet, TrialRow

NOW = 1_800_000_000.0  # a fixed "now" (2027-01-15 08:00 UTC)
FIXTURES = Path(__file__).parent / "fixtures"


def run(run_id, experiment, name, kind, status, dataset, model, best, done, trials, start, end) -> RunInfo:
    return RunInfo(run_id=run_id, experiment=experiment, name=name, kind=kind, status=status, dataset=dataset,
                   model=model, best_accuracy=best, trials_done=done, trials=trials, start_time=start, end_time=end)


RUNS = [
    run("a1b2c3d4e5f60718293a4b5c6d7e8f90", "quick", "prune mnist-mini mlp", "prune", "FINISHED", "mnist-mini",
        "mlp", 0.6065, 3, 3, NOW - 3600, NOW - 3600 + 27),
    run("b2c3d4e5f60718293a4b5c6d7e8f90a1", "quick-b", "prune mnist-mini mlp", "prune", "FINISHED",
        "mnist-mini", "mlp", 0.5740, 3, 3, NOW - 1800, NOW - 1800 + 12),
    run("c3d4e5f60718293a4b5c6d7e8f90a1b2", "seed-sweep", "prune mnist cnn", "prune", "RUNNING", "mnist", "cnn",
        None, 4, 12, NOW - 300, None),
    run("d4e5f60718293a4b5c6d7e8f90a1b2c3", "overlap-k", "overlap mnist-mini cnn", "overlap", "KILLED",
        "mnist-mini", "cnn", None, 0, 0, NOW - 7200, NOW - 7100),
]

# a benchmark run, kept out of RUNS (the runs-screen snapshots stay as they are); its leaderboard reads
# fixtures/benchmark.json, the benchmark.json of a real run on this CPU: docs/results/benchmark.md's settings
# with 8 of the methods (loss, el2n, forgetting, aum, entropy, el2n/ccs, el2n/moderate, el2n/kcenter_greedy)
BENCHMARK_RUN = run("e5f60718293a4b5c6d7e8f90a1b2c3d4", "benchmark-mnist", "benchmark mnist-mini mlp", "benchmark",
                    "FINISHED", "mnist-mini", "mlp", 0.834, 57, 57, NOW - 900, NOW - 900 + 621)

_BENCHMARK_ROWS = json.loads((FIXTURES / "benchmark.json").read_text())["rows"]  # its full data beats every pruned
BENCHMARK_RUN.full_accuracy = next(r["mean_accuracy"] for r in _BENCHMARK_ROWS if r["method"] == "full")
BENCHMARK_RUN.best_pruned = max(r["mean_accuracy"] for r in _BENCHMARK_ROWS if r["method"] != "full")

SUMMARIES = {
    RUNS[0].run_id: [
        {"method": "full", "strategy": "none", "ratio": 1.0, "epoch": 0, "mean_accuracy": 0.6065,
         "std_accuracy": 0.0, "seeds": 1, "failed": 0},
        {"method": "grad_norm", "strategy": "hardest", "ratio": 0.5, "epoch": 1, "mean_accuracy": 0.2825,
         "std_accuracy": 0.021, "seeds": 2, "failed": 0},
        {"method": "loss", "strategy": "hardest", "ratio": 0.5, "epoch": 1, "mean_accuracy": 0.2010,
         "std_accuracy": 0.017, "seeds": 2, "failed": 0},
        {"method": "grad_norm", "strategy": "hardest", "ratio": 0.8, "epoch": 1, "mean_accuracy": 0.5120,
         "std_accuracy": 0.012, "seeds": 2, "failed": 0},
        {"method": "loss", "strategy": "hardest", "ratio": 0.8, "epoch": 1, "mean_accuracy": 0.4630,
         "std_accuracy": 0.025, "seeds": 2, "failed": 0},
    ],
    RUNS[1].run_id: [
        {"method": "full", "strategy": "none", "ratio": 1.0, "epoch": 0, "mean_accuracy": 0.5740,
         "std_accuracy": 0.0, "seeds": 1, "failed": 0},
        {"method": "loss", "strategy": "easiest", "ratio": 0.5, "epoch": 1, "mean_accuracy": 0.5410,
         "std_accuracy": 0.011, "seeds": 2, "failed": 0},
        {"method": "loss", "strategy": "easiest", "ratio": 0.8, "epoch": 1, "mean_accuracy": 0.5630,
         "std_accuracy": 0.008, "seeds": 2, "failed": 0},
    ],
}

for _run in RUNS:  # the headline metrics, as log_headline_metrics takes them from the summary
    _rows = SUMMARIES.get(_run.run_id, [])
    _run.full_accuracy = next((r["mean_accuracy"] for r in _rows if r["method"] == "full"), None)
    _run.best_pruned = max((r["mean_accuracy"] for r in _rows if r["method"] != "full"), default=None)

TRIALS = [
    TrialRow("child-full-0", "full", "none", 1.0, 0, 0, "FINISHED", 0.6065),
    TrialRow("child-gn-05-0", "grad_norm", "hardest", 0.5, 0, 1, "FINISHED", 0.2615),
    TrialRow("child-loss-05-0", "loss", "hardest", 0.5, 0, 1, "FINISHED", 0.1840),
]
HISTORY = {"test_accuracy": [(1, 0.412), (2, 0.538), (3, 0.6065)], "train_loss": [(1, 1.9), (2, 1.2), (3, 0.9)],
           "test_loss": [(1, 1.8), (2, 1.3), (3, 1.1)]}


def trial_lines(trials: int, done: list[tuple]) -> list[str]:
    """The monitor's log lines for finished trials, as the real backend writes them (tui.fmt.trial_line);
    a trial with no accuracy failed."""
    lines = []
    for i, (method, strategy, ratio, seed, epoch, acc) in enumerate(done):
        params = {"method": method, "strategy": strategy, "ratio": f"{ratio:g}", "seed": seed, "epoch": epoch}
        event = TrialFinished(trial=i, trials=trials, status="FINISHED" if acc is not None else "FAILED",
                              params=params, metrics={"test_accuracy": acc} if acc is not None else {},
                              message="" if acc is not None else "TrainingDiverged: loss is nan at epoch 1")
        lines.append(trial_line(event))
    return lines


class FixedBackend:
    """Same methods as tui.backend.Backend (it satisfies tui.backend.BackendProtocol), answering from
    the constants above."""

    uri = "sqlite:///mlruns/mlflow.db"

    def __init__(self) -> None:
        data = np.load(FIXTURES / "scores.npz")
        self._scores = {"loss@e1": data["loss@e1"].astype(np.float64),
                        "grad_norm@e1": data["grad_norm@e1"].astype(np.float64),
                        "random@e1": np.random.default_rng(0).random(600)}
        self._predictions = data["predictions@e1"]
        self._inspectors: dict[str, RunInspector] = {}

    def now(self) -> float:
        return NOW

    def warm_up(self) -> None:
        pass

    def list_runs(self) -> list[RunInfo]:
        return list(RUNS)

    def run_row(self, run_id: str) -> RunInfo:
        return next(r for r in [*RUNS, BENCHMARK_RUN] if r.run_id == run_id)

    def run_detail(self, run_id: str) -> RunDetail:
        return RunDetail(self.run_row(run_id), SUMMARIES.get(run_id, []), TRIALS if run_id == RUNS[0].run_id else [])

    def history(self, child_run_id: str) -> dict:
        return HISTORY

    def live_curves(self, run_id: str) -> dict:
        return {}

    def score_names(self, run_id: str) -> list[str]:
        return sorted(self._scores) if run_id == RUNS[0].run_id else []

    def scores(self, run_id: str, name: str) -> np.ndarray:
        return self._scores[name]

    def overlap(self, run_id: str) -> dict | None:
        return None

    def benchmark(self, run_id: str) -> dict | None:
        if run_id != BENCHMARK_RUN.run_id:
            return None
        return json.loads((FIXTURES / "benchmark.json").read_text())

    def seen_curves(self, run_id: str) -> dict:
        return {}

    def predictions(self, run_id: str, epoch: int | None = None) -> np.ndarray:
        return self._predictions

    def samples(self, run_id: str) -> SampleSet:
        from engine.data.dataset import load_dataset

        ds = load_dataset("mnist-mini", None, "cpu", 600)
        return SampleSet(ds.x_train.numpy(), ds.y_train.numpy(), list(ds.classes))

    def inspector(self, run_id: str) -> RunInspector:
        """The first run's samples, scores, embedding map and trials (the three of TRIALS: full data, and grad_norm
        and loss `hardest` at keep 0.5, selected here by the engine); another run: the same samples, unscored."""
        if run_id not in self._inspectors:
            mine = run_id == RUNS[0].run_id
            ds = self.samples(run_id)
            data = np.load(FIXTURES / "sample_map.npz")
            found = SampleMap(data["projection"], data["neighbours"], data["similarity"], "pca", 1,
                              data["explained"].tolist())
            kept = {t.run_id: select(t.strategy, self._scores[f"{t.method}@e1"], t.ratio, ds.labels)
                    for t in TRIALS if t.method != "full"}
            self._inspectors[run_id] = RunInspector(RunSamples(
                run_id, ds.labels, ds.classes, ds.images, scores=dict(self._scores) if mine else {},
                predictions={1: self._predictions} if mine else {}, sample_map=found if mine else None,
                trials=TRIALS if mine else [], kept=kept if mine else {}))
        return self._inspectors[run_id]

    def progress(self) -> list[RunProgress]:
        """One live run (this process stands in for its pid, so it reads RUNNING) and one that ended."""
        live = RunProgress(run_id=RUNS[2].run_id, experiment="seed-sweep", kind="prune", pid=os.getpid(),
                           host=socket.gethostname(), status="RUNNING", trials=12, trials_done=4,
                           stage="retrain", stage_detail="loss / hardest / keep 0.5 / seed 1 / e1", trial=4,
                           epoch=2, epochs=4, batch=120, batches=469,
                           metrics={"train_loss": 0.4123, "test_accuracy": 0.9612},
                           started=NOW - 300, updated=NOW - 1,
                           log=["surrogate: 1 x cnn, 2 epochs, scores at epochs 2"] + trial_lines(12, [
                               ("full", "none", 1.0, 0, 0, 0.9905), ("loss", "hardest", 0.5, 0, 1, 0.9731),
                               ("el2n", "hardest", 0.5, 0, 1, 0.9748), ("grad_norm", "hardest", 0.5, 0, 1, None)]))
        ended = RunProgress(run_id=RUNS[0].run_id, experiment="quick", kind="prune", pid=0, host="",
                            status="FINISHED", trials=3, trials_done=3, stage="retrain",
                            stage_detail="full-data / seed 0", trial=2, epoch=1, epochs=1, batch=5, batches=5,
                            metrics={"train_loss": 1.3347, "test_accuracy": 0.6065},
                            started=NOW - 3600, updated=NOW - 3600 + 27,
                            log=trial_lines(3, [(t.method, t.strategy, t.ratio, t.seed, t.epoch, t.accuracy)
                                                for t in TRIALS]) + ["FINISHED"])
        return [live, ended]

    def cancel(self, progress) -> str:
        return "not cancelled (fixed data)"

    def launch(self, config) -> dict:
        raise RuntimeError("the fixed backend launches nothing")

    def preview(self, config) -> Preview:
        """The real counts (engine.api.trial_count) with a fixed time and basis, so snapshots do not depend on this
        machine's speed."""
        from engine.api import trial_count

        trials = trial_count(config)
        return Preview(config.kind, config.data.dataset, config.model, "cpu", 1000, 1000, trials,
                       max(0, trials - 2), 1, 0, 1, 60.0 + 2.0 * trials,
                       {"trials": 2.0 * trials, "run overhead": 60.0}, ["fixed: the tests' backend"])

    def trial_count(self, config) -> int:
        from engine.api import trial_count

        return trial_count(config)

    def run_estimate(self, run_id: str) -> float | None:
        return None  # the fixed live run has finished trials: its ETA is their pace
