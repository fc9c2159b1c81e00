"""`prunelab config list|show|check`: presets, and validating a config file."""
from __future__ import annotations

import click

from .common import handle_errors, main


@main.group("config")
def config_group() -> None:
    """Presets and config files."""


@config_group.command("list")
def config_list_command() -> None:
    """List the shipped presets."""
    from ..config import preset_names

    for name in preset_names():
        click.echo(name)


@config_group.command("show")
@click.argument("name")
@handle_errors
def config_show_command(name):
    """Print a preset (as TOML), to start a config file from."""
    from ..config import preset_text

    click.echo(preset_text(name), nl=False)


@config_group.command("check")
@click.argument("config_file")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@handle_errors
def config_check_command(config_file, overrides):
    """Validate a config file (or preset) and print it resolved."""
    from ..config import load_config

    click.echo(load_config(config_file, list(overrides)).to_toml(), nl=False)
