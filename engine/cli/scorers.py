"""`prunelab scorers`: every registered scorer, where its numbers come from, and its options with defaults.

Read from the scorer registry, as the config validator and the TUI's form read it,
so a plugin's scorer (`plugins = [...]` in a config, or `--plugin`) shows up too.
"""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from .common import handle_errors, json_option, main, print_json


def _default(value) -> str:
    return "the run's" if value is None else repr(value) if isinstance(value, str) else str(value)


@main.command("scorers")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE_OR_FILE", help="Import a plugin first.")
@json_option
@handle_errors
def scorers_command(plugins, as_json):
    """List the scorers and their options ([scoring.NAME] tables of a config)."""
    from ..plugins import load_plugins
    from ..scoring.registry import describe_scorers

    load_plugins(list(plugins))
    rows = describe_scorers()
    if as_json:
        print_json({"scorers": rows})
        return
    table = Table("scorer", "kind", "options (default)", "description", box=None)
    for row in rows:
        options = "\n".join(f"{key} ({_default(o['default'])}): {o['description']}" for key, o in row["options"].items())
        table.add_row(row["name"], row["kind"] + (", K-averaged" if row["average_inits"] else ""), options,
                      row["description"])
    Console().print(table)
