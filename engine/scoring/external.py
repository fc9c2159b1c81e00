"""Scores from outside: per-sample scores another tool wrote, as a scorer, so they join selection, overlap and the
benchmark beside prunelab's own.

Two ways to name them, both usable wherever a scorer name goes (`sweep.methods`, `overlap.methods`,
`benchmark.methods`, `prunelab score --scorers`):

- `file:PATH[#KEY]` (a `#-KEY`, or `#-` alone, negates the values), resolved here when a config is checked;
- a name given by `register_file_scores(name, path, key=..., format=..., negate=...)` in a plugin: a short name
  for tables and legends, and in `benchmark.methods = "all"`.

Formats (from the suffix, or `format=`): `.npy` one float per sample; `.csv` rows of `index,score` (a header
optional; KEY names the score column); `.npz` of `prunelab score --out` (KEY: an array such as `el2n@e1`);
`ccs`: the pickle CCS's `generate_importance_score.py` writes (haizhongzheng/Coverage-centric-coreset-selection:
a dict of per-sample tensors `el2n`, `forgetting`, `accumulated_margin`, `entropy`, `loss`, ...; KEY picks one);
`tdds`: TDDS's `importance_evaluation.py` output (zhangxin-xd/Dataset-Pruning-TDDS: `score_winW_epT.npy` holds the
scores sorted ascending and `data_mask_winW_epT.npy` beside it the argsort that puts them back, sample i's score
being `score[where(mask == i)]`; either file names the pair).

Which sample a value belongs to: a CSV's and an npz's indices are positions in the data set read whole (as
`prunelab subset` writes them); a bare array is aligned with the run's training set when it has as many values,
else with the data set read whole (a `train_size` run takes its subset's values). Higher = harder, as for every
scorer: CCS's `accumulated_margin` (AUM) is higher for easier samples, so `#-accumulated_margin` is prunelab's
`aum_softmax` order. The file's path and a digest of its bytes are the scorer's `version`, so cached results and
resume keys change with the file. A pickle runs code when read: load CCS files you made or trust.
numpy and torch are imported only when values are read.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DataError
from ..registry import MethodDoc

if TYPE_CHECKING:
    import numpy as np

    from ..data.dataset import Dataset

FILE_PREFIX = "file:"
FORMATS = ("npy", "csv", "npz", "ccs", "tdds")
_SUFFIXES = {".npy": "npy", ".csv": "csv", ".npz": "npz", ".pickle": "ccs", ".pkl": "ccs"}
_TDDS = re.compile(r"^(?:score|data_mask)(_win\d+_ep\d+)\.npy$")
CODE = {"ccs": "haizhongzheng/Coverage-centric-coreset-selection: generate_importance_score.py",
        "tdds": "zhangxin-xd/Dataset-Pruning-TDDS: importance_evaluation.py"}


@dataclass(frozen=True)
class FileSource:
    """Where a file scorer's values are: the file, its format, the key inside it, and whether to negate them."""

    path: str  # absolute
    format: str  # one of FORMATS
    key: str = ""
    negate: bool = False

    def files(self) -> list[Path]:
        """The files read: TDDS's score and mask pair, else the one file."""
        if self.format != "tdds":
            return [Path(self.path)]
        suffix = _TDDS.match(Path(self.path).name).group(1)  # type: ignore[union-attr]
        folder = Path(self.path).parent
        return [folder / f"score{suffix}.npy", folder / f"data_mask{suffix}.npy"]


def _format_of(path: Path, format: str) -> str:
    if format != "auto":
        if format not in FORMATS:
            raise ConfigError(f"file scores {path}: unknown format {format!r}; use one of {', '.join(FORMATS)}")
        return format
    if _TDDS.match(path.name):
        return "tdds"
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ConfigError(f"file scores {path}: cannot tell the format from {path.suffix or 'no suffix'!r}; use .npy, "
                          ".csv, .npz, .pickle (CCS) or TDDS's score_winW_epT.npy")
    return found


