"""The benchmark kind: its statistics against independent scipy calls, and a tiny run end to end on real MNIST."""
import json
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

import engine
from engine import analysis, names
from engine.config import load_config
from engine.errors import ConfigError
from engine.kinds.benchmark import pairs, plan


@dataclass
class Rec:
    tags: dict
    metrics: dict
    status: str = names.FINISHED


def records(acc: dict[tuple[str, str, float], list[float]]) -> list[Rec]:
    return [Rec({"method": m, "strategy": s, "ratio": f"{r:g}", "seed": seed}, {"test_accuracy": a})
            for (m, s, r), values in acc.items() for seed, a in enumerate(values)]


# A fixed grid: three methods x three ratios x four seeds. "loss" wins mildly pruned, loses harshly pruned.
GRID = {
    ("random", "random", 0.3): [0.80, 0.82, 0.79, 0.81], ("random", "random", 0.6): [0.88, 0.87, 0.89, 0.88],
    ("random", "random", 0.9): [0.91, 0.92, 0.90, 0.91],
    ("loss", "hardest", 0.3): [0.70, 0.73, 0.71, 0.69], ("loss", "hardest", 0.6): [0.87, 0.88, 0.88, 0.87],
    ("loss", "hardest", 0.9): [0.94, 0.93, 0.935, 0.945],
    ("el2n", "ccs", 0.3): [0.83, 0.84, 0.80, 0.82], ("el2n", "ccs", 0.6): [0.89, 0.88, 0.90, 0.89],
    ("el2n", "ccs", 0.9): [0.91, 0.92, 0.91, 0.90],
    ("full", "none", 1.0): [0.95, 0.95, 0.96, 0.95],
}


def test_paired_difference_matches_scipy():
    a, b = GRID[("loss", "hardest", 0.9)], GRID[("random", "random", 0.9)]
    out = analysis.paired_difference(a, b)
    d = np.subtract(a, b)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))  # the interval by hand
    assert out["diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert out["ci_low"] == pytest.approx(d.mean() - half, abs=1e-10)
    assert out["ci_high"] == pytest.approx(d.mean() + half, abs=1e-10)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1), abs=1e-10)
    assert np.isnan(analysis.paired_difference([0.5], [0.4])["p_value"])  # one seed: no test


def test_benchmark_rows_ranks_winners_and_crossover():
    rows = analysis.benchmark_rows(records(GRID))
    by = {(r["method"], r["ratio"]): r for r in rows}
    assert by[("full", 1.0)]["mean_accuracy"] == pytest.approx(np.mean(GRID[("full", "none", 1.0)]))
    for ratio in (0.3, 0.6, 0.9):
        labels = ["random", "loss/hardest", "el2n/ccs"]
        means = [np.mean(GRID[(m, s, ratio)]) for m, s in (("random", "random"), ("loss", "hardest"), ("el2n", "ccs"))]
        expected = stats.rankdata([-m for m in means])
        assert [by[(lab, ratio)]["rank"] for lab in labels] == list(expected)
        winners = [lab for lab in labels if by[(lab, ratio)]["winner"]]
        assert winners == [labels[int(np.argmax(means))]]
        p = stats.ttest_rel(GRID[("loss", "hardest", ratio)], GRID[("random", "random", ratio)]).pvalue
        assert by[("loss/hardest", ratio)]["p_value"] == pytest.approx(p, abs=1e-12)
    assert by[("loss/hardest", 0.3)]["significant"] and by[("loss/hardest", 0.3)]["diff"] < 0
    # "loss/hardest" beats random at 0.9 (+0.0275) and not at 0.6 (-0.005): the zero lies at 0.6 + 0.3 * 0.005/0.0325
    assert analysis.crossover(rows, "loss/hardest") == pytest.approx(0.6 + 0.3 * 0.005 / 0.0325, abs=1e-10)
    assert np.isnan(analysis.crossover(rows, "random"))
    ranks = analysis.average_ranks(rows)
    assert ranks["el2n/ccs"] == pytest.approx(np.mean([by[("el2n/ccs", r)]["rank"] for r in (0.3, 0.6, 0.9)]))
    assert list(ranks) == sorted(ranks, key=lambda m: (ranks[m], m))
    table = np.array([[np.mean(GRID[(m, s, r)]) for r in (0.3, 0.6, 0.9)]
                      for m, s in (("el2n", "ccs"), ("loss", "hardest"), ("random", "random"))])
    assert analysis.friedman(rows) == pytest.approx(stats.friedmanchisquare(*table).pvalue, abs=1e-12)


