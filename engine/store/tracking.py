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
from ..errors import UserError

DEFAULT_STORE_DIR = "mlruns"

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
    return "database is locked" in text or "database is busy" in text or "unable to open database" in text


def _lost_insert_race(exc: BaseException) -> bool:
    """MLflow's `log_inputs` looks a data set up, then inserts it if absent, in two statements. Two runs (Ray
    workers, concurrent runs) logging one new data set to an experiment at once can both miss it; the second
    insert then breaks the (experiment, name, digest) unique key. Logging again finds the first one's row."""
    text = str(exc).lower()
    return "datasets" in text and ("unique constraint" in text or "duplicate key" in text or "duplicate entry" in text)


def retry(fn: Callable[..., T], *args, attempts: int = 12, **kwargs) -> T:
    """Call fn, retrying with jittered backoff while SQLite says the database is locked."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MLflow wraps SQLAlchemy's OperationalError in several types
            if attempt == attempts - 1 or not _locked_error(exc):
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


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
        if not _damaged_error(exc):
            raise
        raise TrackingError(f"the store {db} is damaged ({_first_line(exc)}); restore it from a backup, or move "
                            "it away to start a new store") from None
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
        os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # keeps --json output clean
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars on stderr
        check_reachable(self.store.uri)  # before MLflow loads: seconds saved on the way to the error
        _quiet_mlflow()
        self.read_only = self.store.is_sqlite and _prepare_sqlite(self.store)
        from mlflow.tracking import MlflowClient

        db = Path(self.store.uri[len("sqlite:///"):])
        self.client = MlflowClient(_read_only_copy(db) if self.read_only else self.store.uri)

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
