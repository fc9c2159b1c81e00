"""engine/scoring/external.py: scores from other tools as a scorer (issue 26, item 4). Each known format is written
here the way its tool writes it (CCS: a pickle of per-sample torch tensors; TDDS: sorted scores and the argsort mask;
prunelab's own `score --out` npz; a CSV of index,score), read back exactly, aligned with the run's training set, and
selected with, overlapped and benchmarked to the same picks and accuracies as the scores they hold."""
import pickle

import numpy as np
import pytest
import torch

import engine
from engine.errors import ConfigError, DataError
from engine.scoring.external import split_pair
from engine.scoring.registry import SCORERS, check_scorer
from tests.builders import tiny_run

RUN = tiny_run(**{"sweep.methods": ["el2n"], "sweep.keep_ratios": [0.3], "sweep.seeds": [0], "sweep.full_data": False})


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    """A folder with a store (./mlruns) and a real run in it on 600 mnist-mini digits; its EL2N scores."""
    folder = tmp_path_factory.mktemp("external")
    fresh_store(folder / "mlruns" / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = engine.run(engine.load_config("quick", RUN))
        scores = engine.api.load_scores(result.run_id, "el2n@e1")
    return folder, result.run_id, scores


@pytest.fixture
def el2n_run(store, monkeypatch):
    """The run's id, its logged EL2N scores (float32, one per training sample) and its data, in its folder."""
    folder, run_id, scores = store
    monkeypatch.chdir(folder)
    ds = engine.as_dataset("mnist-mini", train_size=600, test_size=300)
    assert len(scores) == 600 and ds.train_index.max() > 600  # positions and indices differ
    return run_id, scores.astype(np.float32), ds


def values(name: str, ds) -> np.ndarray:
    from engine.scoring.external import file_scores

    return file_scores(check_scorer(name), ds)


def test_every_format_reads_back_exactly_and_aligned(el2n_run, tmp_path):
    _, s, ds = el2n_run
    whole = np.full(10000, np.nan)  # mnist-mini read whole; NaN wherever the run has no sample
    whole[ds.train_index] = s
    np.save(tmp_path / "by_position.npy", s)
    np.save(tmp_path / "whole.npy", whole)
    shuffled = np.random.default_rng(1).permutation(600)
    (tmp_path / "rows.csv").write_text("index,score\n" + "".join(f"{ds.train_index[i]},{float(s[i])!r}\n"
                                                                 for i in shuffled))
    (tmp_path / "bare.csv").write_text("".join(f"{ds.train_index[i]},{float(s[i])!r}\n" for i in shuffled))
    result = engine.score_result(ds, "mlp", ["loss"], epochs=1)  # prunelab's own `score --out` file
    np.savez(tmp_path / "scores.npz", **result.arrays())
    for name, expected in (("by_position.npy", s), ("whole.npy", s), ("rows.csv", s), ("bare.csv", s),
                           ("whole.npy#-", -s), ("scores.npz#loss@e1", result.scores["loss"][1]),
                           ("scores.npz", result.scores["loss"][1])):  # the one score array it holds
        np.testing.assert_array_equal(values(f"file:{tmp_path / name}", ds), expected, err_msg=name)


def test_ccs_and_tdds_files_read_as_their_repositories_write_them(el2n_run, tmp_path):
    _, s, ds = el2n_run
    whole = np.random.default_rng(2).random(10000).astype(np.float32)
    whole[ds.train_index] = s
    margin = torch.from_numpy(whole * 3 - 1)
    # CCS generate_importance_score.py: pickle.dump of a dict of per-sample tensors over the whole training set
    ccs = {"el2n": torch.from_numpy(whole), "accumulated_margin": margin, "targets": torch.zeros(10000).int(),
           "forgetting": torch.zeros(10000).int()}
    with open(tmp_path / "data-score-mnist.pickle", "wb") as handle:
        pickle.dump(ccs, handle)
    np.testing.assert_array_equal(values(f"file:{tmp_path}/data-score-mnist.pickle#el2n", ds), s)
    np.testing.assert_array_equal(values(f"file:{tmp_path}/data-score-mnist.pickle#-accumulated_margin", ds),
                                  -margin.numpy()[ds.train_index])
    # TDDS importance_evaluation.py: data_mask = argsort, score = np.sort, saved side by side
    np.save(tmp_path / "data_mask_win10_ep10.npy", np.array(whole.argsort()))
    np.save(tmp_path / "score_win10_ep10.npy", np.array(np.sort(whole)))
    for name in ("score_win10_ep10.npy", "data_mask_win10_ep10.npy"):
        np.testing.assert_array_equal(values(f"file:{tmp_path / name}", ds), s)
    with pytest.raises(ConfigError, match="holds several scores; name one"):
        check_scorer(f"file:{tmp_path}/data-score-mnist.pickle")
    with pytest.raises(DataError, match="no score 'aum'.*it holds el2n, accumulated_margin, targets"):
        values(f"file:{tmp_path}/data-score-mnist.pickle#aum", ds)


def test_file_scores_select_overlap_and_benchmark_as_the_scores_they_hold(el2n_run, tmp_path):
    _, s, _ = el2n_run
    np.save(tmp_path / "el2n.npy", s)
    name = f"file:{tmp_path}/el2n.npy"
    swept = engine.run(engine.load_config("quick", {**RUN, "sweep.methods": ["el2n", name]}))
    kept = {row.method: engine.kept_subset(swept.run_id, f"method={row.method}").positions
            for row in engine.api.run_detail(swept.run_id).trials}
    np.testing.assert_array_equal(kept[name], kept["el2n"])  # the same picks, so the same trial
    assert {r["method"]: r["mean_accuracy"] for r in swept.summary}[name] == \
        {r["method"]: r["mean_accuracy"] for r in swept.summary}["el2n"]
    assert f"file_{tmp_path}_el2n.npy@e1".replace("/", "_") in engine.api.score_names(swept.run_id)

    overlap = engine.run(engine.load_config("quick", {**RUN, "kind": "overlap", "overlap.methods": ["el2n", name],
                                                      "overlap.k": 100}))
    matrices = engine.api.overlap_report(overlap.run_id)
    assert matrices["first"][0][1] == matrices["last"][0][1] == 1.0 and matrices["spearman"][0][1] == pytest.approx(1)

    engine.register_file_scores("outside_el2n", tmp_path / "el2n.npy")
    try:
        bench = engine.run(engine.load_config("quick", {**RUN, "kind": "benchmark", "benchmark.keep_ratios": [0.3],
                                                        "benchmark.seeds": [0], "benchmark.full_data": False,
                                                        "benchmark.methods": ["el2n", "outside_el2n/hardest",
                                                                              f"{name}/hardest"]}))
    finally:
        SCORERS.pop("outside_el2n")
    accuracy = {r["method"]: r["mean_accuracy"] for r in bench.summary}
    assert accuracy["outside_el2n/hardest"] == accuracy["el2n/hardest"] == accuracy[f"{name}/hardest"]


def test_bad_files_are_one_error_naming_the_file_and_the_fix(el2n_run, tmp_path):
    _, s, ds = el2n_run
    with pytest.raises(ConfigError, match=r"sweep.methods: file scores: no file .*missing.npy"):
        engine.load_config("quick", {**RUN, "sweep.methods": ["file:missing.npy"]})
    with pytest.raises(ConfigError, match="online.methods.*or a file"):
        np.save(tmp_path / "s.npy", s)
        engine.load_config("quick", {"kind": "online", "online.methods": [f"file:{tmp_path}/s.npy"]})
    with pytest.raises(ConfigError, match="cannot tell the format"):
        check_scorer(f"file:{tmp_path}/s.json")
    np.save(tmp_path / "short.npy", s[:500])
    (tmp_path / "dup.csv").write_text("index,score\n0,1.0\n0,2.0\n")
    (tmp_path / "few.csv").write_text("index,score\n" + "".join(f"{i},1.0\n" for i in ds.train_index[:599]))
    nan = s.copy()
    nan[3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    for name, message in (("short.npy", "500 scores, but the run's training set holds 600"),
                          ("dup.csv", "index 0 has two scores"),
                          ("few.csv", f"no score for 1 of the run's 600 samples \\(first: index {ds.train_index[599]}"),
                          ("nan.npy", "1 scores are NaN or infinite")):
        with pytest.raises(DataError, match=message):
            values(f"file:{tmp_path / name}", ds)


def test_the_file_and_its_bytes_are_the_scorers_version(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(5.0))
    first = check_scorer(f"file:{tmp_path}/s.npy")
    assert first.kind == "file" and not first.needs_surrogate and first.version.startswith(str(tmp_path / "s.npy"))
    np.save(tmp_path / "s.npy", np.arange(5.0) + 1)  # same path, other bytes: another version (cache keys, resume)
    assert check_scorer(f"file:{tmp_path}/s.npy").version != first.version
    assert split_pair(f"file:{tmp_path}/s.npy/ccs") == (f"file:{tmp_path}/s.npy", "ccs")
    assert split_pair(f"file:{tmp_path}/s.npy") == (f"file:{tmp_path}/s.npy", "hardest")
    assert split_pair("el2n/kcenter_greedy") == ("el2n", "kcenter_greedy") and split_pair("loss") == ("loss", "hardest")
    with pytest.raises(ConfigError, match="plain name"):
        engine.register_file_scores("a/b", tmp_path / "s.npy")
