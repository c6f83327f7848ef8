"""Which convention wins for each target field: the one place the order is declared.

The order follows conventions.md section 7. To support a new convention, write a module under
`conventions/` exposing a `Convention` and insert it in the tuples below; nothing else changes. A convention
that declares what a reader answers from (`Convention.inputs`) lets spans without those inputs skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from maxim_otel_bridge.mapping.candidates import (
    Convention,
    Inputs,
    Reader,
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
    "consumed_by",
    "consumed_event_names",
    "first",
    "forget_last_plan",
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


# Each field's readers, resolved once: `first` runs for every field of every span, and looking each reader
# up on its convention (and skipping the conventions without one) cost more than most readers themselves.
_READERS: dict[str, tuple[Reader, ...]] = {
    field: tuple(reader for reader in (getattr(c, field) for c in order) if reader is not None)
    for field, order in PRECEDENCE.items()
}
_READER_INPUTS: dict[str, tuple[tuple[Reader, Inputs | None], ...]] = {
    field: tuple((getattr(c, field), c.inputs.get(field)) for c in order if getattr(c, field) is not None)
    for field, order in PRECEDENCE.items()
}

_PLAN_MAX_KEYS = 64
"""Spans with more attribute keys (or distinct event names) than this run every reader: no plan is kept."""
_PLAN_MAX_ENTRIES = 1024
"""Shapes remembered; past it the memo starts over (junk spans can have any number of shapes)."""
_plans: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, tuple[Reader, ...]]] = {}


def _plan(keys: tuple[str, ...], event_names: tuple[str, ...]) -> dict[str, tuple[Reader, ...]]:
    """Each field's readers that can answer on a span of this shape: the others would return None."""
    if not all(type(key) is str for key in keys) or not all(type(name) is str for name in event_names):
        return _READERS
    return {
        field: tuple(reader for reader, inputs in pairs if inputs is None or inputs.present(keys, event_names))
        for field, pairs in _READER_INPUTS.items()
    }


def _readers_for(record: SpanRecord) -> dict[str, tuple[Reader, ...]]:
    """The plan for this span's shape: its attribute keys and event names, remembered per shape.

    The readers of most conventions find none of their keys on a given span (an openai-v2 chat span carries
    no OpenInference, Traceloop or Vercel key), and every field of every span asked all of them.
    """
    attributes = record.attributes
    if type(attributes) is not dict or len(attributes) > _PLAN_MAX_KEYS:
        return _READERS  # another mapping may answer `get` for keys it does not list
    events = record.events
    if events:
        try:
            names = tuple({event.name: None for event in events})
        except (AttributeError, TypeError):  # not event records, or an unhashable name: the readers decide
            return _READERS
        if len(names) > _PLAN_MAX_KEYS:
            return _READERS
    else:
        names = ()
    shape = (tuple(attributes), names)
    plan = _plans.get(shape)
    if plan is None:
        plan = _plan(*shape)
        if len(_plans) >= _PLAN_MAX_ENTRIES:
            _plans.clear()
        _plans[shape] = plan
    return plan


# The builders of one entity ask several fields of the same span in a row: its plan is kept until another span
# asks. `map_trace_part` forgets it on entry, so a span whose attributes changed between two calls is planned again.
_last_plan: tuple[SpanRecord | None, dict[str, tuple[Reader, ...]]] = (None, _READERS)


def _readers_of(record: SpanRecord) -> dict[str, tuple[Reader, ...]]:
    global _last_plan
    last = _last_plan
    if last[0] is record:
        return last[1]
    plan = _readers_for(record)
    _last_plan = (record, plan)  # one reference swap: a race only plans twice
    return plan


def forget_last_plan() -> None:
    """Drop the remembered plan of the last span asked about."""
    global _last_plan
    _last_plan = (None, _READERS)


def _candidates(field: str, record: SpanRecord) -> list[Any]:
    return [reader(record) for reader in _readers_of(record)[field]]


def first(field: str, record: SpanRecord) -> Any:
    """The first convention's value for `field` on this span, or None when no convention has one."""
    for reader in _readers_of(record)[field]:
        value = reader(record)
        if value is not None:
            return value
    return None


