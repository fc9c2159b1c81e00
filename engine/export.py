"""Results out: a trial's kept subset as indices, labels, weights and (for image folders) file paths; as npy, csv or
txt files; and as a `torch.utils.data.Subset` and a weighted `Sampler` for a user's own training loop.

Which numbers: a trial logs `selection/kept_indices.npy`, positions in the run's training set (a `train_size` run's
stratified subset of the data). What leaves the tool are `indices`, positions in the data set as prunelab reads
it whole (`train_index[position]`): what `torchvision.datasets.MNIST(train=True)[i]` or a CSV of another tool
indexes for MNIST and CIFAR-10. For `folder:PATH` data the file of each kept image (`paths`) is the unambiguous
name (the folder's held-out test images are not in prunelab's training split), and `subset` maps a torchvision
`ImageFolder` by path. A weighted coreset (CRAIG, GradMatch, Glister) adds `weights`, aligned with the indices.
torch is imported only by `subset` and `sampler`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import names
from .errors import UserError

if TYPE_CHECKING:
    from .data.dataset import Dataset
    from .store.tracking import Tracker

FORMATS = (".npy", ".csv", ".txt")
TRIAL_HELP = ("pass --trial: the trial's key or name (`prunelab subset RUN --list`), its run id, or KEY=VALUE pairs "
              "such as method=loss,ratio=0.3,seed=0")


@dataclass
class KeptSubset:
    """The samples one trial kept, in the order of its kept indices (sorted)."""

    run_id: str  # the parent run
    trial_run_id: str  # the trial's child run
    trial: str  # its key (method=...|strategy=...|ratio=...|seed=...|epoch=...)
    name: str  # its name, as MLflow and the progress lines show it
    dataset: str  # the config's data set name
    positions: np.ndarray  # int64: positions in the run's training set (what the trial logged)
    indices: np.ndarray  # int64: positions in the data set read whole (see the module's docstring)
    labels: np.ndarray  # int64: the kept samples' labels
    classes: list[str]  # class names by label
    weights: np.ndarray | None = None  # float64: a weighted coreset's weights, aligned with the indices
    paths: list[str] | None = None  # folder data: each kept image's file
    n: int = 0  # samples in the run's training set

    def __len__(self) -> int:
        return len(self.indices)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per kept sample: index, label, class, and weight and path where there are."""
        out = []
        for i, (index, label) in enumerate(zip(self.indices.tolist(), self.labels.tolist())):
            row: dict[str, Any] = {"index": index, "label": label, "class": self.classes[label]}
            if self.weights is not None:
                row["weight"] = float(self.weights[i])
            if self.paths is not None:
                row["path"] = self.paths[i]
            out.append(row)
        return out

    def write(self, out: str | Path) -> list[Path]:
        """Write the subset by the file's suffix and return the files written:

        - `.npy`: the int64 indices (and the weights beside it as `<stem>.weights.npy` for a weighted coreset);
        - `.csv`: a header, then `index,label,class[,weight][,path]` per kept sample;
        - `.txt`: one kept sample per line, its path for folder data else its index (a tab and its weight for a
          weighted coreset): for `rsync --files-from`, `xargs` or a shell loop.
        """
        path = Path(out)
        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            raise UserError(f"--out {out}: unknown format {suffix or '(no suffix)'!r}; name a .npy, .csv or .txt file")
        if suffix == ".npy":
            with open(path, "wb") as f:  # a file object: np.save appends .npy to a bare name
                np.save(f, self.indices.astype(np.int64))
            if self.weights is None:
                return [path]
            beside = path.with_name(f"{path.stem}.weights.npy")
            with open(beside, "wb") as f:
                np.save(f, self.weights.astype(np.float64))
            return [path, beside]
        if suffix == ".csv":
            rows = self.rows()
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["index", "label", "class"])
                writer.writeheader()
                writer.writerows(rows)
            return [path]
        path.write_text(self.text(), encoding="utf-8")
        return [path]

    def text(self) -> str:
        """The .txt form: one kept sample per line."""
        items = self.paths if self.paths is not None else [str(i) for i in self.indices.tolist()]
        if self.weights is not None:
            items = [f"{item}\t{weight:.17g}" for item, weight in zip(items, self.weights.tolist())]
        return "".join(f"{item}\n" for item in items)

    def positions_in(self, dataset: Any) -> np.ndarray:
        """Where the kept samples sit in `dataset`: by path for an ImageFolder-like set (`.samples` of (path, class))
        of folder data, else by index (a data set read whole, as prunelab reads it)."""
        samples = getattr(dataset, "samples", None)
        if self.paths is not None and samples is not None:
            where = {str(Path(p).resolve()): i for i, (p, *_) in enumerate(samples)}
            missing = [p for p in self.paths if str(Path(p).resolve()) not in where]
            if missing:
                raise UserError(f"{len(missing)} kept image(s) are not in the given data set (first: {missing[0]}); "
                                "give an ImageFolder of the run's folder")
            return np.asarray([where[str(Path(p).resolve())] for p in self.paths], dtype=np.int64)
        size = len(dataset)
        if len(self.indices) and self.indices.max() >= size:
            raise UserError(f"the kept indices reach {self.indices.max()}, but the given data set holds {size} "
                            f"samples; give the data set the run read ({self.dataset}, its whole training split)")
        return self.indices


