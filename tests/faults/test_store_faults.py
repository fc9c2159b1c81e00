"""The store under hostile use: odd URIs, servers that answer wrongly or never, damaged or misplaced files, a
read-only store, a full disk. Each is one line on stderr, exit 2, no traceback, and the store as it should be.

Each case runs in its own folder with its own store and timeout. Servers listen on
127.0.0.1 only and live no longer than their test. The read-only and full-disk cases
need mounts (a private mount namespace, `unshare -m`, as root: so it is here and in
CI); elsewhere they fall back (chmod) or skip, and say why.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import engine
from engine.runner.runner import create_parent_run
from engine.store.tracking import HTTP_DEFAULTS, Tracker, tracker
from tests.builders import as_set_args, cli
from tests.faults.stops import REPO, one_line, small


def exit_2(result, *words: str) -> str:
    """A CLI result (in this process): exit 2 through the error handler, one line on stderr naming `words`."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    return one_line(result.stderr, *words)


# ---------------------------------------------------------------- tracking URIs and servers
@contextlib.contextmanager
def server(handler: type | None):
    """A server on a free 127.0.0.1 port for the test's life: an HTTP handler, or (None) one that accepts
    connections and never answers."""
    if handler is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            sock.close()
        return
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class NotFound(http.server.BaseHTTPRequestHandler):
    """A web server that is no MLflow server: 404 and an HTML body for everything."""

    def reply(self):
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Not Found</h1>")

    do_GET = do_POST = do_PATCH = do_DELETE = reply

    def log_message(self, *args):
        pass


@pytest.mark.timeout(60)
@pytest.mark.parametrize("uri, words", [("ftp://127.0.0.1/x", ("ftp://", "sqlite:///", "http")),
                                        ("file:///x", ("file store", "sqlite:///"))])
def test_a_tracking_uri_mlflow_cannot_track_to(bare_tmp, uri, words):
    for command in (["runs"], ["run", "--preset", "quick"], ["show", "abc"]):
        exit_2(cli(["--tracking-uri", uri, *command]), *words)
    assert not (bare_tmp / "mlruns").exists()


@pytest.mark.timeout(60)
def test_a_server_nobody_listens_on_fails_in_seconds(bare_tmp):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    exit_2(cli(["--tracking-uri", f"http://127.0.0.1:{port}", "runs"]), f"cannot reach tracking server http://127.0.0.1:{port}")
    assert time.monotonic() - started < 10


