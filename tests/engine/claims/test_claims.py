"""The docs' claims (docs/guide/) about the trainer and the CLI, each checked on real data (small subsets, a few
steps)."""
import re

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from engine.architectures import build_model
from engine.cli import main
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.data.registry import DATASETS
from engine.trainer import make_optimizer, train


@pytest.fixture(scope="module")
def cifar(cifar_npz):
    return load_dataset(cifar_npz, train_size=64, test_size=20)


# ---------------------------------------------------------------- the trainer
def test_weight_decay_spares_biases_and_norm_parameters_and_sgd_is_nesterov(cifar):
    """One SGD step on a zero loss gradient moves only the decayed weights, by Nesterov's first step:
    d = wd·p, buf = d, p ← p − lr·(d + μ·buf) = p − lr·wd·(1 + μ)·p."""
    model = build_model("resnet18", cifar.input_shape, cifar.num_classes, seed=0).double()
    cfg = TrainConfig(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    norms = {f"{name}.{k}" if name else k for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) for k, _ in m.named_parameters(recurse=False)}
    optimizer = make_optimizer(model, cfg)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    spared = 0
    for k, p in model.named_parameters():
        if k.endswith("bias") or k in norms:
            assert torch.equal(p, before[k]), k  # no decay on biases and norm parameters
            spared += 1
        else:
            torch.testing.assert_close(p, before[k] * (1 - 0.1 * 5e-4 * 1.9), rtol=1e-14, atol=0)
    assert spared == 2 * 20 + 1  # ResNet18's 20 BatchNorms (γ, β) and the head's bias
    plain = make_optimizer(model, cfg.model_copy(update={"nesterov": False}))
    assert [g["nesterov"] for g in optimizer.param_groups] == [True, True]
    assert [g["nesterov"] for g in plain.param_groups] == [False, False]


def is_crop_flip(out: torch.Tensor, original: torch.Tensor, pad: int = 4) -> bool:
    """out is a pad-4 zero-padded crop of original, flipped horizontally or not (searched exhaustively)."""
    h, w = original.shape[1:]
    padded = nn.functional.pad(original, (pad, pad, pad, pad))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[:, dy:dy + h, dx:dx + w]
            if torch.equal(out, window) or torch.equal(out, window.flip(-1)):
                return True
    return False


@pytest.mark.parametrize("augment", [True, False])
def test_cifar_augmentation_is_applied_to_every_training_batch(cifar, augment):
    """CIFAR-10's crop + flip (DATASETS["cifar10"]; the shared subset loads as npz, so it is set here)."""
    assert DATASETS["cifar10"].augment == "crop_flip"
    cifar = cifar.replace(augment="crop_flip")
    seen = []

    def record(idx, x, y):  # the trainer's batch hook sees the images after augmentation
        seen.append((idx.clone(), x.clone()))
        return torch.ones(len(idx), dtype=torch.bool)

    train("mlp", cifar, TrainConfig(steps=2, batch_size=32, augment=augment), seed=0, select_batch=record)
    assert len(seen) == 2
    changed = 0
    for idx, x in seen:
        for i, image in zip(idx.tolist(), x):
            original = cifar.x_train[i]
            assert is_crop_flip(image, original) if augment else torch.equal(image, original)
            changed += not torch.equal(image, original)
    assert (changed > 32) if augment else changed == 0  # most of 64 crops/flips change the image


# ---------------------------------------------------------------- the CLI
def test_config_list_and_config_check(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(main, ["config", "list"])
    assert listed.exit_code == 0, listed.output
    from engine.config import preset_names
    names = preset_names()
    assert names and all(name in listed.output for name in names)
    shown = runner.invoke(main, ["config", "show", "quick"])
    path = tmp_path / "my.toml"
    path.write_text(shown.output)
    ok = runner.invoke(main, ["config", "check", str(path)])
    assert ok.exit_code == 0, ok.output
    path.write_text(re.sub(r"(\[train\][^\[]*?\n)epochs = \d+", r"\1epochs = -3", shown.output, count=1))
    assert "epochs = -3" in path.read_text()
    bad = runner.invoke(main, ["config", "check", str(path)])
    assert bad.exit_code == 2 and "epochs" in bad.output
