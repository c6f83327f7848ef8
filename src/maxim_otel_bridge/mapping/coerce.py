"""Strict coercion of attribute values that may be junk.

Instrumentations put numbers in strings, lists in JSON strings and booleans where integers belong.
Each helper returns the wanted type or None; none of them raises. `coerce_int` refuses bools because
`bool` is a subclass of `int` and `True` tokens would otherwise count as 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = [
    "JsonParse",
    "coerce_float",
    "coerce_int",
    "coerce_list",
    "coerce_mapping",
    "coerce_str",
    "coerce_str_list",
    "parse_json",
]


def coerce_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a decimal string; None otherwise (and for bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            parsed = coerce_float(text)
            return coerce_int(parsed) if parsed is not None else None
    return None


def coerce_float(value: Any) -> float | None:
    """A finite float from a number or a numeric string; None otherwise (and for bools, NaN, inf)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value) if isinstance(value, float) else value
        if isinstance(result, float) and not math.isfinite(result):
            return None
        return result  # type: ignore[return-value]
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def coerce_str(value: Any) -> str | None:
    """A non-empty string; numbers are rendered, containers and empty strings give None."""
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def coerce_str_list(value: Any) -> list[str] | None:
    """A list of strings from a list (items rendered) or a single string (one item)."""
    if isinstance(value, str):
        return [value]
    kind = type(value)
    if kind is list or kind is tuple or (isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray))):
        items = []
        for item in value:
            text = coerce_str(item)
            if text is not None:
                items.append(text)
        return items
    return None


def coerce_mapping(value: Any) -> Mapping[str, Any] | None:
    """A mapping as is, or the object a JSON string holds; None otherwise."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        parsed = parse_json(value)
        if parsed.ok and isinstance(parsed.value, Mapping):
            return parsed.value
    return None


def coerce_list(value: Any) -> list[Any] | None:
    """A list as is (tuples too), or the array a JSON string holds; None otherwise."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        parsed = parse_json(value)
        if parsed.ok and isinstance(parsed.value, list):
            return parsed.value
    return None


class JsonParse:
    """The outcome of parsing a JSON text: `ok` and `value`, or not ok with the raw text kept."""

    __slots__ = ("ok", "raw", "value")

    def __init__(self, ok: bool, value: Any, raw: str) -> None:
        self.ok = ok
        self.value = value
        self.raw = raw


# Every byte of a JSON text as "0" (a digit) or " " (anything else), to find long digit runs in one pass.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 19
"""orjson reads integers beyond 64 bits as floats; every such integer has at least 19 digits."""
_SAMPLE_STRIDE = 9
"""19 bytes in a row hold two positions that are multiples of 9, next to each other in `data[::9]`."""


def _may_hold_long_integer(data: bytes) -> bool:
    """Whether `data` has a run of 19 or more digits. Every 9th byte is looked at first: without two digits next
    to each other there, no run is long enough, and the full scan, nearly as costly as the parse, is skipped."""
    return b"00" in data[::_SAMPLE_STRIDE].translate(_DIGITS_ONLY) and _LONG_DIGIT_RUN in data.translate(_DIGITS_ONLY)


def parse_json(text: str) -> JsonParse:
    """Parse JSON without raising: malformed (often truncated) text comes back as not ok, raw kept."""
    # orjson first (message JSON is parsed for every model call), where it reads exactly as the stdlib does:
    # not for long integers, and whatever it refuses (NaN, Infinity, lone surrogates) goes to the stdlib.
    try:
        data = text.encode()
    except UnicodeEncodeError:
        data = None
    if data is not None and not _may_hold_long_integer(data):
        try:
            return JsonParse(True, orjson.loads(data), text)
        except ValueError:
            pass
    try:
        return JsonParse(True, json.loads(text), text)
    except (ValueError, RecursionError):
        return JsonParse(False, None, text)
