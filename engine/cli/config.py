"""`prunelab config list|show|check`: presets, and validating a config file.

`show` prints a preset with each field's description as a TOML comment above it, and
the `[selection.NAME]` tables of the strategies it uses with each option's help, so a
config started from it documents itself; `check` prints the resolved config (only the
sections its kind reads, no empty tables) and ends with an OK line. Both read the
section and method registries, so a plugin's section or strategy shows up too.
"""
from __future__ import annotations

import re
from typing import Any

import click

from .common import handle_errors, main


@main.group("config")
def config_group() -> None:
    """Presets, config files and the experiment kinds they name."""


@config_group.command("list")
def config_list_command() -> None:
    """List the shipped presets."""
    from ..config import preset_names

    for name in preset_names():
        click.echo(name)


@config_group.command("kinds")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE_OR_FILE", help="Import a plugin first.")
@handle_errors
def config_kinds_command(plugins):
    """List the experiment kinds (`kind = ...`) and the config sections each reads."""
    from ..kinds import KINDS
    from ..plugins import load_plugins

    load_plugins(list(plugins))
    width = max(map(len, KINDS))
    for kind in KINDS.values():
        read = ", ".join(f"[{s}]" for s in kind.sections) if kind.sections is not None else "every section"
        click.echo(f"{kind.name:<{width}}  {kind.description}; reads {read}")


@config_group.command("show")
@click.argument("name")
@handle_errors
def config_show_command(name):
    """Print a preset or a config file (as TOML), to start a config from: each field's help above it, and
    the [selection.NAME] tables of the strategies it uses, at their values."""
    from ..config import config_text, load_config

    config = load_config(name)  # first: its plugins may register the sections and strategies it names
    text = with_descriptions(config_text(name)[0])
    click.echo(text + strategy_tables(config, text), nl=False)


def _method_options(section: str) -> dict[str, Any] | None:
    """The declared options of a [scoring.NAME] or [selection.NAME] table, None for any other header."""
    from ..scoring.registry import SCORERS
    from ..selection.registry import STRATEGIES

    table, _, name = section.partition(".")
    registry = {"scoring": SCORERS, "selection": STRATEGIES}.get(table)
    return registry[name].options if registry is not None and name in registry else None


def _help(section: str) -> dict[str, str]:
    """{key: its help} for the keys of a [section] (or of the top level for ""); {} for a free-form table."""
    from ..config import Config, describe, sections

    options = _method_options(section)
    if options is not None:
        return {key: option_help(option, key) for key, option in options.items()}
    model: Any = Config if section == "" else sections().get(section)
    keys = model.model_fields if model else {}
    return {key: describe(f"{section}.{key}" if section else key) for key in keys}


def option_help(option: Any, key: str) -> str:
    rule = option.rule.replace("{name}", key)
    return f"{option.help} ({rule})" if rule else option.help


def with_descriptions(text: str) -> str:
    """TOML text with `# description` above each key whose config field (or method option) has one; the
    preset's own comments stay."""
    out, helps = [], _help("")
    for line in text.splitlines():
        header = re.match(r"\s*\[([\w.-]+)\]\s*$", line)
        key = re.match(r"\s*([A-Za-z_][\w-]*)\s*=", line)
        if header:
            helps = _help(header.group(1))
        elif key and helps.get(key.group(1)):
            if out and out[-1].lstrip().startswith("#"):
                out.append("")  # the preset's own comment stays its own paragraph
            out.append(f"# {helps[key.group(1)]}")
        out.append(line)
    return "\n".join(out) + "\n"


def strategy_tables(config: Any, text: str) -> str:
    """The [selection.NAME] tables of the strategies `config` uses and `text` lacks: each option at the config's
    value (its default unless set), its help above it."""
    import tomli_w

    from ..selection.registry import STRATEGIES, check_strategy

    out = []
    for name in config.used_strategies():
        options = STRATEGIES[name].options
        if not options or f"[selection.{name}]" in text:
            continue
        out += ["", f"[selection.{name}]"]
        for key, value in check_strategy(name, config.strategy_options(name)).items():
            if value is not None:
                out += [f"# {option_help(options[key], key)}", tomli_w.dumps({key: value}).strip()]
    return "\n".join(out) + "\n" if out else ""


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
    """Validate a config file (or preset) and check its data and model as `run` would, print it resolved (the
    sections its kind reads), then OK."""
    import tomli_w

    from ..api import check_inputs
    from ..config import load_config
    from ..kinds import used_config

    config = load_config(config_file, list(overrides))
    notes = check_inputs(config)  # the data, the model, the device: what `run` checks before the run exists
    click.echo(without_empty_tables(tomli_w.dumps(used_config(config))), nl=False)
    for note in notes:
        click.echo(f"# {note}")
    click.echo(f"# OK: {config_file} is a valid {config.kind} config")  # no trial count: that would load torch
