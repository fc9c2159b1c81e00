"""Issue 25's data rows: every damaged or missing npz, MNIST .gz or image folder, an unknown timm/torchvision model,
images too small for the model, a subset larger than the data set. Each is refused by the pre-run check
(engine/preflight.py) with one line and exit 2, and leaves no run behind; what changed under a run is refused on
resume; labels and trailing bytes cannot grow memory; a damaged or unwritable decode cache is skipped.

Each case runs `prunelab run` in this process (a subprocess costs seconds of imports), in its own folder with its
own empty store (`in_tmp`) and its own timeout.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.data import dataset
from tests.builders import cli
from tests.faults.input_support import (
    cifar_arrays,
    flip_bytes,
    gz_member,
    image_folder,
    message_lines,
    mnist_copy,
    one_line,
    refused,
    run_args,
    stored_runs,
    with_trailing_zeros,
    write_npz,
)


# ---------------------------------------------------------------- npz files: each builder writes one bad file
def _npz(tmp: Path, shared: Path, **changes) -> Path:
    return write_npz(tmp / "d.npz", cifar_arrays(shared), **changes)


def _truncated(tmp, shared):
    path = _npz(tmp, shared)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _bit_flipped(tmp, shared):
    path = _npz(tmp, shared)
    return flip_bytes(path, path.stat().st_size // 3)  # inside x_train's data: its CRC no longer matches


def _header_lies(tmp, shared):
    """x_train's .npy header promises 1000 times the images the member holds (numpy would allocate them first);
    the header keeps its length (padding spaces give way), the zip around it stays valid."""
    path = _npz(tmp, shared)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    data = members["x_train.npy"]
    size = int.from_bytes(data[8:10], "little")
    header = data[10:10 + size].decode("latin1")
    lying = header.replace("(300, 32, 32, 3)", "(300000, 32, 32, 3)").replace("   \n", "\n")
    assert len(lying) == len(header) and lying != header
    members["x_train.npy"] = data[:10] + lying.encode("latin1") + data[10 + size:]
    with zipfile.ZipFile(path, "w") as zf:
        for name, member in members.items():
            zf.writestr(name, member)
    return path


def _single_npy(tmp, shared):
    path = tmp / "single.npy"
    np.save(path, cifar_arrays(shared)["x_train"])
    return path


def _a_folder(tmp, shared):
    (tmp / "data.npz").mkdir()
    return tmp / "data.npz"


def _object_labels(tmp, shared):
    arrays = cifar_arrays(shared)
    path = tmp / "objects.npz"
    np.savez(path, **{**arrays, "y_train": np.array([str(v) for v in arrays["y_train"]], dtype=object)})
    return path


NPZ_CASES = {
    "missing": (lambda tmp, shared: tmp / "missing.npz", ("missing.npz", "file not found")),
    "truncated": (_truncated, ("d.npz", "not a readable .npz", "damaged")),
    "bit-flipped": (_bit_flipped, ("d.npz", "CRC", "damaged")),
    "header promises more": (_header_lies, ("d.npz", "x_train is damaged", "300000")),
    "a .npy": (_single_npy, ("single.npy", "single array (.npy)")),
    "a folder": (_a_folder, ("data.npz", "is a folder")),
    "a key missing": (lambda tmp, shared: _npz(tmp, shared, y_test=None), ("d.npz", "missing the key(s) y_test")),
    "float images": (lambda tmp, shared: _npz(tmp, shared, x_train=cifar_arrays(shared)["x_train"] / 255.0),
                     ("d.npz", "x_train has dtype float64", "uint8")),
    "ambiguous channels": (lambda tmp, shared: _npz(tmp, shared, x_train=np.ascontiguousarray(
        cifar_arrays(shared)["x_train"][:, :3]), x_test=np.ascontiguousarray(cifar_arrays(shared)["x_test"][:, :3])),
        ("d.npz", "ambiguous")),
    "lengths differ": (lambda tmp, shared: _npz(tmp, shared, y_train=cifar_arrays(shared)["y_train"][:-1]),
                       ("d.npz", "300 images but y_train has 299 labels")),
    "empty test split": (lambda tmp, shared: _npz(tmp, shared, x_test=cifar_arrays(shared)["x_test"][:0],
                                                   y_test=cifar_arrays(shared)["y_test"][:0]),
                         ("d.npz", "the test split is empty")),
    "train and test shapes": (lambda tmp, shared: _npz(tmp, shared, x_test=cifar_arrays(shared)["x_test"][:, :16]),
                              ("d.npz", "differ in shape")),
    "negative label": (lambda tmp, shared: _npz(tmp, shared, y_test=np.r_[-1, cifar_arrays(shared)["y_test"][1:]]),
                       ("d.npz", "y_test has labels out of range [-1")),
    "2-d labels": (lambda tmp, shared: _npz(tmp, shared, y_train=cifar_arrays(shared)["y_train"][:, None]),
                   ("d.npz", "1-D array of integer labels")),
    "object labels": (_object_labels, ("objects.npz", "Python objects")),
    "label 2**40": (lambda tmp, shared: _npz(tmp, shared, y_train=np.r_[2**40, cifar_arrays(shared)["y_train"][1:]]),
                    ("d.npz", "1099511627776", "at most 100000 classes")),
    "8x8 images, cnn": (lambda tmp, shared: _npz(tmp, shared, x_train=cifar_arrays(shared)["x_train"][:, :8, :8],
                                                  x_test=cifar_arrays(shared)["x_test"][:, :8, :8]),
                        ("3x8x8", "too small for model 'cnn'", "16x16", "data.options.size")),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", NPZ_CASES)
def test_a_bad_npz_is_refused_before_the_run_exists(in_tmp, shared_data, case):
    build, words = NPZ_CASES[case]
    path = build(in_tmp, shared_data)
    model = "cnn" if "cnn" in case else "mlp"
    refused(run_args(**{"data.dataset": f"npz:{path}", "model": model}), *words)


@pytest.mark.timeout(60)
def test_a_good_npz_passes_the_check_and_damage_anywhere_is_found(in_tmp, shared_data):
    """The check reads the whole file (every member's CRC), not only its headers: a flipped byte in the last
    member's data fails too, and the good file passes with its facts right."""
    from engine.data.registry import probe_dataset

    path = _npz(in_tmp, shared_data)
    facts = probe_dataset(f"npz:{path}")
    assert (facts.n_train, facts.n_test, facts.shape, facts.classes) == (300, 100, (3, 32, 32), 10)
    with zipfile.ZipFile(path) as zf:
        last = zf.infolist()[-1]  # y_test's data ends 8 bytes before the central directory's start
        end = last.header_offset + 30 + len(last.filename) + last.compress_size
    flip_bytes(path, end - 8, 4)
    refused(run_args(**{"data.dataset": f"npz:{path}"}), "d.npz", "CRC")


# ---------------------------------------------------------------- MNIST's .gz files
def _mnist(tmp, shared, name=None, data=None, append=None):
    raw = mnist_copy(shared, tmp / "data")
    if name is not None and data is not None:
        (raw / name).write_bytes(data)
    if name is not None and append is not None:
        append(raw / name)
    return tmp / "data"


def _flipped_gz(tmp, shared):
    folder = _mnist(tmp, shared)
    flip_bytes(folder / "MNIST" / "raw" / "train-images-idx3-ubyte.gz", 4000, 160)
    return folder


def _truncated_gz(tmp, shared):
    folder = _mnist(tmp, shared)
    path = folder / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500_000])
    return folder


