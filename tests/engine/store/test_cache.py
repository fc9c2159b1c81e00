"""The content-addressed cache: stable keys, round trips, damaged entries read as misses, usage and clearing."""
import json
import os
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from engine.architectures import build_model
from engine.cli import main
from engine.config import TrainConfig
from engine.data.dataset import load_dataset
from engine.store.cache import Cache, cache_key, remove_unused, usage


def test_keys_follow_content_not_order():
    a = cache_key(model="cnn", cfg=TrainConfig(epochs=2), seed=1)
    assert a == cache_key(seed=1, cfg=TrainConfig(epochs=2), model="cnn")
    assert a != cache_key(model="cnn", cfg=TrainConfig(epochs=3), seed=1)
    labels = load_dataset("mnist-mini").y_train.numpy()
    assert cache_key(labels=labels) != cache_key(labels=labels[::-1].copy())


def test_round_trips_and_damaged_entries(tmp_path):
    cache = Cache(tmp_path)
    labels = load_dataset("mnist-mini").y_train.numpy()
    cache.save_arrays("scores", "k1", {"labels": labels})
    assert np.array_equal(cache.load_arrays("scores", "k1")["labels"], labels)
    state = build_model("mlp", (1, 28, 28), 10, seed=0).state_dict()
    cache.save_state("surrogate", "k2", state)
    loaded = cache.load_state("surrogate", "k2")
    assert all(torch.equal(state[k], loaded[k]) for k in state)
    assert cache.hits == 2 and cache.misses == 0

    path = next((tmp_path / "scores").rglob("k1.npz"))
    path.write_bytes(path.read_bytes()[:100])  # a run killed mid-write elsewhere, or a full disk
    assert cache.load_arrays("scores", "k1") is None and cache.misses == 1
    assert cache.load_arrays("scores", "absent") is None and cache.misses == 2
    assert Cache(None).load_arrays("scores", "k1") is None  # disabled


def test_usage_and_removal_by_last_use(tmp_path):
    cache = Cache(tmp_path)
    labels = load_dataset("mnist-mini").y_train.numpy()
    for key in ("old", "read", "new"):
        cache.save_arrays("scores", key, {"labels": labels})
    cache.save_state("surrogate", "state", build_model("mlp", (1, 28, 28), 10, seed=0).state_dict())
    week_ago = time.time() - 7 * 86400
    for key in ("old", "read"):
        path = next(tmp_path.rglob(f"{key}.npz"))
        os.utime(path, (week_ago, week_ago))
    assert cache.load_arrays("scores", "read") is not None  # a hit: used now

    kinds = {k.kind: k for k in usage(tmp_path)}
    assert {k: v.entries for k, v in kinds.items()} == {"scores": 3, "surrogate": 1}
    assert kinds["scores"].bytes == sum(p.stat().st_size for p in (tmp_path / "scores").rglob("*.npz"))
    assert kinds["scores"].first_used == pytest.approx(week_ago, abs=1)

    assert remove_unused(tmp_path, 86400, dry_run=True)[0] == 1  # only "old" is a day unused
    assert len(list(tmp_path.rglob("*.npz"))) == 3
    removed, freed = remove_unused(tmp_path, 86400)
    assert removed == 1 and freed > 0 and cache.load_arrays("scores", "old") is None
    assert remove_unused(tmp_path, kinds=["surrogate"]) == (1, kinds["surrogate"].bytes)
    assert [k.kind for k in usage(tmp_path)] == ["scores"] and usage(tmp_path / "absent") == []


def test_cache_cli_reports_and_clears(in_tmp):
    cache = Cache(in_tmp / "mlruns" / "cache")
    cache.save_arrays("scores", "a", {"x": np.zeros(1000)})
    cache.save_arrays("forgetting", "b", {"x": np.zeros(10)})
    runner = CliRunner()
    shown = json.loads(runner.invoke(main, ["cache", "--json"]).output)
    assert shown["entries"] == 2 and shown["folder"] == str(in_tmp / "mlruns" / "cache")
    table = runner.invoke(main, ["cache"]).output
    assert "2 entries" in table and "forgetting" in table and "scores" in table
    assert runner.invoke(main, ["cache", "clear"], input="n\n").exit_code == 1  # asked, refused: nothing removed
    assert json.loads(runner.invoke(main, ["cache", "--json"]).output)["entries"] == 2
    bad = runner.invoke(main, ["cache", "clear", "--older-than", "soon"])
    assert bad.exit_code == 2 and "expected a duration like 7d" in bad.output
    cleared = runner.invoke(main, ["cache", "clear", "--kind", "scores", "--yes", "--json"])
    assert json.loads(cleared.output)["removed"] == 1
    assert runner.invoke(main, ["cache", "clear", "--older-than", "1h", "--yes"]).output.startswith("removed 0")
    assert runner.invoke(main, ["cache", "clear", "--yes"]).output.startswith("removed 1 entries")
    assert "empty" in runner.invoke(main, ["cache"]).output
