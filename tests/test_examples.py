"""The examples/ scripts run as a user runs them (a subprocess in a fresh folder), on tiny sizes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--train-size", "600", "--test-size", "200", "--epochs", "1"]


def run_example(name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / name), *TINY, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def store(cwd: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")


def children(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("prunelab.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("prunelab.role") == "trial"]
    return parents, trials


@pytest.mark.timeout(240)
def test_custom_scorer_example_compares_it_with_el2n(tmp_path, fresh_store):
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    proc = run_example("custom_scorer.py", tmp_path, "--ratios", "0.6", "--seeds", "0")
    client = store(tmp_path)
    parents, trials = children(client, "custom-scorer")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    by_method = {t.data.tags["method"]: t for t in trials}
    assert set(by_method) == {"full", "random", "el2n", "margin"}
    assert all(t.info.status == "FINISHED" for t in trials)
    assert by_method["full"].data.metrics["final_test_accuracy"] > 0.5  # 600 real digits, one epoch

    # the script's scorer really ran: its scores are on the parent and its selection differs from EL2N's
    parent = parents[0].info.run_id
    margin = np.load(client.download_artifacts(parent, "scores/margin@e1.npy", str(tmp_path)))
    assert margin.shape == (600,) and np.isfinite(margin).all() and margin.std() > 0
    kept = {m: np.load(client.download_artifacts(by_method[m].info.run_id, "selection/kept_indices.npy",
                                                  str(tmp_path / m))) for m in ("el2n", "margin")}
    assert len(kept["margin"]) == len(kept["el2n"]) == 360
    assert not np.array_equal(kept["margin"], kept["el2n"])
    assert "margin" in proc.stdout and "el2n" in proc.stdout


@pytest.mark.timeout(240)
def test_keep_ratio_loop_example_reads_its_runs_back_from_mlflow(tmp_path, fresh_store):
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    proc = run_example("keep_ratio_loop.py", tmp_path, "--ratios", "0.3", "0.6")
    parents, trials = children(store(tmp_path), "keep-ratio-loop")
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    assert sorted((t.data.tags["method"], t.data.params["kept"]) for t in trials) == \
        [("el2n", "180"), ("el2n", "360"), ("full", "600")]
    # every trial the store holds is a line of the script's table, with the accuracy MLflow returned
    lines = proc.stdout.splitlines()
    for t in trials:
        acc = f"{t.data.metrics['final_test_accuracy']:.4f}"
        assert any(line.split()[:4] == [t.data.tags["method"], t.data.tags["ratio"], t.data.params["kept"], acc]
                   for line in lines), (t.data.tags, proc.stdout)


def artifact(client: MlflowClient, run_id: str, path: str, folder: Path) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    return np.load(client.download_artifacts(run_id, path, str(folder)))


def prunelab(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process: the plugin it imports stays out of this test process's registries."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_custom_kind_example_runs_its_kind_and_its_section_is_checked_and_shown(tmp_path, fresh_store):
    from scipy.stats import rankdata

    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    proc = run_example("custom_kind.py", tmp_path)  # TINY's --epochs 1: scores at surrogate epochs 0 and 1
    client = store(tmp_path)
    parents, trials = children(client, "custom-kind")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and trials == []
    parent = parents[0]
    assert parent.data.tags["prunelab.kind"] == "stability"
    summary = json.loads(Path(client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path))).read_text())
    assert [(r["method"], r["from"], r["to"]) for r in summary] == [("loss", 0, 1), ("el2n", 0, 1)]
    for row in summary:  # Spearman's rho, recomputed from the logged scores: Pearson's r of the ranks
        a, b = (artifact(client, parent.info.run_id, f"scores/{row['method']}@e{e}.npy", tmp_path / str(e))
                for e in (0, 1))
        rho = np.corrcoef(rankdata(a), rankdata(b))[0, 1]
        assert abs(row["spearman"] - rho) < 1e-10 and -1 < rho < 1
        assert f"{row['method']:<8} epoch 0 -> 1: rho = {rho:.4f}" in proc.stdout

    config = tmp_path / "stability.toml"
    config.write_text(f'kind = "stability"\nplugins = ["{REPO / "examples" / "custom_kind.py"}"]\n'
                      '[surrogate]\nepochs = 2\n[stability]\nmethods = ["loss"]\nepochs = [0, 2]\n')
    checked = prunelab(tmp_path, "config", "check", str(config))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == f"# OK: {config} is a valid stability config"
    assert "[stability]" in checked.stdout and "[sweep]" not in checked.stdout  # the sections its kind reads
    kinds = prunelab(tmp_path, "config", "kinds", "--plugin", str(REPO / "examples" / "custom_kind.py"))
    rows = dict(line.split(None, 1) for line in kinds.stdout.splitlines())
    assert rows["stability"] == ("Spearman's rho of each scorer's ranking between consecutive surrogate epochs; "
                                 "reads [stability]") and "prune" in rows
    shown = prunelab(tmp_path, "config", "show", str(config))
    assert "# surrogate epochs, compared pairwise in order\nepochs = [0, 2]" in shown.stdout
    assert "or stability\nkind = " in shown.stdout  # the kind's help names the plugin's kind too
    late = prunelab(tmp_path, "config", "check", str(config), "--set", "stability.epochs=[0,3]")
    assert late.returncode == 2 and late.stderr.strip() == (
        f"prunelab: error: {config}: stability.epochs has epoch 3 beyond the surrogate's budget of 2 epochs; "
        "raise surrogate.epochs or lower the epoch")
    typo = prunelab(tmp_path, "config", "check", str(config), "--set", "stability.epoch=[0]")
    assert typo.returncode == 2 and "unknown key 'epoch' in [stability]" in typo.stderr


@pytest.mark.timeout(240)
def test_custom_strategy_example_takes_its_option_from_a_selection_table(tmp_path, fresh_store):
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    run_example("custom_strategy.py", tmp_path, "--skip", "0.2")
    client = store(tmp_path)
    parents, trials = children(client, "custom-strategy")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    by_strategy = {t.data.tags["strategy"]: t for t in trials}
    assert set(by_strategy) == {"hardest", "skip_hardest"} and all(t.info.status == "FINISHED" for t in trials)
    kept = {s: artifact(client, t.info.run_id, "selection/kept_indices.npy", tmp_path / s)
            for s, t in by_strategy.items()}
    scores = artifact(client, parents[0].info.run_id, "scores/el2n@e1.npy", tmp_path / "scores")
    order = np.argsort(-scores.astype(np.float64), kind="stable")  # the band, computed here from the logged scores
    assert len(kept["skip_hardest"]) == len(kept["hardest"]) == 300
    np.testing.assert_array_equal(kept["skip_hardest"], np.sort(order[120:420]))  # skip = 0.2 of 600
    assert set(kept["hardest"]) == set(order[:300])  # skip = 0 would have kept these
    assert not np.array_equal(kept["skip_hardest"], np.sort(order[60:360]))  # nor the default's 0.1


@pytest.mark.timeout(240)
def test_scorer_options_example_takes_its_option_from_the_scoring_table(tmp_path, fresh_store):
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    proc = run_example("custom_scorer_options.py", tmp_path, "--gamma", "3")
    client = store(tmp_path)
    parents, trials = children(client, "focal-gamma")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(trials) == 2
    parent = parents[0].info.run_id
    loss, focal = (np.load(client.download_artifacts(parent, f"scores/{m}@e1.npy", str(tmp_path / m)))
                   .astype(np.float64) for m in ("loss", "focal"))
    # the same surrogate's scores: focal is (1 - p_y)^3 · loss with p_y = exp(-loss), gamma from the table
    np.testing.assert_allclose(focal, (1 - np.exp(-loss)) ** 3 * loss, rtol=1e-4, atol=1e-6)
    assert not np.allclose(focal, (1 - np.exp(-loss)) ** 2 * loss, rtol=1e-2)  # not the default gamma = 2
    assert not np.allclose(focal, loss, rtol=1e-2)
    config = Path(client.download_artifacts(parent, "config.toml", str(tmp_path / "config")))
    assert "[scoring.focal]" in config.read_text()
    assert [line.split()[0] for line in proc.stdout.splitlines()[:2]] == ["focal", "loss"]  # the summary rows
