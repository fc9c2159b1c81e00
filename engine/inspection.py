"""One training sample of a run, read back whole, and the run's embedding map: what `engine.inspect`,
`prunelab show RUN --sample N` and the TUI's inspector and map screens show.

A sample's report holds its image, the label the scorers saw (a noise run's flipped one) and surrogate 0's
prediction; every score the run logged with its percentile among the run's samples (and so its trajectory over
the score epochs); its k nearest neighbours in surrogate 0's embedding space, from the run's embedding map
(engine/sample_map.py), with a flag when most of them carry another label; and whether each trial of the run
kept it (its kept_indices.npy) and with what weight.

Why one loader and a pure report: `RunSamples` reads a run's arrays once (scores, predictions, the map, every
trial's kept indices), so a script or the TUI that steps through many samples downloads nothing more; the report
of one sample is then a pure function of those arrays, the same for a real store and the TUI's fixed test data.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import names
from .errors import DataError, UserError
from .sample_map import SampleMap
from .store.artifacts import split_score_name
from .store.runs import TrialRow

if TYPE_CHECKING:
    from .data.dataset import Dataset
    from .store.tracking import Tracker


@dataclass
class ScoreReading:
    """One logged score of one sample."""

    name: str  # "loss@e2"
    method: str
    epoch: int | None
    value: float
    percentile: float  # share (%) of the run's samples scored below it, ties counted half; NaN for a NaN score


@dataclass
class Neighbour:
    """One of a sample's nearest neighbours in surrogate 0's embedding space."""

    index: int
    label: int
    similarity: float  # cosine
    image: np.ndarray  # uint8 (C, H, W)


@dataclass
class Membership:
    """Whether one trial kept the sample."""

    trial: TrialRow
    kept: bool | None  # None: the trial selected nothing (full data, online, dynamic) or logged no selection
    weight: float | None = None  # a weighted coreset's loss weight, when it kept the sample


@dataclass
class SampleReport:
    """Everything a run logged about one training sample (`engine.inspect`)."""

    run_id: str
    index: int  # position in the run's training set (what scores align with)
    source_index: int  # position in the source data (differs for a subset)
    label: int  # the label the scorers saw (a noise run's, flipped or not)
    classes: list[str]
    image: np.ndarray  # uint8 (C, H, W)
    predicted: int | None = None  # surrogate 0's prediction at its last logged epoch
    prediction_epoch: int | None = None
    clean_label: int | None = None  # a noise run's original label, when this one was flipped
    scores: list[ScoreReading] = field(default_factory=list)  # by method, then epoch
    neighbours: list[Neighbour] = field(default_factory=list)  # most similar first
    neighbour_epoch: int | None = None  # the surrogate epoch of the embeddings they come from
    trials: list[Membership] = field(default_factory=list)

    def class_name(self, c: int | None) -> str:
        if c is None:
            return "-"
        name = self.classes[c] if 0 <= c < len(self.classes) else str(c)
        return name if name == str(c) else f"{c} ({name})"

    @property
    def trajectories(self) -> dict[str, list[ScoreReading]]:
        """The methods scored at more than one surrogate epoch: their readings by epoch."""
        by_method: dict[str, list[ScoreReading]] = {}
        for reading in self.scores:
            by_method.setdefault(reading.method, []).append(reading)
        return {m: r for m, r in by_method.items() if len(r) > 1}

    @property
    def majority(self) -> int | None:
        """The most common label among the neighbours (ties: the smallest label)."""
        counts = Counter(n.label for n in self.neighbours)
        return min(counts, key=lambda c: (-counts[c], c)) if counts else None

    @property
    def disagreeing(self) -> int:
        """How many neighbours carry another label than this sample's."""
        return sum(n.label != self.label for n in self.neighbours)

    @property
    def disagrees(self) -> bool:
        """Most of the neighbours (more than half) carry another label: a label worth a second look."""
        return bool(self.neighbours) and 2 * self.disagreeing > len(self.neighbours)

    def kept_in(self) -> tuple[int, int]:
        """(trials that kept it, trials that selected)."""
        selecting = [m for m in self.trials if m.kept is not None]
        return sum(bool(m.kept) for m in selecting), len(selecting)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (`prunelab show --sample N --json`); no image."""
        return {"run_id": self.run_id, "index": self.index, "source_index": self.source_index, "label": self.label,
                "label_name": self.class_name(self.label), "predicted": self.predicted,
                "prediction_epoch": self.prediction_epoch, "clean_label": self.clean_label,
                "scores": [vars(r).copy() for r in self.scores],
                "neighbours": [{"index": n.index, "label": n.label, "similarity": n.similarity}
                               for n in self.neighbours],
                "neighbour_epoch": self.neighbour_epoch, "majority": self.majority,
                "disagreeing": self.disagreeing, "disagrees": self.disagrees,
                "trials": [{"run_id": m.trial.run_id, "trial": m.trial.label, "status": m.trial.status,
                            "accuracy": m.trial.accuracy, "kept": m.kept, "weight": m.weight} for m in self.trials]}


@dataclass
class EmbeddingMap:
    """A run's embedding map for drawing: the projection with the labels the scorers saw."""

    projection: np.ndarray  # (N, 2)
    labels: np.ndarray
    classes: list[str]
    method: str  # "pca" or "umap"
    epoch: int
    explained: list[float]
    predictions: np.ndarray | None = None  # surrogate 0's at the map's epoch, when logged


