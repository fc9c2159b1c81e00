"""The store's vocabulary: every tag key, status, artifact path and baseline name, in one place.

Like MLflow's `mlflow_tags.py` and `RunStatus`: the engine, the TUI and the tests
read and write runs through these constants, so a key is spelled once.
"""
from __future__ import annotations

import re

# ---------------------------------------------------------------- tag keys
ROLE = "prunelab.role"  # PARENT_ROLE or TRIAL_ROLE
KIND = "prunelab.kind"  # the experiment kind
DATASET = "prunelab.dataset"
MODEL = "prunelab.model"
CONFIG_NAME = "prunelab.config_name"
TRIAL_KEY = "prunelab.trial_key"  # a trial's identity in its grid; resume matches on it
ERROR = "prunelab.error"  # why a run or trial failed or was killed (one line)
TRACEBACK = "prunelab.traceback"  # the tail of an unexpected exception's traceback
HOST = "prunelab.host"  # where a trial ran (a Ray worker's host)
PID = "prunelab.pid"  # and in which process (on a parent run: the process that created it)
PID_START = "prunelab.pid_start"  # on a parent run: that process's start time (engine/store/process.py)
ACTIVE_SECONDS = "active_seconds"  # parent metric: seconds its processes ran, over every resume (not the dead time)
FULL_ACCURACY = "full_data_accuracy"  # parent metric: the full-data trials' mean test accuracy
BEST_PRUNED = "best_pruned_accuracy"  # parent metric: the best mean test accuracy of a pruned (non-full) setting
KEPT = "prunelab.kept"  # input tag on a trial's data set: samples kept
DATA_DIGEST = "prunelab.data_digest"  # parent tag: the digest of the data it trains on, once a resume accepted a change
DATA_CHANGED = "prunelab.data_changed"  # parent tag: "old -> new" digests a resume with --allow-data-change accepted
KEEP_FRACTION = "prunelab.keep_fraction"
PARENT = "mlflow.parentRunId"  # MLflow's own
NOTE = "mlflow.note.content"  # MLflow's run description
DATA_CONTEXT = "mlflow.data.context"  # MLflow's input tag: train / test

# the grid's own tags on every trial (also its params), in display order
TRIAL_TAGS = ("method", "strategy", "ratio", "seed", "epoch")

PARENT_ROLE = "parent"
TRIAL_ROLE = "trial"

# ---------------------------------------------------------------- statuses (MLflow's RunStatus names)
RUNNING = "RUNNING"
SCHEDULED = "SCHEDULED"
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
TERMINAL = (FINISHED, FAILED, KILLED)
STATUSES = (RUNNING, SCHEDULED, *TERMINAL)

# ---------------------------------------------------------------- artifact paths
CONFIG_TOML = "config.toml"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
OVERLAP_JSON = "overlap.json"
BENCHMARK_CSV = "benchmark.csv"
BENCHMARK_JSON = "benchmark.json"
KEPT_INDICES = "selection/kept_indices.npy"
SELECTION_WEIGHTS = "selection/weights.npy"  # a weighted coreset's loss weights, aligned with kept_indices.npy
DATA_PATH = "prunelab.data_path"  # tag: "device" (images on the device) or "host" (streamed from host memory)
GRADIENT_PROJECTION = "prunelab.gradient_projection"  # tag: "none" or "gaussian:<dim>" (gradient embeddings)
NOISE_LABELS = "noise/labels.npy"
NOISE_FLIPPED = "noise/flipped.npy"
SCORES_DIR = "scores"
PLOTS_DIR = "plots"
PREDICTIONS = "predictions"  # scores/predictions@eN.npy: the surrogate's predicted labels, not a score
EMBEDDING_DIR = "embedding"  # the embedding map (engine/sample_map.py): projection and neighbours, not scores
EMBEDDING_MAP_JSON = "embedding/map.json"  # its epoch, projection method, k, metric and explained variance
EMBEDDING_MAP_PLOT = "plots/embedding_map.png"


def file_part(name: str) -> str:
    """A method's name as one file name in an artifact path: what a path cannot hold (the "/" and ":" of a
    `file:PATH` scorer) becomes "_"; registered names are unchanged."""
    return re.sub(r"[^\w.@+=,-]", "_", name)


def score_artifact(method: str, epoch: int) -> str:
    """Where a run logs one scorer's scores taken at surrogate epoch `epoch`."""
    return f"{SCORES_DIR}/{file_part(method)}@e{epoch}.npy"


def predictions_artifact(epoch: int) -> str:
    return score_artifact(PREDICTIONS, epoch)


def embedding_artifact(what: str, epoch: int) -> str:
    """Where a run logs its embedding map's `what` ("projection", "neighbours", "similarity") at surrogate epoch
    `epoch`."""
    return f"{EMBEDDING_DIR}/{what}@e{epoch}.npy"


def plot_artifact(name: str) -> str:
    return f"{PLOTS_DIR}/{file_part(name)}.png"


# ---------------------------------------------------------------- baseline names (methods and strategies)
FULL = "full"  # the method of the full-data reference trials
RANDOM = "random"  # the scorer (and strategy) every method is compared with
ORACLE = "oracle"  # noise: retrain without exactly the flipped samples
NO_STRATEGY = "none"  # the strategy tag of trials that select nothing (full data)
TOP_K = "top-k"  # the strategy tag of online trials
CLEAN = "clean"  # the strategy tag of the noise oracle
