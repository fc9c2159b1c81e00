"""User code named in a config (`plugins = [...]`), imported in every process that runs the config.

Why: `engine.register_scorer/model/strategy/kind/section` calls made in a script
only change that script's process. A run started with `--detach`, resumed, launched from the
TUI, or spread over Ray workers validates and runs its config in other processes,
where those names would be unknown. Listing the module in the config makes each
of those processes import it first (config validation does it, before any name or
section is checked), so the registrations happen everywhere the config goes: a
plugin's experiment kind and its `[section]` validate in `prunelab config check`
and the TUI's form as the built-in ones do (examples/custom_kind.py).

An entry is a module name (`my_scores`, importable from the working directory or
the environment) or a path to a .py file (`scorers/margin.py`, relative to the
working directory). Paths are stored absolute, so a process started elsewhere
finds the same file. Each is imported once per process.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import ConfigError


def is_path(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or os.sep in entry


def resolve(entry: str) -> str:
    """The entry as it is stored: a module name unchanged, a file path absolute."""
    entry = entry.strip()
    if not entry:
        raise ConfigError("an empty plugin entry; give a module name or a path to a .py file")
    return str(Path(entry).expanduser().resolve()) if is_path(entry) else entry


def load_plugins(entries: list[str]) -> list[str]:
    """Import each entry (once per process); returns the resolved entries."""
    resolved = [resolve(e) for e in entries]
    for entry in resolved:
        if is_path(entry):
            _import_file(Path(entry))
        else:
            _import_module(entry)
    return resolved


def _import_module(name: str) -> None:
    if name in sys.modules:
        return
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # `prunelab` (a console script) does not have the working directory on sys.path
        sys.path.insert(0, cwd)
    try:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(name=name)
    except ModuleNotFoundError:
        raise ConfigError(f"plugin module {name!r} not found (from {cwd} or the environment); give its name as "
                          "you would import it, or a path to its .py file") from None
    try:
        _failing_as_config_error(name, lambda: importlib.import_module(name))
    finally:
        if added:
            sys.path.remove(cwd)


def _import_file(path: Path) -> None:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"prunelab_plugin_{path.stem}_{digest}"  # one module per file, whatever its stem
    if name in sys.modules:
        return
    if not path.is_file():
        raise ConfigError(f"plugin file {path} not found")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugin file {path} is not a Python file (give a .py path)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        _failing_as_config_error(str(path), lambda: spec.loader.exec_module(module))
    except ConfigError:
        del sys.modules[name]
        raise


def _failing_as_config_error(label: str, do_import) -> None:
    """The user's module may raise anything: report which plugin, and what, as a config error."""
    try:
        do_import()
    except Exception as exc:  # noqa: BLE001  (any error of the user's module becomes one line naming it)
        raise ConfigError(f"plugin {label} failed to import: {type(exc).__name__}: {exc}") from None
