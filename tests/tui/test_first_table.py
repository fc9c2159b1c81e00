"""Item 8: the first runs table waits for nothing heavy; it reads MLflow's SQLite file itself, and reads it right."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from tui_helpers import TINY

from engine.store.events import RunStarted

REPO = Path(__file__).resolve().parents[2]

# the real app on a real store; the warm-up is switched off, so MLflow loads only if the run list needs it
FIRST_TABLE = """
import asyncio, json, sys
from tui.app import PrunelabApp
from tui.backend import Backend
from tui.widgets.run_table import RunTable

Backend.warm_up = lambda self: None

async def main():
    app = PrunelabApp(sys.argv[1])
    async with app.run_test(size=(80, 24)) as pilot:
        while not app.screen.query_one(RunTable).runs:
            await pilot.pause(0.05)
        heavy = [m for m in ("mlflow", "sqlalchemy", "torch", "numpy", "scipy") if m in sys.modules]
        print(json.dumps({"runs": sorted(app.screen.query_one(RunTable).runs), "heavy": heavy}))

asyncio.run(main())
"""


def test_the_first_table_is_drawn_before_mlflow_torch_or_numpy_load(tiny_store):
    out = subprocess.run([sys.executable, "-c", FIRST_TABLE, tiny_store.uri], cwd=tiny_store.workdir, timeout=120, check=False,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    shown = json.loads(out.stdout.strip().splitlines()[-1])
    assert shown == {"runs": sorted([tiny_store.run_id, tiny_store.other_id]), "heavy": []}


def test_the_sqlite_list_is_mlflows_list(tiny_store, tmp_path):
    """Field by field, on a copy of the tiny store plus a deleted run, a live run and one whose process died."""
    from engine.api import load_config
    from engine.runner.runner import create_parent_run
    from engine.store.runs import list_runs
    from engine.store.sqlite_runs import list_runs_sqlite
    from engine.store.tracking import tracker

    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    with sqlite3.connect(tiny_store.uri.removeprefix("sqlite:///")) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    uri = f"sqlite:///{db}"
    track = tracker(uri, str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ids = {}
    for name, pid in (("live", os.getpid()), ("dead", dead.pid), ("deleted", os.getpid())):
        ids[name] = create_parent_run(load_config("quick", TINY + [f"name={name}"]), uri)
        track.store.progress_file(ids[name]).parent.mkdir(parents=True, exist_ok=True)
        track.store.progress_file(ids[name]).write_text(RunStarted(
            run_id=ids[name], experiment=name, kind="prune", trials=7, pid=pid, host=socket.gethostname()).to_json()
            + "\n")
    track.client.delete_run(ids["deleted"])

    quick = list_runs_sqlite(track.store)
    assert track.get_run(ids["dead"]).info.status == "RUNNING"  # shown KILLED, but left for MLflow to mark
    assert quick == list_runs(track)  # which marks it
    assert [r.run_id for r in quick] == [ids["dead"], ids["live"], tiny_store.other_id, tiny_store.run_id]
    by_id = {r.run_id: r for r in quick}
    assert (by_id[ids["dead"]].status, by_id[ids["live"]].status, by_id[ids["live"]].trials) == ("KILLED", "RUNNING", 7)
    finished = by_id[tiny_store.run_id]
    assert finished.trials_done == finished.trials == 3 and None not in (finished.full_accuracy, finished.best_pruned)
    assert list_runs_sqlite(type(track.store)("sqlite:///" + str(tmp_path / "none.db"), tmp_path, None)) == []
