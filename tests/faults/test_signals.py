"""Signals: SIGTERM and Ctrl-C at every stage end a run KILLED with exit 130, however often they come, and a
cancel never waits on a store another process holds locked.

The runs are the real CLI in a process of their own, signalled from inside at the point
their own events name (tests/faults/stops.py); each case has its own folder, store and
timeout.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.cancel import Cancelled, CancelToken, absorb_signals, active
from engine.runner import runner
from engine.runner.runner import cancel_on_signals
from engine.store.events import RunStatus
from engine.store.progress import read_events
from engine.store.tracking import Tracker, TrackingError, tracker
from tests.builders import as_set_args, cli
from tests.faults.stops import HOLD_LOCK, children_by_key, one_line, progress_statuses, small, stopped


def _only_run(in_tmp) -> str:
    runs = cli(["runs", "--json"])
    assert runs.exit_code == 0, runs.output
    import json

    (row,) = json.loads(runs.stdout)
    return row["run_id"]


def _ended_killed(in_tmp, proc) -> str:
    """Exit 130, one line on stderr, the run KILLED in the store and its progress file, no trial left RUNNING."""
    assert proc.returncode == 130, proc.stderr[-3000:]
    one_line(proc.stderr, "prunelab: interrupted")
    parent = _only_run(in_tmp)
    track = tracker(None, str(in_tmp))
    assert track.get_run(parent).info.status == "KILLED"
    assert progress_statuses(track, parent)[-1] == "KILLED"
    assert "RUNNING" not in {s for statuses in children_by_key(track, parent).values() for s in statuses}
    return parent


@pytest.mark.timeout(240)
@pytest.mark.parametrize("point, name", [("surrogate", "TERM"), ("scoring", "INT"), ("scoring", "TERM"),
                                         ("retrain", "INT")])  # and an outside SIGINT mid-trial: test_runner.py
def test_a_signal_during_training_or_scoring_ends_the_run_killed(in_tmp, shared_data, point, name):
    proc = stopped(in_tmp, point, name, ["run", "--preset", "quick", *as_set_args(small(shared_data))])
    _ended_killed(in_tmp, proc)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("point", ["retrain", "last"])
def test_two_sigterms_0_3_s_apart_still_exit_130(in_tmp, shared_data, point):
    """The second is the same request: it must neither interrupt the run's ending half-way nor find the default
    handler back (death by signal, 143) while the process exits; at "last" the run has ended when it comes."""
    proc = stopped(in_tmp, point, "TERM,TERM+0.3", ["run", "--preset", "quick", *as_set_args(small(shared_data))])
    _ended_killed(in_tmp, proc)


@pytest.mark.timeout(240)
def test_sigterm_while_a_write_waits_on_the_store_lock(in_tmp, shared_data):
    """Another process holds the SQLite store locked (and keeps it) when the run's next write comes; a SIGTERM
    1.5 s later ends the run in seconds, not after the holder lets go (it never does here): exit 130, one line,
    KILLED in the progress file. Once the lock is gone, `runs` completes the store from the progress file."""
    proc = stopped(in_tmp, "trial", "LOCK,TERM+1.5", ["run", "--preset", "quick",
                                                       *as_set_args(small(shared_data))])
    holder = int((in_tmp / "lock-holder.pid").read_text())
    try:
        os.kill(holder, 0)  # it still holds the store: the run did not wait for it
        assert proc.returncode == 130, proc.stderr[-3000:]
        one_line(proc.stderr, "prunelab: interrupted")
        locked_at = (in_tmp / "lock-holder.pid").stat().st_mtime
        (path,) = (in_tmp / "mlruns" / "progress").glob("*.jsonl")
        (killed,) = [e for e in read_events(path) if isinstance(e, RunStatus) and e.status == "KILLED"]
        assert killed.t - locked_at < 20, killed.t - locked_at  # 1.5 s, then a write or two of 1 s each
    finally:
        os.kill(holder, signal.SIGKILL)
    parent = _only_run(in_tmp)
    track = tracker(None, str(in_tmp))
    assert progress_statuses(track, parent)[-1] == "KILLED"
    assert track.get_run(parent).info.status == "KILLED"  # written by `runs` from the progress file, if not before


# ---------------------------------------------------------------- the pieces, in this process
@pytest.fixture
def locked_store(in_tmp):
    """The test's store, locked for writing by another process until the test ends."""
    Tracker(None, str(in_tmp))  # created and migrated before it is locked
    db = in_tmp / "mlruns" / "mlflow.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield db
    holder.kill()
    holder.wait()


