"""A scorer with an option: each sample's focal loss, its exponent set per run in a [scoring.focal] table.

focal = (1 − p_y)^γ · cross-entropy (Lin et al. 2017): γ = 0 is the plain loss, a larger γ
shrinks the scores of samples the surrogate already gets right. The option is declared once,
where the scorer is registered (default, help, check); a run sets it as for any scorer:

    [scoring.focal]
    gamma = 3.0

CCS samples from equal-width score strata, so the values matter, not only their order.

    python examples/custom_scorer_options.py --gamma 3       # mnist-mini, cnn: about a minute on a 2-core CPU
    python examples/custom_scorer_options.py --model mlp --train-size 600 --epochs 1   # a few seconds
"""
from __future__ import annotations

import argparse
import sys

import torch

import engine
from engine.options import number


def focal(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
          gamma: float) -> torch.Tensor:
    """Focal loss of surrogate 0: (1 − p_y)^gamma · cross-entropy."""
    loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    return (1 - torch.exp(-loss)) ** gamma * loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gamma", type=float, default=2.0)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--train-size", type=int, default=4000, help="class-stratified subset of mnist-mini")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2, help="retraining epochs (the surrogate trains 1)")
    args = parser.parse_args(argv)

    engine.register_scorer("focal", focal, version="1", options={"gamma": number(2.0, "focusing exponent γ", 0)})
    config = engine.load_config("quick", {
        "name": "focal-gamma", "model": args.model, "data.train_size": args.train_size,
        "data.test_size": args.test_size, "train.epochs": args.epochs, "surrogate.epochs": 1,
        "sweep.score_epochs": [1], "sweep.methods": ["loss", "focal"], "sweep.strategies": ["ccs"],
        "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.full_data": False,
        "scoring.focal": {"gamma": args.gamma},  # the [scoring.focal] table
    })
    result = engine.run(config)
    for row in result.summary:
        print(f"{row['method']:<6} ccs keep {row['ratio']:g}: {row['mean_accuracy']:.2%}")
    print(f"run {result.run_id} {result.status}: scores/focal@e1.npy beside scores/loss@e1.npy")
    return 0 if result.status == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main())
