"""Register your own per-sample scorer and compare it with EL2N in a pruning sweep.

The scorer here is the negative classification margin: how far the true class's
logit trails the best other class (higher = harder, like every prunelab score).
Once registered it is a name like any other: configs, `engine.run` and the
MLflow runs all use it.

    python examples/custom_scorer.py                      # mnist-mini, cnn: about a minute on a 2-core CPU
    python examples/custom_scorer.py --model mlp --train-size 600 --epochs 1   # a few seconds
"""
from __future__ import annotations

import argparse
import sys

import torch

import engine
from engine.store.events import TrialFinished


def negative_margin(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Best other logit minus the true class's logit: positive when misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.max(dim=1).values - true


def show_progress(event) -> None:
    if isinstance(event, TrialFinished):
        acc = event.metrics.get("test_accuracy", float("nan"))
        p = event.params
        print(f"  trial {event.trial + 1}/{event.trials}: {p['method']} / {p['strategy']} / keep {p['ratio']} "
              f"/ seed {p['seed']} -> {acc:.2%}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--train-size", type=int, default=4000, help="class-stratified subset of mnist-mini")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2, help="retraining epochs (the surrogate trains 1)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.7])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--strategy", default="hardest")
    parser.add_argument("--name", default="custom-scorer", help="the MLflow experiment")
    args = parser.parse_args(argv)

    engine.register_scorer("margin", negative_margin, version="1")  # now valid in any config
    config = engine.load_config("quick", {
        "name": args.name, "model": args.model,
        "data.train_size": args.train_size, "data.test_size": args.test_size,
        "train.epochs": args.epochs, "surrogate.epochs": 1, "sweep.score_epochs": [1],
        "sweep.methods": ["random", "el2n", "margin"], "sweep.strategies": [args.strategy],
        "sweep.keep_ratios": args.ratios, "sweep.seeds": args.seeds,
    })
    result = engine.run(config, on_event=show_progress)

    print(f"run {result.run_id} {result.status} in {result.seconds:.0f} s (experiment {result.experiment!r})")
    print(f"{'method':<8} {'keep':>5} {'accuracy':>9} {'std':>7}")
    for row in result.summary:
        print(f"{row['method']:<8} {row['ratio']:>5g} {row['mean_accuracy']:>9.2%} {row['std_accuracy']:>7.2%}")
    print(f"browse: mlflow ui --backend-store-uri {result.tracking_uri}")
    return 0 if result.status == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
