"""Issue 25's config and command-line rows: seeds torch or numpy cannot take, empty method lists, subsets larger
than the data, image-folder options of the wrong type, an impossible Ray ask, the cache's unfinished writes. Each
is one line on stderr and exit 2 from `config check` and from `run` alike, with no run left behind (the rows of
issue 18's matrix that were in tests/engine/test_hostile.py are here too).

Each case runs the CLI in this process, in its own folder with its own empty store (`in_tmp`), with its own
timeout.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.builders import cli
from tests.faults.input_support import one_line, refused, run_args, stored_runs

# (--set assignments, words the one line must hold): refused by `config check` and `run` before any run exists
CONFIG_CASES = {
    "seed 2**64 (torch's overflow)": (["seed=18446744073709551616"],
                                      ("seed", "an integer from 0 to 2**32 - 1", "18446744073709551616")),
    "seed -1": (["seed=-1"], ("seed", "an integer from 0 to 2**32 - 1", "(got -1)")),
    "sweep seed 2**70 (every trial failed)": (["sweep.seeds=[1180591620717411303424]"],
                                              ("sweep.seeds[0]", "2**32 - 1", "1180591620717411303424")),
    "sweep seed -1": (["sweep.seeds=[-1]"], ("sweep.seeds[0]", "an integer from 0 to 2**32 - 1")),
    "noise seed 2**32": (["kind=noise", "noise.seed=4294967296"], ("noise.seed", "2**32 - 1")),
    "benchmark seed -1": (["kind=benchmark", 'benchmark.methods=["loss"]', "benchmark.seeds=[-1]"],
                          ("benchmark.seeds[0]", "an integer from 0 to 2**32 - 1")),
    "benchmark.methods=[]": (["kind=benchmark", "benchmark.methods=[]"], ("benchmark.methods", "no methods to rank")),
    "train_size 10**12 (capped before)": (["data.train_size=1000000000000"],
                                          ("data.train_size = 1000000000000", "more than the 10000 training samples",
                                           "leave it unset")),
    "test_size above the split": (["data.test_size=5000"], ("data.test_size = 5000", "2000 test samples")),
    "an option of another data set": (["data.options.size=32"], ("data.options", "takes no option(s) size")),
    "cifar100 labels=medium": (['data.dataset="cifar100"', 'data.options.labels="medium"'],
                               ("data.options.labels = 'medium'", "one of 'fine', 'coarse'")),
    "svhn extra=yes": (['data.dataset="svhn"', 'data.options.extra="yes"'],
                       ("data.options.extra = 'yes'", "true or false")),
    "a folder's size=abc": (['data.dataset="folder:/tmp"', "data.options.size=abc"],
                            ("data.options.size = 'abc'", "an integer from 1 to 4096")),
    "a folder's test_fraction=abc": (['data.dataset="folder:/tmp"', "data.options.test_fraction=abc"],
                                     ("data.options.test_fraction = 'abc'", "0 < test_fraction < 1")),
    "a folder's test_fraction=1": (['data.dataset="folder:/tmp"', "data.options.test_fraction=1"],
                                   ("data.options.test_fraction = 1", "0 < test_fraction < 1")),
    "a folder's seed=abc": (['data.dataset="folder:/tmp"', "data.options.seed=abc"],
                            ("data.options.seed = 'abc'", "an integer from 0 to 2**32 - 1")),
    "a folder's seed=-3": (['data.dataset="folder:/tmp"', "data.options.seed=-3"],
                           ("data.options.seed = -3", "an integer from 0 to 2**32 - 1")),
    # issue 18's rows, from tests/engine/test_hostile.py
    "a method twice": (['sweep.methods=["random","random"]'], ("sweep", "methods", "'random' twice")),
    "a keep ratio twice": (["sweep.keep_ratios=[0.5,0.5]"], ("keep_ratios", "0.5 twice")),
    "a seed twice": (["sweep.seeds=[0,0]"], ("seeds", "0 twice")),
    "an online seed twice": (["online.seeds=[1,1]"], ("online", "seeds", "1 twice")),
    "lr inf": (["train.lr=inf"], ("train.lr", "finite")),
    "lr nan": (["train.lr=nan"], ("train.lr", "finite")),
    "surrogate epochs nan": (["surrogate.epochs=nan"], ("surrogate",)),
    "a data_dir that is not there": (['data.data_dir="/nonexistent/data"'],
                                     ("data.data_dir", "/nonexistent/data", "folder")),
    "an unknown kind": (["kind=bogus"], ("kind", "unknown", "bogus")),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_check_refuses_what_a_run_would_fail_on(in_tmp, case):
    assignments, words = CONFIG_CASES[case]
    refused(["config", "check", "quick", *[arg for a in assignments for arg in ("--set", a)]], *words)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CONFIG_CASES)
def test_run_refuses_it_before_the_run_exists(in_tmp, case):
    assignments, words = CONFIG_CASES[case]
    refused([*run_args(), *[arg for a in assignments for arg in ("--set", a)]], *words)


@pytest.mark.timeout(60)
def test_detach_refuses_bad_input_before_the_run_exists(in_tmp):
    """`run --detach` makes the parent run before its child starts: the check comes first, so nothing is left."""
    refused([*run_args(), "--detach", "--set", "data.train_size=1000000000000"], "data.train_size = 1000000000000")
    refused([*run_args(), "--detach", "--set", 'model="torchvision:no_such_net"'], "torchvision has no model")
    refused([*run_args(), "--detach", "--set", 'data.dataset="npz:/nonexistent.npz"'], "/nonexistent.npz: file not found")


@pytest.mark.timeout(60)
def test_config_check_says_what_it_cannot_check_yet(in_tmp, monkeypatch):
    """A data set not downloaded yet is no error for `config check` (a run downloads it): a comment says so."""
    monkeypatch.setenv("PRUNELAB_DATA", str(in_tmp / "nothing-here"))
    result = cli(["config", "check", "quick", "--set", 'data.dataset="mnist"'])
    assert result.exit_code == 0, result.output
    assert "# not checked yet: mnist is not in" in result.stdout and "a run downloads it" in result.stdout
    assert result.stdout.splitlines()[-1] == "# OK: quick is a valid prune config"
    assert not (in_tmp / "nothing-here").exists()  # nothing was fetched


@pytest.mark.timeout(60)
def test_an_impossible_ray_ask_is_one_line_before_ray_starts(in_tmp):
    """`--ray-cpus-per-trial 64` on this machine: one line naming the flag, no Ray WARNING before it (Ray is not
    started at all), no run left behind, in seconds rather than Ray's start-up."""
    pytest.importorskip("ray", reason="ray is the `ray` extra")
    started = time.monotonic()
    line = refused([*run_args(), "--executor", "ray", "--ray-cpus-per-trial", "64"],
                   f"asks for 64 CPUs but this machine has {os.cpu_count()}", "--ray-cpus-per-trial")
    assert "WARNING" not in line and time.monotonic() - started < 20
    import ray

    assert not ray.is_initialized()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("age", ["nan", "inf", "", "-1h", "soon"])
