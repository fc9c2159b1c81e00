"""The TUI's plain logic, without an app: form fields, progress following, overlap files, drawing helpers."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.api import ProgressWatcher
from engine.config import Config, config_from_dict, load_config
from engine.errors import ConfigError
from engine.store.events import EpochEnd, RunStarted, RunStatus, StageStarted, TrialFinished
from tui.backend import Backend, parse_overlap_json, split_name
from tui.config_fields import assign, error_target, field_specs, format_value, lookup, parse_text
from tui.widgets.image_grid import half_block_lines, shrink
from tui.widgets.progress_panel import eta_seconds


def leaves(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("selection", "options", "scoring"):
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_form_has_every_config_field_and_round_trips_a_preset():
    specs = field_specs(Config)
    values = load_config("quick").model_dump(mode="json")
    assert {s.path for s in specs} == leaves(Config().model_dump(mode="json"))
    data: dict = {}
    for spec in specs:  # what the form shows, read back as the form would
        shown = format_value(spec, lookup(values, spec.path)) if spec.kind not in ("bool", "choice") else None
        value = lookup(values, spec.path) if shown is None else parse_text(spec, shown)
        if value is not None:
            assign(data, spec.path, value)
    assert config_from_dict(data).model_dump(mode="json") == values
    kinds = {s.path: s.kind for s in specs}
    assert kinds["sweep.keep_ratios"] == "list" and kinds["train.schedule"] == "choice"
    assert kinds["sweep.full_data"] == "bool" and kinds["selection"] == kinds["scoring"] == "dict"
    assert "mlp" in next(s for s in specs if s.path == "model").suggestions


@pytest.mark.parametrize("overrides, field", [
    (["sweep.keep_ratios=[0.5, 1.5]"], "sweep.keep_ratios"),
    (["surrogate.epochs=0"], "sweep.score_epochs"),  # a check across fields names the field in its text
    (["train.epochs=-1"], "train.epochs"),
    (["model=nope"], "model"),
])
def test_validation_messages_land_on_their_field(overrides, field):
    paths = [s.path for s in field_specs(Config)]
    with pytest.raises(ConfigError) as err:
        load_config("quick", overrides)
    assert error_target(str(err.value), paths)[0] == field


def test_list_and_table_text():
    specs = {s.path: s for s in field_specs(Config)}
    assert parse_text(specs["sweep.methods"], "loss, grad_norm") == ["loss", "grad_norm"]
    assert parse_text(specs["sweep.keep_ratios"], "[0.3, 0.7]") == [0.3, 0.7]
    assert parse_text(specs["selection"], "beta = 0.5") == {"beta": 0.5}
    assert parse_text(specs["data.train_size"], "") is None
    assert format_value(specs["selection"], {"beta": 0.5}) == "{ beta = 0.5 }"


def write(path, events):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.writelines(e.to_json() + "\n" for e in events)


def test_watcher_follows_live_runs_and_skips_old_dead_ones(tmp_path):
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "progress"
    write(folder / "live.jsonl", [RunStarted(run_id="live", experiment="e", kind="prune", trials=2, pid=os.getpid(),
                                             host=host)])
    write(folder / "done.jsonl", [RunStarted(run_id="done", experiment="e", kind="prune", trials=1, pid=dead.pid,
                                             host=host), RunStatus(status="FINISHED")])
    write(folder / "killed.jsonl", [RunStarted(run_id="killed", experiment="e", kind="prune", trials=1,
                                               pid=dead.pid, host=host)])
    write(folder / "old.jsonl", [RunStarted(run_id="old", experiment="e", kind="prune", trials=1, pid=dead.pid,
                                            host=host, t=time.time() - 7200)])
    old = time.time() - 7200
    os.utime(folder / "old.jsonl", (old, old))
    watcher = ProgressWatcher(folder)
    runs = watcher.poll()
    assert next(p.run_id for p in runs) == "live"  # live first
    status = {p.run_id: p.effective_status for p in runs}
    assert status == {"live": "RUNNING", "done": "FINISHED", "killed": "KILLED"}
    write(folder / "live.jsonl", [TrialFinished(trial=0, trials=2, status="FINISHED")])
    assert next(p for p in watcher.poll() if p.run_id == "live").trials_done == 1


def test_live_curves_of_trials_still_training(tmp_path):
    backend = Backend(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    write(backend.store.progress_file("r1"), [
        RunStarted(run_id="r1", experiment="e", kind="prune", trials=2),
        StageStarted(stage="retrain", detail="full-data / seed 0", trial=0, trials=2),
        EpochEnd(epoch=1, epochs=2, metrics={"test_accuracy": 0.5}, trial=0),
        TrialFinished(trial=0, trials=2, status="FINISHED"),
        StageStarted(stage="retrain", detail="loss / hardest / keep 0.5 / seed 0 / e1", trial=1, trials=2),
        EpochEnd(epoch=1, epochs=2, metrics={"test_accuracy": 0.4}, trial=1),
        EpochEnd(epoch=2, epochs=2, metrics={"test_accuracy": 0.6}, trial=1)])
    curves = backend.live_curves("r1")
    assert list(curves) == [1]
    name, points = curves[1]
    assert name.startswith("loss") and [e for e, _ in points] == [1, 2]


def test_overlap_json_and_score_names():
    m = [[1.0, 0.5], [0.5, 1.0]]
    logged = parse_overlap_json({"methods": ["a", "b"], "k": 10, "first": m, "last": m, "spearman": m, "epoch": 1})
    assert list(logged) == [10] and logged[10]["methods"] == ["a", "b"] and logged[10]["last"] == m
    assert parse_overlap_json({"unrelated": 1}) == {}
    assert split_name("grad_norm@e12") == ("grad_norm", 12) and split_name("odd") == ("odd", None)


def test_eta_from_the_runs_pace():
    from engine.store.progress import RunProgress

    p = RunProgress(trials=10, trials_done=4, started=100.0)
    assert eta_seconds(p, now=140.0) == pytest.approx(60.0)  # 10 s a trial, 6 to go
    assert eta_seconds(RunProgress(trials=10, trials_done=0, started=100.0), now=140.0) is None
    # from the first trial's start: the scoring before it is not a trial's pace (issue 26)
    paced = RunProgress(trials=10, trials_done=4, started=100.0, trials_started=120.0)
    assert eta_seconds(paced, now=140.0) == pytest.approx(30.0)  # 5 s a trial, 6 to go


def test_half_blocks_draw_two_pixel_rows_per_line():
    from engine.data.dataset import load_dataset

    image = load_dataset("mnist-mini", None, "cpu", 20).x_train[0].numpy()  # (1, 28, 28)
    small = shrink(image, 16)
    assert small.shape == (1, 14, 14)
    lines = half_block_lines(small)
    assert len(lines) == 7 and all(line.plain == "▀" * 14 for line in lines)
    assert np.isclose(small.mean(), image.mean(), atol=2)


def test_compare_labels_runs_by_what_differs():
    """Item 5: two runs of one config read by their methods or ratios (the run name), not `quick:b71f`."""
    from types import SimpleNamespace

    from engine.config import load_config
    from engine.runner.runner import parent_name
    from tui.screens.compare import run_label

    def detail(experiment, run_id, **overrides):
        name = parent_name(load_config("quick", overrides))
        return SimpleNamespace(run=SimpleNamespace(experiment=experiment, name=name, run_id=run_id))

    ratios = [detail("quick", "a1b2c3d4", **{"sweep.keep_ratios": [0.3, 0.7]}),
              detail("quick", "b2c3d4e5", **{"sweep.keep_ratios": [0.5]}), detail("other", "c3d4e5f6")]
    assert [run_label(d, ratios) for d in ratios] == ["quick @ 0.3,0.7", "quick @ 0.5", "other"]
    methods = [detail("quick", "a1b2c3d4", **{"sweep.methods": ["random"]}),
               detail("quick", "b2c3d4e5", **{"sweep.methods": ["random", "loss"]})]
    assert [run_label(d, methods) for d in methods] == ["quick random", "quick random,loss"]
    same = [detail("quick", "a1b2c3d4"), detail("quick", "b2c3d4e5")]  # nothing differs but the id
    assert [run_label(d, same) for d in same] == ["quick:a1b2", "quick:b2c3"]


# ---------------------------------------------------------------- issue 26: labels, units, axes, captions
def test_series_read_one_way_everywhere():
    """`loss/hardest`, `loss hardest` and `random random` were the same kind of thing written three ways."""
    from tui.screens.plots import series_label, varying

    prune = [{"method": m, "strategy": s, "ratio": 0.5, "epoch": e} for m, s, e in
             [("loss", "hardest", 1), ("loss", "easiest", 1), ("random", "random", 1), ("loss", "hardest", 2)]]
    group = ("method",) + varying(prune, ("strategy", "epoch"))
    assert [series_label(r, group) for r in prune] == ["loss/hardest e1", "loss/easiest e1", "random e1",
                                                       "loss/hardest e2"]
    bench = {"method": "el2n/ccs", "ratio": 0.3}  # the benchmark's rows name the pair already
    assert series_label(bench, ("method", "strategy")) == "el2n/ccs"
    assert series_label({"method": "loss", "strategy": "hardest", "ratio": 0.3}, ("method", "ratio")) == "loss keep 0.3"


def test_a_difference_of_accuracies_reads_in_points():
    from tui.screens.plots import summary_cell

    assert str(summary_cell("mean_accuracy", 0.8240)) == "82.40%"
    assert str(summary_cell("diff", 0.019)) == "+1.90 pt" and str(summary_cell("ci_low", -0.0031)) == "-0.31 pt"
    assert str(summary_cell("diff", float("nan"))) == "-" and str(summary_cell("p_value", 0.0123)) == "0.0123"


@pytest.mark.parametrize("ys, expected", [([97.0], (96.0, 98.0)), ([100.0], (98.0, 100.0)), ([0.5], (0.0, 2.0)),
                                          ([40.0, 60.0], (38.0, 62.0))])
def test_the_accuracy_axis_stays_within_0_and_100(ys, expected):
    """One point at 97 % made plotext's axis read 115.5 %."""
    from tui.screens.plots import draw_curve, y_range

    class Limits:
        def ylim(self, lo, hi):
            self.limits = (lo, hi)

    plt = Limits()
    y_range(plt, ys)
    assert plt.limits == pytest.approx(expected)
    from textual_plotext import PlotextPlot

    plot = PlotextPlot()
    draw_curve(plot.plt, [("one", [(1, 0.97)])], "t")
    plot.plt.plotsize(60, 15)
    ticks = [float(t) for t in re.findall(r"(\d+(?:\.\d+)?)\s*┤", plot.plt.build())]
    assert ticks and max(ticks) <= 100.0