@pytest.mark.timeout(60)
def test_a_server_that_is_no_mlflow_server(bare_tmp):
    with server(NotFound) as url:
        exit_2(cli(["--tracking-uri", url, "runs"]), f"the tracking server {url} answered HTTP 404",
               "/api/2.0/mlflow/", "MLflow tracking server")
        exit_2(cli(["--tracking-uri", url, "run", "--preset", "quick"]), "answered HTTP 404")


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_fails_in_seconds(bare_tmp, monkeypatch):
    """Its port accepts connections (so the TCP check passes) and never answers. With the user's own (short)
    request timeout: one line, in seconds. Unset, prunelab's defaults bound every request (10 s, one retry)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with server(None) as url:
        started = time.monotonic()
        exit_2(cli(["--tracking-uri", url, "runs"]), f"the tracking server {url} did not answer within 1 s")
        assert time.monotonic() - started < 15
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"  # the user's value is kept
        for key in HTTP_DEFAULTS:
            monkeypatch.delenv(key)
        Tracker(url)
        assert {key: os.environ[key] for key in HTTP_DEFAULTS} == HTTP_DEFAULTS
    assert int(HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]) * (1 + int(HTTP_DEFAULTS[
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES"])) <= 30  # a mute server: half a minute at most, not MLflow's many


# ---------------------------------------------------------------- the store's own files
@pytest.mark.timeout(120)
def test_a_folder_where_the_store_file_goes(bare_tmp):
    (bare_tmp / "mlruns" / "mlflow.db").mkdir(parents=True)
    started = time.monotonic()
    exit_2(cli(["runs"]), f"the store {bare_tmp / 'mlruns' / 'mlflow.db'} is a folder", "move it away")
    assert time.monotonic() - started < 30  # not MLflow's 107 s of retries


@pytest.mark.timeout(120)
def test_a_store_file_that_is_not_sqlite(bare_tmp):
    (bare_tmp / "mlruns").mkdir()
    (bare_tmp / "mlruns" / "mlflow.db").write_bytes(b"not sqlite at all " * 300)
    exit_2(cli(["runs"]), f"the store {bare_tmp / 'mlruns' / 'mlflow.db'} is damaged", "not a database", "backup")


def _corrupt(db: Path, pages: list[int], page_size: int) -> None:
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size + 100)
            f.write(os.urandom(page_size - 200))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["everywhere", "tags table"])
def test_bytes_scribbled_over_the_store(in_tmp, shared_data, where):
    """Over every page but the first (found when the store opens), or only over the pages of one table (found by
    the first query that reads it, after the store opened fine): one line naming the file, for reads and runs."""
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    db = in_tmp / "mlruns" / "mlflow.db"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = con.execute("PRAGMA page_size").fetchone()[0]
        count = con.execute("PRAGMA page_count").fetchone()[0]
        table = [p for (p,) in con.execute("SELECT pageno FROM dbstat WHERE name = 'tags'")]
    _corrupt(db, list(range(2, count + 1)) if where == "everywhere" else table, size)
    tracker.cache_clear()  # a new process would open it afresh
    commands = [["runs"], ["show", parent], ["run", "--resume", parent]]
    if where == "everywhere":  # (a new run's inserts need not read the damaged table)
        commands.append(["run", "--preset", "quick", *as_set_args(small(shared_data))])
    for command in commands:
        exit_2(cli(command), f"the store {db} is damaged", "backup")


def _artifact_file(track, run_id: str, name: str) -> Path:
    from urllib.parse import urlsplit

    return Path(urlsplit(track.get_run(run_id).info.artifact_uri).path) / name


@pytest.mark.timeout(120)
def test_a_config_artifact_that_is_not_toml_on_resume(in_tmp, shared_data):
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    track = tracker(None, str(in_tmp))
    _artifact_file(track, parent, "config.toml").write_text("name = [unclosed\n")
    exit_2(cli(["run", "--resume", parent]), f"run {parent}'s config.toml artifact is not valid TOML", "start it again")
    exit_2(cli(["run", "--detach", "--resume", parent]), "is not valid TOML")
    assert track.get_run(parent).info.status == "RUNNING"  # as it was: its creator (this process) lives
    assert track.children(parent) == [] and not track.store.progress_file(parent).exists()


@pytest.mark.timeout(120)
def test_a_folder_where_a_runs_lock_file_goes(in_tmp, shared_data):
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    lock = in_tmp / "mlruns" / "progress" / f"{parent}.lock"
    lock.mkdir(parents=True)
    for command in (["run", "--resume", parent], ["run", "--detach", "--resume", parent]):
        exit_2(cli(command), f"{lock} is a folder", "move it away")
    assert tracker(None, str(in_tmp)).children(parent) == []


@pytest.mark.timeout(120)
def test_a_file_where_the_progress_folder_goes(in_tmp, shared_data):
    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    folder = in_tmp / "mlruns" / "progress"
    folder.rmdir()  # made, empty, when the run was created
    folder.write_text("not a folder\n")
    args = ["run", "--preset", "quick", *as_set_args(small(shared_data))]
    for command in (args, [*args, "--detach"], ["run", "--resume", parent]):
        exit_2(cli(command), f"{folder} is a file, where prunelab keeps its progress files", "move it away")
    listed = cli(["runs", "--json"])  # reading still works, and no run was left behind by the refused ones
    assert listed.exit_code == 0 and [r["run_id"] for r in json.loads(listed.stdout)] == [parent]


# ---------------------------------------------------------------- a read-only store
READ_ONLY = """
import json, sys
from click.testing import CliRunner
from engine.cli import main
out = []
for args in (["runs", "--json"], ["show", sys.argv[1], "--json"], ["run", "--resume", sys.argv[1]],
             ["run", "--resume", sys.argv[1], "--detach"], ["cache", "clear", "--yes"],
             ["run", "--preset", "quick", "--set", "train.epochs=0"]):
    r = CliRunner().invoke(main, args)
    out.append({"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "exc": repr(r.exception)})
print(json.dumps(out))
"""


def _namespace_ok() -> str:
    """Why mounts cannot be made here, or "" when a private mount namespace with tmpfs works."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "needs root and unshare(1) for a private mount namespace"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt"], capture_output=True, text=True,
                           check=False)
    return "" if probe.returncode == 0 else f"mounts are refused here ({probe.stderr.strip()[:200]})"


