"""MLflow: where the store is, parent and child runs, artifacts, and retries.

The default store is SQLite, `sqlite:///mlruns/mlflow.db` under the working
directory, with artifacts in `mlruns/artifacts/`. `--tracking-uri` (or
MLFLOW_TRACKING_URI) picks another store or a tracking server. SQLite is shared
by concurrent runs: WAL mode, a busy timeout, a retry on "database is locked", and
a second try for a data set input that another run inserted at the same moment.

Conventions every reader (CLI, TUI, scripts) relies on:
- one MLflow experiment per config `name`; one parent run per experiment run,
  tagged `prunelab.role=parent`, `prunelab.kind`, `prunelab.dataset`, `prunelab.model`;
- one child run per trial, tagged `mlflow.parentRunId`, `prunelab.role=trial`,
  `prunelab.trial_key`, and `method`, `strategy`, `ratio`, `seed`, `epoch`;
- per-epoch metrics `train_loss`, `test_loss`, `test_accuracy` (step = epoch);
- the parent's artifacts: `config.toml`, `summary.csv`, `summary.json`, `plots/*.png`, `scores/*.npy`;
- the data set as every run's input (`log_dataset_input`): name, digest, source, and the kept size as an input tag.

MLflow (and numpy) are imported inside the methods that use them: MLflow takes
seconds to load, and run lists, progress files and `config check` must not wait
for it; the TUI resolves its store before the first frame.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import functools
import json
import os
import random
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import names
from ..cancel import Cancelled
from ..cancel import current as current_cancel
from ..errors import UserError

DEFAULT_STORE_DIR = "mlruns"
# URI schemes MLflow can track to (a database URI may name its driver: postgresql+psycopg2://)
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
LOCK_PATIENCE_S = 120.0  # how long a write waits for a store another process holds locked
BUSY_TIMEOUT_MS = 1000  # SQLite's own wait per statement (MLflow's is 20 s); the retry loop waits the rest
# A tracking server's requests: MLflow's defaults (120 s, 7 retries with a doubling backoff) make a server that
# accepts connections and never answers hang a command for many minutes. Set only where the user has not.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}

T = TypeVar("T")


class TrackingError(UserError):
    """The store cannot be used as asked: a bad URI, a run id it does not hold."""


@dataclass(frozen=True)
class Store:
    """A tracking URI and the local folder beside it (progress files, cache)."""

    uri: str
    root: Path  # folder for progress/ and cache/
    artifact_root: str | None  # artifact location for new experiments, None = the server's default

    @property
    def progress_dir(self) -> Path:
        return self.root / "progress"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def progress_file(self, run_id: str) -> Path:
        return self.progress_dir / f"{run_id}.jsonl"

    @property
    def is_sqlite(self) -> bool:
        return self.uri.startswith("sqlite:///")


def resolve_store(tracking_uri: str | None = None, workdir: str | Path | None = None) -> Store:
    """The store for a URI, MLFLOW_TRACKING_URI, or the default SQLite file in ./mlruns."""
    workdir = Path(workdir or os.getcwd()).resolve()
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        root = workdir / DEFAULT_STORE_DIR
        return Store(f"sqlite:///{root / 'mlflow.db'}", root, (root / "artifacts").as_uri())
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        db = db if db.is_absolute() else workdir / db
        return Store(f"sqlite:///{db}", db.parent, (db.parent / "artifacts").as_uri())
    if "://" not in uri or uri.startswith("file:"):
        raise TrackingError(f"tracking URI {uri!r} is a file store, which MLflow 3 refuses; "
                            "use sqlite:///PATH/mlflow.db or http://HOST:PORT")
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in TRACKING_SCHEMES:
        raise TrackingError(f"tracking URI {uri!r}: MLflow cannot track to {scheme}://; use sqlite:///PATH/mlflow.db, "
                            "http(s)://HOST:PORT or a database URI (postgresql://, mysql://)")
    return Store(uri, workdir / DEFAULT_STORE_DIR, None)


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _locked_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def _lost_insert_race(exc: BaseException) -> bool:
    """MLflow's `log_inputs` looks a data set up, then inserts it if absent, in two statements. Two runs (Ray
    workers, concurrent runs) logging one new data set to an experiment at once can both miss it; the second
    insert then breaks the (experiment, name, digest) unique key. Logging again finds the first one's row."""
    text = str(exc).lower()
    return "datasets" in text and ("unique constraint" in text or "duplicate key" in text or "duplicate entry" in text)


