"""`prunelab bench train`: prunelab's trainer against a textbook DataLoader loop with the same model and optimizer."""
from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from ..architectures import build_model
from ..architectures.airbench import recipe as airbench_recipe
from ..config import TrainConfig
from ..data.dataset import load_dataset
from ..data.formats import MNIST_FILES
from ..device import resolve_device
from ..trainer import make_optimizer, train
from .common import NO_EVAL, device_label, timed_seconds

RECIPES = {"airbench": airbench_recipe}  # a model's own training recipe, by batch size


def _torchvision_dataset(dataset: str, data_dir: str | None, folder: Path):
    """The textbook input pipeline: a torchvision data set with ToTensor + Normalize (+ augmentation)."""
    ds = load_dataset(dataset, data_dir)
    if dataset == "mnist":
        raw = folder / "MNIST" / "raw"
        raw.mkdir(parents=True)
        src = Path(data_dir) / "MNIST" / "raw" if data_dir else None
        for stem in MNIST_FILES.values():  # torchvision wants the uncompressed files
            gz = src / f"{stem}.gz" if src else None
            if gz is not None and gz.exists():
                with gzip.open(gz) as fin, open(raw / stem, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                shutil.copy(src / stem, raw / stem)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)])
        return torchvision.datasets.MNIST(str(folder), train=True, transform=tf)
    crop_flip = [transforms.RandomCrop(ds.input_shape[1], padding=4), transforms.RandomHorizontalFlip()]
    tf = transforms.Compose([*(crop_flip if ds.augment == "crop_flip" else []),
                             transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)])

    class Images(torch.utils.data.Dataset):  # images as PIL, as torchvision's data sets serve them
        def __init__(self):
            hwc = ds.x_train.permute(0, 2, 3, 1).numpy()
            self.images = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in hwc]
            self.labels = ds.y_train.tolist()

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return tf(self.images[i]), self.labels[i]

    return Images()


def bench_models(models: str, epochs: int = 0, train_size: int | None = None, **kwargs) -> list[dict]:
    """`bench_train` for each of the comma-separated `models`, in one run; with `epochs`, also the test
    accuracy and wall time of training each for that many epochs (on a `train_size` stratified subset)."""
    results = []
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        result = bench_train(model=name, **kwargs)
        if epochs:
            result["accuracy"] = bench_accuracy(name, kwargs.get("dataset", "mnist"), epochs, train_size,
                                                kwargs.get("batch_size", 128), kwargs.get("data_dir"),
                                                kwargs.get("device", "auto"))
        results.append(result)
    return results


def bench_accuracy(model: str, dataset: str, epochs: int, train_size: int | None, batch_size: int,
                   data_dir: str | None, device: str) -> dict:
    """Test accuracy and wall time of the model's own recipe (airbench: airbench94's, at this batch size, with
    TTA), else the trainer's default (onecycle SGD, the set's augmentation)."""
    dev = resolve_device(device)
    ds = load_dataset(dataset, data_dir, dev, train_size=train_size)
    own = RECIPES.get(model)
    cfg = TrainConfig(**{**(own(batch_size) if own else {"batch_size": batch_size}), "epochs": epochs})
    start = time.perf_counter()
    result = train(model, ds, cfg, seed=0, evaluate_every_epoch=False)
    return {"epochs": epochs, "train_samples": len(ds), "test_samples": len(ds.y_test),
            "recipe": model if own else "default", "lr": cfg.lr, "label_smoothing": cfg.label_smoothing,
            "tta": cfg.tta, "test_accuracy": round(result.test_accuracy, 4),
            "wall_seconds": round(time.perf_counter() - start, 2)}


def bench_train(dataset: str = "mnist", model: str | None = None, batch_size: int = 128, samples: int = 30000,
                data_dir: str | None = None, device: str = "auto", compile: bool = False) -> dict:
    """Training samples/s of prunelab's trainer, on both data paths, and of a DataLoader loop with the same model
    and optimizer.

    "ours" has the images on the device; "streamed" the same training with them left in
    host memory (`device_budget_mb=0`: gathered there and copied batch by batch; on a CPU
    a host gather). `compile` turns on torch.compile in prunelab's trainer (CUDA only);
    the warm-up steps absorb the compilation, which is reported apart.
    """
    model = model or ("cnn" if dataset.startswith("mnist") else "resnet18")
    dev = resolve_device(device)
    cfg = TrainConfig(batch_size=batch_size, steps=max(1, samples // batch_size), schedule="constant",
                      compile=compile)
    ds = load_dataset(dataset, data_dir, dev)
    warm_up = timed_seconds(lambda: train(model, ds, cfg.model_copy(update={"steps": 5}), seed=1, **NO_EVAL))
    ours = train(model, ds, cfg, seed=0, **NO_EVAL)
    streamed = train(model, load_dataset(dataset, data_dir, dev, device_budget_mb=0), cfg, seed=0, **NO_EVAL)

    with tempfile.TemporaryDirectory() as tmp:
        tv = _torchvision_dataset(dataset, data_dir, Path(tmp))
        loader = torch.utils.data.DataLoader(tv, batch_size=batch_size, shuffle=True)
        net = build_model(model, ds.input_shape, ds.num_classes, seed=0).to(dev)
        optimizer = make_optimizer(net, cfg)
        net.train()
        seen, steps, start = 0, 0, time.perf_counter()
        while steps < cfg.steps:
            for x, y in loader:
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                loss = nn.functional.cross_entropy(net(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                seen += len(y)
                steps += 1
                if steps >= cfg.steps:
                    break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        base_seconds = time.perf_counter() - start
    ours_sps = ours.samples_per_second
    base_sps = seen / base_seconds
    return {
        "dataset": dataset, "model": model, "batch_size": batch_size, "device": device_label(dev),
        "torch_threads": torch.get_num_threads(),
        "ours": {"samples": ours.samples, "seconds": round(ours.train_seconds, 3), "samples_per_second": round(ours_sps, 1),
                 "compile": compile and dev.type == "cuda", "warm_up_seconds": round(warm_up, 3)},
        "streamed": {"samples": streamed.samples, "seconds": round(streamed.train_seconds, 3),
                     "samples_per_second": round(streamed.samples_per_second, 1),
                     "ratio_to_device": round(streamed.samples_per_second / ours_sps, 3)},
        "baseline": {"samples": seen, "seconds": round(base_seconds, 3), "samples_per_second": round(base_sps, 1),
                     "pipeline": "torchvision dataset + DataLoader(shuffle=True) + ToTensor/Normalize"},
        "ratio": round(ours_sps / base_sps, 3),
    }


# ---------------------------------------------------------------- bench scores
