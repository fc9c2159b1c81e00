"""The layout holds: import-linter's contracts, no import cycles, light config checks, fresh and resumed runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import engine
from engine.store.events import RunStatus
from engine.store.progress import read_events

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=REPO, capture_output=True, text=True,
                          check=False)


def test_the_import_contracts_in_pyproject_hold():
    out = lint_imports()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 kept, 0 broken" in out.stdout


def test_the_tui_reaches_the_engine_only_through_its_api(tmp_path):
    """The tui contract reads the TUI's real imports: without its engine.api exception it breaks, and only on
    imports of engine.api (none of another engine module, the package itself or MLflow's client)."""
    text = (REPO / "pyproject.toml").read_text()
    allowed = '    "tui.** -> engine.api",\n'
    assert allowed in text
    config = tmp_path / "pyproject.toml"
    config.write_text(text.replace(allowed, ""))
    out = lint_imports("--contract", "tui-through-api", str(config))
    assert out.returncode == 1 and "tui.backend -> engine.api" in out.stdout, out.stdout
    reached = {line.split(" -> ")[1].split()[0] for line in out.stdout.splitlines() if line.startswith("-   tui.")}
    assert reached == {"engine.api"}


def test_lint_imports_fails_on_a_broken_contract(tmp_path):
    """The same tool, with a contract the code breaks on purpose (the trainer does import torch): it must fail."""
    config = tmp_path / "broken.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["engine"]\ninclude_external_packages = true\n\n'
                      '[[tool.importlinter.contracts]]\nname = "trainer without torch"\ntype = "forbidden"\n'
                      'source_modules = ["engine.trainer"]\nforbidden_modules = ["torch"]\n')
    out = lint_imports(str(config))
    assert out.returncode == 1 and "BROKEN" in out.stdout and "engine.trainer -> torch" in out.stdout


def strongly_connected(graph) -> list[list[str]]:
    """Tarjan's algorithm over the module graph: every group of modules that import each other in a cycle."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in graph.modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_the_engine_has_no_import_cycles_even_through_deferred_imports():
    graph = grimp.build_graph("engine", "tui", exclude_type_checking_imports=True, cache_dir=None)  # function-level imports count too
    assert strongly_connected(graph) == []


def test_config_check_loads_neither_torch_nor_matplotlib(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text(engine.load_config("quick").to_toml())
    code = ("import sys; from engine.cli import main\n"
            "try:\n    main(['config', 'check', sys.argv[1]])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('LOADED', sorted(m for m in ('torch', 'matplotlib', 'mlflow', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=tmp_path,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"
    assert "[sweep]" in out.stdout  # it printed the resolved config


def test_import_engine_is_light_and_every_name_resolves():
    code = ("import sys, engine; light = not any(m in sys.modules for m in ('torch', 'mlflow'));"
            "[getattr(engine, n) for n in engine.__all__]; print(light)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_fresh_run_says_started_and_a_real_resume_says_resumed(in_tmp, shared_data):
    cfg = engine.load_config("quick", {
        "name": "status-words", "data.dataset": "mnist", "data.data_dir": str(shared_data), "data.train_size": 500,
        "data.test_size": 200, "model": "mlp", "train.epochs": 1, "surrogate.epochs": 1, "sweep.score_epochs": [1],
        "sweep.methods": ["random"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.full_data": False})
    first = engine.run(cfg)
    words = [e.message for e in read_events(first.progress_file) if isinstance(e, RunStatus) and e.status == "RUNNING"]
    assert words == ["started"]
    engine.run(resume=first.run_id)
    words = [e.message for e in read_events(first.progress_file) if isinstance(e, RunStatus) and e.status == "RUNNING"]
    assert words == ["started", "resumed"]
    # the random baseline keeps a uniform subset, whatever ordering strategy the sweep names: it says so
    assert [(r["method"], r["strategy"]) for r in first.summary] == [("random", "random")]


@pytest.mark.parametrize("module", ["engine.kinds.noise", "engine.trainer", "engine.runner.tasks", "engine.nets"])
def test_submodules_import_by_their_dotted_name(module):
    out = subprocess.run([sys.executable, "-c", f"import {module} as m; print(m.__name__)"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert out.returncode == 0 and out.stdout.strip() == module, out.stderr


def test_every_engine_module_says_what_it_is_for():
    missing = [str(p.relative_to(REPO)) for p in sorted((REPO / "engine").rglob("*.py"))
               if not (json.dumps(p.read_text()).startswith('"\\"\\"\\"'))]
    assert missing == []


def test_the_monitor_log_names_each_finished_trial_with_its_accuracy():
    from engine.store.events import TrialFinished
    from engine.store.progress import fold

    done = TrialFinished(trial=2, trials=14, status="FINISHED", metrics={"test_accuracy": 0.97314},
                         name="el2n / hardest / keep 0.5 / seed 0 / e2")
    failed = TrialFinished(trial=3, trials=14, status="FAILED", message="training diverged", name="loss / x")
    assert fold([done, failed]).log == ["trial 3/14 FINISHED  el2n / hardest / keep 0.5 / seed 0 / e2  acc 97.31%",
                                        "trial 4/14 FAILED  loss / x  training diverged"]
