"""Processes: kill -9 anywhere then resume, one process per run, the right pid signalled, the right status shown.

Each case runs in its own folder with its own store (`in_tmp`) and timeout; the run
under test is the real CLI in a process of its own, stopped at a point its own event
stream names (tests/faults/stops.py), so a kill lands where it says on any machine.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

import engine
from engine import api
from engine.runner.runner import create_parent_run
from engine.store.events import RunStarted, RunStatus, StageStarted
from engine.store.process import process_start
from engine.store.progress import fold, read_events
from engine.store.tracking import tracker
from tests.builders import as_set_args, cli
from tests.faults.stops import REPO, children_by_key, one_line, progress_statuses, small, stopped

# Where a kill -9 lands: before the run lock (the parent run exists, its progress file does not), while the
# surrogate trains, while it scores (its scores are not cached yet), while a trial trains, after the last trial
# (the run is writing its summary).
KILL_POINTS = ["lock", "surrogate", "scoring", "retrain", "last"]
KEYS = 3  # small(): full data, random and loss at keep 0.5


def runs_json() -> dict[str, dict]:
    result = cli(["runs", "--json"])
    assert result.exit_code == 0, result.output
    return {r["run_id"]: r for r in json.loads(result.stdout)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_anywhere_then_resume_finishes_every_trial_once(in_tmp, shared_data, point):
    killed = stopped(in_tmp, point, "KILL", ["run", "--preset", "quick", *as_set_args(small(shared_data))])
    assert killed.returncode == -9, killed.stderr[-2000:]
    (parent, row), = runs_json().items()
    assert row["status"] == "KILLED", row  # "lock": not RUNNING for ever though it never wrote a progress file
    track = tracker(None, str(in_tmp))
    before = children_by_key(track, parent)
    assert all(statuses.count("FINISHED") <= 1 for statuses in before.values())

    resumed = cli(["run", "--resume", parent, "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "FINISHED"
    after = children_by_key(track, parent)
    assert len(after) == KEYS and all(statuses.count("FINISHED") == 1 for statuses in after.values()), after
    assert all(after[key][:len(done)] == done for key, done in before.items() if "FINISHED" in done)  # not redone
    assert "RUNNING" not in {s for statuses in after.values() for s in statuses}  # a killed trial reads KILLED
    assert track.get_run(parent).info.status == "FINISHED" and progress_statuses(track, parent)[-1] == "FINISHED"
    assert runs_json()[parent]["trials_done"] == KEYS


@pytest.mark.timeout(300)
def test_two_resumes_at_once_exactly_one_wins(in_tmp, shared_data):
    """The first resume is paused after it started the run (lock held, progress file written); the second must
    refuse, naming the first's pid, and touch nothing; the first then finishes every trial once."""
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    marker = in_tmp / "go-on"
    first = subprocess.Popen([sys.executable, "-m", "tests.faults.stops", "selecting", f"WAIT:{marker}", "--",
                              "run", "--resume", parent, "--json"], cwd=in_tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        track = tracker(None, str(in_tmp))
        _wait_for(lambda: any(isinstance(e, StageStarted) and e.stage == "selecting"
                              for e in read_events(track.store.progress_file(parent))), first)
        lines_before = len(read_events(track.store.progress_file(parent)))
        for args in (["run", "--resume", parent], ["run", "--detach", "--resume", parent]):
            second = cli(args)
            assert second.exit_code == 2, second.output
            one_line(second.stderr, f"run {parent} is still running (pid {first.pid}); cancel it first")
        assert len(read_events(track.store.progress_file(parent))) == lines_before  # the loser wrote nothing
        marker.touch()
        out, err = first.communicate(timeout=240)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, err[-2000:]
    assert json.loads(out)["status"] == "FINISHED"
    keys = children_by_key(track, parent)
    assert len(keys) == KEYS and all(statuses == ["FINISHED"] for statuses in keys.values()), keys


def _wait_for(condition, proc, timeout: float = 200) -> None:
    from tests.polling import wait_until

    def ready():
        assert proc.poll() is None, proc.communicate()[1][-2000:]  # it died: say why
        return condition()

    wait_until(ready, timeout, "the first resume to reach its pause")


@pytest.fixture
def stranger():
    """A live process that is no prunelab run: a pid an old progress file may name after the run's pid was reused."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_pid_without_its_start_time_is_never_signalled(in_tmp, stranger):
    """A progress line from an older prunelab (no pid_start) names a pid that now belongs to another program: the
    TUI's cancel (and the API's) must not send it SIGTERM; with the start time recorded, the run's own process is."""
    path = api.locate_store().progress_file("old")
    path.parent.mkdir(parents=True, exist_ok=True)
    line = RunStarted(run_id="old", experiment="e", kind="prune", trials=1, pid=stranger.pid).to_json()
    path.write_text(line.replace(', "pid_start": 0.0', "") + "\n")
    assert '"pid_start"' not in path.read_text()
    progress = fold(read_events(path))
    assert progress.pid == stranger.pid and not progress.pid_start
    from tui.backend import Backend

    for message in (api.cancel_run("old"), Backend.cancel(object.__new__(Backend), progress)):
        assert message.startswith("not signalled") and f"kill {stranger.pid}" in message, message
    assert stranger.poll() is None  # alive: nothing was sent
    path.write_text(RunStarted(run_id="old", experiment="e", kind="prune", trials=1, pid=stranger.pid,
                               pid_start=process_start(stranger.pid)).to_json() + "\n")
    assert api.cancel_run("old") == f"sent SIGTERM to process {stranger.pid}"  # its start time matches
    assert stranger.wait(timeout=10) == -15


