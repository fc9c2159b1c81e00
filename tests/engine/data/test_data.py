"""Data sets: real files, the embedded set, and a clear error for each kind of bad data."""
import gzip
import pickle

import numpy as np
import pytest
import torch

from engine.data.dataset import load_dataset, random_crop_flip
from engine.data.formats import ASSETS, read_idx
from engine.errors import DataError, UnknownNameError


def test_embedded_default_is_stratified_real_mnist(shared_data):
    ds = load_dataset("mnist-mini")
    assert ds.x_train.shape == (10000, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert ds.x_test.shape == (2000, 1, 28, 28)
    assert np.bincount(ds.y_train.numpy()).tolist() == [1000] * 10
    assert np.bincount(ds.y_test.numpy()).tolist() == [200] * 10
    # pixel-exact copies of the originals, at the positions the asset records
    full = load_dataset("mnist", shared_data)
    with np.load(ASSETS / "mnist-mini.npz") as f:
        src = f["train_source_index"]
    assert torch.equal(full.x_train[src[:50]], ds.x_train[:50])
    assert torch.equal(full.y_train[src], ds.y_train)


def test_mnist_from_gz_and_cifar_npz(shared_data, cifar_npz):
    mnist = load_dataset("mnist", shared_data)
    assert len(mnist) == 60000 and len(mnist.y_test) == 10000 and mnist.num_classes == 10
    cifar = load_dataset(cifar_npz)
    assert cifar.input_shape == (3, 32, 32) and len(cifar) == 10000 and cifar.num_classes == 10
    sub = cifar.subset(train_size=100, test_size=50)
    assert np.bincount(sub.y_train.numpy()).tolist() == [10] * 10 and len(sub.y_test) == 50


def test_cifar10_python_batches_read_directly(tmp_path, shared_data):
    with np.load(shared_data / "cifar10-subset.npz") as f:
        x, y, xt, yt = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    chunks = np.array_split(np.arange(len(y)), 5)
    for i, part in enumerate(chunks, 1):  # no b"filenames" key, as in ../shared/data
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump({b"data": x[part].transpose(0, 3, 1, 2).reshape(len(part), -1), b"labels": y[part].tolist()}, fh)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": xt.transpose(0, 3, 1, 2).reshape(len(yt), -1), b"labels": yt.tolist()}, fh)
    ds = load_dataset("cifar10", tmp_path)
    assert torch.equal(ds.x_train.permute(0, 2, 3, 1), torch.from_numpy(x))
    assert ds.augment == "crop_flip" and ds.classes[0] == "airplane"


def test_npz_layouts_nhw_nhwc_nchw(tmp_path, shared_data):
    mini = load_dataset("mnist-mini").subset(train_size=200, test_size=100)
    x, y = mini.x_train.numpy(), mini.y_train.numpy()
    xt, yt = mini.x_test.numpy(), mini.y_test.numpy()
    for layout, (a, b) in {"nhw": (x[:, 0], xt[:, 0]), "nhwc": (x.transpose(0, 2, 3, 1), xt.transpose(0, 2, 3, 1)),
                           "nchw": (x, xt)}.items():
        path = tmp_path / f"{layout}.npz"
        np.savez(path, x_train=a, y_train=y, x_test=b, y_test=yt)
        ds = load_dataset(f"npz:{path}")
        assert torch.equal(ds.x_train, mini.x_train), layout


def _write_gz(path, data: bytes):
    with gzip.open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def mnist_copy(tmp_path, shared_data):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (shared_data / "MNIST" / "raw").glob("*.gz"):
        (raw / f.name).write_bytes(f.read_bytes())
    return tmp_path


def test_bad_mnist_files_are_named(mnist_copy):
    raw = mnist_copy / "MNIST" / "raw"
    good = gzip.decompress((raw / "train-labels-idx1-ubyte.gz").read_bytes())
    _write_gz(raw / "train-labels-idx1-ubyte.gz", b"\x00\x00\x09\x01" + good[4:])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: wrong idx magic"):
        load_dataset("mnist", mnist_copy)
    _write_gz(raw / "train-labels-idx1-ubyte.gz", good[:-100])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: truncated"):
        load_dataset("mnist", mnist_copy / ".")
    (raw / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\[.gz\]: file not found"):
        load_dataset("mnist", mnist_copy / "./.")


def test_bad_labels_and_lengths(mnist_copy):
    raw = mnist_copy / "MNIST" / "raw"
    labels = bytearray(gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[8 + 5] = 12
    _write_gz(raw / "t10k-labels-idx1-ubyte.gz", bytes(labels))
    with pytest.raises(DataError, match=r"y_test has labels out of range"):
        load_dataset("mnist", mnist_copy)
    shorter = bytes(labels[:4]) + (9999).to_bytes(4, "big") + bytes(labels[8:8 + 9999])
    _write_gz(raw / "t10k-labels-idx1-ubyte.gz", shorter)
    with pytest.raises(DataError, match=r"x_test has 10000 images but y_test has 9999 labels"):
        load_dataset("mnist", mnist_copy / ".")


def test_bad_names_and_npz(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown dataset 'imagenet'.*mnist-mini"):
        load_dataset("imagenet")
    mini = load_dataset("mnist-mini")
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=mini.x_train.numpy(), y_train=mini.y_train.numpy(), x_test=mini.x_test.numpy())
    with pytest.raises(DataError, match=r"partial.npz: npz is missing the key\(s\) y_test"):
        load_dataset(f"npz:{path}")
    with pytest.raises(DataError, match="missing.npz: file not found"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")


def test_read_idx_plain_file(tmp_path, shared_data):
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((shared_data / "MNIST/raw/t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels = read_idx(plain)
    assert labels.shape == (10000,) and labels[:3].tolist() == [7, 2, 1]


def test_crop_flip_moves_pixels_and_keeps_content(cifar_npz):
    x = load_dataset(cifar_npz).x_train[:64]
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out, x)
    # every output is a shifted (and maybe mirrored) window of the zero-padded input
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(8):
        found = any(torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32]) or
                    torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32].flip(2))
                    for dy in range(9) for dx in range(9))
        assert found
    assert torch.equal(random_crop_flip(x, torch.Generator().manual_seed(0)), out)


def test_digest_follows_content_through_copies():
    ds = load_dataset("mnist-mini")
    digest = ds.digest()
    assert ds.to("cpu").digest() == digest
    assert ds.subset(train_size=100).digest() != digest
    flipped = ds.replace(y_train=(ds.y_train + 1) % 10)  # e.g. the noise experiment's relabelled copy
    assert flipped.digest() != digest and ds.digest() == digest


def test_one_class_and_untrained_test_classes_are_warned_of(tmp_path, capsys):
    """Accepted (a user may mean it), but said once on stderr and as a LogLine for the run's log and the TUI."""
    from engine.store.events import LogLine

    mini = load_dataset("mnist-mini")
    x, y, xt, yt = mini.x_train.numpy(), mini.y_train.numpy(), mini.x_test.numpy(), mini.y_test.numpy()
    cases = {"one-class": (y == 3, yt == 3, ["one class (3)"]),
             "unseen": (y < 8, np.ones_like(yt, bool), ["2 test class(es) never occur in the training split (8, 9)"]),
             "fine": (np.ones_like(y, bool), np.ones_like(yt, bool), [])}
    for name, (train, test, expected) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, x_train=x[train], y_train=y[train], x_test=xt[test], y_test=yt[test])
        events = []
        load_dataset(f"npz:{path}", on_event=events.append)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        logged = [e.message for e in events if isinstance(e, LogLine) and e.level == "warning"]
        assert len(err) == len(logged) == len(expected), (name, err, logged)
        for line, message, words in zip(err, logged, expected):
            assert line.startswith("prunelab: warning: ") and str(path) in line and words in line, line
            assert message in line
