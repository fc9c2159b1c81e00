"""The `prunelab` command line: the only engine module that prints. One module per command group.

Every command is a thin layer over engine.api, imported inside the command so
that `prunelab --help`, `config check` and the TUI's first frame stay fast.
Errors a user can cause print one line on stderr and exit 2; exit codes: 0 ok,
1 failed, 2 bad input, 130 interrupted. Progress bars go to stderr, `--json`
output to stdout. The TUI adds its `tui` command from its own package
(tui/cli.py is the console script), so the engine never imports the TUI.
"""
from __future__ import annotations

from . import bench, cache, config, runs, scorers, steps, subset  # noqa: F401  (each adds its commands to `main`)
from .common import main

__all__ = ["main"]
