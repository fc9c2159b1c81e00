"""Config: presets, overrides, and one clear line with exit 2 for each bad config."""
import subprocess
import sys

import pytest

from engine.config import load_config, preset_names
from engine.errors import ConfigError


def test_presets_load_and_round_trip(tmp_path):
    assert {"quick", "seed-mnist", "seed-cifar10"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        path = tmp_path / f"{name}.toml"
        path.write_text(cfg.to_toml())
        assert load_config(path) == cfg
    assert load_config("quick").data.dataset == "mnist-mini"


def test_overrides_parse_toml_values():
    cfg = load_config("quick", ["sweep.keep_ratios=[0.25, 0.5]", "train.lr=0.1", "data.dataset=mnist",
                                "sweep.methods=['loss']", "name=my study", "train.nesterov=false"])
    assert cfg.sweep.keep_ratios == [0.25, 0.5] and cfg.train.lr == 0.1 and cfg.data.dataset == "mnist"
    assert cfg.sweep.methods == ["loss"] and cfg.name == "my study" and cfg.train.nesterov is False
    assert load_config("quick", {"sweep.seeds": [3]}).sweep.seeds == [3]


BAD = [
    (["--set", "sweep.colour=red"], "unknown key 'colour' in [sweep]"),
    (["--set", "sweep.methods=['loss','magic']"], "sweep.methods: unknown scorer 'magic'"),
    (["--set", "sweep.strategies=['greedy']"], "sweep.strategies: unknown selection strategy 'greedy'"),
    (["--set", "data.dataset=imagenet"], "data.dataset: unknown dataset 'imagenet'"),
    (["--set", "sweep.keep_ratios=[0.5,1.5]"], "sweep.keep_ratios: keep ratio 1.5 is outside (0, 1]"),
    (["--set", "sweep.keep_ratios=[0]"], "keep ratio 0 is outside (0, 1]"),
    (["--set", "sweep.score_epochs=[5]"], "beyond the surrogate's budget of 1 epochs"),
    (["--set", "train.epochs=many"], "train.epochs: Input should be a valid integer"),
    (["--set", "selection.beta=2.0"], "beta = 2.0 is out of range"),
    (["--set", "kind=nonsense"], "kind: unknown experiment kind 'nonsense'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_config_in_python(args, message):
    overrides = [args[1]] if args[0] == "--set" else []
    preset = args[1] if args[0] == "--preset" else "quick"
    with pytest.raises(ConfigError) as info:
        load_config(preset, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_config_on_the_command_line_exits_2(in_tmp):
    for args, message in BAD[:4] + BAD[6:8]:
        proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--preset", "quick", *args],
                              capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
    bad = in_tmp / "bad.toml"
    bad.write_text('name = "x"\n[sweep]\nkeep_ratios = "half"\n')
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "bad.toml: sweep.keep_ratios: Input should be a valid list" in proc.stderr


def test_config_show_prints_a_preset():
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "config", "show", "quick"], capture_output=True, text=True)
    assert proc.returncode == 0 and 'dataset = "mnist-mini"' in proc.stdout