class TrainingImages:
    """A run's training set as a torch data set: (float image normalised as the trainer does, label) per position,
    converted one item at a time (the uint8 images stay as they are)."""

    def __init__(self, ds: Dataset):
        import torch

        self.x, self.y = ds.x_train.cpu(), ds.y_train.cpu()
        shape = (-1, 1, 1)
        self.mean = torch.tensor(ds.mean, dtype=torch.float32).view(shape)
        self.std = torch.tensor(ds.std, dtype=torch.float32).view(shape)
        self.classes = list(ds.classes)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (self.x[i].float() / 255 - self.mean) / self.std, int(self.y[i])


def torch_subset(kept: KeptSubset, dataset: Any):
    """A `torch.utils.data.Subset` of `dataset` (None: the run's own training images, a `TrainingImages`)."""
    from torch.utils.data import Subset

    if isinstance(dataset, TrainingImages):
        return Subset(dataset, kept.positions.tolist())
    return Subset(dataset, kept.positions_in(dataset).tolist())


def weighted_sampler(kept: KeptSubset, dataset: Any, num_samples: int | None = None, generator: Any = None):
    """A `WeightedRandomSampler` over all of `dataset` that draws only kept samples, each in proportion to its
    weight (1 when the coreset is unweighted), with replacement, `len(kept)` per epoch by default: the sampling
    counterpart of the weighted loss prunelab retrains with."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    where = kept.positions if isinstance(dataset, TrainingImages) else kept.positions_in(dataset)
    weights = torch.zeros(len(dataset), dtype=torch.float64)
    weights[torch.from_numpy(where)] = torch.from_numpy(kept.weights) if kept.weights is not None else 1.0
    return WeightedRandomSampler(weights, num_samples or len(kept), replacement=True, generator=generator)


# ---------------------------------------------------------------- finding the trial
def _matches(run: Any, query: str) -> bool:
    """Whether a trial's child run is the one `query` names: its key, name or id (a prefix), or KEY=VALUE pairs."""
    tags, run_id = run.data.tags, run.info.run_id
    if query in (tags.get(names.TRIAL_KEY), run.info.run_name) or (len(query) >= 6 and run_id.startswith(query)):
        return True
    pairs = [part.partition("=") for part in query.replace("|", ",").split(",") if part.strip()]
    if not pairs or any(not sep for _, sep, _ in pairs):
        return False
    for key, _, value in pairs:
        have = tags.get(key.strip())
        if have is None:
            return False
        try:
            if float(have) != float(value):
                return False
        except ValueError:
            if have != value.strip():
                return False
    return True


def kept_trials(track: Tracker, parent_id: str) -> list[Any]:
    """The finished trials of a run that kept a subset (not full data), newest first; a trial run again (a resume
    with --retry-failed) once."""
    seen, out = set(), []
    for run in track.children(parent_id):
        key = run.data.tags.get(names.TRIAL_KEY)
        if run.info.status == names.FINISHED and run.data.tags.get("method") != names.FULL and key not in seen:
            seen.add(key)
            out.append(run)
    return out