def retry(fn: Callable[..., T], *args, patience: float | None = None, **kwargs) -> T:
    """Call fn, retrying with jittered backoff while SQLite says the database is locked, for up to `patience` s
    (LOCK_PATIENCE_S).

    The wait polls the cancel token of the run under way (engine.cancel.current): once
    the run is cancelled, a write that finds the store locked raises Cancelled instead of
    waiting on, so a SIGTERM never waits for another process to let go of the store.
    """
    deadline = time.monotonic() + (LOCK_PATIENCE_S if patience is None else patience)
    delay = 0.05
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MLflow wraps SQLAlchemy's OperationalError in several types
            if not _locked_error(exc):
                raise
            token = current_cancel()
            if token is not None and token.cancelled:
                raise Cancelled(token.reason) from None
            if time.monotonic() >= deadline:
                raise
            pause = delay * (1 + random.random())
            if token is not None:
                token.wait(pause)
            else:
                time.sleep(pause)
            delay = min(delay * 2, 1.0)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or during (MLflow wraps SQLAlchemy's, which wraps sqlite3's)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _no_space(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(cause).lower()
        if "database or disk is full" in text or "no space left" in text or "quota exceeded" in text:
            return True
    return False


def _read_only_fs(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno == errno.EROFS:
            return True
        if "readonly database" in str(cause).lower() or "read-only file system" in str(cause).lower():
            return True
    return False


def full_folder(folders: Iterable[str | Path | None], needed: int = 1 << 16) -> Path | None:
    """The first of `folders` (or the nearest folder above it that exists) on a file system with less than
    `needed` bytes free; None when each has room."""
    for folder in folders:
        if not folder:
            continue
        path = Path(folder)
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            stat = os.statvfs(path)
        except OSError:
            continue
        if stat.f_bavail * stat.f_frsize < needed:
            return path
    return None


def _local_path(uri: str | None) -> Path | None:
    if not uri:
        return None
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(uri).path))
    return Path(uri) if "://" not in uri else None


def no_space_error(folder: str | Path) -> TrackingError:
    return TrackingError(f"no space left in {folder}; free some space there, then resume the run "
                         "(`prunelab run --resume RUN_ID`)")


def store_error(exc: BaseException, store: Store) -> TrackingError | None:
    """The one-line error for a store that cannot be used (full, read-only, damaged, locked, a server that does
    not answer or is no MLflow server); None for anything else (a bug, a run that is not there: the caller's)."""
    if isinstance(exc, TrackingError):
        return exc
    db = Path(store.uri[len("sqlite:///"):]) if store.is_sqlite else None
    full = _full_error(exc, store, db)
    if full is not None:
        return full
    if _read_only_fs(exc):
        return TrackingError(f"the store in {store.root} is read-only; run from a folder you can write, or pass "
                             "--tracking-uri to a writable store")
    return _sqlite_error(exc, db) if db is not None else _server_error(exc, store.uri)


def _full_error(exc: BaseException, store: Store, db: Path | None) -> TrackingError | None:
    """No space left: in the folder the failed write names, else the first of the store's folders that is full
    (SQLite says "disk I/O error" when its WAL cannot grow on a full file system)."""
    folders = [db.parent if db else None, store.progress_dir, _local_path(store.artifact_root), store.root]
    if not (_no_space(exc) or ("disk i/o error" in str(exc).lower() and full_folder(folders))):
        return None
    for cause in _causes(exc):
        name = getattr(cause, "filename", None)
        named = full_folder([Path(name).parent]) if isinstance(name, str) else None
        if named is not None:
            return no_space_error(named)
    return no_space_error(full_folder(folders) or store.root)


