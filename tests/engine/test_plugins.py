"""`plugins = [...]` in a config: user registrations reach every process that runs the config."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.scoring.registry import SCORERS
from engine.store.tracking import tracker
from tests.builders import as_set_args
from tests.engine.runner.test_runner import tiny

MARGIN_PLUGIN = '''
import engine


def margin(model, x, y, logits):
    """best other logit minus the true one"""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return logits.scatter(1, y[:, None], float("-inf")).max(1).values - true


engine.register_scorer("{name}", margin)
'''


def write_plugin(folder: Path, stem: str, scorer: str) -> Path:
    path = folder / f"{stem}.py"
    path.write_text(MARGIN_PLUGIN.format(name=scorer))
    return path


def test_a_plugin_file_makes_its_scorer_a_valid_method(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    write_plugin(tmp_path / "lib", "margins", "plugin_margin_file")
    with pytest.raises(ConfigError, match="unknown scorer 'plugin_margin_file'"):
        load_config("quick", {"sweep.methods": ["plugin_margin_file"]})
    cfg = load_config("quick", {"plugins": ["lib/margins.py"], "sweep.methods": ["plugin_margin_file", "loss"]})
    assert cfg.plugins == [str(tmp_path / "lib" / "margins.py")]  # stored absolute: other processes find it
    assert "plugin_margin_file" in SCORERS
    again = load_config("quick", {"plugins": cfg.plugins, "sweep.methods": ["plugin_margin_file"]})
    assert again.plugins == cfg.plugins  # imported once per process; a second load is a no-op


def test_plugin_errors_name_the_plugin_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "needs.py").write_text("import not_installed_anywhere\n")
    cases = [("no_such_plugin_module", "plugin module 'no_such_plugin_module' not found"),
             ("missing/file.py", "plugin file .*missing/file.py not found"),
             ("broken.py", "broken.py failed to import: RuntimeError: no GPU here"),
             ("needs", "plugin needs failed to import: ModuleNotFoundError: No module named 'not_installed_anywhere'")]
    for entry, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config("quick", {"plugins": [entry]})
    assert "prunelab_plugin_broken" not in " ".join(sys.modules)  # a failed import leaves nothing behind


def test_detached_run_from_the_console_script_uses_a_plugin_module(in_tmp, shared_data):
    """The launcher (a console script: no working directory on sys.path) and the detached runner both import it."""
    write_plugin(in_tmp, "my_margins", "plugin_margin_module")
    small = tiny(shared_data, **{"name": "plugins", "plugins": ["my_margins"],
                                 "sweep.methods": ["plugin_margin_module"], "sweep.keep_ratios": [0.5],
                                 "sweep.seeds": [0]})
    console_script = Path(sys.executable).parent / "prunelab"
    out = subprocess.run([str(console_script), "run", "--preset", "quick", "--detach", "--json", *as_set_args(small)],
                         cwd=in_tmp, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    track = tracker(None, str(in_tmp))
    deadline = time.time() + 300
    while track.get_run(run_id).info.status == "RUNNING" and time.time() < deadline:
        time.sleep(0.5)
    assert track.get_run(run_id).info.status == "FINISHED"
    children = track.children(run_id)
    methods = {c.data.tags.get("method") for c in children}
    assert "plugin_margin_module" in methods
    pruned = [c for c in children if c.data.tags.get("method") == "plugin_margin_module"]
    assert all(c.info.status == "FINISHED" and c.data.metrics["test_accuracy"] > 0.5 for c in pruned)
