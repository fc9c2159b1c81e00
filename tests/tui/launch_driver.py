"""Drive a real TUI process: fill the New-experiment form with a tiny config, launch, report, hang on.

Run by test_launch.py as its own process (in its own session, like a terminal),
so the test can kill it the way a dropped SSH connection would, and check the
experiment it launched keeps going. Prints one JSON line: {"run_id", "pid"}.

    python tests/tui/launch_driver.py TRACKING_URI
"""
from __future__ import annotations

import asyncio
import json
import sys

TINY_FORM = {"name": "tui-e2e", "model": "mlp", "data.train_size": "600", "data.test_size": "500",
             "train.epochs": "1", "surrogate.epochs": "1", "sweep.methods": "loss, grad_norm",
             "sweep.keep_ratios": "0.5", "sweep.seeds": "0", "sweep.score_epochs": "1"}


async def fill_and_launch(app, pilot, form: dict[str, str]) -> None:
    """Open the form, type the values in, wait for them to validate, press ctrl+l."""
    from textual.widgets import Input
    from tui_helpers import wait_for

    await pilot.press("n")
    screen = app.screen
    await wait_for(pilot, lambda: screen.config is not None, timeout=60, what="the form")
    for path, value in form.items():
        screen.query_one(f"#f-{path.replace('.', '--')}", Input).value = value
    await wait_for(pilot, lambda: screen.config is not None and screen.config.name == form["name"]
                   and not screen.query_one("#launch").disabled, what="the form to validate")
    await pilot.press("ctrl+l")
    await wait_for(pilot, lambda: app.current_mode == "monitor", timeout=60, what="the launch")


async def main(uri: str) -> None:
    from tui_helpers import wait_for

    from tui.app import PrunelabApp
    from tui.widgets.progress_panel import ProgressPanel

    app = PrunelabApp(uri)
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_and_launch(app, pilot, TINY_FORM)
        await wait_for(pilot, lambda: any(p.progress for p in app.screen.query(ProgressPanel)), timeout=30,
                       what="the monitor panel")
        panel = next(p for p in app.screen.query(ProgressPanel) if p.progress)
        print(json.dumps({"run_id": panel.run_id, "pid": panel.progress.pid}), flush=True)
        await asyncio.sleep(600)  # stay up until the test kills this process (the "terminal" closing)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