def _sqlite_error(exc: BaseException, db: Path) -> TrackingError | None:
    text = str(exc).lower()
    if _damaged_error(exc):
        return TrackingError(f"the store {db} is damaged ({_first_line(exc)}); restore it from a backup, or move it "
                             "away to start a new store")
    if _locked_error(exc):
        return TrackingError(f"the store {db} stayed locked by another process for {LOCK_PATIENCE_S:.0f} s; "
                             "stop what holds it (another run's process, an sqlite3 shell) and resume the run")
    if "disk i/o error" in text:
        return TrackingError(f"the store {db} cannot be written (disk I/O error); check the disk, then resume the run")
    if "unable to open database" in text:
        return TrackingError(f"cannot open the store {db} ({_first_line(exc)}); check that it is a file you can "
                             "read and write, or pass --tracking-uri")
    return None


def _server_error(exc: BaseException, uri: str) -> TrackingError | None:
    """A tracking server that does not answer in time, cannot be reached, or answers what no MLflow server
    would (an HTTP error whose body is not MLflow's JSON: a web server or proxy at that address)."""
    import re

    text = str(exc)
    if not text.startswith("API request to "):
        return None
    answered = re.match(r"API request to endpoint (\S+) failed with error code (\d+)", text)
    if answered:
        return TrackingError(f"the tracking server {uri} answered HTTP {answered.group(2)} to {answered.group(1)}; "
                             "is it an MLflow tracking server (`mlflow server`)? check --tracking-uri")
    if "timed out" in text.lower() or "timeout" in text.lower():
        timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"])
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
        return TrackingError(f"the tracking server {uri} did not answer within {timeout} s ({retries} retries); check "
                             "the server, or raise MLFLOW_HTTP_REQUEST_TIMEOUT")
    reason = re.search(r"\(Caused by (\w+)", text)
    return TrackingError(f"cannot reach tracking server {uri} ({reason.group(1) if reason else 'no answer'}); start "
                         "it, or fix --tracking-uri / MLFLOW_TRACKING_URI")