def test_the_store_retry_loop_gives_up_on_a_cancel(locked_store, in_tmp):
    """A write on a store another process holds: SQLite waits 1 s per try (not MLflow's 20 s); the retry loop
    waits on, polling the run's token; a cancel ends the wait at once with Cancelled; without one, a bounded wait
    ends in one TrackingError line naming the store."""
    track = Tracker(None, str(in_tmp))
    started = time.monotonic()
    with pytest.raises(Exception, match="database is locked"):
        track.client.raw.create_experiment("raw")  # MLflow's client itself, one statement
    assert time.monotonic() - started < 5  # SQLite's busy wait is short (it was 20 s)

    token = CancelToken()
    threading.Timer(1.0, token.cancel, ("SIGTERM",)).start()
    started = time.monotonic()
    with active(token), pytest.raises(Cancelled):
        track.client.create_experiment("waits")
    assert 1.0 <= time.monotonic() - started < 4

    from engine.store import tracking

    patience, tracking.LOCK_PATIENCE_S = tracking.LOCK_PATIENCE_S, 2.0
    try:
        started = time.monotonic()
        with pytest.raises(TrackingError, match=f"the store {locked_store} stayed locked by another process"):
            track.client.create_experiment("gives up")
    finally:
        tracking.LOCK_PATIENCE_S = patience
    assert time.monotonic() - started < 6


def test_repeated_signals_are_one_request_and_none_lands_after_the_run(monkeypatch):
    """Inside a run: the first signal cancels; a repeat within the grace period, or while the run records how it
    ended, is absorbed; a later one (a user who insists) interrupts at once. After the run, the handler from before
    is back; the CLI, once it said "interrupted", absorbs repeats for a while, then hands them to that handler."""
    received = []

    def before(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, before)
    monkeypatch.setattr(runner, "GRACE_S", 0.3)
    try:
        with cancel_on_signals(CancelToken()) as token:
            signal.raise_signal(signal.SIGTERM)
            assert token.cancelled and token.reason == "SIGTERM"
            signal.raise_signal(signal.SIGTERM)  # the same request, repeated at once: nothing raised
            time.sleep(0.35)
            with token.shielded():
                signal.raise_signal(signal.SIGTERM)  # the run is recording its end: absorbed
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)  # the user insists
        assert signal.getsignal(signal.SIGTERM) is before and received == []

        absorb_signals(0.3, (signal.SIGTERM,))
        signal.raise_signal(signal.SIGTERM)  # the CLI exiting after "interrupted": absorbed
        assert received == [] and signal.getsignal(signal.SIGTERM).previous is before
        time.sleep(0.35)
        signal.raise_signal(signal.SIGTERM)  # later: the handler from before, as it was, and put back
        assert received == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_busy_wait_is_short_on_every_connection(in_tmp):
    """MLflow asks SQLite for a 20 s busy wait on each session; prunelab's engines ask for BUSY_TIMEOUT_MS."""
    from engine.store.tracking import BUSY_TIMEOUT_MS

    track = tracker(None, str(in_tmp))
    engine_ = track.client.raw._tracking_client.store.engine
    seen = []
    from sqlalchemy import event

    def spy(conn, cursor, statement, parameters, context, executemany):
        if "busy_timeout" in statement.lower():
            seen.append(statement)

    event.listen(engine_, "after_cursor_execute", spy)
    try:
        track.search()
    finally:
        event.remove(engine_, "after_cursor_execute", spy)
    assert seen and all(s == f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};" for s in seen), seen
    with sqlite3.connect(Path(track.store.uri[len("sqlite:///"):])) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