def test_a_progress_file_cut_mid_line_does_not_swallow_the_resumes_first_line(in_tmp, shared_data):
    """The dead run's file ends in half a line (killed mid-write); the resume's RunStarted must start a line of its
    own, so that while it runs its progress reads RUNNING with its pid (the TUI's cancel needs it)."""
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    path = tracker(None, str(in_tmp)).store.progress_file(parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    dead = int(gone.stdout)
    path.write_text(RunStarted(run_id=parent, experiment="faults", kind="prune", trials=KEYS, pid=dead,
                               pid_start=1.0).to_json() + "\n"
                    + RunStatus(status="RUNNING", run_id=parent, message="started").to_json() + "\n"
                    + '{"t": 1796650000.5, "type": "epoch", "epoch": 1, "epo')
    seen = []

    def on_event(event):
        if isinstance(event, StageStarted) and not seen:
            progress = fold(read_events(path))
            (live,) = [p for p in api.watch_progress().poll() if p.run_id == parent]
            seen.append((progress.effective_status, progress.pid, live.effective_status, live.pid))

    result = engine.run(resume=parent, on_event=on_event)
    assert result.status == "FINISHED"
    assert seen == [("RUNNING", os.getpid(), "RUNNING", os.getpid())]
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"t": 1796650000.5, "type": "epoch", "epoch": 1, "epo'  # the half line, alone
    assert sum(1 for line in lines[3:] if line) == len(read_events(path)) - 2  # every other line reads


def test_runs_counts_each_trial_once_after_retries(in_tmp, shared_data):
    """Two trials that fail every time (a learning rate that diverges), retried twice: six children, two trials
    done, in `runs`, its JSON, the TUI's first table and a run's detail."""
    config = engine.load_config("quick", small(shared_data, **{
        "sweep.methods": ["random"], "train.lr": 1e6, "train.schedule": "constant", "train.momentum": 0.0}))
    first = engine.run(config)
    assert [t.status for t in first.trials] == ["FAILED", "FAILED"]
    for _ in range(2):
        retried = cli(["run", "--resume", first.run_id, "--retry-failed"])
        assert retried.exit_code == 1, retried.output  # every trial failed again
    track = tracker(None, str(in_tmp))
    assert len(track.children(first.run_id)) == 6
    row = runs_json()[first.run_id]
    assert (row["trials_done"], row["trials"]) == (2, 2)
    assert "2/2" in cli(["runs"]).stdout
    (quick,) = api.list_runs_quick()
    assert (quick.trials_done, quick.trials) == (2, 2)
    assert api.run_info(first.run_id).trials_done == 2


def test_a_run_killed_before_its_progress_file_reads_killed_in_the_first_table_too(in_tmp, shared_data):
    """The parent run names the process that created it: once that process is gone, the TUI's first table (read
    straight from SQLite) and `runs` say KILLED; while it lives, RUNNING."""
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    (quick,) = api.list_runs_quick()
    assert quick.status == "RUNNING"  # this process created it, and lives
    tags = tracker(None, str(in_tmp)).get_run(parent).data.tags
    assert (tags["prunelab.pid"], tags["prunelab.host"]) == (str(os.getpid()), socket.gethostname())
    track = tracker(None, str(in_tmp))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    track.set_tags(parent, {"prunelab.pid": gone.stdout.strip()})  # as if its creator had been killed
    (quick,) = api.list_runs_quick()
    assert quick.status == "KILLED" and track.get_run(parent).info.status == "RUNNING"  # shown, not written
    assert runs_json()[parent]["status"] == "KILLED" and track.get_run(parent).info.status == "KILLED"
    assert "before it wrote its progress file" in track.get_run(parent).data.tags["prunelab.error"]


# ---------------------------------------------------------------- one process per run; a pid with its start time
@pytest.fixture
def parent(in_tmp, shared_data):
    """A parent run that no process works on yet (its creator, this process, only created it)."""
    return create_parent_run(engine.load_config("quick", small(shared_data)))


def write_progress(track, run_id, pid, pid_start, status="RUNNING"):
    track.store.progress_dir.mkdir(parents=True, exist_ok=True)
    with open(track.store.progress_file(run_id), "w", encoding="utf-8") as f:
        f.write(RunStarted(run_id=run_id, experiment="faults", kind="prune", trials=KEYS, pid=pid,
                           pid_start=pid_start).to_json() + "\n")
        f.write(RunStatus(status=status, run_id=run_id, message="started").to_json() + "\n")


def test_a_resume_while_another_is_starting_fails_naming_its_pid(in_tmp, parent):
    """Another process holds the run's lock but has not started the run (no progress file yet): "being resumed"."""
    from engine.store.runlock import RunLock

    track = tracker(None, str(in_tmp))
    holder = subprocess.Popen([sys.executable, "-c", ("import sys, time; from engine.store.runlock import RunLock; "
                               f"RunLock(sys.argv[1], '{parent}').acquire(); print('held', flush=True); "
                               "time.sleep(60)"), str(track.store.progress_file(parent))],
                              cwd=in_tmp, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        result = cli(["run", "--resume", parent])
        assert result.exit_code == 2
        one_line(result.stderr, f"run {parent} is being resumed by pid {holder.pid}")
        with pytest.raises(engine.errors.UserError, match=f"being resumed by pid {holder.pid}"):
            engine.run(resume=parent)
    finally:
        holder.kill()
        holder.wait()
    RunLock(track.store.progress_file(parent), parent).acquire().release()  # the kernel dropped it with its holder


def test_resuming_a_live_run_fails_and_touches_nothing(in_tmp, parent, stranger):
    track = tracker(None, str(in_tmp))
    write_progress(track, parent, stranger.pid, process_start(stranger.pid))
    for args in (["run", "--resume", parent], ["run", "--detach", "--resume", parent]):
        result = cli(args)
        assert result.exit_code == 2
        one_line(result.stderr, f"run {parent} is still running (pid {stranger.pid}); cancel it first")
    assert track.children(parent) == []
    assert len(read_events(track.store.progress_file(parent))) == 2  # no child wrote to it


def test_process_start_time_tells_a_reused_pid(stranger):
    from engine.store.process import process_alive

    start = process_start(stranger.pid)
    assert start > process_start(1) > 0  # started after init
    with open(f"/proc/{stranger.pid}/stat") as f:  # field 22 counted independently, from the right of the name
        assert start == float(f.read().split(") ")[-1].split()[19])
    assert process_alive(stranger.pid, os.uname().nodename, start) is True
    assert process_alive(stranger.pid, os.uname().nodename, start + 1) is False  # same pid, another process
    assert process_alive(stranger.pid, os.uname().nodename) is True  # an old file, with no start time


def test_a_run_whose_pid_was_reused_reads_killed_and_is_not_signalled(in_tmp, parent, stranger):
    track = tracker(None, str(in_tmp))
    write_progress(track, parent, stranger.pid, process_start(stranger.pid) - 5)  # the pid now names the stranger
    progress = fold(read_events(track.store.progress_file(parent)))
    assert progress.alive is False and progress.effective_status == "KILLED"
    from tui.backend import Backend

    message = Backend.cancel(object.__new__(Backend), progress)
    assert message == f"process {stranger.pid} already ended" and stranger.poll() is None  # not signalled
    assert runs_json()[parent]["status"] == "KILLED"