def test_critical_difference_is_nemenyis():
    # Demšar (2006), table 5(a): q_0.05 = 2.728 for k = 5 classifiers
    assert analysis.critical_difference(5, 4) == pytest.approx(2.728 * np.sqrt(5 * 6 / 24), abs=2e-3)
    q = stats.studentized_range.ppf(0.95, 3, np.inf) / np.sqrt(2)
    assert analysis.critical_difference(3, 10) == pytest.approx(q * np.sqrt(3 * 4 / 60), abs=1e-12)


def test_all_expands_from_the_registries_at_plan_time():
    from engine.scoring.registry import SCORERS
    from engine.selection.registry import STRATEGIES

    cfg = load_config("benchmark-mnist")
    found = pairs(cfg)
    assert found[0] == ("random", "random")
    assert {(s, "hardest") for s in SCORERS if s != "random"} <= set(found)
    assert {("el2n", s) for s in STRATEGIES if s not in ("hardest", "easiest", "random")} <= set(found)
    assert len(plan(cfg)) == 3 + len(found) * 4 * 3
    picked = load_config("benchmark-mnist", ["benchmark.methods=['loss', 'el2n/ccs', 'random/hardest']"])
    assert pairs(picked) == [("random", "random"), ("loss", "hardest"), ("el2n", "ccs")]
    with pytest.raises(ConfigError, match="benchmark.methods"):
        load_config("benchmark-mnist", ["benchmark.methods=['loss/nope']"])


def test_tiny_benchmark_end_to_end(in_tmp, shared_data):
    cfg = load_config("benchmark-mnist", {
        "data.dataset": "mnist", "data.data_dir": str(shared_data), "data.train_size": 600, "data.test_size": 300,
        "model": "mlp", "train.epochs": 1, "train.batch_size": 64, "surrogate.epochs": 1, "sweep.score_epochs": [1],
        "benchmark.methods": ["loss", "el2n/ccs", "el2n/craig"], "benchmark.keep_ratios": [0.3, 0.7],
        "benchmark.seeds": [0, 1]})  # craig: a strategy that needs the surrogate's gradients
    result = engine.run(cfg)
    assert result.status == "FINISHED" and len(result.trials) == 2 + 4 * 2 * 2
    assert {names.BENCHMARK_JSON, names.BENCHMARK_CSV, "plots/benchmark_ranks.png"} <= set(result.artifacts)
    rows = [r for r in result.summary if r["method"] != "full"]
    assert len(rows) == 8 and all(r["seeds"] == 2 for r in rows)
    assert all(r["diff"] == 0 and np.isnan(r["p_value"]) for r in rows if r["method"] == "random")
    report = engine.show(result.run_id)
    assert report["kind"] == "benchmark" and len(report["summary"]) == 9
    from engine.store.tracking import tracker
    text = tracker(result.tracking_uri).load_text(result.run_id, names.BENCHMARK_JSON)
    saved = json.loads(text)
    assert set(saved["winners"]) == {"0.3", "0.7"} and "loss/hardest" in saved["crossover"]
    from click.testing import CliRunner

    from engine.cli.common import main
    shown = CliRunner().invoke(main, ["show", result.run_id])
    assert shown.exit_code == 0, shown.output
    winners = [r for r in rows if r["winner"]]
    assert shown.output.count("★") == len(winners) + 1  # each ratio's winner(s), and the caption
    assert "critical difference" in shown.output and "loss/hardest stops beating random" in shown.output
