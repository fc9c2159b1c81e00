"""Checked arguments of the public API: one line naming the argument and what it takes, a ConfigError.

Why a layer of its own: `engine.run(123)` or `engine.clear_cache(kinds="scores")` used to fail deep inside
(an AttributeError from pathlib, a cache walk over the letters s, c, o, …) or, worse, do something else
(`clear_cache(-5)` selected every entry). The CLI's options are checked by click before they reach
engine.api; a script's arguments are checked here, by the same rules (a duration is finite and not negative, a
cache kind is one of the CLI's choices, a run id is a non-empty string). `@checked(name=rule, ...)` binds a
call's arguments to the function's signature and passes each named one through its rule, which returns the
value (normalised: a lone name becomes a list) or raises ConfigError. Defaults are not checked. Stdlib only:
engine.api imports this, and importing engine.api loads neither numpy, pydantic nor torch.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import ConfigError
from .options import MAX_SEED

F = TypeVar("F", bound=Callable[..., Any])
Rule = Callable[[str, Any], Any]  # (where, value) -> value, or ConfigError naming `where`


def checked(**rules: Rule) -> Callable[[F], F]:
    """Check the named arguments of every call by their rules (before the function runs)."""
    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)
        unknown = set(rules) - set(signature.parameters)
        if unknown:  # a rule for an argument the function lacks is a bug here, not the caller's
            raise TypeError(f"{fn.__name__} has no argument(s) {', '.join(sorted(unknown))}")

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"engine.{fn.__name__}: {exc}") from None
            for name, rule in rules.items():
                if name in bound.arguments:
                    bound.arguments[name] = rule(f"engine.{fn.__name__}: {name}", bound.arguments[name])
            return fn(*bound.args, **bound.kwargs)

        return call  # type: ignore[return-value]

    return wrap


def _got(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}…" if len(text) > 60 else text


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# ---------------------------------------------------------------- rules
def optional(rule: Rule) -> Rule:
    """None, or what `rule` takes."""
    return lambda where, value: None if value is None else rule(where, value)


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    def rule(where: str, value: Any) -> int:
        if not _is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = f" >= {minimum}" if minimum is not None else ""
            high = f" and <= {maximum}" if maximum is not None else ""
            raise ConfigError(f"{where} takes an integer{low}{high}, got {_got(value)}")
        return int(value)
    return rule


def number(minimum: float | None = None, low_open: bool = False, maximum: float | None = None) -> Rule:
    """A finite real number (not a bool) in the range."""
    def rule(where: str, value: Any) -> float:
        good = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if good and minimum is not None:
            good = value > minimum if low_open else value >= minimum
        if good and maximum is not None:
            good = value <= maximum
        if not good:
            low = "" if minimum is None else f" {'>' if low_open else '>='} {minimum:g}"
            high = "" if maximum is None else f"{' and' if low else ''} <= {maximum:g}"
            raise ConfigError(f"{where} takes a finite number{low}{high}, got {_got(value)}")
        return value
    return rule


def seed(where: str, value: Any) -> int:
    return integer(0, MAX_SEED)(where, value)


def flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} takes True or False, got {_got(value)}")
    return value


def text(where: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} takes a non-empty string, got {_got(value)}")
    return value


def run_id_text(where: str, value: Any) -> str:
    """A string, to be resolved as a run id (an empty one is the runner's to refuse, in the CLI's words)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} takes a run id (a string from `prunelab runs` or engine.list_runs()), "
                          f"got {_got(value)}")
    return value


def run_id(where: str, value: Any) -> str:
    if not run_id_text(where, value).strip():
        raise ConfigError(f"{where}: the run id is empty; pass a run id from `prunelab runs`")
    return value


def _path_text(where: str, value: Any, takes: str) -> str:
    """A non-empty string or an os.PathLike, as a string; else one ConfigError saying what `where` takes."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where} takes {takes}, got {_got(value)}")
    return text


def path(where: str, value: Any) -> str:
    """A file or folder path (a string or an os.PathLike), as a string."""
    return _path_text(where, value, "a path (a string or pathlib.Path)")


def uri(where: str, value: Any) -> str:
    """A tracking URI or a store's folder."""
    return _path_text(where, value, "a tracking URI such as sqlite:///mlruns/mlflow.db or http://host:5000")


def callback(where: str, value: Any) -> Callable[..., Any]:
    if not callable(value):
        raise ConfigError(f"{where} takes a function of one event (on_event(event)), got {_got(value)}")
    return value


def names(choices: Iterable[str] | None = None, what: str = "name") -> Rule:
    """One name or a sequence of names, as a list: a lone string is one name or a comma list of them (as everywhere
    a list is typed: "loss,el2n"), not its letters."""
    allowed = None if choices is None else tuple(choices)

    def rule(where: str, value: Any) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, Sequence) or isinstance(items, bytes) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where} takes a {what} or a list of them, got {_got(value)}")
        bad = [v for v in items if allowed is not None and v not in allowed]
        if bad:
            raise ConfigError(f"{where}: unknown {what} {bad[0]!r}; choose from {', '.join(allowed or ())}")
        return list(items)
    return rule


def epochs(where: str, value: Any) -> int | list[int]:
    """An epoch (an integer >= 0) or a non-empty list of them."""
    if _is_int(value) and value >= 0:
        return int(value)
    if (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value
            and all(_is_int(e) and e >= 0 for e in value)):
        return [int(e) for e in value]
    raise ConfigError(f"{where} takes an epoch (an integer >= 0) or a list of them, got {_got(value)}")


def one_of(*choices: str, case_sensitive: bool = True) -> Rule:
    def rule(where: str, value: Any) -> str:
        found = value if case_sensitive or not isinstance(value, str) else value.upper()
        if found not in choices:
            raise ConfigError(f"{where} takes one of {', '.join(map(repr, choices))}, got {_got(value)}")
        return value
    return rule


def mapping(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} takes a dict, got {_got(value)}")
    return dict(value)


def model(where: str, value: Any) -> Any:
    """A model's registered name, or a torch nn.Module of the user's."""
    torch = sys.modules.get("torch")  # a Module exists only once torch is imported
    if isinstance(value, str) and value.strip():
        return value
    if torch is not None and isinstance(value, torch.nn.Module):
        return value
    raise ConfigError(f"{where} takes a model name such as 'cnn' (see engine.models) or a torch nn.Module, "
                      f"got {_got(value)}")


def config(where: str, value: Any) -> Any:
    """A Config, a dict of config sections, a TOML path or a preset's name."""
    module = sys.modules.get("engine.config")
    if module is not None and isinstance(value, module.Config):
        return value
    if isinstance(value, (dict, str, os.PathLike)):
        return value
    raise ConfigError(f"{where} takes an engine.Config, a dict of config sections, a TOML file's path or a "
                      f"preset's name, got {_got(value)}")


def executor(where: str, value: Any) -> Any:
    """'local', 'ray', or an executor object (one with a run(jobs, on_event, cancel=...) method)."""
    if isinstance(value, str) or callable(getattr(value, "run", None)):
        return value
    raise ConfigError(f"{where} takes 'local', 'ray' or an executor object with a run() method, got {_got(value)}")


def cache(where: str, value: Any) -> Any:
    """A cache folder (a path), or an engine Cache object."""
    if callable(getattr(value, "load_arrays", None)):
        return value
    return path(where, value)