@dataclass
class RunSamples:
    """A run's per-sample arrays, read once: what every sample's report is made from."""

    run_id: str
    labels: np.ndarray  # (N,) the labels the scorers saw
    classes: list[str]
    images: np.ndarray  # uint8 (N, C, H, W)
    source_index: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # "method@eN" -> (N,) float64
    predictions: dict[int, np.ndarray] = field(default_factory=dict)  # epoch -> (N,) int
    sample_map: SampleMap | None = None
    trials: list[TrialRow] = field(default_factory=list)
    kept: dict[str, np.ndarray | None] = field(default_factory=dict)  # trial run id -> kept indices
    weights: dict[str, np.ndarray | None] = field(default_factory=dict)  # aligned with its kept indices
    clean_labels: np.ndarray | None = None  # a noise run: the labels before the flips
    _sorted: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def percentile(self, name: str, value: float) -> float:
        """The share (%) of the run's samples whose `name` score is below `value`, ties counted half
        (scipy's percentileofscore, kind="mean"); NaN scores are left out."""
        if value != value:
            return float("nan")
        if name not in self._sorted:
            values = self.scores[name]
            self._sorted[name] = np.sort(values[~np.isnan(values)])
        ordered = self._sorted[name]
        if not len(ordered):
            return float("nan")
        below = np.searchsorted(ordered, value, "left")
        at_or_below = np.searchsorted(ordered, value, "right")
        return float(100.0 * (below + at_or_below) / (2 * len(ordered)))


class RunInspector:
    """One sample's report, the embedding map and the trials' selections, from a run's arrays read once."""

    def __init__(self, samples: RunSamples):
        self.samples = samples

    @property
    def run_id(self) -> str:
        return self.samples.run_id

    def __len__(self) -> int:
        return len(self.samples)

    def check_index(self, index: int) -> int:
        n = len(self.samples)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
            raise UserError(f"sample {index!r}: run {self.run_id} has {n} training samples; give an index in "
                            f"0..{n - 1}")
        return int(index)

    def sample(self, index: int, k: int | None = None) -> SampleReport:
        """The report of training sample `index` (its position in the run's training set); `k` neighbours at
        most (default: all the run logged)."""
        s, i = self.samples, self.check_index(index)
        epoch = max(s.predictions) if s.predictions else None
        clean = None
        if s.clean_labels is not None and int(s.clean_labels[i]) != int(s.labels[i]):
            clean = int(s.clean_labels[i])
        return SampleReport(
            run_id=s.run_id, index=i, source_index=int(s.source_index[i]) if s.source_index is not None else i,
            label=int(s.labels[i]), classes=list(s.classes), image=np.asarray(s.images[i]),
            predicted=int(s.predictions[epoch][i]) if epoch is not None else None, prediction_epoch=epoch,
            clean_label=clean, scores=self._readings(i), neighbours=self._neighbours(i, k),
            neighbour_epoch=s.sample_map.epoch if s.sample_map is not None else None, trials=self._memberships(i))

    def _readings(self, i: int) -> list[ScoreReading]:
        out = []
        for name, values in self.samples.scores.items():
            method, epoch = split_score_name(name)
            value = float(values[i])
            out.append(ScoreReading(name, method, epoch, value, self.samples.percentile(name, value)))
        return sorted(out, key=lambda r: (r.method, -1 if r.epoch is None else r.epoch))

    def _neighbours(self, i: int, k: int | None) -> list[Neighbour]:
        s = self.samples
        if s.sample_map is None:
            return []
        found, sims = s.sample_map.neighbours[i], s.sample_map.similarity[i]
        take = len(found) if k is None else max(0, min(int(k), len(found)))
        return [Neighbour(int(j), int(s.labels[j]), float(sim), np.asarray(s.images[j]))
                for j, sim in zip(found[:take], sims[:take])]

    def _memberships(self, i: int) -> list[Membership]:
        out = []
        for trial in self.samples.trials:
            kept = self.samples.kept.get(trial.run_id)
            if kept is None:
                out.append(Membership(trial, None))
                continue
            at = np.flatnonzero(kept == i)
            weights = self.samples.weights.get(trial.run_id)
            weight = float(weights[at[0]]) if at.size and weights is not None and len(weights) == len(kept) else None
            out.append(Membership(trial, bool(at.size), weight))
        return out

    # ------------------------------------------------------------ the map and the trials
    def embedding_map(self) -> EmbeddingMap | None:
        """The run's embedding map, None when it logged none (a run that trained no surrogate, or made before
        prunelab logged maps, or with surrogate.projection = "none")."""
        s = self.samples
        if s.sample_map is None:
            return None
        m = s.sample_map
        return EmbeddingMap(m.projection, s.labels, list(s.classes), m.method, m.epoch, list(m.explained),
                            s.predictions.get(m.epoch))

    def selections(self) -> list[TrialRow]:
        """The trials that logged which samples they kept."""
        return [t for t in self.samples.trials if self.samples.kept.get(t.run_id) is not None]

    def kept_mask(self, trial_run_id: str) -> np.ndarray | None:
        """(N,) bool: the samples a trial kept; None when it logged no selection."""
        kept = self.samples.kept.get(trial_run_id)
        if kept is None:
            return None
        mask = np.zeros(len(self.samples), dtype=bool)
        mask[kept] = True
        return mask

    def score_names(self) -> list[str]:
        return sorted(self.samples.scores)

    def ranking(self, score: str, lowest: bool = False) -> tuple[str, np.ndarray] | None:
        """(the score's name, sample indices by it, highest first, or lowest first with `lowest`; ties: the lower
        index first). `score` is a logged name ("loss@e2"), or a method ("loss", or a benchmark label "el2n/ccs":
        el2n) at its last logged epoch. None when the run logged no such score. NaN scores come last."""
        scores = self.samples.scores
        if score not in scores:
            method = score.split("/")[0]
            named = [(e, name) for name in scores for m, e in [split_score_name(name)] if m == method]
            if not named:
                return None
            score = max(named, key=lambda x: -1 if x[0] is None else x[0])[1]
        values = scores[score]
        keys = np.where(np.isnan(values), np.inf, values if lowest else -values)
        return score, np.argsort(keys, kind="stable")


