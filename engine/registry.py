"""Registries: one dict per concept, from a name to a small spec, filled by `register_*` functions.

The config validator, the CLI, the TUI's forms and the docs read the same
registries. Their modules import no torch, so an implementation may be given as
a "module:attribute" reference (`Ref`), imported on its first call: that keeps
`prunelab config check` and the TUI's first frame free of torch.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Ref:
    """A function named by "package.module:attribute", imported when first called (picklable, for Ray)."""

    path: str

    def load(self) -> Callable[..., Any]:
        module, _, attr = self.path.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


def implementation(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable as given, or a "module:attribute" string as a lazy `Ref`."""
    return Ref(fn) if isinstance(fn, str) else fn


@dataclass(frozen=True)
class MethodDoc:
    """What a method's docs page says beyond its one-line description (docs/methods/ is generated from it).

    `paper` is a key of the bibliography (engine/references.py); `code` names the reference
    implementation as "owner/repo: path/file.py"; `differences` lists every known way prunelab's
    method departs from that code (empty: none known); `tests` are the pytest node ids that pin it.
    """

    formula: str = ""
    paper: str = ""
    code: str = ""
    differences: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()


class Registry(dict[str, T]):
    """A dict from name to spec, in registration order, that knows what it holds.

    `check(name)` returns the spec or raises UnknownNameError listing the known names.
    """

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def add(self, name: str, spec: T) -> T:
        """Register (or replace) `name`."""
        self[name] = spec
        return spec

    def check(self, name: str) -> T:
        if name not in self:
            raise UnknownNameError(self.what, name, self)
        return self[name]
