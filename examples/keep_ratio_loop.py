"""Loop over keep ratios, one prunelab run each, then read the results back from MLflow.

Each ratio is its own run (parent) in the experiment; the surrogate and its
scores are trained once and come from prunelab's cache for the later ratios.
The results are then read back with MLflow's own API (`mlflow.search_runs` and
`MlflowClient.get_metric_history`), as any other script or notebook would.

    python examples/keep_ratio_loop.py                    # mnist-mini, cnn: about a minute on a 2-core CPU
    python examples/keep_ratio_loop.py --model mlp --train-size 600 --epochs 1 --ratios 0.3 0.6
"""
from __future__ import annotations

import argparse
import sys

import mlflow
from mlflow.tracking import MlflowClient

import engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--method", default="el2n")
    parser.add_argument("--train-size", type=int, default=4000, help="class-stratified subset of mnist-mini")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2, help="retraining epochs (the surrogate trains 1)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="keep-ratio-loop", help="the MLflow experiment")
    args = parser.parse_args(argv)

    run_ids = []
    for i, ratio in enumerate(args.ratios):
        config = engine.load_config("quick", {
            "name": args.name, "model": args.model, "description": f"{args.method} at keep {ratio:g}",
            "data.train_size": args.train_size, "data.test_size": args.test_size,
            "train.epochs": args.epochs, "surrogate.epochs": 1, "sweep.score_epochs": [1],
            "sweep.methods": [args.method], "sweep.keep_ratios": [ratio], "sweep.seeds": [args.seed],
            "sweep.full_data": i == 0,  # the full-data reference once is enough
        })
        result = engine.run(config)
        print(f"keep {ratio:g}: run {result.run_id} {result.status} in {result.seconds:.0f} s", file=sys.stderr)
        run_ids.append(result.run_id)

    # Read back: the trials are child runs, tagged with method/strategy/ratio/seed and logged per epoch.
    mlflow.set_tracking_uri(result.tracking_uri)
    trials = mlflow.search_runs(experiment_names=[args.name], filter_string="tags.`prunelab.role` = 'trial'")
    trials = trials[trials["tags.mlflow.parentRunId"].isin(run_ids)]  # this script's runs only
    client = MlflowClient(result.tracking_uri)
    print(f"{'method':<8} {'keep':>5} {'kept':>6} {'accuracy':>9}  accuracy per epoch")
    for _, row in trials.sort_values("tags.ratio", key=lambda r: r.astype(float)).iterrows():
        history = client.get_metric_history(row["run_id"], "test_accuracy")
        curve = " ".join(f"{m.value:.3f}" for m in sorted(history, key=lambda m: m.step))
        print(f"{row['tags.method']:<8} {row['tags.ratio']:>5} {row['params.kept']:>6} "
              f"{row['metrics.final_test_accuracy']:>9.4f}  {curve}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