def read_usage(record: SpanRecord) -> Usage | None:
    """Usage merged count by count, so a total from one convention completes counts from another."""
    readers = _readers_of(record)["usage"]
    if len(readers) == 1:  # the usual plan: one convention's keys, nothing to merge
        usage = readers[0](record)
        return None if usage is None or usage.is_empty() else usage
    return merge_usage([reader(record) for reader in readers])


def read_tool(record: SpanRecord) -> ToolInfo:
    readers = _readers_of(record)["tool"]
    if len(readers) == 1:  # the usual plan: one convention's keys, nothing to merge
        info = readers[0](record)
        return info if info is not None else ToolInfo()
    found = [info for info in (reader(record) for reader in readers) if info is not None]
    if len(found) == 1:
        return found[0]  # the usual case, one convention: nothing to merge
    merged: dict[str, Any] = {}
    for info in found:
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


def _first_on_resource(field: str, record: SpanRecord) -> Any:
    """`first(field)` read from the span's resource attributes instead of its own.

    The readers see a record holding only the resource's attributes (session and user readers look at
    attributes only). Every span of a process shares one resource, so each answer is kept for as long as
    the same resource object comes back, instead of being read again for every span.
    """
    global _last_resource
    resource = record.resource
    cached = _last_resource
    if cached is None or cached[0] is not resource:
        cached = _last_resource = (resource, {})  # one reference swap: a race only reads twice
    answers = cached[1]
    if field not in answers:
        view = SpanRecord(trace_id="", span_id="", parent_span_id=None, name="", start_ns=0, end_ns=0, attributes=resource)
        answers[field] = first(field, view)
    return answers[field]


_last_resource: tuple[Any, dict[str, Any]] | None = None


def _on_span_then_resource(field: str, record: SpanRecord) -> str | None:
    value = first(field, record)
    if value is None and record.resource:
        # Resource attributes read through the same readers: only the attribute source changes.
        value = _first_on_resource(field, record)
    return value


def read_session_id(record: SpanRecord) -> str | None:
    return _on_span_then_resource("session_id", record)


def read_user_id(record: SpanRecord) -> str | None:
    return _on_span_then_resource("user_id", record)


_consumed_memo: dict[str, dict[str, bool]] = {}
_MEMO_KEYS = 4096
"""Attribute keys remembered per entity type; past it the memo starts over (keys can be unbounded junk)."""
_MEMO_KEY_CHARS = 200
"""Longer keys are answered without being remembered, so the memo's size stays small whatever the keys."""


def consumed_attribute(entity_type: str, key: str) -> bool:
    """Whether an entity of this type already carries the attribute `key` (so metadata leaves it out).

    Memoized: the answer depends only on the conventions, and every attribute of every span asks it.
    """
    memo = _consumed_memo.get(entity_type)
    if memo is None:
        memo = _consumed_memo.setdefault(entity_type, {})
    answer = memo.get(key)
    if answer is None:
        answer = any(c.consumes is not None and c.consumes(entity_type, key) for c in ALL_CONVENTIONS)
        if len(key) <= _MEMO_KEY_CHARS:
            if len(memo) >= _MEMO_KEYS:
                memo.clear()
            memo[key] = answer
    return answer


_consumed_by: dict[str, Callable[[str], bool]] = {}


def consumed_by(entity_type: str) -> Callable[[str], bool]:
    """`consumed_attribute` for one entity type, as one function per type (so its answers can be cached)."""
    predicate = _consumed_by.get(entity_type)
    if predicate is None:
        predicate = _consumed_by.setdefault(entity_type, partial(consumed_attribute, entity_type))
    return predicate


_consumed_events: dict[str, frozenset[str]] = {}


def consumed_event_names(entity_type: str) -> frozenset[str]:
    """Events whose content an entity of this type carries (not repeated as event entities)."""
    names = _consumed_events.get(entity_type)
    if names is None:
        collected: set[str] = set()
        for convention in ALL_CONVENTIONS:
            collected |= convention.consumed_events.get(entity_type, frozenset())
        names = _consumed_events[entity_type] = frozenset(collected)
    return names
