"""Run the real `prunelab` command line in this process and stop it at a chosen point of its run.

    python -m tests.faults.stops POINT ACTION[,ACTION...] -- [prunelab arguments]

A kill timed from outside lands wherever the run happens to be (on a fast machine, after
the stage it meant to hit); here the run's own event stream says where it is, and the
action happens right there, in the run's process: a signal to itself (delivered as any
signal from outside is: the handler runs on the main thread at the next bytecode), or a
fault of its surroundings. The exit code is the real CLI's.

POINT (the first event that matches):
  lock       before the run takes its run lock: the parent run exists, its progress file does not yet
  started    the run's RunStarted line
  surrogate  a batch of surrogate training          scoring    a batch of a scoring pass
  selecting  a selection starting                   retrain    a batch of a trial's training
  trial      the first trial finished               last       the last trial finished (the run is ending)
ACTION:
  KILL, TERM, INT          that signal to this process, now
  TERM+0.3                 SIGTERM 0.3 s from now (from a thread; any delay)
  LOCK                     another process takes the store's SQLite write lock and keeps it (its pid goes in
                           ./lock-holder.pid); returns once it holds it
  FILL:FOLDER              fill the file system of FOLDER to the last byte (FOLDER/filler)
  WAIT:FILE                pause the run here (lock held, progress file written) until FILE exists (at most 300 s)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.store import events as ev
from tests.faults.input_support import message_lines

HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(600)
"""

STAGE_BATCH = {"surrogate": "surrogate", "scoring": "scoring", "retrain": "retrain"}


class Stop:
    """Watches the run's events and acts once, at the first that matches the point."""

    def __init__(self, point: str, actions: list[str]):
        self.point, self.actions = point, actions
        self.stage = ""
        self.done = False

    def matches(self, event: ev.Event) -> bool:
        if isinstance(event, ev.StageStarted):
            self.stage = event.stage
            return self.point == "selecting" and event.stage == "selecting"
        if isinstance(event, ev.BatchProgress):
            return STAGE_BATCH.get(self.point) == self.stage
        if isinstance(event, ev.TrialFinished):
            return self.point == "trial" or (self.point == "last" and event.trial + 1 == event.trials)
        return isinstance(event, ev.RunStarted) and self.point == "started"

    def __call__(self, event: ev.Event | None = None) -> None:
        if self.done or (event is not None and not self.matches(event)):
            return
        self.done = True
        for action in self.actions:
            act(action)


def act(action: str) -> None:
    if action.startswith("FILL:"):
        fill(Path(action[len("FILL:"):]))
    elif action == "LOCK":
        hold_lock()
    elif action.startswith("WAIT:"):
        marker, deadline = Path(action[len("WAIT:"):]), time.monotonic() + 300
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    elif "+" in action:
        name, delay = action.split("+")
        threading.Timer(float(delay), os.kill, (os.getpid(), getattr(signal, f"SIG{name}"))).start()
    else:
        os.kill(os.getpid(), getattr(signal, f"SIG{action}"))


def fill(folder: Path) -> None:
    """Write zeros to FOLDER/filler until the file system has no byte left."""
    chunk = b"\0" * (1 << 20)
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def hold_lock() -> None:
    from engine.store.tracking import resolve_store

    db = resolve_store(None, os.getcwd()).uri[len("sqlite:///"):]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, db], stdout=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # not the run's: a reader of
                              start_new_session=True)  # the run's output must see it end with the run
    Path("lock-holder.pid").write_text(str(holder.pid))
    assert holder.stdout.readline().strip() == "locked"


def main(argv: list[str]) -> None:
    point, actions, rest = argv[0], argv[1].split(","), argv[argv.index("--") + 1:]
    stop = Stop(point, actions)
    from engine.cli import main as cli
    from engine.cli.common import ProgressBars
    from engine.store.runlock import RunLock

    drawn = ProgressBars.__call__

    def call(self, event):
        drawn(self, event)
        stop(event)

    ProgressBars.__call__ = call
    if point == "lock":
        acquire = RunLock.acquire

        def locked(self):
            stop()
            return acquire(self)

        RunLock.acquire = locked
    cli.main(args=rest, prog_name="prunelab")


if __name__ == "__main__":
    main(sys.argv[1:])


# ---------------------------------------------------------------- what the fault tests share
REPO = Path(__file__).resolve().parents[2]


def small(shared_data, **extra):
    """Three trials (full data, random and loss at keep 0.5, one seed: a surrogate, a scoring pass, a selection)
    on 500 real MNIST digits, batches of 50: seconds on a CPU, and every stage a stop point names."""
    from tests.builders import tiny_run

    return tiny_run(shared_data, train_size=500, test_size=200, name="faults", **{
        "train.batch_size": 50, "surrogate.batch_size": 50, "sweep.methods": ["random", "loss"],
        "sweep.keep_ratios": [0.5], "sweep.seeds": [0], **extra})


def stopped(cwd: Path, point: str, actions: str, args: list[str], timeout: float = 240,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`prunelab ARGS` in a process of its own (in cwd), stopped at POINT by ACTIONS (see the module's doc).

    SIGINT goes back to its default in the child: a suite started in the background (`cmd &` in a script) inherits
    SIGINT ignored, and a run then rightly ignores Ctrl-C (as under nohup), which is not what these cases test."""
    return subprocess.run([sys.executable, "-m", "tests.faults.stops", point, actions, "--", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def one_line(stderr: str, *words: str) -> str:
    """The contract for every fault: one line on stderr, no traceback, naming what it must."""
    lines = message_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def children_by_key(track, parent: str) -> dict[str, list[str]]:
    """Each trial key of a run with the statuses of its children, oldest first."""
    from engine.names import TRIAL_KEY

    out: dict[str, list[str]] = {}
    for child in reversed(track.children(parent)):
        out.setdefault(child.data.tags[TRIAL_KEY], []).append(child.info.status)
    return out


def progress_statuses(track, parent: str) -> list[str]:
    from engine.store.progress import read_events

    return [e.status for e in read_events(track.store.progress_file(parent)) if isinstance(e, ev.RunStatus)]
