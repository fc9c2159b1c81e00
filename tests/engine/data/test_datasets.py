"""The field's data sets: each reader on files a helper writes in that exact format from the real images in
../shared/data, a short training run above chance, and every bad-data error."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import scipy.io
from PIL import Image

from engine.config import TrainConfig, config_from_dict
from engine.data import dataset, folders
from engine.data.dataset import load_dataset
from engine.data.formats import MNIST_FILES, read_idx
from engine.data.registry import DATASETS, dataset_names
from engine.errors import ConfigError, DataError
from engine.trainer import train

FAST = TrainConfig(steps=30, batch_size=64, lr=0.05, augment=False)


@pytest.fixture(scope="module")
def mnist(shared_data):
    """2000 training and 500 test digits of the real MNIST, as uint8 arrays."""
    raw = shared_data / "MNIST" / "raw"
    arrays = {key: read_idx(raw / f"{stem}.gz") for key, stem in MNIST_FILES.items()}
    return {"x_train": arrays["x_train"][:2000], "y_train": arrays["y_train"][:2000],
            "x_test": arrays["x_test"][:500], "y_test": arrays["y_test"][:500]}


@pytest.fixture(scope="module")
def cifar(shared_data):
    """The real CIFAR-10 subset (NHWC uint8): 200 training and 50 test images per class."""
    with np.load(shared_data / "cifar10-subset.npz") as f:
        x_tr, y_tr, x_te, y_te = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    tr = np.sort(np.concatenate([np.flatnonzero(y_tr == c)[:200] for c in range(10)]))
    te = np.sort(np.concatenate([np.flatnonzero(y_te == c)[:50] for c in range(10)]))
    return {"x_train": x_tr[tr], "y_train": y_tr[tr], "x_test": x_te[te], "y_test": y_te[te]}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Decoded folders go to this test's folder, never the user's cache; files are read again on every load."""
    monkeypatch.setenv("PRUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dataset, "_CACHE", {})


def write_idx(path, array, compress):
    """idx: big-endian magic 0x0000080{ndim}, the dimensions as uint32, then the bytes."""
    data = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def trains_above_chance(ds, model="mlp", floor=None):
    result = train(model, ds, FAST, seed=0)
    chance = 1 / len(np.unique(ds.y_test.numpy()))
    assert result.test_accuracy > (floor if floor is not None else 2.5 * chance), result.test_accuracy
    return result


@pytest.mark.parametrize("name,folder,compress", [("fashion-mnist", "FashionMNIST", True), ("kmnist", "KMNIST", False)])
def test_idx_sets_in_torchvision_layout(tmp_path, mnist, name, folder, compress):
    for key, stem in MNIST_FILES.items():
        write_idx(tmp_path / folder / "raw" / stem, mnist[key], compress)
    ds = load_dataset(name, tmp_path)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10 and ds.classes == DATASETS[name].classes
    assert np.array_equal(ds.x_train.numpy()[:, 0], mnist["x_train"])
    assert np.array_equal(ds.y_test.numpy(), mnist["y_test"])
    trains_above_chance(ds)


def test_idx_set_missing_file_names_the_layout(tmp_path):
    (tmp_path / "KMNIST" / "raw").mkdir(parents=True)
    with pytest.raises(DataError, match=r"KMNIST/raw/train-images-idx3-ubyte\[\.gz\]: file not found.*DIR/KMNIST/raw/"):
        load_dataset("kmnist", tmp_path)


def write_cifar100(root, cifar, fine=None, drop=None, data_shape=None):
    """cifar-100-python/{train,test,meta} from the CIFAR-10 images: fine label 10·y + 3, coarse label 2·y."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        x, y = cifar[f"x_{split}"], cifar[f"y_{split}"]
        batch = {b"filenames": [f"{i}.png".encode() for i in range(len(y))], b"batch_label": split.encode(),
                 b"fine_labels": (10 * y + 3 if fine is None else fine(y)).tolist(), b"coarse_labels": (2 * y).tolist(),
                 b"data": x.transpose(0, 3, 1, 2).reshape(len(y), 3072)}
        if data_shape is not None:
            batch[b"data"] = batch[b"data"].reshape(data_shape)
        if drop:
            del batch[drop]
        with open(folder / split, "wb") as f:
            pickle.dump(batch, f)
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f)


def test_cifar100_fine_and_coarse(tmp_path, cifar):
    write_cifar100(tmp_path, cifar)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.classes[13] == "fine13" and ds.augment == "crop_flip"
    assert np.array_equal(ds.x_train.numpy(), cifar["x_train"].transpose(0, 3, 1, 2))
    assert np.array_equal(ds.y_train.numpy(), 10 * cifar["y_train"] + 3)
    coarse = load_dataset("cifar100", tmp_path, options={"labels": "coarse"})
    assert coarse.num_classes == 20 and coarse.classes[0] == "coarse0"
    assert np.array_equal(coarse.y_test.numpy(), 2 * cifar["y_test"])
    result = train("mlp", coarse, FAST, seed=0)
    assert result.test_accuracy > 0.2  # 10 of the 20 classes occur: chance 0.1


def test_cifar100_bad_files(tmp_path, cifar):
    with pytest.raises(DataError, match=r"cifar-100-python/train: file not found; --data-dir must hold"):
        load_dataset("cifar100", tmp_path / "nowhere")
    write_cifar100(tmp_path / "a", cifar, drop=b"fine_labels")
    with pytest.raises(DataError, match=r"train: missing the key\(s\) b'fine_labels'"):
        load_dataset("cifar100", tmp_path / "a")
    write_cifar100(tmp_path / "b", cifar, data_shape=(-1, 1024, 3))
    with pytest.raises(DataError, match=r"b'data' is uint8 \(2000, 1024, 3\); expected uint8 \(N, 3072\)"):
        load_dataset("cifar100", tmp_path / "b")
    write_cifar100(tmp_path / "c", cifar, fine=lambda y: y + 95)
    with pytest.raises(DataError, match=r"y_train has labels out of range \[95, 104\]; expected 0..99"):
        load_dataset("cifar100", tmp_path / "c")
    (tmp_path / "d" / "cifar-100-python").mkdir(parents=True)
    (tmp_path / "d" / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"train: not a CIFAR-100 python pickle"):
        load_dataset("cifar100", tmp_path / "d")
    with pytest.raises(ConfigError, match=r"data.options.labels = 'medium': dataset 'cifar100' takes one of 'fine'"):
        load_dataset("cifar100", tmp_path, options={"labels": "medium"})  # refused by the option's check


def write_svhn(root, cifar, split, x=None, y=None, key_x="X"):
    """An SVHN .mat file: X (32, 32, 3, N) uint8 and y (N, 1) with 10 for the digit 0."""
    name = {"train": "train", "test": "test", "extra": "train"}[split]
    images = cifar[f"x_{name}"].transpose(1, 2, 3, 0) if x is None else x
    labels = np.where(cifar[f"y_{name}"] == 0, 10, cifar[f"y_{name}"])[:, None].astype(np.uint8) if y is None else y
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / f"{split}_32x32.mat", {key_x: images, "y": labels})


def test_svhn_mat_files_and_extra(tmp_path, cifar):
    for split in ("train", "test"):
        write_svhn(tmp_path, cifar, split)
    ds = load_dataset("svhn", tmp_path)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert np.array_equal(ds.x_train.numpy(), cifar["x_train"].transpose(0, 3, 1, 2))
    assert np.array_equal(ds.y_train.numpy(), cifar["y_train"])  # 10 read back as 0
    trains_above_chance(ds, floor=0.2)
    with pytest.raises(DataError, match="extra_32x32.mat: file not found"):
        load_dataset("svhn", tmp_path, options={"extra": True})
    write_svhn(tmp_path, cifar, "extra")
    both = load_dataset("svhn", tmp_path, options={"extra": True})
    assert len(both) == 2 * len(ds) and np.array_equal(both.x_train.numpy()[len(ds):], ds.x_train.numpy())


def test_svhn_bad_files(tmp_path, cifar):
    with pytest.raises(DataError, match="train_32x32.mat: file not found"):
        load_dataset("svhn", tmp_path)
    write_svhn(tmp_path / "a", cifar, "train", key_x="images")
    with pytest.raises(DataError, match="missing the variable.s. X; an SVHN .mat file has X and y"):
        load_dataset("svhn", tmp_path / "a")
    write_svhn(tmp_path / "b", cifar, "train", x=cifar["x_train"][:, :16].transpose(1, 2, 3, 0))
    with pytest.raises(DataError, match=r"X is uint8 \(16, 32, 3, 2000\); expected uint8 \(32, 32, 3, N\)"):
        load_dataset("svhn", tmp_path / "b")
    write_svhn(tmp_path / "c", cifar, "train", y=cifar["y_train"][:, None].astype(np.uint8))
    with pytest.raises(DataError, match=r"labels out of range \[0, 9\]; SVHN's are 1..10"):
        load_dataset("svhn", tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable .mat file"):
        load_dataset("svhn", tmp_path / "d")


def write_tinyimagenet(root, cifar, per_class=100, val_per_class=30):
    """tiny-imagenet-200/: train/<wnid>/images/<wnid>_k.JPEG and val/images + val_annotations.txt, 64×64 JPEG,
    from the CIFAR-10 images upscaled; returns the wnids and the decoded val images (what pillow reads back)."""
    base = root / "tiny-imagenet-200"
    wnids = [f"n{1440764 + 7 * c:08d}" for c in range(10)]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    lines = []
    for c, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(cifar["y_train"] == c)[:per_class]):
            Image.fromarray(cifar["x_train"][i]).resize((64, 64)).save(folder / f"{wnid}_{k}.JPEG", quality=95)
    for k, i in enumerate(np.concatenate([np.flatnonzero(cifar["y_test"] == c)[:val_per_class] for c in range(10)])):
        Image.fromarray(cifar["x_test"][i]).resize((64, 64)).save(base / "val" / "images" / f"val_{k}.JPEG", quality=95)
        lines.append(f"val_{k}.JPEG\t{wnids[cifar['y_test'][i]]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base, wnids


def test_tinyimagenet_layout(tmp_path, cifar):
    base, wnids = write_tinyimagenet(tmp_path, cifar)
    ds = load_dataset("tinyimagenet", tmp_path)
    assert ds.input_shape == (3, 64, 64) and ds.classes == sorted(wnids) and len(ds) == 1000 and len(ds.y_test) == 300
    with Image.open(base / "val" / "images" / "val_7.JPEG") as im:
        assert np.array_equal(ds.x_test.numpy()[7], np.asarray(im.convert("RGB")).transpose(2, 0, 1))
    assert np.array_equal(np.bincount(ds.y_train.numpy()), [100] * 10)
    trains_above_chance(ds, floor=0.2)


def test_tinyimagenet_bad_tree(tmp_path, cifar):
    with pytest.raises(DataError, match="pass --data-dir holding DIR/tiny-imagenet-200/"):
        load_dataset("tinyimagenet")
    with pytest.raises(DataError, match="tiny-imagenet-200/train: folder not found"):
        load_dataset("tinyimagenet", tmp_path)
    base, wnids = write_tinyimagenet(tmp_path, cifar, per_class=3, val_per_class=2)
    annotations = base / "val" / "val_annotations.txt"
    good = annotations.read_text()
    annotations.write_text(good.replace(wnids[0], "n99999999", 1))
    with pytest.raises(DataError, match=r"val_annotations.txt:1: wnid 'n99999999' has no train/ folder"):
        load_dataset("tinyimagenet", tmp_path)
    annotations.write_text(good)
    (base / "val" / "images" / "val_0.JPEG").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"1 unreadable image\(s\): .*val_0.JPEG; .*set skip_bad = true"):
        load_dataset("tinyimagenet", tmp_path)
    ds = load_dataset("tinyimagenet", tmp_path, options={"skip_bad": True})
    assert len(ds.y_test) == 19
    dataset._CACHE.clear()
    for p in (base / "train" / wnids[4] / "images").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=f"{wnids[4]}/images: empty class folder"):
        load_dataset("tinyimagenet", tmp_path)


def write_folder(root, x, y, names, jpeg_classes=()):
    """One subfolder per class; PNG (lossless) except the classes in jpeg_classes."""
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".jpg" if label in jpeg_classes else ".png"
        Image.fromarray(img).save(folder / f"img{i:05d}{suffix}")


NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_image_folder_with_test_dir_png_and_jpeg(tmp_path, cifar):
    write_folder(tmp_path / "train", cifar["x_train"], cifar["y_train"], NAMES, jpeg_classes={3})
    write_folder(tmp_path / "test", cifar["x_test"], cifar["y_test"], NAMES)
    name = f"folder:{tmp_path / 'train'}"
    ds = load_dataset(name, options={"test_dir": str(tmp_path / "test")})
    assert ds.classes == NAMES and ds.input_shape == (3, 32, 32)
    # files sort by name within each class folder, classes in name order: the same order as the source here
    order = np.argsort(cifar["y_train"], kind="stable")
    png = cifar["y_train"][order] != 3
    assert np.array_equal(ds.y_train.numpy(), cifar["y_train"][order])
    assert np.array_equal(ds.x_train.numpy()[png], cifar["x_train"][order][png].transpose(0, 3, 1, 2))
    assert np.array_equal(ds.x_test.numpy(), cifar["x_test"][np.argsort(cifar["y_test"], kind="stable")].transpose(0, 3, 1, 2))
    trains_above_chance(ds, floor=0.2)


def test_image_folder_split_cache_and_size(tmp_path, cifar, monkeypatch):
    write_folder(tmp_path / "imgs", cifar["x_train"][:300], cifar["y_train"][:300], NAMES)
    name = f"folder:{tmp_path / 'imgs'}"
    ds = folders.read_folder(tmp_path / "imgs", test_fraction=0.25, seed=3)
    counts = np.bincount(cifar["y_train"][:300], minlength=10)
    assert np.array_equal(np.bincount(ds["y_test"], minlength=10), np.round(0.25 * counts).astype(int))
    again = folders.read_folder(tmp_path / "imgs", test_fraction=0.25, seed=3)
    assert all(np.array_equal(ds[k], again[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    other = folders.read_folder(tmp_path / "imgs", test_fraction=0.25, seed=4)
    assert not np.array_equal(ds["y_train"], other["y_train"]) or not np.array_equal(ds["x_train"], other["x_train"])
    assert len(list(folders.cache_dir().glob("*.npz"))) == 1  # decoded once: the split is drawn after the cache

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although nothing changed")

    real_decode = folders.decode
    monkeypatch.setattr(folders, "decode", no_decoding)
    folders.read_folder(tmp_path / "imgs")
    monkeypatch.setattr(folders, "decode", real_decode)
    first = min((tmp_path / "imgs" / "cat").iterdir())
    Image.fromarray(cifar["x_test"][0]).save(first)  # new content, new mtime: decoded again
    changed = folders.read_folder(tmp_path / "imgs")
    assert len(list(folders.cache_dir().glob("*.npz"))) == 2 and len(changed["y_train"]) + len(changed["y_test"]) == 300
    small = load_dataset(name, options={"size": 16})
    assert small.input_shape == (3, 16, 16)


def test_image_folder_bad_data(tmp_path, cifar):
    with pytest.raises(DataError, match="folder not found; give a folder with one subfolder of images per class"):
        load_dataset(f"folder:{tmp_path / 'none'}")
    root = tmp_path / "imgs"
    write_folder(root, cifar["x_train"][:100], cifar["y_train"][:100], NAMES)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="empty: empty class folder"):
        load_dataset(f"folder:{root}")
    (root / "empty").rmdir()
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "cat" / "broken.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"2 unreadable image\(s\): .*cat/broken.jpg, .*dog/broken.png; .*skip_bad"):
        load_dataset(f"folder:{root}")
    ds = load_dataset(f"folder:{root}", options={"skip_bad": True})
    assert len(ds) + len(ds.y_test) == 100
    Image.fromarray(cifar["x_train"][0]).resize((40, 40)).save(root / "dog" / "big.png")
    dataset._CACHE.clear()  # a process reads a data set once; the folder's own cache sees the new file
    with pytest.raises(DataError, match="images of different sizes .* set the option size = N"):
        load_dataset(f"folder:{root}", options={"skip_bad": True})
    with pytest.raises(DataError, match="test_fraction=1.5"):
        folders.read_folder(root, test_fraction=1.5, skip_bad=True, size=32)
    with pytest.raises(DataError, match="dataset 'folder:' needs a path"):
        load_dataset("folder:")


def test_registry_options_reach_the_validator():
    assert {"fashion-mnist", "kmnist", "cifar100", "svhn", "tinyimagenet"} <= set(DATASETS)
    assert "folder:PATH" in dataset_names()
    config = config_from_dict({"data": {"dataset": "cifar100", "options": {"labels": "coarse"}}})
    assert config.data.options == {"labels": "coarse"}
    with pytest.raises(ConfigError, match="data.options: dataset 'svhn' takes no option.s. labels; it takes: extra"):
        config_from_dict({"data": {"dataset": "svhn", "options": {"labels": "coarse"}}})


def test_image_folder_decoding_reports_progress_and_the_second_load_opens_no_image(tmp_path, cifar, monkeypatch):
    from PIL import Image as PILImage

    from engine.cli.common import ProgressBars
    from engine.store.events import BatchProgress, StageStarted

    write_folder(tmp_path / "imgs", cifar["x_train"][:120], cifar["y_train"][:120], NAMES)
    name = f"folder:{tmp_path / 'imgs'}"
    events = []
    first = load_dataset(name, on_event=events.append)
    stages = [e for e in events if isinstance(e, StageStarted)]
    counts = [(e.batch, e.batches) for e in events if isinstance(e, BatchProgress)]
    assert [s.stage for s in stages] == ["decoding"] and "120 images" in stages[0].detail
    assert counts[0] == (1, 120) and counts[-1] == (120, 120) and counts == sorted(counts)
    bars = ProgressBars(enabled=True)  # the CLI's bars name the images, not an epoch
    with bars:
        for event in events:
            bars(event)
    described = {t.description: (t.completed, t.total, t.fields["info"]) for t in bars.progress.tasks}
    assert list(described) == ["images"]  # no epoch bar stuck at 0/1 while the images decode
    done, total, info = described["images"]
    assert (done, total) == (120, 120) and info.startswith("decoding")

    def no_image(*args, **kwargs):
        raise AssertionError("an image was opened although the folder is cached")

    dataset._CACHE.clear()  # a new process: only the decoded-folder cache remains
    monkeypatch.setattr(PILImage, "open", no_image)
    events.clear()
    second = load_dataset(name, on_event=events.append)
    assert events == [] and np.array_equal(first.x_train.numpy(), second.x_train.numpy())
    assert np.array_equal(first.y_test.numpy(), second.y_test.numpy())
