"""What a hostile user tries, CLI and API: damaged files, bad input, run ids (the store, signals and processes:
tests/faults/).

Every bad input must give one line on stderr naming the field or file and the fix,
exit 2, and no traceback (issue 18's matrix).
"""
import json
import os
import time

import pytest
from click.testing import CliRunner

import engine
from engine.cli import main
from engine.names import TRIAL_KEY
from engine.runner.runner import create_parent_run
from engine.store.events import RunStarted, RunStatus
from engine.store.progress import read_events
from engine.store.tracking import tracker
from tests.builders import tiny_run


def small(shared_data, **extra):
    """Two trials (full data and random at 0.5, one seed) on 500 real MNIST images: seconds on a CPU."""
    return tiny_run(shared_data, train_size=500, test_size=200, name="hostile", **{
        "train.batch_size": 100, "sweep.methods": ["random"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0], **extra})


def cli(args, cwd):
    """The CLI in this process (a subprocess costs seconds of imports on a busy machine); cwd is the test's."""
    assert os.getcwd() == str(cwd)
    return CliRunner().invoke(main, args)


def one_line_exit_2(result, *words):
    """The contract for bad input: exit 2, one line on stderr that names what is wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an exception escaping the command
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def parent(in_tmp, shared_data):
    """A parent run whose process died before it ran a trial (as after `kill -9` of a detached launch)."""
    return create_parent_run(engine.load_config("quick", small(shared_data)))


# ---------------------------------------------------------------- 22: damaged progress files
@pytest.mark.parametrize("line", [b"\xff\xfe not utf-8\n", (b'{"type": "run_started", "run_id": "x", "experiment": "e", '
                                  b'"kind": "prune", "trials": 1, "pid": "abc"}\n'),
                                  (b'{"type": "run_started", "run_id": "x", "experiment": "e", "kind": "prune", '
                                  b'"trials": 1, "pid": 99999999999999}\n'), b'{"type": "nonsense"}\n', b"[1, 2]\n"])
def test_a_damaged_progress_line_is_skipped(in_tmp, parent, line):
    track = tracker(None, str(in_tmp))
    path = track.store.progress_file(parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    good = RunStatus(status="RUNNING", run_id=parent, message="started").to_json().encode() + b"\n"
    path.write_bytes(line + good)
    events = read_events(path)
    assert [type(e) for e in events] == [RunStatus]
    result = cli(["runs", "--json"], in_tmp)
    assert result.exit_code == 0, result.output
    assert parent in {r["run_id"] for r in json.loads(result.stdout)}
    assert cli(["show", parent, "--json"], in_tmp).exit_code == 0


# ---------------------------------------------------------------- 15, 25: run ids
def test_an_empty_resume_id_is_rejected(in_tmp):
    one_line_exit_2(cli(["run", "--resume", ""], in_tmp), "--resume", "empty")
    assert not (in_tmp / "mlruns" / "progress").exists() or not list((in_tmp / "mlruns" / "progress").glob("*.jsonl"))
    with pytest.raises(engine.errors.UserError, match="empty"):
        engine.run(resume="")


def test_an_unknown_run_id_is_one_line_exit_2(in_tmp):
    for command in (["show"], ["export", "--csv"], ["run", "--resume"], ["run", "--detach", "--resume"]):
        for run_id in ("0123456789abcdef0123456789abcdef", "it's bad", "a b"):
            one_line_exit_2(cli([*command, run_id], in_tmp), "not found", "prunelab runs")
    assert not list(in_tmp.glob("mlruns/progress/*"))  # --detach spawned nothing


def test_a_child_run_id_is_not_resumable(in_tmp, shared_data):
    result = engine.run(engine.load_config("quick", small(shared_data)))
    child = result.trials[0].child_run_id
    one_line_exit_2(cli(["run", "--resume", child], in_tmp), "not a prunelab experiment (parent) run")


# ---------------------------------------------------------------- 17, 23, 25: configs (the refusals: tests/faults/)
def test_config_check_accepts_distinct_lists():
    result = CliRunner().invoke(main, ["config", "check", "quick", "--set", "sweep.seeds=[0,1,2]",
                                       "--set", "sweep.keep_ratios=[0.3,0.5]"])
    assert result.exit_code == 0, result.output
    assert "seeds = [\n    0,\n    1,\n    2,\n]" in result.stdout or "seeds = [ 0, 1, 2, ]" in result.stdout \
        or "seeds = [0, 1, 2]" in result.stdout


def test_config_files_that_are_not_toml_text(tmp_path):
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbfname = 'bom'\n")
    assert engine.load_config(str(bom)).name == "bom"  # a BOM (Windows editors) is read, not refused
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"name = 'caf\xe9'\n")
    one_line_exit_2(CliRunner().invoke(main, ["config", "check", str(latin)]), str(latin), "UTF-8")
    one_line_exit_2(CliRunner().invoke(main, ["config", "check", str(tmp_path)]), str(tmp_path), "folder")


# ---------------------------------------------------------------- 18, 19, 26: small CLI ones
def test_output_paths_are_checked_before_any_work(in_tmp):
    started = time.time()
    result = cli(["score", "--model", "mlp", "--train-size", "500", "--out", "/nonexistent/d/s.npz"], in_tmp)
    one_line_exit_2(result, "--out /nonexistent/d/s.npz", "does not exist")
    assert time.time() - started < 5  # no surrogate was trained first
    one_line_exit_2(cli(["export", "anything", "--csv", "--out", "/nonexistent/d/s.csv"], in_tmp), "--out")


def test_small_cli_inputs(in_tmp):
    assert cli(["show", "abc", "--top", "-3"], in_tmp).exit_code == 2
    bogus = cli(["runs", "--status", "bogus"], in_tmp)
    assert bogus.exit_code == 2 and "bogus" in bogus.output
    empty = cli(["runs"], in_tmp)
    assert empty.exit_code == 0 and empty.stdout.startswith("no runs yet")
    assert cli(["runs", "--status", "finished"], in_tmp).stdout.startswith("no FINISHED runs yet")


# ---------------------------------------------------------------- 26: --retry-failed (and 13: params, export)
def test_resume_retries_failed_trials_only_when_asked(in_tmp, shared_data):
    first = engine.run(engine.load_config("quick", small(shared_data)))
    check_kind_params_and_exports(first, in_tmp)  # one small run serves both (a run costs seconds)
    check_best_pruned_beside_full(first, in_tmp)
    track = tracker(None, str(in_tmp))
    failed = next(t for t in first.trials if t.tags.get("method") == "random")
    track.end_run(failed.child_run_id, "FAILED")  # as a trial that raised would leave it

    time.sleep(3)  # the run lies dead a while before it is resumed (item 8: that time is not its duration)
    again = engine.run(resume=first.run_id)
    assert len(track.children(first.run_id)) == 2  # a plain resume leaves FAILED trials alone
    active = track.get_run(first.run_id).data.metrics["active_seconds"]
    assert abs(active - (first.seconds + again.seconds)) < 1.0, (active, first.seconds, again.seconds)
    info = next(r for r in engine.list_runs() if r.run_id == first.run_id)
    assert info.duration == active and info.duration < info.end_time - info.start_time - 2.5
    assert [t.status for t in again.trials if t.key == failed.key] == ["FAILED"]
    retried = engine.run(resume=first.run_id, retry_failed=True)
    children = track.children(first.run_id)
    assert len(children) == 3 and [t.status for t in retried.trials if t.key == failed.key] == ["FINISHED"]
    assert sorted(c.info.status for c in children if c.data.tags[TRIAL_KEY] == failed.key) == ["FAILED", "FINISHED"]


def check_best_pruned_beside_full(result, in_tmp):
    """Item 9: `runs` shows the best pruned setting's accuracy beside the full data's, whole at 80 columns."""
    rows = {r["method"]: r["mean_accuracy"] for r in result.summary}
    info = next(r for r in engine.list_runs() if r.run_id == result.run_id)
    assert (info.full_accuracy, info.best_pruned) == (rows["full"], rows["random"])
    listed = cli(["runs"], in_tmp)
    lines = listed.stdout.splitlines()
    assert max(map(len, lines)) <= 80, listed.stdout
    header = " ".join(lines[:next(i for i, line in enumerate(lines) if line.startswith("┡"))])
    assert all(word in header for word in ("full", "data", "best", "pruned", "trials", "status")), listed.stdout
    row = next(line for line in lines if result.run_id[:8] in line)
    assert f"{rows['full']:.2%}" in row and f"{rows['random']:.2%}" in row, listed.stdout
    assert "FINISHED" in row and "hostile" in row and row.rstrip().endswith("│"), listed.stdout  # not cropped
    assert "kind" not in header and "dataset" not in header  # what gives way below 100 columns (--json has all)


# ---------------------------------------------------------------- 9: run-id prefixes
def test_any_unique_prefix_names_a_run(in_tmp, parent, shared_data):
    from engine.cli.runs import short_ids

    assert short_ids(["abcdef0123", "abcdef0199", "ffff000011"]) == \
        {"abcdef0123": "abcdef012", "abcdef0199": "abcdef019", "ffff000011": "ffff0000"}
    shown = cli(["show", parent[:8], "--json"], in_tmp)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["run_id"] == parent
    listed = cli(["runs"], in_tmp)
    assert parent[:8] in listed.stdout and parent not in listed.stdout
    track = tracker(None, str(in_tmp))
    second = create_parent_run(engine.load_config("quick", small(shared_data)))
    common = next(i for i in range(33) if parent[:i] != second[:i]) - 1
    if common >= 1:  # two runs share a first character about as often as not: that prefix is ambiguous
        one_line_exit_2(cli(["show", parent[:common]], in_tmp), "matches 2 runs", "give more characters")
    assert track.resolve(parent[:common + 1]) == parent


# ---------------------------------------------------------------- 12: one source of defaults
def test_cli_and_api_share_their_defaults():
    import inspect

    from engine.config import SurrogateConfig, TrainConfig

    score = {p.name: p for p in main.commands["score"].params}
    train = {p.name: p for p in main.commands["train"].params}
    from engine import api

    api_inits = inspect.signature(api.score_result).parameters["inits"].default
    assert score["inits"].default == api_inits == SurrogateConfig().inits
    assert score["lr"].default == train["lr"].default == TrainConfig().lr
    assert score["batch_size"].default == train["batch_size"].default == TrainConfig().batch_size
    assert train["schedule"].default == TrainConfig().schedule


# ---------------------------------------------------------------- 13: small CLI fixes
def test_config_show_documents_each_field_and_check_says_ok(in_tmp):
    import tomllib

    from engine.config import Config, TrainConfig, preset_text

    shown = cli(["config", "show", "quick"], in_tmp)
    assert shown.exit_code == 0
    assert tomllib.loads(shown.stdout) == tomllib.loads(preset_text("quick"))  # comments only were added
    lines = shown.stdout.splitlines()
    assert lines[lines.index("epochs = 2") - 1] == f"# {TrainConfig.model_fields['epochs'].description}"
    assert lines[lines.index('model = "cnn"') - 1] == f"# {Config.model_fields['model'].description}"

    checked = cli(["config", "check", "quick"], in_tmp)
    assert checked.exit_code == 0
    assert checked.stdout.splitlines()[-1] == "# OK: quick is a valid prune config"
    resolved = tomllib.loads(checked.stdout)
    assert {"data", "train", "surrogate", "sweep"} <= set(resolved)
    assert not {"online", "noise", "study", "benchmark", "dynamic", "overlap"} & set(resolved)  # not prune's
    assert "[data.options]" not in checked.stdout and "[selection]" not in checked.stdout  # no empty tables
    overlap = cli(["config", "check", "quick", "--set", "kind=overlap"], in_tmp)
    assert "overlap" in tomllib.loads(overlap.stdout) and "sweep" not in tomllib.loads(overlap.stdout)


def check_kind_params_and_exports(result, in_tmp):
    """A prune run logs only the sections a prune run reads; `export` needs no --csv and has --trials (13)."""
    import csv
    import io

    track = tracker(None, str(in_tmp))
    params = track.get_run(result.run_id).data.params
    assert params["sweep.keep_ratios"] == "[0.5]" and params["train.epochs"] == "1"
    assert not [k for k in params if k.split(".")[0] in ("online", "noise", "study", "benchmark", "dynamic",
                                                        "overlap")]
    plain = cli(["export", result.run_id[:8]], in_tmp)  # no --csv needed
    assert plain.exit_code == 0 and plain.stdout == cli(["export", result.run_id, "--csv"], in_tmp).stdout
    assert [r["method"] for r in csv.DictReader(io.StringIO(plain.stdout))] == ["full", "random"]
    trials = cli(["export", result.run_id, "--trials"], in_tmp)
    rows = list(csv.DictReader(io.StringIO(trials.stdout)))
    children = {c.info.run_id: c for c in track.children(result.run_id)}
    assert len(rows) == 2 and set(children) == {r["child_run_id"] for r in rows}
    for row in rows:
        child = children[row["child_run_id"]]
        assert row["method"] == child.data.tags["method"] and row["status"] == "FINISHED"
        assert float(row["test_accuracy"]) == child.data.metrics["final_test_accuracy"]


def test_a_device_this_machine_lacks_fails_before_any_run(in_tmp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: device = cuda is valid here")
    one_line_exit_2(cli(["config", "check", "quick", "--set", "device=cuda"], in_tmp), "device 'cuda'", "CUDA")
    one_line_exit_2(cli(["run", "--preset", "quick", "--set", "device=cuda"], in_tmp), "device 'cuda'", "CUDA")
    assert cli(["runs"], in_tmp).stdout.startswith("no runs yet")  # no parent run was created


def test_parent_runs_are_named_by_what_differs():
    from engine.runner.runner import parent_name

    assert parent_name(engine.load_config("quick")) == "prune mnist-mini cnn · random,loss,grad_norm @ 0.3,0.7"
    assert parent_name(engine.load_config("quick", {"sweep.keep_ratios": [0.5]})).endswith("@ 0.5")
    assert parent_name(engine.load_config("quick", {"kind": "overlap"})) == "overlap mnist-mini cnn"


# ---------------------------------------------------------------- 23, 26: cache entries
def test_a_cache_entry_without_its_key_is_a_miss_and_entries_are_group_readable(tmp_path):
    import numpy as np

    from engine.store.cache import Cache

    cache = Cache(tmp_path)
    cache.save_arrays("forgetting", "ab" * 8, {"other": np.arange(3)})
    assert cache.load_arrays("forgetting", "ab" * 8, require=("forgetting",)) is None and cache.misses == 1
    assert list(cache.load_arrays("forgetting", "ab" * 8, require=("other",))["other"]) == [0, 1, 2]
    from engine.store.cache import _UMASK

    cache.save_arrays("scores", "cd" * 8, {"loss": np.ones(2)})
    entry = next((tmp_path / "scores").rglob("*.npz"))
    assert entry.stat().st_mode & 0o777 == 0o666 & ~_UMASK != 0o600  # as the umask says, not mkstemp's 0600


# ---------------------------------------------------------------- 10: the CLI's progress bars
def test_cli_progress_is_the_tuis_three_bars():
    import io

    from rich.console import Console

    from engine.cli.common import ProgressBars
    from engine.store.events import BatchProgress, EpochEnd, StageStarted, TrialFinished

    bars = ProgressBars(enabled=True, console=Console(file=io.StringIO(), force_terminal=True, width=120))
    with bars:
        bars(RunStarted(run_id="r", experiment="e", kind="prune", trials=2))
        bars(StageStarted(stage="selecting", detail="2 of 2: loss / hardest / keep 0.5 / seed 0 / e1"))
        assert "epoch" not in bars.tasks  # a selection is no epoch: the trials bar's text counts them
        assert bars.task("trials").fields["info"] == "selecting 2 of 2: loss / hardest / keep 0.5 / seed 0 / e1"
        bars(StageStarted(stage="retrain", detail="loss / hardest / keep 0.5 / seed 0 / e1", trial=0, trials=2))
        assert set(bars.tasks) <= {"trials", "epoch", "batch"}  # no "retrain 0/1" bar that never moves
        assert "retrain loss / hardest" in bars.task("trials").fields["info"]
        bars(BatchProgress(epoch=1, epochs=2, batch=10, batches=10))
        bars(EpochEnd(epoch=1, epochs=2, metrics={"train_loss": 0.5, "test_accuracy": 0.75}))
        first_epoch_clock = bars.task("batch").start_time
        time.sleep(0.05)
        bars(BatchProgress(epoch=2, epochs=2, batch=1, batches=10))
        epoch, batch = bars.task("epoch"), bars.task("batch")
        assert (epoch.completed, epoch.total) == (1, 2)  # epoch 2 of 2 under way: 1/2, not 2/2
        assert epoch.fields["info"] == "train loss 0.5000 test acc 75.00%"  # which loss, which accuracy
        assert batch.start_time > first_epoch_clock and batch.description == "epoch 2/2"  # its own time
        bars(TrialFinished(trial=0, trials=2, status="FINISHED", metrics={"test_accuracy": 0.8125},
                           name="loss / hardest / keep 0.5 / seed 0 / e1"))
        trials = bars.task("trials")
        assert trials.completed == 1 and not bars.task("epoch").visible and not bars.task("batch").visible
        assert "last: loss / hardest / keep 0.5 / seed 0 / e1 81.25%" in trials.fields["info"]
        assert "finished" not in trials.fields["info"].lower()
        bars(StageStarted(stage="retrain", detail="full-data / seed 0", trial=1, trials=2))
        bars(BatchProgress(epoch=1, epochs=2, batch=3, batches=10))
        assert bars.task("epoch").visible and bars.task("epoch").completed == 0 and bars.task("batch").visible
