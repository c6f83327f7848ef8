"""Making any value safe to send: bounded string sizes, JSON-clean numbers, string-only tags.

Oversized strings are cut with a visible marker instead of dropped, so a prompt cut in half by an
attribute length limit still shows what it said (peer tools drop the whole field when JSON fails).
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Mapping, Sequence
from typing import Any

import orjson

__all__ = [
    "TRUNCATION_MARKER",
    "bound_value",
    "is_bounded",
    "tag_value",
    "to_json_text",
    "to_text",
    "truncate_text",
]

TRUNCATION_MARKER = "...[truncated {dropped} chars]"
"""Appended to a string cut at the limit; `dropped` is how many characters were removed."""

_MAX_DEPTH = 64


def truncate_text(text: str, limit: int) -> str:
    """`text` unchanged if it fits `limit` characters, else its first `limit` characters plus the marker."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(dropped=len(text) - limit)


ID_KEYS = frozenset({"id", "traceId", "spanId", "sessionId", "errorId", "tool_call_id"})
"""Keys whose string values are references: cutting one would break the link it makes, so never cut."""


def bound_value(value: Any, limit: int, _depth: int = 0) -> Any:
    """A JSON-clean copy of `value`: strings truncated, non-finite floats as text, odd types as text.

    Strings under `ID_KEYS` are kept whole. Nesting deeper than a sane bound is rendered as text.
    """
    # Fast path for what mapped entities are made of (exact dict/list/str/int/None): every entity passes
    # through here, and the generic checks below (ABC isinstance) cost more than the copy itself.
    kind = type(value)
    if kind is dict and _depth < _MAX_DEPTH:
        out = {}
        for k, v in value.items():
            item = type(v)
            if item is str:
                out[k if type(k) is str else str(k)] = v if len(v) <= limit or k in ID_KEYS else truncate_text(v, limit)
            elif item is int or v is None or item is bool:
                out[k if type(k) is str else str(k)] = v
            else:
                out[k if type(k) is str else str(k)] = bound_value(v, limit, _depth + 1)
        return out
    if kind is list and _depth < _MAX_DEPTH:
        return [
            (v if len(v) <= limit else truncate_text(v, limit)) if type(v) is str else bound_value(v, limit, _depth + 1)
            for v in value
        ]
    if isinstance(value, str):
        return truncate_text(value, limit)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth >= _MAX_DEPTH:
        return truncate_text(repr(value), limit)
    if isinstance(value, Mapping):
        return {
            str(k): v if k in ID_KEYS and isinstance(v, str) else bound_value(v, limit, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [bound_value(v, limit, _depth + 1) for v in value]
    return truncate_text(str(value), limit)


def is_bounded(value: Any, limit: int, _depth: int = 0, *, skip: Container[str] = ()) -> bool:
    """True when `bound_value(value, limit)` would change nothing, so `value` can be sent as it is.

    Checking allocates nothing, while the copy allocates as much as the value holds (and the garbage
    collector then walks it): nearly every entity fits its limits, so the copy is made only for those that
    do not. The items of a dict `value` under the keys in `skip` are known to be bounded already (except for
    a string there, which is cheap to check anyway): they are not walked again.
    """
    kind = type(value)
    if kind is dict:
        if _depth >= _MAX_DEPTH:
            return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            item = type(v)
            if item is str:
                if len(v) > limit > 0 and k not in ID_KEYS:
                    return False
            elif not (item is int or v is None or item is bool or k in skip or is_bounded(v, limit, _depth + 1)):
                return False
        return True
    if kind is list:
        if _depth >= _MAX_DEPTH:
            return False
        for v in value:
            if type(v) is str:
                if len(v) > limit > 0:
                    return False
            elif not is_bounded(v, limit, _depth + 1):
                return False
        return True
    if isinstance(value, str):
        return not len(value) > limit > 0
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return False


def _default(value: Any) -> Any:
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_default)
_ORJSON_INTS = (-(2**63), 2**64)


def _orjson_renders_alike(value: Any, depth: int = 0) -> bool:
    """True when orjson renders `value` exactly as the stdlib encoder does: only strings, integers that fit
    64 bits, booleans, None, lists, tuples and string-keyed dicts (floats are written differently)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return _ORJSON_INTS[0] <= value < _ORJSON_INTS[1]
    if depth > 64:
        return False
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or not (type(v) is str or _orjson_renders_alike(v, depth + 1)):
                return False
        return True
    if kind is list or kind is tuple:
        for v in value:
            if not (type(v) is str or _orjson_renders_alike(v, depth + 1)):
                return False
        return True
    return False


def to_json_text(value: Any) -> str:
    """Compact, key-stable JSON text of any value (non-JSON objects rendered with `str`)."""
    if _orjson_renders_alike(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass  # a lone surrogate in a string: the stdlib writes it as it is
    try:
        return _ENCODER.encode(value)
    except (ValueError, RecursionError):
        # NaN inside strict JSON or a self-referencing container: fall back to a readable rendering.
        return str(value)


def to_text(value: Any) -> str | None:
    """A string as is, None as None, anything else as JSON text (for Maxim's string-only fields)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return to_json_text(value)


def tag_value(value: Any) -> str | None:
    """Tags take strings only: scalars rendered, containers as JSON text, None dropped."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return to_text(value)