def test_cache_clear_refuses_durations_that_would_select_everything(in_tmp, age):
    result = cli(["cache", "clear", "--older-than", age, "--yes"])
    assert result.exit_code == 2 and "duration" in result.output, result.output


@pytest.mark.timeout(60)
def test_cache_counts_and_clears_the_unfinished_writes_of_killed_processes(in_tmp):
    """A write killed between its temporary file and the rename leaves `.tmp-…`: `cache` counts it (kind
    partial), `cache clear --kind partial` removes it and nothing else, `cache clear` the rest."""
    import json

    import numpy as np

    from engine.store.cache import Cache

    root = in_tmp / "mlruns" / "cache"
    cache = Cache(root)
    cache.save_arrays("scores", "ab" * 12, {"loss": np.arange(5.0)})
    orphan = root / "scores" / "cd" / ".tmp-killed"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a write" * 100)
    usage = json.loads(cli(["cache", "--json"]).stdout)
    assert {k["kind"]: k["entries"] for k in usage["kinds"]} == {"partial": 1, "scores": 1}
    assert usage["bytes"] == orphan.stat().st_size + next((root / "scores").rglob("*.npz")).stat().st_size
    cleared = cli(["cache", "clear", "--kind", "partial", "--yes", "--json"])
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["removed"] == 1, cleared.output
    assert not orphan.exists() and cache.load_arrays("scores", "ab" * 12)["loss"].tolist() == [0, 1, 2, 3, 4]
    assert cli(["cache", "clear", "--yes"]).exit_code == 0 and not list(root.rglob("*.npz"))


@pytest.mark.timeout(60)
def test_a_cache_write_that_fails_is_skipped(tmp_path):
    """A full or read-only cache: the write is skipped (counted), no temporary file stays, the value is a miss."""
    import numpy as np
    import torch

    from engine.store.cache import Cache

    blocked = tmp_path / "cache"
    blocked.mkdir()
    (blocked / "scores").write_text("a file where the kind's folder goes: every write fails")
    cache = Cache(blocked)
    cache.save_arrays("scores", "ab" * 12, {"loss": np.arange(3.0)})
    cache.save_state("scores", "cd" * 12, {"w": torch.zeros(2)})
    assert cache.failed_writes == 2 and cache.load_arrays("scores", "ab" * 12) is None
    assert sorted(p.name for p in blocked.rglob("*")) == ["scores"]


@pytest.mark.timeout(60)
def test_an_option_only_a_resume_takes_needs_resume(in_tmp):
    for flag in ("--retry-failed", "--allow-data-change"):
        result = cli([*run_args(), flag])
        assert result.exit_code == 2 and f"{flag} needs --resume RUN_ID" in result.output, result.output
    assert stored_runs() == []
    one_line(cli(["run", "--resume", "", "--allow-data-change"]), 2, "--resume", "empty")
