"""The docs' CLI claims (docs/guide/cli.md, experiments.md, store.md) on real runs: exit code 1 for a failed run,
`runs --status/--kind`, MLFLOW_TRACKING_URI picking the store, `--device cpu`."""
import json

import pytest
from click.testing import CliRunner

from engine.cli import main

# four retraining trials of an MLP on 600 embedded digits; "random" needs no surrogate
TINY = ["name=claims", "model=mlp", "data.train_size=600", "data.test_size=200", "train.epochs=1",
        "surrogate.epochs=1", "sweep.score_epochs=[1]", 'sweep.methods=["random"]', "sweep.keep_ratios=[0.5]",
        "sweep.seeds=[0,1]", "sweep.full_data=false"]
DIVERGES = ["name=claims-diverge", "train.lr=1e30", "train.batch_size=50", 'train.schedule="constant"', "train.momentum=0.0"]


def cli(args, env):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A good run and a run whose every trial diverges, in a store chosen by MLFLOW_TRACKING_URI only."""
    folder = tmp_path_factory.mktemp("claims")
    db = folder / "elsewhere" / "store.db"
    db.parent.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        good = cli(["run", "--preset", "quick", "--json", *sets(TINY)], env)
        bad = cli(["run", "--preset", "quick", "--json", *sets(TINY + DIVERGES)], env)
    return folder, env, good, bad


def test_a_run_whose_trials_all_fail_exits_1_and_a_good_one_0(store):
    _folder, _env, good, bad = store
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["status"] == "FINISHED"
    assert bad.exit_code == 1, bad.output


def test_mlflow_tracking_uri_picks_the_store(store):
    folder, env, good, _bad = store
    assert (folder / "elsewhere" / "store.db").is_file()
    assert not (folder / "mlruns" / "mlflow.db").exists()  # the default store was never made
    assert json.loads(good.stdout)["tracking_uri"] == env["MLFLOW_TRACKING_URI"]


def test_runs_filters_by_status_and_kind(store, monkeypatch):
    folder, env, good, bad = store
    monkeypatch.chdir(folder)
    good_id = json.loads(good.stdout)["run_id"]

    def listed(*args):
        result = cli(["runs", "--json", *args], env)
        assert result.exit_code == 0, result.output
        return {r["run_id"]: r for r in json.loads(result.stdout)}

    everything = listed()
    assert len(everything) == 2 and good_id in everything
    bad_id = json.loads(bad.stdout)["run_id"]
    # the parent of a run whose trials all failed still ends FINISHED (the CLI's exit code 1 says it failed)
    assert {r["status"] for r in everything.values()} == {"FINISHED"}
    assert everything[bad_id]["best_accuracy"] is None and everything[good_id]["best_accuracy"] > 0.1
    assert listed("--status", "FINISHED").keys() == everything.keys()
    assert listed("--status", "FAILED") == {} and listed("--status", "RUNNING") == {}
    assert listed("--kind", "prune").keys() == everything.keys()
    assert listed("--kind", "score-epochs") == {}
    assert listed("--kind", "prune", "--status", "KILLED") == {}


def test_device_cpu_is_used_when_asked(shared_data):
    result = CliRunner().invoke(main, ["train", "--model", "mlp", "--steps", "3", "--train-size", "300",
                                       "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["device"] == "cpu"
    bad = CliRunner().invoke(main, ["train", "--model", "mlp", "--steps", "3", "--device", "tpu"])
    assert bad.exit_code == 2 and "device" in bad.output