def file_source(path: str | Path, key: str = "", format: str = "auto", negate: bool = False) -> FileSource:
    """The checked source: the file(s) exist and the format is known (their content is read when scores are)."""
    where = Path(path).expanduser().resolve()
    source = FileSource(str(where), _format_of(where, format), key, negate)
    for file in source.files():
        if not file.is_file():
            raise ConfigError(f"file scores: no file {file}; give the path of a scores file (file:PATH)")
    if source.format == "ccs" and not key:
        raise ConfigError(f"file scores {where}: a CCS score pickle holds several scores; name one with "
                          f"file:{path}#KEY (el2n, forgetting, accumulated_margin, entropy, loss, ...)")
    return source


def parse_spec(name: str) -> FileSource:
    """`file:PATH[#[-]KEY]` as a checked FileSource."""
    body = name[len(FILE_PREFIX):]
    path, _, key = body.partition("#")
    if not path:
        raise ConfigError(f"scorer {name!r}: file: needs a path, as in file:scores.npy or file:scores.csv")
    negate = key.startswith("-")
    return file_source(path, key.removeprefix("-"), "auto", negate)


def _digest(source: FileSource) -> str:
    h = hashlib.sha256()
    for file in source.files():
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def scorer_fields(source: FileSource, description: str = "") -> dict[str, Any]:
    """What a `file` scorer of `source` holds beside its name: its version (the path and a digest of its bytes, so a
    changed file is a new scorer to every cache key and resume), description and doc."""
    what = f"{source.key} from " if source.key else ""
    formula = "the per-sample values the file holds, as they are" + (" (negated)" if source.negate else "")
    return {"kind": "file", "source": source, "version": f"{source.path}:{_digest(source)}",
            "description": description or f"{'−' if source.negate else ''}{what}{source.path} ({source.format} file)",
            "doc": MethodDoc(formula=formula + "; no surrogate is trained for them", code=CODE.get(source.format, ""))}