def find_trial(track: Tracker, run_id: str, trial: str | None) -> tuple[str, Any]:
    """(parent id, the trial's child run) for a parent run and a --trial query, or for a trial's own run id."""
    run = track.get_run(track.resolve(run_id))
    if run.data.tags.get(names.ROLE) == names.TRIAL_ROLE:
        if trial is not None:
            raise UserError(f"run {run.info.run_id} is a trial already; drop --trial or pass its parent run")
        return run.data.tags[names.PARENT], run
    parent = run.info.run_id
    trials = kept_trials(track, parent)
    chosen = trials if trial is None else [t for t in trials if _matches(t, trial.strip())]
    if len(chosen) == 1:
        return parent, chosen[0]
    if not trials:
        raise UserError(f"run {parent} has no finished trial that kept a subset (full-data trials keep everything)")
    shown = "; ".join(t.data.tags.get(names.TRIAL_KEY, t.info.run_id) for t in (chosen or trials)[:4])
    more = f" and {len(chosen or trials) - 4} more" if len(chosen or trials) > 4 else ""
    what = (f"{len(trials)} trials kept a subset" if trial is None else
            f"--trial {trial!r} matches {len(chosen)} of its {len(trials)} trials" if chosen else
            f"no trial matches --trial {trial!r}")
    raise UserError(f"run {parent}: {what} ({shown}{more}); {TRIAL_HELP}")


def trial_listing(track: Tracker, run_id: str) -> list[dict[str, Any]]:
    """Every trial of a run that kept a subset: key, name, run id, final accuracy."""
    parent = track.resolve(run_id)
    return [{"key": t.data.tags.get(names.TRIAL_KEY, ""), "name": t.info.run_name, "run_id": t.info.run_id,
             "kept": t.data.params.get("kept"), "accuracy": t.data.metrics.get("final_test_accuracy")}
            for t in kept_trials(track, parent)]


def kept_subset(track: Tracker, run_id: str, trial: str | None, dataset_of) -> KeptSubset:
    """The KeptSubset of one trial; `dataset_of(parent_id) -> (config, Dataset)` reads the run's data back."""
    from .store.artifacts import load_array

    parent, child = find_trial(track, run_id, trial)
    key = child.data.tags.get(names.TRIAL_KEY, "")
    positions = load_array(track, child.info.run_id, names.KEPT_INDICES)
    if positions is None:
        raise UserError(f"trial {child.info.run_name!r} of run {parent} logged no kept indices (online and dynamic "
                        "trials train on a new subset every step); choose a pruning trial")
    config, ds = dataset_of(parent)
    positions = np.asarray(positions, dtype=np.int64).ravel()
    if len(positions) and positions.max() >= len(ds):
        raise UserError(f"run {parent} kept positions up to {positions.max()}, but {config.data.dataset} now holds "
                        f"{len(ds)} training samples; the data set changed since the run")
    weights = load_array(track, child.info.run_id, names.SELECTION_WEIGHTS)
    index = ds.train_index if ds.train_index is not None else np.arange(len(ds))
    return KeptSubset(
        run_id=parent, trial_run_id=child.info.run_id, trial=key, name=child.info.run_name,
        dataset=config.data.dataset, positions=positions, indices=np.asarray(index, dtype=np.int64)[positions],
        labels=ds.y_train.cpu().numpy()[positions].astype(np.int64), classes=list(ds.classes),
        weights=None if weights is None else np.asarray(weights, dtype=np.float64).ravel(),
        paths=_paths(config, np.asarray(index)[positions]), n=len(ds))


def _paths(config: Any, indices: np.ndarray) -> list[str] | None:
    """Folder data: the file of each kept image (indices into the folder's training split)."""
    from .data.registry import FOLDER_PREFIX

    name = config.data.dataset
    if not name.startswith(FOLDER_PREFIX):
        return None
    from .data.folders import train_files

    files = train_files(name[len(FOLDER_PREFIX):], **config.data.options)
    return [str(files[i]) for i in indices.tolist()]
