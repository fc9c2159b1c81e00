"""The overlap kind over the field's scores (aum, entropy, moderate, tdds with options): the full matrix in
the store and on the TUI's overlap screen, each cell against an independent count from the logged scores."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from tui_helpers import settle, wait_for

from tui.app import PrunelabApp
from tui.widgets.heatmap import Heatmap

pytestmark = pytest.mark.anyio

METHODS = ["aum", "entropy", "moderate", "tdds"]
EPOCH, K = 3, 40


@pytest.fixture(scope="module")
def overlap_run(tmp_path_factory, fresh_store):
    from engine.api import load_config, run
    from engine.store.tracking import tracker

    workdir = tmp_path_factory.mktemp("overlap-store")
    uri = fresh_store(workdir / "mlruns" / "mlflow.db")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = run(load_config("quick", [
            "name=field-overlap", "kind=overlap", "model=mlp", "data.train_size=300", "data.test_size=100",
            f"surrogate.epochs={EPOCH}", f"overlap.methods={json.dumps(METHODS)}", f"overlap.k={K}",
            "scoring.tdds.window=3", "scoring.tdds.trajectory=3", 'scoring.aum.margin="softmax"']), tracking_uri=uri)
    finally:
        os.chdir(cwd)
    assert result.status == "FINISHED"
    track = tracker(uri, str(workdir))
    scores = {m: np.load(track.download(result.run_id, f"scores/{m}@e{EPOCH}.npy", workdir / m)) for m in METHODS}
    logged = json.loads(Path(track.download(result.run_id, "overlap.json", workdir / "json")).read_text())
    params = track.get_run(result.run_id).data.params
    return uri, result.run_id, scores, logged, params


def expected(scores: dict[str, np.ndarray], k: int, mode: str) -> np.ndarray:
    """Each cell counted from two sorted score vectors, or scipy's Spearman."""
    sign = -1 if mode == "first" else 1

    def pick(s: np.ndarray) -> set[int]:
        return set(np.argsort(sign * s, kind="stable")[:k].tolist())

    out = np.zeros((len(METHODS), len(METHODS)))
    for i, a in enumerate(METHODS):
        for j, b in enumerate(METHODS):
            if mode == "spearman":
                out[i, j] = spearmanr(scores[a], scores[b]).statistic
            else:
                out[i, j] = len(pick(scores[a]) & pick(scores[b])) / k
    return out


def test_the_overlap_kind_logs_the_full_matrix_of_the_field_scores_and_their_options(overlap_run):
    _, _, scores, logged, params = overlap_run
    assert params["scoring.tdds.window"] == "3" and params["scoring.aum.margin"] == "softmax"
    assert logged["methods"] == METHODS and logged["k"] == K and logged["epoch"] == EPOCH
    for mode in ("first", "last", "spearman"):
        matrix = np.array(logged[mode])
        assert matrix.shape == (4, 4)
        np.testing.assert_allclose(matrix, expected(scores, K, mode), rtol=0, atol=1e-9)
    off = np.array(logged["first"])[~np.eye(4, dtype=bool)]
    assert off.min() < 1 and off.max() > 0  # distinct scores that still agree somewhere: a real matrix


async def test_the_overlap_screen_shows_every_pair_of_the_field_scores(overlap_run):
    uri, run_id, scores, _, _ = overlap_run
    app = PrunelabApp(uri)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("RunTable")
        await wait_for(pilot, lambda: run_id in table.runs, what="the run to load")
        table.move_cursor(row=table.get_row_index(run_id))
        await pilot.press("o")
        heatmap = app.screen.query_one(Heatmap)
        await wait_for(pilot, lambda: heatmap.display and heatmap.labels, what="the heatmap")
        screen = app.screen
        assert screen.k == K and sorted(heatmap.labels) == sorted(METHODS)
        order = [METHODS.index(m) for m in heatmap.labels]

        def shown(mode: str, k: int) -> None:
            np.testing.assert_allclose(np.array(heatmap.matrix, dtype=float),
                                       expected(scores, k, mode)[np.ix_(order, order)], rtol=0, atol=1e-9)

        shown("first", K)  # as the run logged it
        await pilot.press("plus")  # another k: recomputed from the logged scores
        await wait_for(pilot, lambda: screen.result and screen.result["k"] != K, what="a new k")
        k = screen.result["k"]
        shown("first", k)
        await pilot.press("l")
        await settle(app, pilot)
        shown("last", k)
        await pilot.press("s")
        await settle(app, pilot)
        shown("spearman", k)
