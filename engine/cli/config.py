"""`prunelab config list|show|check`: presets, and validating a config file.

`show` prints a preset with each field's description as a TOML comment above it, so a
config started from it documents itself; `check` prints the resolved config (only the
sections its kind reads, no empty tables) and ends with an OK line.
"""
from __future__ import annotations

import re
from typing import Any

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

    click.echo(with_descriptions(preset_text(name)), nl=False)


def _section_model(section: str) -> Any:
    """The pydantic model of a [section] (or of the top level for ""), None for a free-form table."""
    from pydantic import BaseModel

    from ..config import Config

    model: Any = Config
    for part in filter(None, section.split(".")):
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def with_descriptions(text: str) -> str:
    """TOML text with `# description` above each key whose config field has one (the preset's comments stay)."""
    out, model = [], _section_model("")
    for line in text.splitlines():
        header = re.match(r"\s*\[([\w.-]+)\]\s*$", line)
        key = re.match(r"\s*([A-Za-z_][\w-]*)\s*=", line)
        if header:
            model = _section_model(header.group(1))
        elif key and model is not None and key.group(1) in model.model_fields:
            description = model.model_fields[key.group(1)].description
            if description:
                if out and out[-1].lstrip().startswith("#"):
                    out.append("")  # the preset's own comment stays its own paragraph
                out.append(f"# {description}")
        out.append(line)
    return "\n".join(out) + "\n"


def without_empty_tables(text: str) -> str:
    """tomli_w writes `[data.options]` for an empty dict; a header followed by no key says nothing."""
    lines = text.splitlines()
    kept = []
    for i, line in enumerate(lines):
        if line.startswith("["):
            rest = next((x for x in lines[i + 1:] if x.strip()), "")
            if not rest or rest.startswith("["):
                continue
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept).strip("\n")) + "\n"


@config_group.command("check")
@click.argument("config_file")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@handle_errors
def config_check_command(config_file, overrides):
    """Validate a config file (or preset), print it resolved (the sections its kind reads), then OK."""
    import tomli_w

    from ..config import load_config
    from ..kinds import used_config

    config = load_config(config_file, list(overrides))
    if config.device not in ("auto", "cpu"):  # needs torch, so only when a device is named
        from ..device import resolve_device

        resolve_device(config.device)
    click.echo(without_empty_tables(tomli_w.dumps(used_config(config))), nl=False)
    click.echo(f"# OK: {config_file} is a valid {config.kind} config")  # no trial count: that would load torch
