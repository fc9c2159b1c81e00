"""Build engine/assets/mnist-mini.npz once from the original MNIST files.

A class-stratified subset: the first 1000 training and 200 test images of each
digit, in MNIST's original order. Run: python scripts/build_mnist_mini.py ../shared/data
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.data.formats import read_idx

PER_CLASS_TRAIN, PER_CLASS_TEST = 1000, 200


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return np.sort(keep)


def main(data_dir: str) -> None:
    raw = Path(data_dir) / "MNIST" / "raw"
    xtr, ytr = read_idx(raw / "train-images-idx3-ubyte.gz"), read_idx(raw / "train-labels-idx1-ubyte.gz")
    xte, yte = read_idx(raw / "t10k-images-idx3-ubyte.gz"), read_idx(raw / "t10k-labels-idx1-ubyte.gz")
    tr, te = first_per_class(ytr, PER_CLASS_TRAIN), first_per_class(yte, PER_CLASS_TEST)
    out = Path(__file__).resolve().parents[1] / "engine" / "assets" / "mnist-mini.npz"
    np.savez_compressed(
        out,
        x_train=xtr[tr], y_train=ytr[tr].astype(np.int64), x_test=xte[te], y_test=yte[te].astype(np.int64),
        train_source_index=tr, test_source_index=te,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(tr)} train, {len(te)} test")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
