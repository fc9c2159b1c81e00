"""The parent-run list read straight from MLflow's SQLite file, without importing MLflow.

Why: importing MLflow and opening its store take about 12 s on a busy 2-core
machine (load average 6.5), and the TUI's first runs table needs nothing else
from it. This gives what `runs.list_runs` gives (the tests compare the two field
by field), read with the standard library from the MLflow tables `experiments`,
`runs`, `tags` and `latest_metrics`; beyond 5000 trials, it counts every
finished trial, where MLflow's search stops at 5000. Two differences: a run whose
process died reads as it ended (`runs.ended_as`) but is not marked so in the store
(the next `list_runs` through MLflow does that), and any SQLite error (another
schema, a file it cannot open read-only) returns None,
so that the caller asks MLflow instead.
"""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from .. import names
from .runs import RunInfo, ended_as, progress_in, run_info

if TYPE_CHECKING:
    from .tracking import Store

METRICS = ("trials", "best_test_accuracy", names.ACTIVE_SECONDS, names.FULL_ACCURACY, names.BEST_PRUNED)
TAGS = (names.KIND, names.DATASET, names.MODEL, names.PID, names.HOST, names.PID_START)
MAX_RUNS = 5000  # as Tracker.search asks MLflow for


def list_runs_sqlite(store: Store) -> list[RunInfo] | None:
    """Parent runs, newest first (MLflow's order: start time, then run id), or None if the file cannot be read."""
    db = Path(store.uri[len("sqlite:///"):])
    if not db.exists():
        return []  # MLflow creates it on first use: no runs yet
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        with contextlib.closing(con):
            return _read(con, store)
    except sqlite3.Error:
        return None


def _read(con: sqlite3.Connection, store: Store) -> list[RunInfo]:
    experiments = dict(con.execute("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'"))
    active = f"r.lifecycle_stage = 'active' AND r.experiment_id IN ({','.join('?' * len(experiments))})"
    parents = con.execute(
        "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.experiment_id FROM runs r "
        f"JOIN tags role ON role.run_uuid = r.run_uuid AND role.key = ? AND role.value = ? WHERE {active} "
        "ORDER BY r.start_time DESC, r.run_uuid LIMIT ?",
        (names.ROLE, names.PARENT_ROLE, *experiments, MAX_RUNS)).fetchall()
    done = dict(con.execute(  # finished or failed trials per parent, each trial key once (--retry-failed)
        "SELECT parent.value, COUNT(DISTINCT COALESCE(trial.value, r.run_uuid)) FROM runs r "
        "JOIN tags role ON role.run_uuid = r.run_uuid AND role.key = ? AND role.value = ? "
        "JOIN tags parent ON parent.run_uuid = r.run_uuid AND parent.key = ? "
        f"LEFT JOIN tags trial ON trial.run_uuid = r.run_uuid AND trial.key = ? WHERE {active} "
        "AND r.status IN (?, ?) GROUP BY parent.value",
        (names.ROLE, names.TRIAL_ROLE, names.PARENT, names.TRIAL_KEY, *experiments, names.FINISHED, names.FAILED)))
    ids = {row[0] for row in parents}
    tags: dict[str, dict[str, str]] = {}
    for run_id, key, value in con.execute(f"SELECT run_uuid, key, value FROM tags WHERE key IN ({_marks(TAGS)})",
                                          TAGS):
        if run_id in ids:
            tags.setdefault(run_id, {})[key] = value
    metrics: dict[str, dict[str, float]] = {}
    for run_id, key, value, is_nan in con.execute(
            f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE key IN ({_marks(METRICS)})", METRICS):
        if run_id in ids:
            metrics.setdefault(run_id, {})[key] = float("nan") if is_nan else float(value)
    return [_info(row, experiments, tags.get(row[0], {}), metrics.get(row[0], {}), done.get(row[0], 0), store)
            for row in parents]


def _marks(values: tuple) -> str:
    return ",".join("?" * len(values))


def _info(row: tuple, experiments: dict, tags: dict[str, str], metrics: dict[str, float], done: int,
          store: Store) -> RunInfo:
    """One RunInfo, as runs.list_runs builds it (a dead RUNNING run reads KILLED, unwritten)."""
    run_id, name, status, start_ms, end_ms, experiment_id = row
    progress = progress_in(store, run_id) if status == names.RUNNING else None
    ended = ended_as(tags, progress) if status == names.RUNNING else None
    if ended is not None:
        status, progress = ended[0], None
    return run_info(run_id, experiments.get(experiment_id, ""), name, status, tags, metrics, done, start_ms, end_ms,
                    progress)
