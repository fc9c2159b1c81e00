"""What the bad-input fault tests share: the CLI in this process, the bad-input contract, the store's state, and
real data written wrong in the ways users write it (the files of tests/faults/test_bad_input.py,
test_data_faults.py and test_api_faults.py; another helper's store and signal tests have their own)."""
from __future__ import annotations

import contextlib
import gzip
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from tests.builders import as_set_args, cli

# a prune run of seconds on a CPU: what `Q` stands for in issue 25
QUICK = {"data.train_size": 200, "model": "mlp", "train.epochs": 1, "surrogate.epochs": 1,
         "sweep.methods": ["random"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.score_epochs": [1]}


def run_args(**overrides: Any) -> list[str]:
    """`prunelab run --preset quick` with QUICK and `overrides` ("data.dataset": ..., as `--set`; None: the
    preset's own value)."""
    merged = {**QUICK, **overrides}
    return ["run", "--preset", "quick", *as_set_args({k: v for k, v in merged.items() if v is not None})]


PROGRESS_LINE = re.compile(r"^\[\d+ (s|min|h)\b[^\]]*\] ")  # engine/cli/common.py PlainProgress: "[3 min 05 s] ..."


def message_lines(stderr: str) -> list[str]:
    """stderr's lines less the plain progress lines a command writes when stderr is not a terminal (as here):
    what a fault must say fits in the one line that is left."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]


def one_line(result, code: int = 2, *words: str) -> str:
    """The contract: exit `code`, exactly one line on stderr naming what is wrong, no traceback, no exception
    escaping the command."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit) or (code == 0 and result.exception is None), result.exception
    lines = message_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def refused(args: list[str], *words: str) -> str:
    """A command given bad input: exit 2, one line, and nothing in the store after (no run, no progress file)."""
    line = one_line(cli(args), 2, *words)
    assert stored_runs() == [], stored_runs()
    assert not list(Path("mlruns").glob("progress/*")), list(Path("mlruns").glob("progress/*"))
    return line


def stored_runs(db: Path | str = "mlruns/mlflow.db") -> list[tuple[str, str]]:
    """(run id, status) of every run in the store, straight from its SQLite file (no MLflow: milliseconds)."""
    if not Path(db).exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("SELECT run_uuid, status FROM runs ORDER BY start_time").fetchall()


# ---------------------------------------------------------------- real data, written wrong
def cifar_arrays(shared_data: Path, n_train: int = 300, n_test: int = 100) -> dict[str, np.ndarray]:
    """A real slice of the shared CIFAR-10 subset (NHWC uint8, 10 classes)."""
    with np.load(shared_data / "cifar10-subset.npz") as f:
        return {"x_train": f["x_train"][:n_train], "y_train": f["y_train"][:n_train],
                "x_test": f["x_test"][:n_test], "y_test": f["y_test"][:n_test]}


def write_npz(path: Path, arrays: dict[str, Any], **changes: Any) -> Path:
    """The arrays with `changes` (a key set to None is left out) saved as an npz."""
    merged = {**arrays, **changes}
    np.savez(path, **{k: v for k, v in merged.items() if v is not None})
    return path


def flip_bytes(path: Path, start: int, count: int = 64) -> Path:
    raw = bytearray(path.read_bytes())
    for i in range(start, min(len(raw), start + count)):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def mnist_copy(shared_data: Path, folder: Path) -> Path:
    """A writable copy of the shared MNIST .gz files in torchvision's layout: folder/MNIST/raw/*.gz."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for src in (shared_data / "MNIST" / "raw").glob("*.gz"):
        shutil.copyfile(src, raw / src.name)
    return raw


def gz_member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def with_trailing_zeros(path: Path, gigabytes: float = 1.0) -> Path:
    """The idx .gz at `path` followed by `gigabytes` of zero bytes once inflated: gzip members of 16 MB of zeros
    (about 16 KB each), so the file is written in a moment and stays small on disk."""
    block = gz_member(bytes(16 << 20))
    with open(path, "ab") as f:
        f.writelines(block for _ in range(round(gigabytes * 64)))
    return path


def image_folder(shared_data: Path, root: Path, classes: int = 3, per_class: int = 12) -> Path:
    """Real CIFAR-10 images as PNG files, one subfolder per class (c0, c1, ...)."""
    from PIL import Image

    arrays = cifar_arrays(shared_data, 400, 1)
    counts = dict.fromkeys(range(classes), 0)
    for i, (image, label) in enumerate(zip(arrays["x_train"], arrays["y_train"])):
        label = int(label)
        if label < classes and counts[label] < per_class:
            (root / f"c{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / f"c{label}" / f"{i}.png")
            counts[label] += 1
    return root
