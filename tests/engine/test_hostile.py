"""What a hostile user tries, CLI and API: concurrent resumes, reused pids, damaged files, bad input.

Every bad input must give one line on stderr naming the field or file and the fix,
exit 2, and no traceback (issue 18's matrix).
"""
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import engine
from engine.cli import main
from engine.names import TRIAL_KEY
from engine.runner.runner import create_parent_run
from engine.store.events import RunStarted, RunStatus
from engine.store.process import process_alive, process_start
from engine.store.progress import fold, read_events
from engine.store.runlock import RunLock
from engine.store.tracking import tracker


def small(shared_data, **extra):
    """Two trials (full data and random at 0.5, one seed) on 500 real MNIST images: seconds on a CPU."""
    overrides = {"name": "hostile", "data.dataset": "mnist", "data.data_dir": str(shared_data),
                 "data.train_size": 500, "data.test_size": 200, "model": "mlp", "train.epochs": 1,
                 "train.batch_size": 100, "surrogate.epochs": 1, "sweep.score_epochs": [1],
                 "sweep.methods": ["random"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0]}
    overrides.update(extra)
    return overrides


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


@pytest.fixture
def sleeper():
    """A real live process that is not a prunelab run, to stand in for a live or pid-reusing one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def write_progress(track, run_id, pid, pid_start, status="RUNNING"):
    track.store.progress_dir.mkdir(parents=True, exist_ok=True)
    with open(track.store.progress_file(run_id), "w", encoding="utf-8") as f:
        f.write(RunStarted(run_id=run_id, experiment="hostile", kind="prune", trials=2, pid=pid,
                           pid_start=pid_start).to_json() + "\n")
        f.write(RunStatus(status=status, run_id=run_id, message="started").to_json() + "\n")


# ---------------------------------------------------------------- 14: one process per run
def test_two_resumes_at_once_run_each_trial_once(in_tmp, parent):
    procs = [subprocess.Popen([sys.executable, "-m", "engine.cli", "run", "--resume", parent, "--json"], cwd=in_tmp,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes[0] == 0, results
    keys = [c.data.tags[TRIAL_KEY] for c in tracker(None, str(in_tmp)).children(parent)]
    assert len(keys) == 2 and len(set(keys)) == 2  # full data and random 0.5, each once
    if codes[1] == 2:  # they overlapped (the usual case): the loser said who holds the run
        loser = next(err for rc, _, err in results if rc == 2)
        assert f"run {parent} is being resumed by pid" in loser and "Traceback" not in loser


def test_a_resume_while_another_holds_the_run_fails_naming_its_pid(in_tmp, parent):
    track = tracker(None, str(in_tmp))
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from engine.store.runlock import RunLock; "
                               f"RunLock(sys.argv[1], '{parent}').acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(track.store.progress_file(parent))],
                              cwd=in_tmp, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_line_exit_2(cli(["run", "--resume", parent], in_tmp))
        assert f"run {parent} is being resumed by pid {holder.pid}" in line
        with pytest.raises(engine.errors.UserError, match=f"being resumed by pid {holder.pid}"):
            engine.run(resume=parent)
    finally:
        holder.kill()
        holder.wait()
    RunLock(track.store.progress_file(parent), parent).acquire().release()  # the kernel dropped it with its holder


def test_resuming_a_live_run_fails_and_touches_nothing(in_tmp, parent, sleeper):
    track = tracker(None, str(in_tmp))
    write_progress(track, parent, sleeper.pid, process_start(sleeper.pid))
    for args in (["run", "--resume", parent], ["run", "--detach", "--resume", parent]):
        line = one_line_exit_2(cli(args, in_tmp))
        assert f"run {parent} is still running (pid {sleeper.pid}); cancel it first" in line
    assert track.children(parent) == []
    assert len(read_events(track.store.progress_file(parent))) == 2  # no child wrote to it


# ---------------------------------------------------------------- 16: a pid with its start time
def test_process_start_time_tells_a_reused_pid(sleeper):
    start = process_start(sleeper.pid)
    assert start > process_start(1) > 0  # started after init
    with open(f"/proc/{sleeper.pid}/stat") as f:  # field 22 counted independently, from the right of the name
        assert start == float(f.read().split(") ")[-1].split()[19])
    assert process_alive(sleeper.pid, os.uname().nodename, start) is True
    assert process_alive(sleeper.pid, os.uname().nodename, start + 1) is False  # same pid, another process
    assert process_alive(sleeper.pid, os.uname().nodename) is True  # an old file, with no start time


def test_a_run_whose_pid_was_reused_reads_killed_and_can_be_resumed(in_tmp, parent, sleeper):
    track = tracker(None, str(in_tmp))
    write_progress(track, parent, sleeper.pid, process_start(sleeper.pid) - 5)  # the pid now names the sleeper
    progress = fold(read_events(track.store.progress_file(parent)))
    assert progress.alive is False and progress.effective_status == "KILLED"
    from tui.backend import Backend

    message = Backend.cancel(object.__new__(Backend), progress)
    assert message == f"process {sleeper.pid} already ended" and sleeper.poll() is None  # not signalled
    runs = {r.run_id: r.status for r in engine.list_runs()}
    assert runs[parent] == "KILLED"


# ---------------------------------------------------------------- 22: damaged progress files
@pytest.mark.parametrize("line", [b"\xff\xfe not utf-8\n", b'{"type": "run_started", "run_id": "x", "experiment": "e", '
                                  b'"kind": "prune", "trials": 1, "pid": "abc"}\n',
                                  b'{"type": "run_started", "run_id": "x", "experiment": "e", "kind": "prune", '
                                  b'"trials": 1, "pid": 99999999999999}\n', b'{"type": "nonsense"}\n', b"[1, 2]\n"])
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


def test_a_file_tracking_uri_is_exit_2(in_tmp):
    one_line_exit_2(cli(["--tracking-uri", "file:///x", "runs"], in_tmp), "file store", "sqlite:///")
