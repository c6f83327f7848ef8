"""Which convention wins for each target field: the one place the order is declared.

The order follows conventions.md section 7. To support a new convention, write a module under
`conventions/` exposing a `Convention` and insert it in the tuples below; nothing else changes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from maxim_otel_bridge.mapping.candidates import (
    Convention,
    RetrievalInfo,
    ToolInfo,
    Usage,
)
from maxim_otel_bridge.mapping.conventions.genai import GENAI
from maxim_otel_bridge.mapping.conventions.genai_events import (
    DETAILS_EVENT,
    LEGACY_CONTENT_EVENTS,
    MESSAGE_EVENTS,
)
from maxim_otel_bridge.mapping.conventions.generic import GENERIC
from maxim_otel_bridge.mapping.conventions.maxim import MAXIM
from maxim_otel_bridge.mapping.conventions.openinference import OPENINFERENCE
from maxim_otel_bridge.mapping.conventions.pydantic_ai import PYDANTIC_AI
from maxim_otel_bridge.mapping.conventions.traceloop import TRACELOOP
from maxim_otel_bridge.mapping.conventions.vercel import VERCEL
from maxim_otel_bridge.mapping.usage import merge_usage
from maxim_otel_bridge.record import SpanRecord

__all__ = [
    "ALL_CONVENTIONS",
    "PRECEDENCE",
    "consumed_attribute",
    "consumed_event_names",
    "first",
    "read_retrieval",
    "read_session_id",
    "read_tool",
    "read_usage",
    "read_user_id",
]

PRECEDENCE: dict[str, tuple[Convention, ...]] = {
    "model": (GENAI, OPENINFERENCE, VERCEL),
    "provider": (GENAI, OPENINFERENCE, VERCEL),
    "input_messages": (
        GENAI,
        DETAILS_EVENT,
        MESSAGE_EVENTS,
        OPENINFERENCE,
        TRACELOOP,
        VERCEL,
        LEGACY_CONTENT_EVENTS,
        GENERIC,
    ),
    "output_choices": (
        GENAI,
        DETAILS_EVENT,
        MESSAGE_EVENTS,
        OPENINFERENCE,
        TRACELOOP,
        VERCEL,
        LEGACY_CONTENT_EVENTS,
        GENERIC,
    ),
    "finish_reasons": (GENAI, OPENINFERENCE, VERCEL),
    "response_id": (GENAI, VERCEL),
    "params": (GENAI, OPENINFERENCE, TRACELOOP, VERCEL),
    "usage": (GENAI, OPENINFERENCE, TRACELOOP, VERCEL),
    "first_chunk_seconds": (GENAI, VERCEL, OPENINFERENCE),
    "tool": (GENAI, VERCEL, PYDANTIC_AI, OPENINFERENCE, TRACELOOP, GENERIC),
    "retrieval": (GENAI, OPENINFERENCE, TRACELOOP, GENERIC),
    "session_id": (MAXIM, GENERIC, GENAI, TRACELOOP, VERCEL),
    "user_id": (MAXIM, GENERIC, TRACELOOP, VERCEL),
    "input_text": (GENERIC, TRACELOOP, GENAI, PYDANTIC_AI, VERCEL),
    "output_text": (GENERIC, TRACELOOP, PYDANTIC_AI, GENAI, VERCEL),
}
"""Field -> conventions in the order they are consulted (first one with a value wins)."""

ALL_CONVENTIONS: tuple[Convention, ...] = tuple(
    dict.fromkeys(convention for order in PRECEDENCE.values() for convention in order)
)


def _candidates(field: str, record: SpanRecord) -> list[Any]:
    values = []
    for convention in PRECEDENCE[field]:
        reader = getattr(convention, field)
        if reader is not None:
            values.append(reader(record))
    return values


def first(field: str, record: SpanRecord) -> Any:
    """The first convention's value for `field` on this span, or None when no convention has one."""
    for convention in PRECEDENCE[field]:
        reader = getattr(convention, field)
        if reader is None:
            continue
        value = reader(record)
        if value is not None:
            return value
    return None


def read_usage(record: SpanRecord) -> Usage | None:
    """Usage merged count by count, so a total from one convention completes counts from another."""
    return merge_usage(_candidates("usage", record))


def read_tool(record: SpanRecord) -> ToolInfo:
    merged: dict[str, Any] = {}
    for info in _candidates("tool", record):
        if info is None:
            continue
        for name in ToolInfo.__dataclass_fields__:
            if merged.get(name) is None:
                merged[name] = getattr(info, name)
    return ToolInfo(**merged)


def read_retrieval(record: SpanRecord) -> RetrievalInfo:
    merged: dict[str, Any] = {}
    for info in _candidates("retrieval", record):
        if info is None:
            continue
        for name in RetrievalInfo.__dataclass_fields__:
            if merged.get(name) is None:
                merged[name] = getattr(info, name)
    return RetrievalInfo(**merged)


def _on_span_then_resource(field: str, record: SpanRecord) -> str | None:
    value = first(field, record)
    if value is None and record.resource:
        # Resource attributes read through the same readers: only the attribute source changes.
        value = first(field, replace(record, attributes=record.resource, events=()))
    return value


def read_session_id(record: SpanRecord) -> str | None:
    return _on_span_then_resource("session_id", record)


def read_user_id(record: SpanRecord) -> str | None:
    return _on_span_then_resource("user_id", record)


def consumed_attribute(entity_type: str, key: str) -> bool:
    return any(c.consumes is not None and c.consumes(entity_type, key) for c in ALL_CONVENTIONS)


def consumed_event_names(entity_type: str) -> frozenset[str]:
    """Events whose content an entity of this type carries (not repeated as event entities)."""
    names: set[str] = set()
    for convention in ALL_CONVENTIONS:
        names |= convention.consumed_events.get(entity_type, frozenset())
    return frozenset(names)
