"""A selection strategy with an option, in one module: registered, then set from a [selection.NAME] table.

`skip_hardest` keeps the hardest samples after skipping the `skip` fraction of the very hardest (often
mislabeled); with skip = 0 it is `hardest`. The option has a default, a help line and a check, so configs
(`[selection.skip_hardest] skip = 0.2` in TOML), `prunelab config show` and the TUI's form all know it.

    python examples/custom_strategy.py --model mlp --train-size 600 --epochs 1 --skip 0.2   # a few seconds
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import engine
from engine.options import number


def skip_hardest(scores, budget, labels, seed, embeddings, skip=0.1):
    """keep the hardest samples after skipping the `skip` fraction of the very hardest"""
    order = np.argsort(-np.asarray(scores), kind="stable")
    start = min(int(skip * len(order)), len(order) - budget)
    return order[start:start + budget]


engine.register_strategy("skip_hardest", skip_hardest, options={
    "skip": number(0.1, "fraction of the hardest samples skipped before keeping", 0, 1, high_open=True)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--train-size", type=int, default=4000, help="class-stratified subset of mnist-mini")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2, help="retraining epochs (the surrogate trains 1)")
    parser.add_argument("--skip", type=float, default=0.2)
    args = parser.parse_args(argv)
    config = engine.load_config("quick", {
        "name": "custom-strategy", "plugins": [__file__], "model": args.model, "data.train_size": args.train_size,
        "data.test_size": args.test_size, "train.epochs": args.epochs, "sweep.methods": ["el2n"],
        "sweep.strategies": ["hardest", "skip_hardest"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0],
        "sweep.full_data": False, "selection.skip_hardest.skip": args.skip})
    result = engine.run(config)
    for row in result.summary:
        print(f"{row['strategy']:<13} keep {row['ratio']:g}: accuracy {row['mean_accuracy']:.2%}")
    return 0 if result.status == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
