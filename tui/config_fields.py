"""The New-experiment form's model: one field spec per config field, read from the pydantic models.

Why introspection: a field another engineer adds to `engine.config.Config`, or
a section a kind registers (`register_section`, a plugin's too), shows up in the
form with its description and default, with no change here. Values go back
through `engine.config.config_from_dict`, so the form validates exactly as the
CLI does, `[scoring.NAME]` and `[selection.NAME]` tables included. Only
engine.config is read (the TUI's import contract): the sections from
`Config.layout()`, a field's registry names from `choices_for`. No textual here.
"""
from __future__ import annotations

import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class FieldSpec:
    path: str  # "sweep.keep_ratios"
    section: str  # "" for top-level fields
    name: str
    kind: str  # "bool", "choice", "list", "dict" or "text"
    description: str = ""
    choices: list[Any] = field(default_factory=list)
    optional: bool = False
    suggestions: list[str] = field(default_factory=list)

    @property
    def widget_id(self) -> str:
        return "f-" + self.path.replace(".", "--")


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else annotation), True
    return annotation, False


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _kind(annotation: Any) -> tuple[str, list[Any]]:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "bool", []
    if origin is Literal:
        return "choice", list(typing.get_args(annotation))
    if origin in (list, tuple, set) or annotation in (list, tuple, set):
        return "list", []
    if origin is dict or annotation is dict:
        return "dict", []
    return "text", []


def _entries(model_cls: Any) -> dict[str, Any]:
    """A model's fields by name; for Config, its layout: the registered sections in their place."""
    layout = getattr(model_cls, "layout", None)
    return layout() if callable(layout) else dict(model_cls.model_fields)


def field_specs(model_cls: Any, section: str = "") -> list[FieldSpec]:
    """Every leaf field of the config model, sections flattened in the order of `Config.layout()`; each with its
    help, and the registry names that complete it (kind, model, sweep.methods, ...)."""
    from engine.config import choices_for, describe

    specs: list[FieldSpec] = []
    for name, entry in _entries(model_cls).items():
        path = f"{section}.{name}" if section else name
        annotation, optional = (entry, False) if _is_model(entry) else _strip_optional(entry.annotation)
        if _is_model(annotation):
            specs.extend(field_specs(annotation, path))
            continue
        kind, choices = _kind(annotation)
        specs.append(FieldSpec(path, section, name, kind, describe(path), choices, optional, choices_for(path)))
    return specs


def lookup(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def assign(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_value(spec: FieldSpec, value: Any) -> str:
    """How a value reads in its text box: lists as `a, b`, tables as TOML inline tables."""
    if value is None:
        return ""
    if spec.kind == "list":
        return ", ".join(_scalar_text(v) for v in value)
    if spec.kind == "dict":
        return _inline_table(value) if value else ""
    return _scalar_text(value)


def _inline_table(value: dict[str, Any]) -> str:
    """A TOML inline table, nested tables inline too (`scoring`: { tdds = { window = 5 } })."""
    import tomli_w

    items = ", ".join(f"{k} = {_inline_table(v) if isinstance(v, dict) else tomli_w.dumps({'v': v})[4:].strip()}"
                      for k, v in value.items())
    return "{ " + items + " }"


def _scalar(text: str) -> Any:
    """A TOML value when the text is one (numbers, booleans, quoted strings), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _split_items(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i.strip() for i in items if i.strip()]


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value a text box holds; None means "leave the field out" (its default, or None)."""
    text = text.strip()
    if spec.kind == "list":
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [_scalar(item) for item in _split_items(text)]
    if spec.kind == "dict":
        if not text:
            return {}
        body = text if text.startswith("{") else "{ " + text + " }"
        try:
            return tomllib.loads(f"v = {body}")["v"]
        except tomllib.TOMLDecodeError:
            return text  # the validator says it is not a table
    if not text:
        return None
    if spec.kind == "choice":
        return text
    return _scalar(text)


_INDEX = re.compile(r"\[\d+\]")


def error_target(message: str, paths: list[str]) -> tuple[str | None, str]:
    """Which field a `config_from_dict` message is about, and the message without that prefix.

    Messages start with the field path (`sweep.keep_ratios[0]: ...`); checks across
    fields name the field in their text (`sweep.score_epochs has epoch 5 beyond ...`), so look for it there.
    """
    head, sep, _rest = message.partition(": ")
    if sep:
        path = _INDEX.sub("", head.strip())
        if path in paths:
            return path, message
    for path in sorted(paths, key=len, reverse=True):
        if re.search(rf"(?<![\w.]){re.escape(path)}(?![\w])", message):
            return path, message
    match = re.search(r"unknown key '([^']+)'(?: in \[([^\]]+)\])?", message)
    if match:
        path = f"{match.group(2)}.{match.group(1)}" if match.group(2) else match.group(1)
        if path in paths:
            return path, message
    return None, message
