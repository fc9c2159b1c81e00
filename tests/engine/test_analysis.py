"""engine/analysis.py's `pick_samples` and `prunelab show --top`: labels by class name, and each image's file for
folder data (issue 26), on the CIFAR-10 subset written out as an image folder and as an npz with class names."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.analysis import pick_samples
from tests.builders import as_set_args, cli

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
KEPT = ("cat", "ship", "truck")  # the classes of the small folder
PER_CLASS = 12


def test_pick_samples_names_the_classes_and_the_files():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    images = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2)
    labels, predictions = np.array([8, 3, 8, 9]), np.array([8, 5, 8, 9])
    source = np.array([10, 11, 12, 13])  # a subset: positions in the full data
    paths = [f"/data/{i}.png" for i in range(14)]
    top = pick_samples(scores, labels, images, predictions, 2, source_index=source, classes=CIFAR, paths=paths)
    assert [(s["index"], s["class"], s["predicted_class"], s["path"]) for s in top] == \
        [(1, "cat", "dog", "/data/11.png"), (3, "truck", "truck", "/data/13.png")]
    assert (top[0]["label"], top[0]["predicted"]) == (3, 5) and np.array_equal(top[0]["image"], images[1])
    plain = pick_samples(scores, labels, images, None, 1)  # no names, no files, no predictions
    assert (plain[0]["class"], plain[0]["predicted_class"], plain[0]["path"]) == ("3", None, None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, shared_data) -> str:
    """The first PER_CLASS training images of three CIFAR-10 classes as PNG files, one folder per class."""
    from PIL import Image

    root = tmp_path_factory.mktemp("cifar-folder")
    with np.load(shared_data / "cifar10-subset.npz") as f:
        x, y = f["x_train"], f["y_train"]
    for name in KEPT:
        (root / name).mkdir()
        for j, i in enumerate(np.flatnonzero(y == CIFAR.index(name))[:PER_CLASS]):
            Image.fromarray(x[i]).save(root / name / f"{name}-{j:02d}.png")
    return str(root)


def test_show_top_names_classes_and_files_of_folder_data(in_tmp, folder):
    """Each listed sample's file holds exactly its image, in the folder of its class."""
    from PIL import Image

    from engine import api

    run = cli(["run", "--preset", "quick", "--json", *as_set_args({
        "data.dataset": f"folder:{folder}", "model": "mlp", "train.epochs": 1, "surrogate.epochs": 1,
        "sweep.methods": ["loss"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.score_epochs": [1]})])
    assert run.exit_code == 0, run.output
    run_id = json.loads(run.stdout)["run_id"]
    shown = cli(["show", run_id, "--top", "4", "--json"])
    top = json.loads(shown.stdout)["top"]
    ds = api.run_dataset(run_id)
    files = api.sample_files(run_id)
    assert len(files) == len(ds) == len(KEPT) * (PER_CLASS - round(0.2 * PER_CLASS))  # the default test split
    for sample in top:
        with Image.open(sample["path"]) as im:
            pixels = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(pixels, ds.x_train[sample["index"]].numpy())  # the file is this sample's image
        assert sample["class"] == KEPT[sample["label"]] == sample["path"].split("/")[-2]
        assert files[sample["index"]] == sample["path"]
    table = cli(["show", run_id, "--top", "4"], env={"COLUMNS": "160"}).stdout  # wide enough for no folding
    first = top[0]
    assert f"{first['class']} ({first['label']})" in table and f"files under {folder}" in table
    assert "/".join(first["path"].split("/")[-2:]) in table  # class folder / file name


def test_an_npz_names_its_classes(tmp_path, shared_data):
    from engine.data.dataset import load_dataset

    with np.load(shared_data / "cifar10-subset.npz") as f:
        arrays = {k: f[k][:200] for k in f.files}
    path = tmp_path / "named.npz"
    np.savez(path, **arrays, classes=np.array(CIFAR))
    assert load_dataset(f"npz:{path}").classes == CIFAR
    np.savez(tmp_path / "plain.npz", **arrays)  # without names: the labels' numbers, as before
    assert load_dataset(f"npz:{tmp_path / 'plain.npz'}").classes == [str(i) for i in range(10)]
