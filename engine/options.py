"""A method's options: each with its default, its help and its check, declared where the method is registered.

Why one type: scorers (`[scoring.NAME]`), strategies (`[selection.NAME]`) and
plugins declare options the same way, and the config validator, `prunelab
config show`, the TUI's form and the docs read them the same way. No torch here
(the config validator imports it).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Option:
    """One option of a method. `valid(value)` says whether a value is allowed; `rule` says which are, in words
    (`{name}` in it stands for the option's name)."""

    default: Any
    help: str
    valid: Callable[[Any], bool] | None = None
    rule: str = ""

    def problem(self, value: Any, name: str = "value") -> str | None:
        """None when `value` is allowed, else what is allowed (for the error message)."""
        if value is None and self.default is None:  # "unset": the run's own value applies
            return None
        if self.valid is None or self.valid(value):
            return None
        return (self.rule or "another value").replace("{name}", name)

    def describe(self, name: str = "value") -> dict[str, Any]:
        rule = self.rule.replace("{name}", name)
        return {"default": self.default, "description": self.help, **({"valid": rule} if rule else {})}


# ---------------------------------------------------------------- the usual kinds of option
def integer(default: int | None, help: str, minimum: int | None = None) -> Option:
    rule = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    return Option(default, help, lambda v: is_int(v) and (minimum is None or v >= minimum), rule)


def number(default: float | None, help: str, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> Option:
    """A finite real in [low, high]; `low_open`/`high_open` exclude the end."""
    def valid(v: Any) -> bool:
        if not is_real(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return not (high is not None and (v >= high if high_open else v > high))

    if low is not None and high is not None:
        rule = f"a number with {low:g} {'<' if low_open else '<='} {{name}} {'<' if high_open else '<='} {high:g}"
    elif low is not None:
        rule = f"a number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        rule = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        rule = "a finite number"
    return Option(default, help, valid, rule)


MAX_SEED = 2**32 - 1  # torch takes up to 2**64 - 1, but derived seeds hash (seed mod 2**32, k): larger ones collide


def seed(default: int, help: str) -> Option:
    """A seed: an integer from 0 to 2**32 - 1, as every config seed."""
    return Option(default, help, lambda v: is_int(v) and 0 <= v <= MAX_SEED, "an integer from 0 to 2**32 - 1")


def choice(default: str, help: str, choices: Iterable[str]) -> Option:
    allowed = tuple(choices)
    return Option(default, help, lambda v: v in allowed, "one of " + ", ".join(map(repr, allowed)))


def flag(default: bool, help: str) -> Option:
    return Option(default, help, lambda v: isinstance(v, bool), "true or false")


def as_options(options: Mapping[str, Option | tuple[Any, str]] | None) -> dict[str, Option]:
    """Options as given to a `register_*` call: Option objects, or (default, help) pairs (unchecked values)."""
    out: dict[str, Option] = {}
    for key, spec in (options or {}).items():
        if isinstance(spec, Option):
            out[key] = spec
        elif isinstance(spec, tuple) and len(spec) == 2:
            out[key] = Option(spec[0], str(spec[1]))
        else:
            raise ConfigError(f"option {key!r}: declare it as engine.Option(default, help, ...) or a "
                              f"(default, help) pair, not {spec!r}")
    return out


def check_options(what: str, declared: Mapping[str, Option], given: Any) -> dict[str, Any]:
    """Every declared option, the given ones checked and the rest at their defaults; ConfigError naming `what`
    (e.g. "scorer 'tdds'") and the option otherwise."""
    takes = f"its options are: {', '.join(declared)}" if declared else "it takes no options"
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{what}: expected a table of options ({takes}); got {given!r}")
    for key, value in given.items():
        if key not in declared:
            raise ConfigError(f"{what} has no option {key!r}; {takes}")
        problem = declared[key].problem(value, key)
        if problem is not None:
            raise ConfigError(f"{what}: option {key} = {value!r} is out of range; use {problem}")
    return {key: given.get(key, spec.default) for key, spec in declared.items()}


def describe_options(declared: Mapping[str, Option]) -> dict[str, dict[str, Any]]:
    return {key: spec.describe(key) for key, spec in declared.items()}
