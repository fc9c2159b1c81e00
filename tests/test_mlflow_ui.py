"""prunelab's runs in MLflow's web UI, checked in a real browser.

A tiny prune run fills a store; `mlflow server` serves it on 127.0.0.1; headless
Chromium (Debian's package, driven by Playwright; install it with
.ci/install-browser) walks the React UI: the experiment's run list with the
parent run and, expanded, its child runs and their data set; then the parent's
Artifacts tab down to a PNG plot that actually renders.
"""
import os
import shutil
from pathlib import Path

import pytest

import engine
from engine.store.tracking import tracker
from tests.conftest import running_mlflow_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SLOW = 60_000  # ms: the UI is slow to first paint on 2 busy cores


def chromium_binary() -> str | None:
    for candidate in (os.environ.get("PRUNELAB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


# Skipped only on a developer's machine without Chromium; CI (.ci/run) sets PRUNELAB_REQUIRE_BROWSER=1, and then a
# missing browser fails the test, so CI can never go green without it.
REQUIRE_BROWSER = os.environ.get("PRUNELAB_REQUIRE_BROWSER") == "1"
NO_BROWSER = "no Chromium binary (/usr/bin/chromium); run .ci/install-browser to install it"


@pytest.fixture(autouse=True)
def browser_present():
    if chromium_binary() is None:
        if REQUIRE_BROWSER:
            pytest.fail(f"PRUNELAB_REQUIRE_BROWSER=1 but {NO_BROWSER}")
        pytest.skip(NO_BROWSER)


@pytest.fixture
def filled_store(tmp_path, fresh_store):
    """A tiny prune run (mlp, 600 samples, 1 epoch, random vs loss, keep 0.5, seed 0) in a fresh store."""
    uri = fresh_store(tmp_path / "store" / "mlflow.db")
    config = engine.load_config("quick", {
        "name": "ui-check", "model": "mlp", "data.train_size": 600, "data.test_size": 200, "train.epochs": 1,
        "surrogate.epochs": 1, "sweep.score_epochs": [1], "sweep.methods": ["random", "loss"],
        "sweep.keep_ratios": [0.5], "sweep.seeds": [0]})
    result = engine.run(config, tracking_uri=uri)
    assert result.status == "FINISHED"
    return uri, result


@pytest.fixture
def mlflow_server(filled_store, tmp_path):
    """`mlflow server` on a free loopback port over the filled store."""
    uri, _ = filled_store
    with running_mlflow_server(uri, tmp_path / "server") as url:
        yield url


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


@pytest.mark.timeout(120)
def test_runs_plots_and_data_set_show_in_the_mlflow_ui(filled_store, mlflow_server, page):
    uri, result = filled_store
    parent = tracker(uri).get_run(result.run_id)
    experiment_id = parent.info.experiment_id
    digest = engine.as_dataset("mnist-mini", device="cpu", train_size=600, test_size=200).digest()

    # the experiment's run list (the "Model training" view): the parent, then its children once expanded
    page.goto(f"{mlflow_server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    parent_link = page.get_by_role("link", name=parent.info.run_name, exact=True)
    parent_link.wait_for(timeout=SLOW)
    page.locator("[role=gridcell]", has=parent_link).locator("button").first.click()
    for name in ("full-data / seed 0", "random / random / keep 0.5 / seed 0 / e1",
                 "loss / hardest / keep 0.5 / seed 0 / e1"):
        page.get_by_role("link", name=name, exact=True).wait_for()
    page.get_by_text(f"mnist-mini ({digest})").first.wait_for()  # the logged data set input

    # the parent's run page, Artifacts tab, down to a plot that renders
    parent_link.click()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("summary.csv", exact=True).wait_for()
    page.get_by_text("plots", exact=True).click()
    page.get_by_text("accuracy_vs_ratio_e1.png", exact=True).click()
    page.wait_for_function("() => [...document.images].some(i => i.src.startsWith('blob:') && i.complete"
                           " && i.naturalWidth > 100)")