# ---------------------------------------------------------------- reading a run's arrays
def load_sample_map(track: Tracker, run_id: str) -> SampleMap | None:
    """The embedding map a run logged (engine/runner/steps.py), None when it has none."""
    from .store.artifacts import load_array, load_json

    info = load_json(track, run_id, names.EMBEDDING_MAP_JSON)
    if not isinstance(info, dict) or "epoch" not in info:
        return None
    epoch = int(info["epoch"])
    arrays = [load_array(track, run_id, names.embedding_artifact(what, epoch))
              for what in ("projection", "neighbours", "similarity")]
    if any(a is None for a in arrays):
        return None
    projection, neighbours, similarity = arrays
    return SampleMap(projection, neighbours, similarity, str(info.get("projection", "pca")), epoch,
                     list(info.get("explained_variance") or []))


def load_run_samples(track: Tracker, run_id: str, dataset: Dataset) -> RunSamples:
    """Read a run's scores, predictions, embedding map and every trial's selection once, beside its training
    data (`dataset`, as its config names it)."""
    from .store.artifacts import load_array, load_scores, prediction_epochs, score_names
    from .store.runs import run_detail

    n = len(dataset)
    scores = {name: load_scores(track, run_id, name) for name in score_names(track, run_id)}
    predictions = {e: load_array(track, run_id, names.predictions_artifact(e)) for e in prediction_epochs(track, run_id)}
    noisy = load_array(track, run_id, names.NOISE_LABELS)
    sample_map = load_sample_map(track, run_id)
    lengths = {len(a) for a in [*scores.values(), *predictions.values()] if a is not None}
    lengths |= {len(sample_map.projection)} if sample_map is not None else set()
    if lengths - {n}:
        raise DataError(f"run {run_id} logged arrays of {', '.join(map(str, sorted(lengths - {n})))} samples but its "
                        f"data set now has {n}; the data set changed since the run")
    clean = dataset.y_train.cpu().numpy()
    trials = run_detail(track, run_id).trials
    return RunSamples(
        run_id=run_id, labels=clean if noisy is None else noisy.astype(np.int64), classes=list(dataset.classes),
        images=dataset.x_train.cpu().numpy(), source_index=dataset.train_index,
        scores=scores, predictions={e: p.astype(np.int64).ravel() for e, p in predictions.items() if p is not None},
        sample_map=sample_map, trials=trials,
        kept={t.run_id: load_array(track, t.run_id, names.KEPT_INDICES) for t in trials},
        weights={t.run_id: load_array(track, t.run_id, names.SELECTION_WEIGHTS) for t in trials},
        clean_labels=None if noisy is None else clean)
