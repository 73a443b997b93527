"""A plain config value against its field: its type, then its bounds or choices."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def check_type(raw: Any, kind: type, meta: Any) -> Any:
    """Checks a plain value's type, then its bounds or choices."""
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw = float(raw)
    if type(raw) is not kind:
        raise ValueError(f"expected {describe(kind, meta)}, got {_value_kind(raw)} {raw!r}")
    if isinstance(raw, float) and math.isnan(raw):
        raise ValueError("expected a number, got NaN")
    if meta["choices"] is not None and raw not in meta["choices"]:
        raise ValueError(f"{raw!r} is not one of: {', '.join(meta['choices'])}")
    low, high = meta["min"], meta["max"]
    if (low is not None and raw < low) or (high is not None and raw > high):
        raise ValueError(f"{raw!r} is out of range ({_fmt(low)}..{_fmt(high)})")
    return raw


def _fmt(bound: float | None) -> str:
    if bound is None:
        return ""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def base_type(hint: Any) -> type:
    if isinstance(hint, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def allows_none(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def describe(hint: Any, meta: Any) -> str:
    if meta.get("choices"):
        return "one of: " + ", ".join(meta["choices"])
    return _TYPE_NAMES.get(base_type(hint), "a value")


def _value_kind(value: Any) -> str:
    return {bool: "boolean", int: "whole number", float: "number", str: "string"}.get(
        type(value), type(value).__name__)
