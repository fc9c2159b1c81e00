"""End to end: launch from the form, lose the TUI, re-attach, watch it finish, analyse it; and cancel."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable
from tui_helpers import TINY, wait_for

from engine.store.progress import process_alive
from tests.polling import wait_until

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent
ROOT = HERE.parent.parent  # this checkout: the TUI process and the runs it launches import its code


def checkout_env() -> dict[str, str]:
    """The environment, with this checkout first on the path (the venv may be installed from another one)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def start_tui_process(uri: str, cwd: Path) -> tuple[subprocess.Popen, dict]:
    """A TUI in its own process and session (like a terminal), which fills the form and launches."""
    driver = subprocess.Popen([sys.executable, str(HERE / "launch_driver.py"), uri], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True, env=checkout_env())
    line = driver.stdout.readline()
    if not line:
        driver.kill()
        pytest.fail("the TUI process exited before launching")
    return driver, json.loads(line)


@pytest.mark.slow
async def test_launch_from_form_survives_tui_exit_then_analyse(tmp_path, monkeypatch, fresh_store):
    from tui.app import PrunelabApp
    from tui.widgets.heatmap import Heatmap
    from tui.widgets.progress_panel import ProgressPanel
    from tui.widgets.run_table import RunTable

    monkeypatch.chdir(tmp_path)
    uri = fresh_store(tmp_path / "mlruns" / "mlflow.db")
    driver, launched = start_tui_process(uri, tmp_path)
    run_id, pid = launched["run_id"], launched["pid"]
    # the terminal goes away: hang up and kill the TUI's whole session
    os.killpg(driver.pid, signal.SIGHUP)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=10)
    await asyncio.sleep(0.5)
    assert process_alive(pid, os.uname().nodename) is not False, "the detached run died with the TUI"

    app = PrunelabApp(uri)  # a new TUI re-attaches: it only reads the progress files and the store
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("m")
        await wait_for(pilot, lambda: any(p.run_id == run_id for p in app.screen.query(ProgressPanel)),
                       what="the re-attached run on the monitor")
        panel = next(p for p in app.screen.query(ProgressPanel) if p.run_id == run_id)
        await wait_for(pilot, lambda: panel.status != "RUNNING", timeout=240, what="the run to finish")
        assert panel.status == "FINISHED", panel.progress.log[-5:]
        assert panel.progress.trials_done == panel.progress.trials == 3

        await pilot.press("r")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.runs.get(run_id) and table.runs[run_id].status == "FINISHED",
                       what="the finished row")
        assert table.runs[run_id].experiment == "tui-e2e" and table.runs[run_id].model == "mlp"
        table.move_cursor(row=table.get_row_index(run_id))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.query_one("#summary", DataTable).row_count == 3,
                       what="the summary")
        plot = app.screen.query_one("#plot-ratio").plt.build()
        assert "loss" in plot and "full data" in plot
        await pilot.press("o")
        heatmap = app.screen.query_one(Heatmap)
        await wait_for(pilot, lambda: heatmap.display and len(heatmap.matrix) == 2, what="the overlap matrix")
        assert heatmap.matrix[0][0] == heatmap.matrix[1][1] == 1.0
    # FINISHED is written before the process has closed its store and exited: give it time to go
    for _ in range(120):
        if not process_alive(pid, os.uname().nodename):
            break
        await asyncio.sleep(0.25)
    assert not process_alive(pid, os.uname().nodename), "the detached run did not exit after it finished"


async def test_cancel_from_monitor_ends_run_killed(tmp_path, monkeypatch, fresh_store):
    from engine.api import load_config
    from engine.store.tracking import tracker
    from tui.app import PrunelabApp
    from tui.widgets.progress_panel import ProgressPanel

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", checkout_env()["PYTHONPATH"])  # the launched run imports this checkout
    uri = fresh_store(tmp_path / "mlruns" / "mlflow.db")
    app = PrunelabApp(uri)
    # long enough to still be running when cancelled: many epochs of the tiny model
    config = load_config("quick", TINY + ["name=to-cancel", "train.epochs=2000", "sweep.full_data=true"])
    info = app.backend.launch(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await wait_for(pilot, lambda: app.screen.query(ProgressPanel), what="the panel")
        panel = app.screen.query_one(ProgressPanel)
        # wait for a stage: the run has installed its SIGTERM handler by then
        await wait_for(pilot, lambda: panel.progress and panel.progress.stage, timeout=90, what="a stage")
        await pilot.press("x")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen"
                       and app.screen.query_one("#no").has_focus, what="the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "MonitorScreen", what="the answer")
        try:
            await wait_for(pilot, lambda: panel.status == "KILLED", timeout=60, what="KILLED")
        except AssertionError:
            notices = [n.message for n in app._notifications]
            log = Path(info["log_file"]).read_text()[-2000:]  # noqa: ASYNC240 -- the failure message only
            pytest.fail(f"no KILLED; notices {notices}; progress {panel.progress}; run log:\n{log}")
    track = tracker(uri, os.getcwd())
    await asyncio.to_thread(wait_until, lambda: track.get_run(info["run_id"]).info.status == "KILLED", 30,
                            "the run KILLED in the store", 0.5)
