"""The examples/ scripts run as a user runs them (a subprocess in a fresh folder), on tiny sizes."""
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
                          capture_output=True, text=True, timeout=300)
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
