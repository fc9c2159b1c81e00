"""scripts/gpu_check.sh, the one prepared run for a session lent a GPU, works end to end (in small, on the CPU).

A broken script would only show on the GPU machine, whose minutes are few; here it runs
every step with tiny sizes, without MLflow, Textual or plotext importable (the GPU
image lacks them), and its summary must hold every step's figures.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_gpu_check_script_runs_every_step_on_the_cpu(shared_data, tmp_path):
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'mlflow', 'textual', 'plotext', 'tomli_w', 'ray'}:\n"
        "            raise ModuleNotFoundError(f'{name} is not on the GPU image')\n"
        "sys.meta_path.insert(0, Absent())\n")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PRUNELAB_CHECK_DEVICE": "cpu",
           "PRUNELAB_CHECK_QUICK": "1", "PRUNELAB_CHECK_DATA": str(shared_data),
           "PRUNELAB_CHECK_CARRIED": str(tmp_path / "no-wheels"), "PYTHONPATH": str(blocker)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = (out / "steps.txt").read_text().splitlines()
    assert [line.split()[0] for line in steps] == ["exact", "resnet18", "mnist", "train-mnist", "train-cifar",
                                                   "train-cifar-compiled"]
    assert all(" rc=0 " in line for line in steps), steps
    assert "1 passed" in (out / "exact.log").read_text()
    resnet = json.loads((out / "resnet18.json").read_text())
    assert resnet["model"] == "resnet18" and resnet["samples"] == 20 and resnet["tiled_from"] == 10
    assert resnet["scorers"]["grad_norm"]["speedup_vs_naive"] > 0
    summary = (out / "summary.txt").read_text()
    for expected in ("exactness tests: 1 passed", "resnet18: resnet18 on npz:", "tiled from 10",
                     "mnist: cnn on mnist", "train-mnist: cnn", "train-cifar: resnet18",
                     "train-cifar-compiled: resnet18"):
        assert expected in summary, summary