@pytest.mark.timeout(240)
def test_a_read_only_store_reads_and_refuses_every_write_in_one_line(in_tmp, shared_data):
    """Mounted read-only (root ignores file modes: a private read-only bind mount), or else chmod a-w."""
    import numpy as np

    from engine.store.cache import Cache

    parent = create_parent_run(engine.load_config("quick", small(shared_data)))
    track = tracker(None, str(in_tmp))
    track.end_run(parent, "FINISHED")
    Cache(track.store.cache_dir).save_arrays("scores", "ab" * 8, {"loss": np.ones(3)})
    store = in_tmp / "mlruns"
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    check = [sys.executable, "-c", READ_ONLY, parent]
    if not _namespace_ok():
        script = f'mount --bind "{store}" "{store}" && mount -o remount,bind,ro "{store}" && exec "$@"'
        check = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *check]
    else:
        subprocess.run(["chmod", "-R", "a-w", str(store)], check=True)
    try:
        proc = subprocess.run(check, cwd=in_tmp, capture_output=True, text=True, timeout=200, check=False,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(store)], check=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, shown, resumed, detached, cleared, started = json.loads(proc.stdout.splitlines()[-1])
    assert runs["code"] == 0 and [r["run_id"] for r in json.loads(runs["stdout"])] == [parent], runs
    assert shown["code"] == 0 and json.loads(shown["stdout"])["run_id"] == parent, shown
    for write, words in ((resumed, f"the store in {store} is read-only"), (detached, "read-only"),
                         (cleared, "read-only"), (started, f"the store in {store} is read-only")):
        assert write["code"] == 2 and write["exc"].startswith("SystemExit"), write
        one_line(write["stderr"], words)
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == before  # nothing written


# ---------------------------------------------------------------- a full disk
FULL = {  # which folder is a small tmpfs, filled to the last byte when the run's first trial has finished
    "store": "mlruns",  # the SQLite file alone: progress, artifacts and cache are bind-mounted from the disk
    "progress": "mlruns/progress",
    "artifacts": "mlruns/artifacts",
}

AFTER_FULL = """
import json
from click.testing import CliRunner
from engine.cli import main
from engine.store.tracking import tracker
from tests.faults.stops import children_by_key, progress_statuses
runs = CliRunner().invoke(main, ["runs", "--json"])
(row,) = json.loads(runs.stdout)
track = tracker()
run_id = row["run_id"]
out = {"runs": row, "progress": progress_statuses(track, run_id)}
resumed = CliRunner().invoke(main, ["run", "--resume", run_id, "--json"])
out.update(resumed=resumed.exit_code, resumed_stderr=resumed.stderr, status=track.get_run(run_id).info.status,
           keys=children_by_key(track, run_id))
print(json.dumps(out))
"""


def _full_disk_script(case: str, run_args: list[str]) -> str:
    full = FULL[case]
    if case == "store":
        mounts = """mv mlruns mlruns-disk && mkdir mlruns && mount -t tmpfs -o size=4m tmpfs mlruns
            cp mlruns-disk/mlflow.db mlruns/
            for d in progress artifacts cache; do mkdir -p mlruns-disk/$d mlruns/$d
                mount --bind mlruns-disk/$d mlruns/$d; done"""
    else:
        mounts = f"mkdir -p {full} && mount -t tmpfs -o size=2m tmpfs {full}"
    run = " ".join(f"'{a}'" for a in run_args)
    return textwrap.dedent(f"""\
        set -e
        {mounts}
        set +e
        "$PY" -m tests.faults.stops trial FILL:{full} -- {run} > out/run.out 2> out/run.err
        echo $? > out/run.rc
        df -k {full} | tail -1 > out/df
        rm -f {full}/filler
        "$PY" -c "$AFTER" > out/after.json 2> out/after.err
        """)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(FULL))
def test_a_full_disk_ends_the_run_failed_in_one_line_and_a_resume_finishes_it(in_tmp, shared_data, case):
    """The disk under the store, the progress files or the artifacts fills up while the run goes on: the run ends
    FAILED (in the store, or its progress file when the store itself is full: `runs` reads it back), one line naming
    the full folder, exit 2. With space again, `--resume` finishes it, each trial once."""
    why = _namespace_ok()
    if why:
        pytest.skip(f"a full disk is a small tmpfs mounted in a private namespace: {why}")
    (in_tmp / "out").mkdir()
    run_args = ["run", "--preset", "quick", *as_set_args(small(shared_data))]
    script = in_tmp / "full.sh"
    script.write_text(_full_disk_script(case, run_args))
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", str(script)], cwd=in_tmp,
                          capture_output=True, text=True, timeout=280, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PY": sys.executable, "AFTER": AFTER_FULL})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = in_tmp / "out"
    assert out.joinpath("df").read_text().split()[3] == "0"  # it was full
    err = out.joinpath("run.err").read_text()
    assert out.joinpath("run.rc").read_text().strip() == "2", err[-3000:]
    one_line(err, f"no space left in {in_tmp / FULL[case]}", "resume")
    after = json.loads(out.joinpath("after.json").read_text() or "{}") or pytest.fail(
        out.joinpath("after.err").read_text()[-3000:])
    assert after["runs"]["status"] == "FAILED", after
    if case != "progress":
        assert after["progress"][-1] == "FAILED", after
    assert after["resumed"] == 0, after["resumed_stderr"]
    assert after["status"] == "FINISHED"
    assert len(after["keys"]) == 3 and all(s.count("FINISHED") == 1 for s in after["keys"].values()), after["keys"]
