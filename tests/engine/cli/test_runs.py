"""engine/cli/runs.py: run names that tell two runs of one config apart, and no spread shown for one seed (issue 26,
item 9)."""
import re

from mlflow.tracking import MlflowClient

import engine
from engine.cli.runs import print_benchmark
from engine.runner.runner import create_parent_run, parent_name
from tests.builders import as_set_args, cli, tiny_run


def test_two_runs_of_one_config_get_distinct_names_and_one_seed_shows_no_std(in_tmp, capsys):
    overrides = tiny_run(**{"sweep.methods": ["random"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0]})
    ids = []
    for _ in range(2):
        result = cli(["run", "--preset", "quick", *as_set_args(overrides), "--json"])
        assert result.exit_code == 0, result.output
        ids.append(re.search(r'"run_id": "([0-9a-f]{32})"', result.stdout).group(1))
    config = engine.load_config("quick", overrides)
    ids.append(create_parent_run(config))  # a third, and one of another config, created the same way
    ids.append(create_parent_run(engine.load_config("quick", {**overrides, "sweep.keep_ratios": [0.3]})))
    client = MlflowClient(f"sqlite:///{in_tmp / 'mlruns' / 'mlflow.db'}")
    base = parent_name(config)
    assert [client.get_run(i).info.run_name for i in ids] == [base, f"{base} #2", f"{base} #3",
                                                              base.replace("@ 0.5", "@ 0.3")]

    shown = cli(["show", ids[0]])
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.stdout.splitlines() if "random" in line or "full" in line]
    assert len(rows) == 2 and all("—" in row for row in rows), shown.stdout  # std of one seed: none
    assert "0.00%" not in shown.stdout


def test_a_benchmark_of_one_seed_prints_no_spread(capsys):
    rows = [{"method": "full", "ratio": 1.0, "mean_accuracy": 0.9, "std_accuracy": 0.0, "seeds": 1},
            {"method": "random", "ratio": 0.5, "mean_accuracy": 0.8, "std_accuracy": 0.0, "seeds": 1, "rank": 2.0,
             "winner": False, "diff": 0.0, "significant": False},
            {"method": "loss/hardest", "ratio": 0.5, "mean_accuracy": 0.85, "std_accuracy": 0.0, "seeds": 1,
             "rank": 1.0, "winner": True, "diff": 0.05, "significant": False}]
    print_benchmark(rows, "one seed")
    out = capsys.readouterr().out
    assert "80.00%" in out and "80.00% ±" not in out and "85.00% ±" not in out and "full data: 90.00%\n" in out
    rows = [{**r, "seeds": 3, "std_accuracy": 0.01} for r in rows]
    print_benchmark(rows, "three seeds")
    out = capsys.readouterr().out
    assert "80.00% ±1.0" in out and "full data: 90.00% ± 1.00%" in out
