"""Shared fixtures: real data from ../shared/data (read-only) and the embedded set, fresh stores."""
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNELAB_SHARED_DATA", REPO.parent / "shared" / "data"))
# Where the exactness tests put their data and models: "cpu" in CI; scripts/gpu_check.sh sets "cuda".
TEST_DEVICE = os.environ.get("PRUNELAB_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with MNIST/raw/*.gz and cifar10-subset.npz."""
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set PRUNELAB_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cifar_npz(shared_data) -> str:
    return f"npz:{shared_data / 'cifar10-subset.npz'}"


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to n inside, the previous one restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """Greedy selection loops are many small ops: on a shared 2-core box, intra-op threads cost more than they give."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    """One empty, fully migrated MLflow SQLite store for the session, which `fresh_store` copies.

    A new store costs ~8 s of MLflow's schema migrations on this machine (20 s under load); a copy
    costs milliseconds, and each test still gets its own store. Experiment 0 ("Default") is deleted,
    so MLflow makes it again when a copy is first opened, with that store's own artifact location, as
    in a new store. The engine's own creation path stays tested where a test is about it: the
    `bare_tmp` tests and test_claims_cli.py (MLFLOW_TRACKING_URI) make their stores themselves.
    """
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)  # creates and migrates the schema
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("DELETE FROM experiments WHERE experiment_id = 0")
    return db


@pytest.fixture(scope="session")
def fresh_store(store_template):
    """fresh_store(db) copies the empty template store to the path db (folders made) and returns its URI."""
    def make(db: Path) -> str:
        db.parent.mkdir(parents=True, exist_ok=True)
        if db.exists():
            raise FileExistsError(f"{db}: a fresh store goes where no store is")
        shutil.copyfile(store_template, db)
        return f"sqlite:///{db}"

    return make


@pytest.fixture
def bare_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory: for tests of the store's own creation, or of work refused before it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def in_tmp(bare_tmp, fresh_store):
    """Run in a fresh working directory with a fresh, empty default store (mlruns/mlflow.db) there."""
    fresh_store(bare_tmp / "mlruns" / "mlflow.db")
    return bare_tmp


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, folder: Path, artifacts_destination: Path | None = None):
    """`mlflow server` on a free loopback port; yields its URL and always stops its whole process group.

    Its own process group because it starts uvicorn children; no job runner, which
    starts a pool of workers these tests do not need on two cores.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", backend_uri, "--workers", "1"]
    if artifacts_destination is not None:
        cmd += ["--artifacts-destination", str(artifacts_destination)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not come up: {log_path.read_text()[-3000:]}")
                time.sleep(0.3)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # children that outlived it
            proc.wait()
