"""A run's logged arrays and reports read back: per-sample scores, the surrogate's predictions, overlap.json and
benchmark.json.

Why here and not in each reader: the CLI (`show --top`), the TUI's gallery and overlap screens and scripts all
read the same files, named in names.py; this is the one place that knows how a name maps to a file. numpy is
imported inside the functions, so the run list never waits for it.
"""
from __future__ import annotations

import json
import tempfile
from typing import TYPE_CHECKING, Any

from .. import names
from .tracking import retry

if TYPE_CHECKING:
    import numpy as np

    from .tracking import Tracker


def _logged_npy(track: Tracker, run_id: str, folder: str) -> list[str]:
    """The .npy files a run logged in one artifact folder (none: an empty list)."""
    from mlflow.exceptions import MlflowException

    try:
        files = retry(track.client.list_artifacts, run_id, folder)
    except (OSError, MlflowException):  # a folder the store cannot list (a run without scores on a server)
        return []
    return [f.path.rsplit("/", 1)[-1] for f in files if not f.is_dir and f.path.endswith(".npy")]


def split_score_name(name: str) -> tuple[str, int | None]:
    """A score artifact's name as (method, surrogate epoch): "loss@e3" -> ("loss", 3)."""
    method, sep, epoch = name.rpartition("@e")
    if sep and epoch.isdigit():
        return method, int(epoch)
    return name, None


def score_names(track: Tracker, run_id: str) -> list[str]:
    """The per-sample score arrays a run logged, as "method@eEPOCH", sorted (predictions are not scores)."""
    return sorted(n.removesuffix(".npy") for n in _logged_npy(track, run_id, names.SCORES_DIR)
                  if split_score_name(n.removesuffix(".npy"))[0] != names.PREDICTIONS)


def load_array(track: Tracker, run_id: str, path: str) -> np.ndarray | None:
    """One logged .npy artifact as stored (dtype and shape kept), or None when the run has no such file."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        local = track.download(run_id, path, tmp)
        return np.load(local) if local is not None and local.is_file() else None


def load_scores(track: Tracker, run_id: str, name: str) -> np.ndarray:
    """A score array ("method@eEPOCH") as float64, aligned with the training set's indices."""
    method, epoch = split_score_name(name)
    array = load_array(track, run_id, f"{names.SCORES_DIR}/{name}.npy")
    if array is None:
        from ..errors import UserError

        logged = score_names(track, run_id)
        raise UserError(f"run {run_id} has no scores {name!r} ({method} at epoch {epoch}); "
                        + (f"it has: {', '.join(logged)}" if logged else "it logged no scores (yet)"))
    return array.astype("float64").ravel()


def prediction_epochs(track: Tracker, run_id: str) -> list[int]:
    """The surrogate epochs at which a run logged its predicted labels (scores/predictions@eN.npy)."""
    epochs = (split_score_name(n.removesuffix(".npy")) for n in _logged_npy(track, run_id, names.SCORES_DIR))
    return sorted(epoch for method, epoch in epochs if method == names.PREDICTIONS and epoch is not None)


def load_predictions(track: Tracker, run_id: str, epoch: int | None = None) -> np.ndarray | None:
    """The surrogate's predicted label per training sample at `epoch` (the latest logged if that one is missing,
    or if None); None when the run logged no predictions."""
    epochs = prediction_epochs(track, run_id)
    if not epochs:
        return None
    array = load_array(track, run_id, names.predictions_artifact(epoch if epoch in epochs else epochs[-1]))
    return None if array is None else array.astype("int64").ravel()


def load_json(track: Tracker, run_id: str, path: str) -> Any | None:
    """A JSON artifact (NaN stays NaN, as the engine writes it), or None when it is missing or not JSON."""
    text = track.load_text(run_id, path)
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def overlap_report(track: Tracker, run_id: str) -> dict[str, Any] | None:
    """The overlap kind's overlap.json ({"methods", "k", "first", "last", "spearman", "epoch"}), when logged."""
    data = load_json(track, run_id, names.OVERLAP_JSON)
    return data if isinstance(data, dict) else None


def benchmark_report(track: Tracker, run_id: str) -> dict[str, Any] | None:
    """The benchmark kind's benchmark.json (rows, winners, average ranks, CD, Friedman, crossovers), when logged."""
    data = load_json(track, run_id, names.BENCHMARK_JSON)
    return data if isinstance(data, dict) and isinstance(data.get("rows"), list) else None
