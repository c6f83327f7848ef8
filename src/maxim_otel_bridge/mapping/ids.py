"""Stable derived ids and timestamps in the forms Maxim reads.

Ids are derived from OTel ids only (never random, never from a clock), so re-sending a trace yields
the same entities and Maxim merges them instead of duplicating. Derived ids match Maxim's
`^[a-zA-Z0-9_-]+$`, or the SDK-side ingestion drops the log.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

__all__ = ["error_id", "event_id", "is_valid_id", "iso_timestamp", "tool_call_id", "unix_seconds"]

_ID_PATTERN = re.compile(r"[a-zA-Z0-9_-]+")  # whole string: fullmatch, since `$` also matches before a final newline
_NOT_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_ID_CHARS = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def is_valid_id(value: str) -> bool:
    # OTel ids are hex digits: ASCII letters and digits alone are answered without the pattern (every span has
    # two ids checked); anything else (empty, `_`, `-`, other characters) goes to it.
    return (value.isascii() and value.isalnum()) or _ID_PATTERN.fullmatch(value) is not None


def safe_id(value: str) -> str:
    """`value` when Maxim accepts it as an id; else a readable, stable stand-in.

    Application-chosen ids (session ids such as `user:42` or an e-mail address) may hold characters
    Maxim refuses. The stand-in keeps the allowed characters and adds a hash of the original, so two
    different ids never collide and the same id always maps to the same stand-in.
    """
    if len(value) <= _MAX_ID_CHARS and is_valid_id(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{_NOT_ID_CHARS.sub('_', value[:96])}-{digest}"


def error_id(span_id: str) -> str:
    """The id of the error recorded on span `span_id` (a span has at most one)."""
    return f"{span_id}-error"


def event_id(span_id: str, index: int) -> str:
    """The id of the `index`-th event of span `span_id` (its position in the span's event list)."""
    return f"{span_id}-event-{index}"


def tool_call_id(span_id: str, message_index: int, call_index: int) -> str:
    """An id for a tool call that arrived without one (Maxim requires it to pair calls and results)."""
    return f"call-{span_id}-{message_index}-{call_index}"


def iso_timestamp(time_ns: int) -> str | None:
    """ISO 8601 UTC with milliseconds and `Z` (JavaScript's `toISOString`); None for 0 or out of range."""
    if type(time_ns) is not int and (isinstance(time_ns, bool) or not isinstance(time_ns, int)):
        return None  # a bool, or not an integer at all (an int subclass is read as the integer it is)
    if time_ns <= 0:
        return None
    seconds, rest_ns = divmod(time_ns, 1_000_000_000)
    prefix = _second_text(seconds)
    if prefix is None:
        return None
    return prefix + _MILLISECOND_TEXT[rest_ns // 1_000_000]


_MILLISECOND_TEXT = tuple(f"{ms:03d}Z" for ms in range(1000))
"""The `SSSZ` tail of each millisecond: looked up, not formatted, twice per entity."""


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str | None:
    """`YYYY-MM-DDTHH:MM:SS.` of a unix second; None out of range. Cached: every entity has two timestamps,
    the spans of a trace share their seconds, and strftime was a tenth of the mapping's time."""
    try:
        return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.")
    except OverflowError:
        return None


def unix_seconds(time_ns: int) -> int:
    """Whole unix seconds (a completion result's `created`); 0 when the time is unknown."""
    if not isinstance(time_ns, int) or isinstance(time_ns, bool) or time_ns <= 0:
        return 0
    return time_ns // 1_000_000_000
