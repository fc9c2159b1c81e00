"""`online`: online batch selection ("biggest losers", Jiang et al. 2019).

Each step draws a batch of B samples, scores it with the model being trained
(engine.scoring's exact batched pass: loss, grad_norm, input_grad_norm, el2n,
or random), and backpropagates only the top k. The trainer is engine.train's,
through its `select_batch` hook; a trainer observer evaluates on the test split
every `eval_every` steps, so accuracy is reported against examples
backpropagated and against wall time (scoring included, evaluation excluded),
beside whole-batch training with the same seed.

Each trial is one job (the `online` trial task), so the executor runs it where
it runs retraining trials, on Ray workers too: the model being trained and its
selection live in that process.
"""
from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from . import ExperimentKind, register_kind
from .base import FULL, RunContext, Trial, TrialJob, TrialRecord, register_trial_task, summary_to_csv, trial_dataset

RANDOM = "random"
TOP_K = "top-k"  # the strategy tag of online trials


# ---------------------------------------------------------------- the selection and the curve
class TopK:
    """The trainer's `select_batch`: score the drawn batch with the current model, keep its k highest.

    A last, partial batch of b < B samples keeps round(k·b/B) (at least 1), the same fraction.
    Counts what it was shown (`drawn`) and what it kept (`kept`), as Python ints (no host sync).
    """

    def __init__(self, model: torch.nn.Module, dataset, method: str, batch_size: int, keep: int, seed: int):
        self.model, self.dataset, self.method = model, dataset, method
        self.batch_size, self.keep = batch_size, keep
        self.generator = torch.Generator(device=dataset.device).manual_seed(seed)
        self.drawn = self.kept = 0

    def __call__(self, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from ..scoring import score_model

        n = len(y)
        k = self.keep if n == self.batch_size else max(1, round(self.keep * n / self.batch_size))
        if self.method == RANDOM:
            chosen = torch.randperm(n, device=x.device, generator=self.generator)[:k]
        else:  # one batch as a data set: scored exactly as the offline scorers score it
            batch = dataclasses.replace(self.dataset, x_train=x, y_train=y, train_index=None)
            scores = score_model(self.model, batch, [self.method], batch_size=n).scores[self.method]
            chosen = torch.topk(torch.from_numpy(scores), k).indices.to(x.device)
        self.drawn += n
        self.kept += k
        return chosen


class Curve:
    """A trainer observer: test accuracy every `every` steps, against examples backpropagated and wall time."""

    def __init__(self, model: torch.nn.Module, dataset, every: int, eval_batch_size: int, amp: bool):
        self.model, self.dataset, self.every = model, dataset, every
        self.eval_batch_size, self.amp = eval_batch_size, amp
        self.steps = self.backpropagated = 0
        self.eval_seconds = 0.0
        self.start = self.last = time.perf_counter()
        self.points: list[dict[str, float]] = []

    def wall(self) -> float:
        return self.last - self.start - self.eval_seconds

    def __call__(self, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        from ..train import evaluate

        self.steps += 1
        self.backpropagated += len(y)
        self.last = time.perf_counter()
        if self.steps % self.every == 0:
            accuracy, loss = evaluate(self.model, self.dataset, "test", self.eval_batch_size, self.amp)
            self.eval_seconds += time.perf_counter() - self.last
            self.points.append({"step": self.steps, "backpropagated": self.backpropagated, "wall_seconds": self.wall(),
                                "test_accuracy": accuracy, "test_loss": loss})


def train_online(job: TrialJob, config, track, child: str, on_event) -> dict[str, float]:
    """The `online` trial task: train with top-k selection (or whole batches for FULL), log the curve."""
    from ..models import build_model
    from ..train import train

    trial, ds, online = job.trial, trial_dataset(config), config.online
    cfg = config.train.model_copy(update={"batch_size": online.batch_size})
    model = build_model(config.model, ds.input_shape, ds.num_classes, seed=trial.seed).to(ds.device)
    selector = None if trial.method == FULL else TopK(model, ds, trial.method, online.batch_size, online.keep,
                                                      trial.seed)
    track.log_params(child, {**trial.tags(), "batch_size": online.batch_size,
                             "keep": online.batch_size if selector is None else online.keep})
    curve = Curve(model, ds, online.eval_every, cfg.eval_batch_size, cfg.amp)  # the clock starts here
    result = train(model, ds, cfg, seed=trial.seed, on_event=on_event, observers=[curve], trial=job.index,
                   evaluate_every_epoch=False, select_batch=selector)
    final = {"step": curve.steps, "backpropagated": curve.backpropagated, "wall_seconds": curve.wall(),
             "test_accuracy": result.test_accuracy, "test_loss": result.test_loss}
    if not curve.points or curve.points[-1]["step"] != curve.steps:
        curve.points.append(final)
    track.log_history(child, [{**p, "epoch": p["backpropagated"]} for p in curve.points])  # step = backprops
    drawn = selector.drawn if selector else curve.backpropagated
    track.log_metrics(child, {"final_test_accuracy": result.test_accuracy, "drawn": drawn}, step=curve.backpropagated)
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss, "steps": float(curve.steps),
            "backpropagated": float(curve.backpropagated), "drawn": float(drawn), "wall_seconds": curve.wall()}


register_trial_task("online", train_online)


# ---------------------------------------------------------------- the kind
def plan(config) -> list[Trial]:
    online = config.online
    trials = [Trial(FULL, "none", 1.0, seed, 0) for seed in online.seeds] if online.full_batch else []
    ratio = online.keep / online.batch_size
    trials += [Trial(m, TOP_K, ratio, seed, 0) for m in online.methods for seed in online.seeds]
    return trials


def trial_name(config, trial: Trial) -> str:
    b = config.online.batch_size
    if trial.method == FULL:
        return f"online: whole batches of {b} / seed {trial.seed}"
    return f"online: {trial.method}, top {config.online.keep} of {b} / seed {trial.seed}"


def curves_of(ctx: RunContext, records: list[TrialRecord]) -> dict[str, list[tuple[float, float, float]]]:
    """Per method, the mean over seeds of (backpropagated, wall seconds, accuracy), read back from the children."""
    per: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    client = ctx.tracker.client
    for r in records:
        if r.status != "FINISHED" or not r.child_run_id:
            continue
        wall = {m.step: m.value for m in client.get_metric_history(r.child_run_id, "wall_seconds")}
        for m in client.get_metric_history(r.child_run_id, "test_accuracy"):
            per[r.tags["method"]][m.step].append((wall.get(m.step, float("nan")), m.value))
    return {method: [(step, float(np.mean([w for w, _ in v])), float(np.mean([a for _, a in v])))
                     for step, v in sorted(points.items())] for method, points in per.items()}


def summarize(config, records: list[TrialRecord]) -> list[dict[str, Any]]:
    """Final accuracy (mean ± std over seeds), examples backpropagated and wall time per method."""
    groups: dict[str, list[TrialRecord]] = defaultdict(list)
    for r in records:
        groups[r.tags["method"]].append(r)
    rows = []
    for method, rs in sorted(groups.items(), key=lambda kv: (kv[0] != FULL, kv[0])):
        done = [r for r in rs if r.status == "FINISHED" and "test_accuracy" in r.metrics]
        accs = np.array([r.metrics["test_accuracy"] for r in done])
        mean = (lambda key: float(np.mean([r.metrics.get(key, np.nan) for r in done])) if done else float("nan"))
        rows.append({"method": method, "batch_size": config.online.batch_size,
                     "keep": config.online.batch_size if method == FULL else config.online.keep,
                     "mean_accuracy": float(accs.mean()) if len(accs) else float("nan"),
                     "std_accuracy": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
                     "backpropagated": mean("backpropagated"), "wall_seconds": mean("wall_seconds"),
                     "seeds": len(done), "failed": len(rs) - len(done)})
    return rows


def execute(ctx: RunContext) -> list[dict[str, Any]]:
    from ..figures import online_curves

    config = ctx.config
    records = ctx.run_trials([(t, lambda: None) for t in plan(config)], task="online",
                             name_of=lambda t: trial_name(config, t))
    rows = summarize(config, records)
    ctx.log_text(summary_to_csv(rows), "summary.csv")
    ctx.log_artifact_json(rows, "summary.json")
    title = (f"{config.data.dataset} / {config.model}: online batch selection, top {config.online.keep} "
             f"of {config.online.batch_size} (mean over {len(config.online.seeds)} seed(s))")
    ctx.log_figure(online_curves(curves_of(ctx, records), title), "plots/online.png")
    return rows


register_kind(ExperimentKind("online", "online batch selection: backpropagate the top k of each batch of B",
                             lambda config: len(plan(config)), execute))
