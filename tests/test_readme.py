"""Every Python block of the README and of docs/ runs as written (a subprocess in a fresh folder, with an empty store
in ./mlruns as a first run there would make), and does what it says."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


BLOCKS = [(page.relative_to(REPO).as_posix(), i, block)
          for page in PAGES for i, block in enumerate(python_blocks(page))]


def test_the_readme_tours_python_and_the_docs_run_a_whole_experiment():
    assert python_blocks(REPO / "README.md"), "the README's tour has no Python block"
    assert any("engine.run(" in block for _, _, block in BLOCKS), "no docs block runs a whole experiment"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("page", "index", "block"), BLOCKS, ids=[f"{page}#{i}" for page, i, _ in BLOCKS])
def test_python_block_runs_as_written(page, index, block, tmp_path, fresh_store):
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": ""}
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=280, check=False)
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