def _swapped(tmp, shared):
    folder = _mnist(tmp, shared)
    raw = folder / "MNIST" / "raw"
    shutil.copyfile(raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz")
    return folder


MNIST_CASES = {
    "a file missing": (lambda tmp, shared: _mnist(tmp, shared, "t10k-labels-idx1-ubyte.gz", append=os.unlink),
                       ("t10k-labels-idx1-ubyte[.gz]: file not found",)),
    "deflate damaged": (_flipped_gz, ("train-images-idx3-ubyte.gz", "damaged")),
    "truncated": (_truncated_gz, ("train-images-idx3-ubyte.gz", "damaged or truncated")),
    "labels with the images' magic": (_swapped, ("t10k-labels-idx1-ubyte.gz", "0x00000803 marks images",
                                                 "must hold labels")),
    "not idx at all": (lambda tmp, shared: _mnist(tmp, shared, "train-labels-idx1-ubyte.gz",
                                                  gz_member(b"PK\x03\x04 a zip, not idx " * 10)),
                       ("train-labels-idx1-ubyte.gz", "wrong idx magic")),
    "header cut": (lambda tmp, shared: _mnist(tmp, shared, "t10k-labels-idx1-ubyte.gz",
                                              gz_member(b"\x00\x00\x08\x01\x00\x00")),
                   ("t10k-labels-idx1-ubyte.gz", "truncated idx header")),
    "1 GB of trailing bytes": (lambda tmp, shared: _mnist(tmp, shared, "t10k-labels-idx1-ubyte.gz",
                                                          append=with_trailing_zeros),
                               ("t10k-labels-idx1-ubyte.gz", "holds more than the 10000 bytes its header promises")),
    "a label above 9": (lambda tmp, shared: _mnist(tmp, shared, "t10k-labels-idx1-ubyte.gz", gz_member(
        b"\x00\x00\x08\x01" + (10000).to_bytes(4, "big") + bytes([42]) + bytes(9999))),
                        ("mnist", "y_test has labels out of range [0, 42]; expected 0..9")),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", MNIST_CASES)
def test_bad_mnist_files_are_refused_before_the_run_exists(in_tmp, shared_data, case):
    build, words = MNIST_CASES[case]
    folder = build(in_tmp, shared_data)
    refused(run_args(**{"data.dataset": "mnist", "data.data_dir": str(folder)}), *words)


MEMORY_CHECK = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20))  # 600 MB of address space, torch not loaded
from pathlib import Path
from engine.data.registry import probe_dataset
from engine.data.formats import check_arrays, load_npz_arrays, read_idx
from engine.errors import DataError
for call in (lambda: probe_dataset(sys.argv[1]), lambda: check_arrays(load_npz_arrays(Path(sys.argv[1][4:])), "s"),
             lambda: probe_dataset("mnist", sys.argv[2]), lambda: read_idx(sys.argv[3])):
    try:
        call()
        print("accepted")
    except DataError as exc:
        print("refused:", str(exc)[-150:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print("peak_mb", int(peak.split()[1]) // 1024)
"""


@pytest.mark.timeout(90)
def test_labels_and_trailing_bytes_cannot_grow_memory(tmp_path, shared_data):
    """A label of 2**40 (a list of 2**40 class names grew to 21.6 GB) and 1 GB of bytes after an idx file's data
    (inflated whole before) are refused inside 600 MB of address space, by the check and the readers alike."""
    npz = _npz(tmp_path, shared_data, y_train=np.r_[2**40, cifar_arrays(shared_data)["y_train"][1:]])
    folder = _mnist(tmp_path, shared_data, "t10k-labels-idx1-ubyte.gz", append=with_trailing_zeros)
    trailing = folder / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    assert trailing.stat().st_size < 2 << 20  # 1 GB once inflated, about 1 MB on disk
    out = subprocess.run([sys.executable, "-c", MEMORY_CHECK, f"npz:{npz}", str(folder), str(trailing)],
                         capture_output=True, text=True, timeout=80, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert all(line.startswith("refused:") for line in lines[:4]), lines
    assert "1099511627776" in lines[0] and "1099511627776" in lines[1], lines
    assert "holds more than the 10000 bytes" in lines[2] and "holds more than the 10000 bytes" in lines[3], lines
    assert int(lines[4].split()[1]) < 300, lines  # peak memory well under the limit: nothing was inflated whole


# ---------------------------------------------------------------- image folders
def _folder(tmp, shared):
    return image_folder(shared, tmp / "images")


def _empty_class(tmp, shared):
    root = _folder(tmp, shared)
    (root / "c9").mkdir()
    return root


def _one_image_class(tmp, shared):
    root = _folder(tmp, shared)
    for extra in sorted((root / "c2").iterdir())[1:]:
        extra.unlink()
    return root


def _corrupt_image(tmp, shared):
    root = _folder(tmp, shared)
    (root / "c1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not the rest of a png")
    return root


def _mixed_sizes(tmp, shared):
    from PIL import Image

    root = _folder(tmp, shared)
    Image.new("RGB", (20, 24)).save(root / "c0" / "odd.png")
    return root


FOLDER_CASES = {
    "missing": (lambda tmp, shared: tmp / "nowhere", {}, ("nowhere: folder not found",)),
    "no class folders": (lambda tmp, shared: (tmp / "flat").mkdir() or tmp / "flat", {},
                         ("flat: no class subfolders",)),
    "an empty class": (_empty_class, {}, ("c9: empty class folder",)),
    "one image in a class": (_one_image_class, {}, ("c2", "fewer than 2 images")),
    "a corrupt image": (_corrupt_image, {}, ("1 unreadable image(s)", "broken.png", "skip_bad")),
    "mixed sizes": (_mixed_sizes, {}, ("images of different sizes", "size = N")),
    "test_dir with another class": (_folder, {"test_dir": "TEST"}, ("class folder(s) c3 are not in",)),
    "size=abc": (_folder, {"size": "abc"}, ("data.options.size = 'abc'", "an integer from 1 to 4096")),
    "test_fraction=abc": (_folder, {"test_fraction": "abc"}, ("data.options.test_fraction = 'abc'", "a number")),
    "seed=abc": (_folder, {"seed": "abc"}, ("data.options.seed = 'abc'", "an integer from 0 to 2**32 - 1")),
    "size=2, cnn": (_folder, {"size": 2}, ("3x2x2", "too small for model 'cnn'")),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", FOLDER_CASES)
def test_a_bad_image_folder_is_refused_before_the_run_exists(in_tmp, shared_data, monkeypatch, case):
    monkeypatch.setenv("PRUNELAB_CACHE", str(in_tmp / "cache"))
    build, options, words = FOLDER_CASES[case]
    root = build(in_tmp, shared_data)
    if options.get("test_dir") == "TEST":
        test_root = image_folder(shared_data, in_tmp / "test", classes=4, per_class=2)
        options = {"test_dir": str(test_root)}
    overrides = {"data.dataset": f"folder:{root}", "data.train_size": None, "data.test_size": None,
                 **{f"data.options.{k}": v for k, v in options.items()}}
    if "cnn" in case:
        overrides["model"] = "cnn"
    refused(run_args(**overrides), *words)


@pytest.mark.timeout(120)
def test_a_damaged_decode_cache_entry_and_an_unwritable_cache_are_skipped(in_tmp, shared_data, monkeypatch):
    """A decoded-folder cache entry scribbled over (BadZipFile) is decoded again; a cache on a read-only mount (or
    a full one) is skipped: the data loads and trains, nothing is said on stderr."""
    root = image_folder(shared_data, in_tmp / "images")
    cache = in_tmp / "cache"
    monkeypatch.setenv("PRUNELAB_CACHE", str(cache))
    args = ["train", "--dataset", f"folder:{root}", "--model", "mlp", "--epochs", "1", "--device", "cpu"]
    first = cli(args)
    assert first.exit_code == 0, first.output
    [entry] = (cache / "folders").glob("*.npz")
    entry.write_bytes(b"PK\x03\x04" + os.urandom(2000))  # a zip's magic, then noise: BadZipFile
    monkeypatch.setattr(dataset, "_CACHE", {})  # as a new process: the arrays this one kept are gone
    again = cli(args)
    assert again.exit_code == 0 and message_lines(again.stderr) == [], (again.output, again.exception)
    with np.load(entry) as f:  # decoded again and written over the damaged entry
        assert f["x"].shape == (36, 32, 32, 3)
    read_only = in_tmp / "ro"
    read_only.mkdir()
    if os.geteuid() == 0:  # root writes through file modes: a read-only bind mount in a private namespace
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare: no read-only mount to test with")
        script = (f'mount --bind "{read_only}" "{read_only}" && mount -o remount,bind,ro "{read_only}" && '
                  'exec "$@"')
        prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    else:
        read_only.chmod(0o555)
        prefix = []
    out = subprocess.run([*prefix, sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                         timeout=100, check=False, cwd=in_tmp,
                         env={**os.environ, "PRUNELAB_CACHE": str(read_only / "c"),
                              "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0 and "test accuracy" in out.stdout, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not list(read_only.iterdir())


# ---------------------------------------------------------------- models, downloads, sizes
@pytest.mark.timeout(120)
@pytest.mark.parametrize("model, words", [
    ("timm:no_such_net", ("model 'timm:no_such_net'", "timm has no model", "timm.list_models()")),
    ("torchvision:no_such_net", ("model 'torchvision:no_such_net'", "torchvision has no model")),
])
def test_an_unknown_library_model_is_refused_before_the_run_exists(in_tmp, model, words):
    if model.startswith("timm:"):
        pytest.importorskip("timm", reason="timm is the `timm` extra")
    refused(run_args(model=model), *words)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key, value, words", [
    ("data.train_size", 10**12, ("data.train_size = 1000000000000", "more than the 10000 training samples")),
    ("data.test_size", 2001, ("data.test_size = 2001", "more than the 2000 test samples")),
])
def test_a_subset_larger_than_the_data_set_is_refused_not_capped(in_tmp, key, value, words):
    refused(run_args(**{key: value}), *words)


@pytest.mark.timeout(120)
def test_a_failed_download_is_one_line_before_the_run_exists(in_tmp, monkeypatch):
    """No --data-dir and nothing downloaded: torchvision tries its mirrors; its error (6 lines: every mirror) is
    one line, and no run is left behind. Needs a machine without network (as this one): elsewhere it downloads."""
    import socket

    try:
        socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443), timeout=3).close()
        pytest.skip("this machine reaches MNIST's mirror: the check would download it")
    except OSError:
        pass
    monkeypatch.setenv("PRUNELAB_DATA", str(in_tmp / "downloads"))
    refused(run_args(**{"data.dataset": "mnist"}), "could not download mnist into", "--data-dir",
            "train-images-idx3-ubyte.gz")


def test_the_smallest_sides_of_the_built_in_models_are_what_a_dry_forward_says():
    """engine.nets.SMALLEST_SIDE lets the check refuse images too small without torch: each built-in model takes
    images of its smallest side and refuses one pixel less (grey and RGB), as its real forward says."""
    import torch

    from engine.architectures import build_model
    from engine.errors import DataError
    from engine.nets import SMALLEST_SIDE

    assert set(SMALLEST_SIDE) == {"cnn", "mlp", "resnet18", "resnet34", "resnet50", "wrn16_8", "wrn28_10",
                                  "vgg16_bn", "airbench"}
    for name, side in SMALLEST_SIDE.items():
        for channels in (1, 3):
            with torch.device("meta"):
                build_model(name, (channels, side, side + 3), 10)
                if side > 1:
                    with pytest.raises(DataError, match="too small"):
                        build_model(name, (channels, side - 1, side + 3), 10)


# ---------------------------------------------------------------- results silently wrong: the data changed
def _relabel_mnist(folder: Path) -> None:
    """MNIST's training labels moved to the next class, written over the copy's labels file."""
    import gzip

    path = folder / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[8:] = bytes((b + 1) % 10 for b in raw[8:])
    path.write_bytes(gz_member(bytes(raw)))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("source", ["npz", "mnist"])
def test_a_resume_on_changed_data_is_refused_or_tagged(in_tmp, shared_data, source):
    """`run` on the data, the data rewritten with other labels, `run --resume RID`: one line, exit 2, the run as
    it was (status, children); `--allow-data-change` goes on and tags the run with both digests. In this process,
    as a script would: what it read before must not stand in for the files as they are now."""
    import json

    from engine import names
    from engine.store.tracking import tracker

    if source == "npz":
        path = _npz(in_tmp, shared_data)
        data, label = {"data.dataset": f"npz:{path}"}, f"npz:{path}"
    else:
        folder = _mnist(in_tmp, shared_data)
        data, label = {"data.dataset": "mnist", "data.data_dir": str(folder)}, "mnist"
    first = cli([*run_args(**data), "--json"])
    assert first.exit_code == 0, first.output
    run_id = json.loads(first.stdout)["run_id"]
    before = stored_runs()
    if source == "npz":
        arrays = cifar_arrays(shared_data)
        write_npz(path, arrays, y_train=(arrays["y_train"] + 1) % 10)  # every training label moved to the next class
    else:
        _relabel_mnist(folder)
    for args in (["run", "--resume", run_id], ["run", "--resume", run_id, "--detach"]):
        line = one_line(cli(args), 2, f"run {run_id} trained on {label}", "the data changed since",
                        "--allow-data-change")
        assert stored_runs() == before, line  # no child added, no status changed
    tags = tracker(None, str(in_tmp)).get_run(run_id).data.tags
    assert names.DATA_CHANGED not in tags
    if source == "mnist":
        return  # the refusal is what differs by source; accepting it is the same code
    allowed = cli(["run", "--resume", run_id, "--allow-data-change"])
    assert allowed.exit_code == 0, allowed.output
    tags = tracker(None, str(in_tmp)).get_run(run_id).data.tags
    old, new = tags[names.DATA_CHANGED].split(" -> ")
    assert old != new and tags[names.DATA_DIGEST] == new and old in line and new in line


# ---------------------------------------------------------------- every trial failed: said on stderr
BROKEN_MODEL = textwrap.dedent('''
    """A model that builds and passes a dry forward, and fails in training: every trial of a run fails."""
    import torch
    from torch import nn

    import engine


    class Broken(nn.Module):
        def __init__(self, shape, classes):
            super().__init__()
            self.head = nn.Linear(shape[0] * shape[1] * shape[2], classes)

        def forward(self, x):
            if self.training:
                raise RuntimeError("broken in training, as asked")
            return self.head(x.flatten(1))


    engine.register_model("broken", lambda shape, classes: Broken(shape, classes))
''')


@pytest.mark.timeout(240)
def test_a_run_whose_every_trial_failed_says_so_on_stderr(in_tmp):
    (in_tmp / "broken_model.py").write_text(BROKEN_MODEL)
    result = cli(run_args(model="broken", plugins=[str(in_tmp / "broken_model.py")]))
    line = one_line(result, 1, "every trial of run", "failed, 2 of 2", "broken in training, as asked",
                    "prunelab show")
    assert [status for _, status in stored_runs()].count("FAILED") == 2, (stored_runs(), line)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", [["train", "--epochs", "1"], ["score", "--scorers", "loss", "--epochs", "1"]])
def test_the_step_commands_refuse_images_too_small_in_one_line(in_tmp, shared_data, command):
    """`train` and `score` (no run, no pre-run check) meet the same images through the model's dry forward: one
    line naming the shape, the model and the fix (from tests/engine/test_hostile.py)."""
    path = _npz(in_tmp, shared_data, x_train=cifar_arrays(shared_data)["x_train"][:, :8, :8],
                x_test=cifar_arrays(shared_data)["x_test"][:, :8, :8])
    one_line(cli([*command, "--dataset", f"npz:{path}", "--model", "cnn"]), 2, "3x8x8", "'cnn'", "data.options.size",
             "another model")


# ---------------------------------------------------------------- the TUI's form runs the same check
async def _until(pilot, condition, what: str) -> None:
    """Poll the form until condition() holds: its check runs in a thread worker, 60 s at most."""
    import time

    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


@pytest.mark.timeout(120)
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_form_shows_what_the_pre_run_check_refuses(in_tmp, shared_data, anyio_backend):
    """The New-experiment form runs the pre-run check after each edit: a missing npz is the banner's one line, a
    subset larger than the data set is under data.train_size, images too small for the model too; each disables
    Launch, and a good npz enables it again. Nothing is written to the store."""
    from textual.widgets import Button, Input, Static

    from tui.app import PrunelabApp

    small = _npz(in_tmp, shared_data, x_train=cifar_arrays(shared_data)["x_train"][:, :8, :8],
                 x_test=cifar_arrays(shared_data)["x_test"][:, :8, :8])
    good = write_npz(in_tmp / "good.npz", cifar_arrays(shared_data))
    app = PrunelabApp(f"sqlite:///{in_tmp / 'mlruns' / 'mlflow.db'}")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        screen = app.screen
        await _until(pilot, lambda: screen.config is not None, "the form")
        launch, banner = screen.query_one("#launch", Button), screen.query_one("#form-error", Static)
        field = {path: screen.query_one(f"#f-{path.replace('.', '--')}", Input)
                 for path in ("data.dataset", "data.train_size", "model")}
        field["model"].value = "mlp"
        field["data.train_size"].value = "200"
        field["data.dataset"].value = f"npz:{in_tmp / 'missing.npz'}"
        await _until(pilot, lambda: screen.error and "missing.npz" in screen.error, "the missing file")
        assert "file not found" in str(banner.render()) and launch.disabled
        field["data.dataset"].value = f"npz:{good}"
        field["data.train_size"].value = "301"
        error = screen.query_one("#e-data--train_size", Static)
        await _until(pilot, lambda: error.display, "the size under its field")
        assert "more than the 300 training samples" in str(error.render()) and launch.disabled
        field["data.train_size"].value = "200"
        await _until(pilot, lambda: screen.config is not None and not launch.disabled, "the good npz")
        field["data.dataset"].value = f"npz:{small}"
        field["model"].value = "cnn"
        await _until(pilot, lambda: screen.error and "too small" in screen.error, "the small images")
        assert launch.disabled and screen.config is None
    assert stored_runs() == []
