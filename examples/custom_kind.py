"""A new experiment kind in one module: its own [stability] section, registered, then run end to end.

`stability` measures how much each scorer's ranking of the training set moves while the surrogate trains:
Spearman's rho between the scores of consecutive surrogate epochs. Name this file in a config's plugins
(`plugins = ["examples/custom_kind.py"]`, `kind = "stability"`) and `prunelab config check/show`, the TUI's
form, detached and resumed runs all know the kind and validate its section.

    python examples/custom_kind.py --model mlp --train-size 600 --epochs 1   # a few seconds
"""
from __future__ import annotations

import argparse
import sys

from pydantic import Field
from scipy.stats import spearmanr

import engine
from engine.sections import ScoreEpochs, ScorerNames, within_budget


class StabilityConfig(engine.Section):
    """[stability]: which scorers, compared between which surrogate epochs."""

    methods: ScorerNames = Field(["loss", "el2n"], min_length=1, description="scorers whose rankings are compared")
    epochs: ScoreEpochs = Field([0, 1], min_length=2, description="surrogate epochs, compared pairwise in order")

    def check_config(self, config) -> None:  # a check that needs the rest of the config
        within_budget(config, "stability.epochs", self.epochs)


def count_trials(config) -> int:
    return 0  # no retraining: only the surrogate trains


def execute(ctx) -> list[dict]:
    from engine.runner import steps  # torch: imported when the kind runs, not when a config is checked

    section = ctx.config.stability
    scored = steps.surrogate_scores(ctx, section.methods, section.epochs)
    steps.log_scores(ctx, scored.scores)
    at = {e: steps.scores_at(ctx, section.methods, e, scored) for e in section.epochs}
    return [{"method": m, "from": a, "to": b, "spearman": float(spearmanr(at[a][m], at[b][m]).statistic)}
            for m in section.methods for a, b in zip(section.epochs, section.epochs[1:])]


engine.register_section("stability", StabilityConfig)
engine.register_kind(engine.ExperimentKind("stability", "Spearman's rho of each scorer's ranking between "
                                           "consecutive surrogate epochs", count_trials, execute, ("stability",)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--train-size", type=int, default=4000, help="class-stratified subset of mnist-mini")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2, help="surrogate epochs; scores at each, from 0")
    args = parser.parse_args(argv)
    config = engine.load_config("quick", {
        "name": "custom-kind", "kind": "stability", "plugins": [__file__], "model": args.model,
        "data.train_size": args.train_size, "data.test_size": args.test_size, "surrogate.epochs": args.epochs,
        "stability.epochs": list(range(args.epochs + 1))})
    result = engine.run(config)
    for row in result.summary:
        print(f"{row['method']:<8} epoch {row['from']} -> {row['to']}: rho = {row['spearman']:.4f}")
    return 0 if result.status == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
