"""The `prunelab` console script: the engine's command line plus the `tui` command (and `prunelab` alone opens it).

It lives here, not in engine/cli, so that the engine never imports the TUI.
"""
from __future__ import annotations

import sys

import click

from engine.cli import main


@main.command("tui")
@click.pass_context
def tui_command(ctx: click.Context) -> None:
    """Open the terminal UI."""
    try:
        from .app import run_app  # Textual loads only when the TUI opens, not for every command
    except ImportError as exc:
        click.echo(f"prunelab: error: the terminal UI is not available ({exc})", err=True)
        sys.exit(1)
    run_app(tracking_uri=(ctx.find_root().obj or {}).get("tracking_uri"))


if __name__ == "__main__":
    main()
