"""`prunelab cache` and `cache clear`: the surrogate and score cache's size, last use, and freeing it."""
from __future__ import annotations

import math
import time

import click

from ..api import CACHE_KINDS
from .common import handle_errors, json_option, main, print_json, print_summary, tracking_uri_of


@main.group("cache", invoke_without_command=True)
@json_option
@click.pass_context
@handle_errors
def cache_group(ctx, as_json):
    """The surrogate and score cache: what it holds (no subcommand), or `clear` to free space."""
    if ctx.invoked_subcommand is not None:
        return
    from .. import api

    info = api.cache_usage(tracking_uri=tracking_uri_of(ctx))
    if as_json:
        print_json(info)
        return
    if not info["kinds"]:
        click.echo(f"cache in {info['folder']}: empty")
        return
    rows = [{"kind": k["kind"], "entries": k["entries"], "size": human_bytes(k["bytes"]),
             "last used": time.strftime("%Y-%m-%d %H:%M", time.localtime(k["last_used"])),
             "first used": time.strftime("%Y-%m-%d %H:%M", time.localtime(k["first_used"]))} for k in info["kinds"]]
    print_summary(rows, title=f"cache in {info['folder']}: {info['entries']} entries, {human_bytes(info['bytes'])}")


def human_bytes(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '90s' or plain seconds, as seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    text = text.strip().lower()
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):  # "", "nan", "inf" would select every entry
        raise click.BadParameter(f"{text!r}: expected a duration like 7d, 12h, 30m or 90s")
    if seconds < 0:
        raise click.BadParameter(f"{text!r}: a duration cannot be negative")
    return seconds


@cache_group.command("clear")
@click.option("--older-than", default=None, metavar="AGE",
              help="Only entries unused for this long (7d, 12h, 30m, 90s); default: all.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(CACHE_KINDS),
              help="Only this kind (repeatable): surrogate checkpoints, score arrays, forgetting counts, or partial "
                   "(the unfinished writes of killed processes).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
@handle_errors
def cache_clear_command(ctx, older_than, kinds, dry_run, yes, as_json):
    """Delete cache entries; runs that need them again retrain or rescore (safe while runs go on)."""
    from .. import api

    seconds = parse_age(older_than) if older_than is not None else 0.0
    uri = tracking_uri_of(ctx)
    if not dry_run and not yes:
        preview = api.clear_cache(seconds, list(kinds), dry_run=True, tracking_uri=uri)
        if preview["removed"] == 0:
            click.echo("nothing to remove")
            return
        click.confirm(f"remove {preview['removed']} cache entries ({human_bytes(preview['bytes'])}) from "
                      f"{preview['folder']}?", abort=True, err=True)
    result = api.clear_cache(seconds, list(kinds), dry_run=dry_run, tracking_uri=uri)
    if as_json:
        print_json(result)
    else:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {result['removed']} entries, {human_bytes(result['bytes'])}, from {result['folder']}")