def stamp(source: FileSource) -> tuple:
    """The files' modification times and sizes: a scorer made for an older stamp is made again."""
    return tuple((os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in source.files())


def check_plain_name(name: str) -> None:
    if name.startswith(FILE_PREFIX) or not name or "/" in name:
        raise ConfigError(f"file scores name {name!r}: give a plain name such as ccs_el2n (no '/', not file:...)")


def split_pair(pair: str) -> tuple[str, str]:
    """A benchmark method "scorer/strategy" as (scorer, strategy; "hardest" when none): a file: scorer's path keeps
    its slashes, its strategy being what follows the last "/" when that is a registered strategy."""
    from ..selection.registry import STRATEGIES

    if pair.startswith(FILE_PREFIX):
        head, sep, tail = pair.rpartition("/")
        return (head, tail) if sep and tail in STRATEGIES else (pair, "hardest")
    scorer, _, strategy = pair.partition("/")
    return scorer, strategy or "hardest"


# ---------------------------------------------------------------- reading values
def _as_array(value: Any, where: str) -> np.ndarray:
    import numpy as np

    value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 2 and 1 in array.shape:
        array = array.ravel()
    if array.ndim != 1:
        raise DataError(f"{where}: expected one score per sample (a 1-d array), got shape {array.shape}")
    return array


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_columns(source: FileSource, header: list[str] | None, width: int) -> tuple[int, int | None]:
    """(the score column, the index column or None): by the header's names, else index,score or a lone score."""
    if header is not None:
        wanted = source.key or ("score" if "score" in header else header[-1])
        if wanted not in header:
            raise DataError(f"{source.path}: no column {wanted!r}; it has {', '.join(header)} (file:PATH#COLUMN)")
        return header.index(wanted), header.index("index") if "index" in header else None
    if width in (1, 2):
        return width - 1, 0 if width == 2 else None
    raise DataError(f"{source.path}: {width} columns and no header; write index,score (or a header naming them)")


def _read_csv(source: FileSource) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    with open(source.path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{source.path}: no rows; write index,score per sample")
    header = None if all(_number(cell) for cell in rows[0]) else [cell.strip() for cell in rows.pop(0)]
    score_col, index_col = _csv_columns(source, header, len(rows[0]) if rows else 0)
    try:
        values = np.asarray([float(row[score_col]) for row in rows])
        index = None if index_col is None else np.asarray([int(float(row[index_col])) for row in rows])
    except (ValueError, IndexError) as exc:
        raise DataError(f"{source.path}: a row is not index,score ({exc})") from None
    return values, index


def _read_npz(source: FileSource) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    with np.load(source.path, allow_pickle=False) as f:
        scores = [k for k in f.files if k not in ("labels", "indices") and not k.startswith(("predictions@",
                                                                                               "embeddings@"))]
        key = source.key or (scores[0] if len(scores) == 1 else "")
        if key not in f.files:
            raise DataError(f"{source.path}: name the scores with file:PATH#KEY; it holds {', '.join(scores)}")
        return _as_array(f[key], source.path), (np.asarray(f["indices"]) if "indices" in f.files else None)


def _read_ccs(source: FileSource) -> tuple[np.ndarray, None]:
    import pickle

    with open(source.path, "rb") as f:
        data = pickle.load(f)  # the user's own CCS score file (a pickle runs code: see the module's docstring)
    if not isinstance(data, dict) or source.key not in data:
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{source.path}: no score {source.key!r} in this CCS score file; it holds {keys}")
    return _as_array(data[source.key], source.path), None


def _read_tdds(source: FileSource) -> tuple[np.ndarray, None]:
    import numpy as np

    scores_file, mask_file = source.files()
    ordered, mask = _as_array(np.load(scores_file), str(scores_file)), np.load(mask_file).astype(np.int64).ravel()
    if len(mask) != len(ordered) or not np.array_equal(np.sort(mask), np.arange(len(mask))):
        raise DataError(f"{mask_file}: not the argsort of the {len(ordered)} scores in {scores_file.name}")
    values = np.empty(len(ordered))
    values[mask] = ordered  # sample mask[j] has the j-th smallest score
    return values, None


def read_values(source: FileSource) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, indices into the data set read whole; None when the values are aligned by position)."""
    import numpy as np

    if source.format == "csv":
        return _read_csv(source)
    if source.format == "npz":
        return _read_npz(source)
    if source.format == "ccs":
        return _read_ccs(source)
    if source.format == "tdds":
        return _read_tdds(source)
    return _as_array(np.load(source.path, allow_pickle=False), source.path), None


def aligned(values: np.ndarray, index: np.ndarray | None, dataset: Dataset, where: str) -> np.ndarray:
    """One value per sample of the run's training set, in its order (see the module's docstring)."""
    import numpy as np

    n = len(dataset)
    source_index = dataset.train_index if dataset.train_index is not None else np.arange(n)
    if index is None:
        if len(values) == n:
            return values
        if dataset.train_index is not None and len(values) > source_index.max():
            return values[source_index]
        raise DataError(f"{where}: {len(values)} scores, but the run's training set holds {n} samples; give one score "
                        "per sample (or index,score rows)")
    order = np.argsort(index, kind="stable")
    ranked = index[order]
    if len(ranked) > 1 and (ranked[1:] == ranked[:-1]).any():
        raise DataError(f"{where}: index {int(ranked[1:][ranked[1:] == ranked[:-1]][0])} has two scores; give one each")
    at = np.clip(np.searchsorted(ranked, source_index), 0, max(len(ranked) - 1, 0))
    found = ranked[at] == source_index if len(ranked) else np.zeros(n, dtype=bool)
    if not found.all():
        missing = source_index[~found]
        raise DataError(f"{where}: no score for {len(missing)} of the run's {n} samples (first: index {missing[0]}); "
                        "give every sample of the training set a score")
    return values[order[at]]


def file_scores(scorer: Any, dataset: Dataset) -> np.ndarray:
    """A file scorer's values for the run's training set, float32, negated if asked; a DataError names what is
    wrong."""
    import numpy as np

    source: FileSource = scorer.source
    values, index = read_values(source)
    out = aligned(values, index, dataset, scorer.name)
    if not np.isfinite(out).all():
        raise DataError(f"{scorer.name}: {int((~np.isfinite(out)).sum())} scores are NaN or infinite; give finite "
                        "numbers")
    return (-out if source.negate else out).astype(np.float32)