class GuardedClient:
    """An MlflowClient whose every method retries while SQLite says locked (`retry`: bounded, and given up on a
    cancel) and turns a store that cannot be used into one TrackingError line (`store_error`).

    Why a wrapper and not a try in each Tracker method: the readers (runs.py, artifacts.py, the kinds) call the
    client too, and each of them must fail in one line on a full, damaged or mute store.
    """

    def __init__(self, client: Any, store: Store):
        self._client = client
        self._store = store

    @property
    def raw(self) -> Any:
        """The MlflowClient itself."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return retry(attr, *args, **kwargs)
            except Exception as exc:  # whatever MLflow, SQLAlchemy, sqlite3 or requests raised: sorted below
                error = store_error(exc, self._store)
                if error is None or error is exc:
                    raise
                raise error from exc

        return call


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """An http(s) tracking server that does not answer fails in seconds, not after MLflow's minutes of retries."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=timeout).close()
    except OSError as exc:
        raise TrackingError(f"cannot reach tracking server {uri} ({exc.strerror or exc}); start it, or fix "
                            "--tracking-uri / MLFLOW_TRACKING_URI") from None


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (database set-up, migrations) are noise on a CLI's stderr; its warnings stay."""
    import logging

    import mlflow  # noqa: F401  (configures its logger first, which this then overrides)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # MLflow logs every SQLAlchemy error with its traceback before it raises it again: a store locked by another
    # run would print one every second. The error itself still reaches the caller (retried, or one line).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def _short_busy_waits(client: Any) -> None:
    """Make SQLite wait at most BUSY_TIMEOUT_MS per statement on a locked store, where MLflow asks for 20 s.

    Why: a signal handler runs only between Python bytecodes, so a cancel cannot stop a
    write that waits inside SQLite; in short slices, the waiting happens in `retry`,
    which polls the run's cancel token. MLflow sets `PRAGMA busy_timeout` at the start
    of each session, so the statement is rewritten on its way to the driver. If MLflow
    changes that, waits are 20 s slices again: slower to cancel, still bounded.
    """
    try:
        from sqlalchemy import event

        engine = client._tracking_client.store.engine  # MLflow's SqlAlchemyStore: one engine per database URI
    except (AttributeError, ImportError):
        return
    if getattr(engine, "_prunelab_short_busy", False):
        return

    def shorter(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("PRAGMA BUSY_TIMEOUT"):
            statement = f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
        return statement, parameters

    event.listen(engine, "before_cursor_execute", shorter, retval=True)
    engine._prunelab_short_busy = True


def read_only_folder(db: Path) -> bool:
    """A store whose file exists in a folder this process cannot write (read-only mount, another's files)."""
    return db.exists() and not (os.access(db.parent, os.W_OK) and os.access(db, os.W_OK))


def _damaged_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "file is encrypted" in text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix("(sqlite3.DatabaseError) ")


def _read_only_copy(db: Path) -> str:
    """A private copy of a store this process cannot write, to read from.

    SQLite cannot open a WAL file read-only without writing its -shm file beside it,
    and MLflow accepts no SQLite URI options; a copy (with its -wal) reads the same runs.
    Artifacts stay where they are: their locations in the store are absolute paths.
    """
    folder = Path(tempfile.mkdtemp(prefix="prunelab-readonly-"))
    atexit.register(shutil.rmtree, folder, True)
    for suffix in ("", "-wal"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copyfile(source, folder / f"mlflow.db{suffix}")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _prepare_sqlite(store: Store) -> bool:
    """Create the store once (under a file lock, as MLflow migrates a new file) and set WAL mode.

    Returns whether the store is read-only: then it is opened as it is, for reads only.
    """
    db = Path(store.uri[len("sqlite:///"):])
    if db.exists() and not db.is_file():  # SQLite would report "unable to open" and MLflow retry for minutes
        raise TrackingError(f"the store {db} is a folder, not an MLflow SQLite file; move it away, or pass "
                            "--tracking-uri")
    if read_only_folder(db):
        return True
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = _file_lock(db.parent / ".init.lock")
        lock.__enter__()
    except OSError as exc:
        raise TrackingError(f"cannot create the store in {db.parent} ({exc.strerror or exc}); run from a folder "
                            "you can write, or pass --tracking-uri") from None
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient(store.uri).search_experiments(max_results=1)  # creates and migrates the schema
        with sqlite3.connect(db, timeout=30) as con:
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
    except Exception as exc:  # SQLAlchemy's DatabaseError, wrapped by MLflow in several types
        error = store_error(exc, store)  # damaged, full, ...: one line
        if error is None:
            raise
        raise error from None
    finally:
        lock.__exit__(None, None, None)
    return False


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """A Tracker method that writes to the store: on a read-only store it fails first, naming the folder."""
    @functools.wraps(method)
    def guarded(self: Tracker, *args: Any, **kwargs: Any) -> T:
        self.require_writable()
        return method(self, *args, **kwargs)

    return guarded


class Tracker:
    """A thin, retrying layer over MlflowClient with prunelab's conventions."""

    def __init__(self, tracking_uri: str | None = None, workdir: str | Path | None = None):
        self.store = resolve_store(tracking_uri, workdir)
        for key, value in HTTP_DEFAULTS.items():  # a server that never answers fails in seconds, not minutes
            os.environ.setdefault(key, value)
        os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # keeps --json output clean
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars on stderr
        check_reachable(self.store.uri)  # before MLflow loads: seconds saved on the way to the error
        _quiet_mlflow()
        self.read_only = self.store.is_sqlite and _prepare_sqlite(self.store)
        from mlflow.tracking import MlflowClient

        db = Path(self.store.uri[len("sqlite:///"):])
        try:
            client = MlflowClient(_read_only_copy(db) if self.read_only else self.store.uri)
        except Exception as exc:  # MLflow opens the store here: a damaged or full one is one line
            error = store_error(exc, self.store)
            if error is None:
                raise
            raise error from None
        if self.store.is_sqlite:
            _short_busy_waits(client)
        self.client = GuardedClient(client, self.store)

    def require_writable(self) -> None:
        """Fail before any work, with one line naming the folder, when this store can only be read."""
        if self.read_only:
            raise TrackingError(f"the store in {self.store.root} is read-only; run from a folder you can write, "
                                "or pass --tracking-uri to a writable store")

    # ------------------------------------------------------------ experiments and runs
    def experiment_id(self, name: str) -> str:
        exp = retry(self.client.get_experiment_by_name, name)
        if exp is not None:
            return exp.experiment_id
        try:
            kwargs = {"artifact_location": f"{self.store.artifact_root}/{_slug(name)}"} if self.store.artifact_root else {}
            return retry(self.client.create_experiment, name, **kwargs)
        except Exception:  # another process created it first
            exp = retry(self.client.get_experiment_by_name, name)
            if exp is None:
                raise
            return exp.experiment_id

    @_writes
    def start_run(self, experiment: str, run_name: str, tags: dict[str, Any], parent_id: str | None = None) -> str:
        tags = {k: str(v) for k, v in tags.items()}
        if parent_id:
            tags[names.PARENT] = parent_id
        run = retry(self.client.create_run, self.experiment_id(experiment), tags=tags, run_name=run_name)
        return run.info.run_id

    @_writes
    def end_run(self, run_id: str, status: str) -> None:
        retry(self.client.set_terminated, run_id, status)

    @_writes
    def set_status(self, run_id: str, status: str) -> None:
        retry(self.client.update_run, run_id, status=status)

    def get_run(self, run_id: str):
        try:
            return retry(self.client.get_run, run_id)
        except Exception as exc:
            text = str(exc)
            if ("not found" in text.lower() or "RESOURCE_DOES_NOT_EXIST" in text
                    or getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE"):  # an id with quotes or spaces
                raise TrackingError(f"run {run_id!r} not found in {self.store.uri}; list runs with `prunelab runs`") from None
            raise

    def resolve(self, run_id: str) -> str:
        """The full id of a run given by any unique prefix (the TUI and `runs` show 8 characters).

        An ambiguous prefix fails listing the matches; an unknown one fails as get_run does.
        """
        run_id = run_id.strip()
        if len(run_id) >= 32 or not run_id or any(c not in "0123456789abcdef" for c in run_id.lower()):
            return run_id
        matches = [r.info.run_id for r in self.search() if r.info.run_id.startswith(run_id.lower())]
        if len(matches) > 1:
            raise TrackingError(f"run id prefix {run_id!r} matches {len(matches)} runs ({', '.join(matches[:5])}"
                                f"{', ...' if len(matches) > 5 else ''}); give more characters")
        return matches[0] if matches else run_id

    def children(self, parent_id: str) -> list:
        run = self.get_run(parent_id)
        return self.search(experiment_ids=[run.info.experiment_id], filter_string=f"tags.`{names.PARENT}` = '{parent_id}'")

    def search(self, experiment_ids: list[str] | None = None, filter_string: str = "", max_results: int = 5000) -> list:
        if experiment_ids is None:
            experiment_ids = [e.experiment_id for e in retry(self.client.search_experiments)]
        if not experiment_ids:
            return []
        return list(retry(self.client.search_runs, experiment_ids, filter_string=filter_string,
                          max_results=max_results, order_by=["attributes.start_time DESC"]))

    # ------------------------------------------------------------ logging
    @_writes
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            retry(self.client.log_batch, run_id, params=items[i:i + 100])

    @_writes
    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if items:
            retry(self.client.log_batch, run_id, metrics=items)

    @_writes
    def log_history(self, run_id: str, history: Iterable[dict[str, float]]) -> None:
        """Per-epoch metrics, each at step = epoch."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(row["epoch"])) for row in history for k, v in row.items()
                 if k != "epoch" and v is not None]
        for i in range(0, len(items), 900):
            retry(self.client.log_batch, run_id, metrics=items[i:i + 900])

    @_writes
    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        retry(self.client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    @_writes
    def log_artifact_file(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        retry(self.client.log_artifact, run_id, str(path), artifact_path)

    @_writes
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        retry(self.client.log_text, run_id, text, artifact_file)

    @_writes
    def log_json(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self.log_text(run_id, json.dumps(obj, indent=2, default=_jsonable), artifact_file)

    @_writes
    def log_figure(self, run_id: str, figure, artifact_file: str) -> None:
        retry(self.client.log_figure, run_id, figure, artifact_file)

    @_writes
    def log_numpy(self, run_id: str, array, artifact_file: str) -> None:
        import numpy as np

        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            np.save(path, array)
            self.log_artifact_file(run_id, path, folder or None)

    def download(self, run_id: str, artifact_path: str, dst: str | Path) -> Path | None:
        """Fetch an artifact file or folder into dst; None when the run has no such artifact."""
        from mlflow.exceptions import MlflowException

        try:
            return Path(retry(self.client.download_artifacts, run_id, artifact_path, str(dst)))
        except (MlflowException, OSError):  # no such artifact: MLflow says so in either type, by store
            return None

    def load_text(self, run_id: str, artifact_file: str) -> str | None:
        with tempfile.TemporaryDirectory() as tmp:
            path = self.download(run_id, artifact_file, tmp)
            return path.read_text() if path and path.is_file() else None

    @_writes
    def log_dataset_input(self, run_id: str, dataset, kept: int | None = None, context: str = "train") -> None:
        """Record the data set as the run's input (MLflow's `log_input`), so the UI shows what it trained on.

        MLflow keeps one dataset entity per (experiment, name, digest), so what
        differs per trial, the size of the kept subset, goes in the input's tags
        (`prunelab.kept`, `prunelab.keep_fraction`); the shared profile holds the
        split sizes.
        """
        from mlflow.entities import Dataset as MlflowDataset
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        n_train, n_test = len(dataset.y_train), len(dataset.y_test)
        source_type, source = _dataset_source(dataset)
        profile = {"train_samples": n_train, "test_samples": n_test, "classes": dataset.num_classes,
                   "input_shape": list(dataset.input_shape)}
        entity = MlflowDataset(name=dataset.name, digest=dataset.digest(), source_type=source_type,
                               source=json.dumps(source), schema=_tensor_schema(dataset),
                               profile=json.dumps(profile))
        kept = n_train if kept is None else int(kept)
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, context), InputTag(names.KEPT, str(kept)),
                InputTag(names.KEEP_FRACTION, f"{kept / max(1, n_train):.4g}")]
        inputs = [DatasetInput(entity, tags)]
        try:
            retry(self.client.log_inputs, run_id, datasets=inputs)
        except Exception as exc:
            if not _lost_insert_race(exc):
                raise
            retry(self.client.log_inputs, run_id, datasets=inputs)  # the winner's row is committed: MLflow reuses it


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "experiment"


def _dataset_source(dataset) -> tuple[str, dict[str, str]]:
    """MLflow's (source_type, source) for a data set: a local file or folder when there is one, else code."""
    from ..data.formats import ASSETS

    source = dataset.source
    if source == "package asset":  # the embedded mnist-mini: point at the file itself
        source = str(ASSETS / f"{dataset.name}.npz")
    if source and Path(source).exists():
        return "local", {"uri": str(Path(source).resolve())}
    return "code", {"description": source or dataset.name}


def _tensor_schema(dataset) -> str:
    """MLflow's TensorSpec schema (what `mlflow.data.from_numpy` writes): uint8 images, int64 labels."""
    import numpy as np
    from mlflow.types import Schema, TensorSpec

    features = Schema([TensorSpec(np.dtype("uint8"), (-1, *dataset.input_shape))])
    targets = Schema([TensorSpec(np.dtype("int64"), (-1,))])
    return json.dumps({"mlflow_tensorspec": {"features": features.to_json(), "targets": targets.to_json()}})


def _jsonable(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else str(v)


@functools.lru_cache(maxsize=8)
def tracker(tracking_uri: str | None = None, workdir: str | None = None) -> Tracker:
    """A shared Tracker per (URI, working directory) in this process."""
    return Tracker(tracking_uri, workdir)