def test_trial_names_say_what_tells_them_apart():
    from tui.backend import TrialRow
    from tui.screens.plots import trial_labels

    trials = [TrialRow("f0", "full", "none", 1.0, 0, 0, "FINISHED", 0.9), TrialRow("f1", "full", "none", 1.0, 1, 0,
                                                                                   "FINISHED", 0.9),
              TrialRow("a", "dynamic_uncertainty", "hardest", 0.3, 0, 2, "FINISHED", 0.8),
              TrialRow("b", "dynamic_uncertainty", "hardest", 0.3, 1, 2, "FINISHED", 0.8),
              TrialRow("c", "el2n", "contextual_diversity", 0.7, 1, 2, "RUNNING", None)]
    labels = trial_labels(trials)
    assert labels == {"f0": "full data s0", "f1": "full data s1", "a": "dynamic_uncertainty keep 0.3 s0",
                      "b": "dynamic_uncertainty keep 0.3 s1", "c": "el2n/contextual_diversity keep 0.7 s1"}


def test_gallery_captions_name_the_classes_and_files():
    from tui.backend import SampleSet
    from tui.screens.gallery import tiles_for

    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    images = np.zeros((3, 3, 4, 4), dtype=np.uint8)
    samples = SampleSet(images, np.array([8, 3, 1]), names, ["/d/ship/0007.png", "/d/cat/0001.png", "/d/car/a.png"])
    tiles = tiles_for(samples, np.array([0.5, 2.0, 1.0]), 3, True, np.array([8, 5, 1]))
    assert [t.caption for t in tiles] == [("#1 y=cat", "ŷ=dog", "s=2", "0001.png"),
                                          ("#2 y=automobile", "ŷ=automobile", "s=1", "a.png"),
                                          ("#0 y=ship", "ŷ=ship", "s=0.5", "0007.png")]
    assert [t.emphasis for t in tiles] == [True, False, False] and tiles[0].strong == 2
    digits = SampleSet(images, np.array([8, 3, 1]), [str(i) for i in range(10)])
    assert tiles_for(digits, np.array([0.5, 2.0, 1.0]), 1, True, np.array([8, 5, 1]))[0].caption == \
        ("#1 y=3 ŷ=5", "s=2")
