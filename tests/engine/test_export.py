"""engine/export.py and the API around it: a trial's kept subset out of the store as indices into the data read
whole, file paths for folder data and weights for weighted coresets; as files, a torch Subset and a Sampler (issue 26,
item 4). Checked against independent reads: MNIST's own label file, the images themselves, the trial's artifacts."""
import csv
import json
import tempfile

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import engine
from engine import names
from engine.data.formats import read_idx
from tests.builders import cli, tiny_run


def artifact(client: MlflowClient, run_id: str, path: str) -> np.ndarray | None:
    """A trial's logged array, read with MLflow's own client (not the engine's readers)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return np.load(client.download_artifacts(run_id, path, tmp))
        except OSError:
            return None


@pytest.fixture(scope="module")
def mnist_run(shared_data, tmp_path_factory, fresh_store):
    """A run on 600 real MNIST digits: EL2N with hardest and with CRAIG (a weighted coreset), keep 0.5, one seed."""
    folder = tmp_path_factory.mktemp("export")
    uri = fresh_store(folder / "mlruns" / "mlflow.db")
    overrides = tiny_run(shared_data, **{"sweep.methods": ["el2n"], "sweep.strategies": ["hardest", "craig"],
                                         "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.full_data": False})
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the run's store and cache: ./mlruns there
        result = engine.run(engine.load_config("quick", overrides), tracking_uri=uri)
    assert result.status == "FINISHED"
    return folder, result.run_id


def test_kept_indices_name_the_samples_of_mnist_read_whole(mnist_run, shared_data, monkeypatch):
    folder, run_id = mnist_run
    monkeypatch.chdir(folder)
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    kept = engine.kept_subset(run_id, "strategy=hardest")
    assert kept.trial == "method=el2n|strategy=hardest|ratio=0.5|seed=0|epoch=1" and len(kept) == 300 and kept.n == 600
    np.testing.assert_array_equal(kept.positions, artifact(client, kept.trial_run_id, names.KEPT_INDICES))
    # MNIST's own files, read whole: the label and the image at each index are the kept sample's
    raw = shared_data / "MNIST" / "raw"
    labels, images = read_idx(raw / "train-labels-idx1-ubyte.gz"), read_idx(raw / "train-images-idx3-ubyte.gz")
    assert kept.indices.max() > 600 > len(kept)  # a stratified 600 of 60000: indices are not positions
    np.testing.assert_array_equal(labels[kept.indices], kept.labels)
    ds = engine.api.run_dataset(run_id)
    np.testing.assert_array_equal(images[kept.indices], ds.x_train[kept.positions, 0].numpy())
    assert kept.weights is None and kept.paths is None and kept.classes == [str(c) for c in range(10)]


def test_a_weighted_coreset_exports_its_weights_in_every_format(mnist_run, monkeypatch, tmp_path):
    folder, run_id = mnist_run
    monkeypatch.chdir(folder)
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    kept = engine.kept_subset(run_id, "method=el2n,strategy=craig")
    logged = artifact(client, kept.trial_run_id, names.SELECTION_WEIGHTS)
    assert logged is not None and len(logged) == len(kept) == 300
    np.testing.assert_array_equal(kept.weights, logged)

    written = engine.export_subset(run_id, tmp_path / "k.npy", trial="strategy=craig")
    assert [p.name for p in written] == ["k.npy", "k.weights.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), kept.indices)
    np.testing.assert_array_equal(np.load(tmp_path / "k.weights.npy"), logged)
    kept.write(tmp_path / "k.csv")
    with open(tmp_path / "k.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "label", "class", "weight"]
    assert [int(r["index"]) for r in rows] == kept.indices.tolist()
    assert [int(r["label"]) for r in rows] == kept.labels.tolist() and rows[0]["class"] == str(kept.labels[0])
    np.testing.assert_array_equal([float(r["weight"]) for r in rows], logged)  # repr-exact floats
    kept.write(tmp_path / "k.txt")
    lines = (tmp_path / "k.txt").read_text().splitlines()
    assert [(int(i), float(w)) for i, w in (line.split("\t") for line in lines)] == list(zip(kept.indices.tolist(),
                                                                                               logged.tolist()))


def test_subset_and_sampler_feed_a_plain_torch_loop(mnist_run, shared_data, monkeypatch):
    folder, run_id = mnist_run
    monkeypatch.chdir(folder)
    kept = engine.kept_subset(run_id, "strategy=craig")
    own = engine.subset(run_id, "strategy=craig")  # the run's own images, normalised as the trainer does
    ds = engine.api.run_dataset(run_id)
    assert len(own) == len(kept) and len(own.dataset) == 600
    image, label = own[5]
    expected = (ds.x_train[kept.positions[5]].float() / 255 - ds.mean[0]) / ds.std[0]
    assert label == kept.labels[5] and torch.allclose(image, expected, atol=1e-6)

    class WholeMnist(torch.utils.data.Dataset):  # a user's data set of MNIST read whole (torchvision's indexing)
        def __init__(self):
            self.labels = read_idx(shared_data / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return i, int(self.labels[i])

    whole = WholeMnist()
    theirs = engine.subset(run_id, "strategy=craig", dataset=whole)
    assert [theirs[i] for i in range(len(theirs))] == list(zip(kept.indices.tolist(), kept.labels.tolist()))

    sampler = engine.sampler(run_id, "strategy=craig", dataset=whole, generator=torch.Generator().manual_seed(0))
    expected_weights = np.zeros(len(whole))
    expected_weights[kept.indices] = kept.weights
    np.testing.assert_array_equal(sampler.weights.numpy(), expected_weights)
    drawn = list(sampler)
    assert len(drawn) == len(kept) and set(drawn) <= set(kept.indices.tolist())
    with pytest.raises(engine.UserError, match="reach"):
        engine.subset(run_id, "strategy=craig", dataset=list(range(600)))  # the run's 600, not MNIST read whole


def test_the_subset_command_writes_files_and_names_trials(mnist_run, monkeypatch):
    folder, run_id = mnist_run
    monkeypatch.chdir(folder)
    kept = engine.kept_subset(run_id, "strategy=hardest")
    result = cli(["subset", run_id[:8], "--trial", "strategy=hardest", "--out", "hard.csv", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["kept"] == 300 and out["of"] == 600 and out["files"] == ["hard.csv"] and not out["weighted"]
    assert (folder / "hard.csv").read_text().splitlines()[1] == f"{kept.indices[0]},{kept.labels[0]},{kept.labels[0]}"
    by_id = cli(["subset", kept.trial_run_id])  # a trial's own id: the .txt form on stdout
    assert by_id.exit_code == 0 and by_id.stdout.split() == [str(i) for i in kept.indices]
    by_name = cli(["subset", run_id, "--trial", kept.name])
    assert by_name.stdout == by_id.stdout
    listed = cli(["subset", run_id, "--list", "--json"])
    assert sorted(t["key"] for t in json.loads(listed.stdout)) == [
        "method=el2n|strategy=craig|ratio=0.5|seed=0|epoch=1", "method=el2n|strategy=hardest|ratio=0.5|seed=0|epoch=1"]
    for args, words in ((["subset", run_id], ("2 trials kept a subset", "--trial")),
                        (["subset", run_id, "--trial", "seed=0"], ("matches 2 of its 2 trials",)),
                        (["subset", run_id, "--trial", "method=loss"], ("no trial matches",)),
                        (["subset", run_id, "--trial", "strategy=craig", "--out", "k.json"], ("unknown format",))):
        bad = cli(args)
        lines = bad.stderr.strip().splitlines()
        assert bad.exit_code == 2 and len(lines) == 1 and all(w in lines[0] for w in words), bad.stderr


@pytest.mark.slow  # a run on an image folder in a new store: 36 s at load average 13
def test_folder_data_exports_the_file_of_each_kept_image(tmp_path, in_tmp, shared_data, monkeypatch):
    from PIL import Image
    from torchvision.datasets import ImageFolder

    monkeypatch.setenv("PRUNELAB_CACHE", str(tmp_path / "cache"))
    cifar = np.load(shared_data / "cifar10-subset.npz")
    root = tmp_path / "images"
    for label, name in enumerate(("cat", "dog", "ship")):
        (root / name).mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(cifar["y_train"] == [3, 5, 8][label])[:15]):
            Image.fromarray(cifar["x_train"][i]).save(root / name / f"{k:02d}.png")
    (root / "dog" / "broken.png").write_bytes(b"not an image")  # skipped: the paths still line up
    overrides = {"data.dataset": f"folder:{root}", "data.options": {"skip_bad": True}, "model": "mlp",
                 "train.epochs": 1, "surrogate.epochs": 1, "sweep.score_epochs": [1], "sweep.methods": ["loss"],
                 "sweep.keep_ratios": [0.5], "sweep.seeds": [0], "sweep.full_data": False}
    run_id = engine.run(engine.load_config("quick", overrides)).run_id
    kept = engine.kept_subset(run_id)  # its one trial
    ds = engine.api.run_dataset(run_id)
    assert len(kept) == 18 and kept.n == 36 and kept.classes == ["cat", "dog", "ship"]  # 12 per class train
    for position, path, label in zip(kept.positions, kept.paths, kept.labels):
        assert path.startswith(str(root)) and kept.classes[label] == path.split("/")[-2]
        np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")),
                                      ds.x_train[position].permute(1, 2, 0).numpy())
    kept.write(tmp_path / "k.txt")
    assert (tmp_path / "k.txt").read_text().splitlines() == kept.paths
    folder_set = ImageFolder(str(root), is_valid_file=lambda p: not p.endswith("broken.png"))
    theirs = engine.subset(run_id, dataset=folder_set)  # matched by path: ImageFolder also holds the test images
    assert [folder_set.samples[i][0] for i in theirs.indices] == kept.paths
