"""Every Python block of the README runs as written (a subprocess in a fresh folder, with an empty store in
./mlruns as a first run there would make), and does what it says."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", (REPO / "README.md").read_text(), flags=re.DOTALL | re.MULTILINE)


def test_the_readme_has_its_scripting_block():
    blocks = python_blocks()
    assert blocks and any("engine.run(" in b for b in blocks)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs_as_written(index, tmp_path, fresh_store):
    block = python_blocks()[index]
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": ""}
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) <= 20, proc.stdout[:3000]  # a script's output, not an event flood
    if "engine.run(" in block:
        # the run it printed is in ./mlruns, FINISHED, with the trial it reported
        run_id = re.search(r"^([0-9a-f]{32}) FINISHED", proc.stdout, flags=re.MULTILINE).group(1)
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
        assert client.get_run(run_id).info.status == "FINISHED"
        trials = client.search_runs([client.get_run(run_id).info.experiment_id],
                                    filter_string="tags.`prunelab.role` = 'trial'")
        assert [t.info.status for t in trials] == ["FINISHED"]
        acc = trials[0].data.metrics["final_test_accuracy"]
        assert f"{trials[0].info.run_name} FINISHED {acc}" in proc.stdout
