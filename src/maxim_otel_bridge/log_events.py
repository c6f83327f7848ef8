"""GenAI content that arrives as OpenTelemetry log records, in the shape the mapping already reads.

Instrumentations that follow the GenAI conventions in their event modes put prompts and completions on
log records instead of span attributes: `gen_ai.client.inference.operation.details` (current), or one
record per message (`gen_ai.{system,user,assistant,tool}.message`, `gen_ai.choice`, deprecated in v1.37,
still what Traceloop emits). Each record carries the trace and span id of the call it describes.

A record is joined to its span as an `EventRecord` (a span event has the same shape: name, time,
attributes); its body, which span events lack, travels in the reserved attribute `event.body`, which the
mapping overlays on the attributes. Records that are not GenAI events are not the bridge's business.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maxim_otel_bridge.record import EventRecord, SpanRecord, normalize_attributes, normalize_value

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord

__all__ = [
    "BODY_KEY",
    "GENAI_EVENT_PREFIX",
    "LogEvent",
    "attach_log_events",
    "event_name_of",
    "from_readable_log_record",
    "is_genai_event",
]

GENAI_EVENT_PREFIX = "gen_ai."
BODY_KEY = "event.body"
"""Attribute under which a joined record's body travels (see `mapping.conventions.genai_events`)."""
_LEGACY_NAME_KEY = "event.name"
"""Where event names lived before log records had an `event_name` field (SDKs before 1.35, Traceloop)."""


def event_name_of(event_name: str | None, attributes: Mapping[str, Any] | None) -> str:
    """A log record's event name: its own field, else the legacy `event.name` attribute, else ""."""
    if event_name:
        return event_name
    legacy = attributes.get(_LEGACY_NAME_KEY) if attributes else None
    return legacy if isinstance(legacy, str) else ""


def is_genai_event(name: str) -> bool:
    return name.startswith(GENAI_EVENT_PREFIX)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One GenAI event log record. Ids are lowercase hex (trace 32, span 16 chars) or None when absent."""

    trace_id: str | None
    span_id: str | None
    name: str
    time_ns: int
    """The record's timestamp, or its observed timestamp when the event time was not set."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    """JSON types only (see `record.normalize_value`)."""
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope_name: str = ""

    @property
    def key(self) -> str:
        """Stable identity of this record (same record sent twice, same key): ids, name, time, content."""
        digest = hashlib.sha256()
        for part in (self.trace_id or "", self.span_id or "", self.name, str(self.time_ns)):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        digest.update(repr(sorted(self.attributes.items())).encode("utf-8", "surrogatepass"))
        digest.update(repr(self.body).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:16]

    def as_span_event(self) -> EventRecord:
        attributes = dict(self.attributes)
        if self.body is not None:
            attributes[BODY_KEY] = self.body
        return EventRecord(name=self.name, time_ns=self.time_ns, attributes=attributes)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "name": self.name,
            "time_ns": self.time_ns,
            "attributes": dict(self.attributes),
            "body": self.body,
            "resource": dict(self.resource),
            "scope_name": self.scope_name,
        }

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> LogEvent:
        return cls(
            trace_id=obj.get("trace_id"),
            span_id=obj.get("span_id"),
            name=obj["name"],
            time_ns=obj.get("time_ns") or 0,
            attributes=obj.get("attributes") or {},
            body=obj.get("body"),
            resource=obj.get("resource") or {},
            scope_name=obj.get("scope_name") or "",
        )


def from_readable_log_record(data: ReadableLogRecord) -> LogEvent | None:
    """The SDK's log record as a `LogEvent`; None when it is not a GenAI event."""
    record = data.log_record
    attributes = record.attributes or {}
    name = event_name_of(getattr(record, "event_name", None), attributes)
    if not is_genai_event(name):
        return None
    scope = data.instrumentation_scope
    return LogEvent(
        trace_id=format(record.trace_id, "032x") if record.trace_id else None,
        span_id=format(record.span_id, "016x") if record.span_id else None,
        name=name,
        time_ns=record.timestamp or record.observed_timestamp or 0,
        attributes={k: v for k, v in normalize_attributes(attributes).items() if k != _LEGACY_NAME_KEY},
        body=normalize_value(record.body),
        resource=normalize_attributes(data.resource.attributes if data.resource is not None else None),
        scope_name=scope.name if scope is not None else "",
    )


def attach_log_events(
    records: Sequence[SpanRecord], events: Iterable[LogEvent]
) -> tuple[list[SpanRecord], list[LogEvent]]:
    """Join each event to the record of its span; returns the records and the events with no span here.

    Joined events follow the span's own events, in time order (the per-message events rebuild the message
    list in the order they were emitted, so ties keep arrival order). An event equal to one the span
    already has (same name, time and attributes: a record re-sent, or emitted both ways) is not added twice.
    """
    if not events:
        return list(records), []
    by_span: dict[tuple[str, str], list[LogEvent]] = {}
    unmatched: list[LogEvent] = []
    wanted = {(r.trace_id, r.span_id) for r in records}
    for event in events:
        key = (event.trace_id or "", event.span_id or "")
        if key in wanted:
            by_span.setdefault(key, []).append(event)
        else:
            unmatched.append(event)
    if not by_span:
        return list(records), unmatched
    _move_stray_choices(records, by_span)
    joined: list[SpanRecord] = []
    for record in records:
        extra = by_span.get((record.trace_id, record.span_id))
        if not extra:
            joined.append(record)
            continue
        events_now = list(record.events)
        seen = {_event_identity(e) for e in events_now}
        for event in sorted(extra, key=lambda e: e.time_ns):
            span_event = event.as_span_event()
            identity = _event_identity(span_event)
            if identity not in seen:
                seen.add(identity)
                events_now.append(span_event)
        joined.append(dataclasses.replace(record, events=tuple(events_now)))
    return joined, unmatched


_CHOICE = "gen_ai.choice"
_MODEL_KEY = "gen_ai.request.model"


def _move_stray_choices(records: Sequence[SpanRecord], by_span: dict[tuple[str, str], list[LogEvent]]) -> None:
    """Hand `gen_ai.choice` records emitted outside their call's span to that call.

    OpenLLMetry emits a stream's choices when the stream is drained, outside the context of the call's span:
    the record then carries the ids of the enclosing span (an agent step, say). When that span is not a
    model call itself, and exactly one of its children is a model call that was open when the record was
    emitted and has no choice of its own, the choice is that call's.
    """
    by_id = {(r.trace_id, r.span_id): r for r in records}
    children: dict[tuple[str, str], list[SpanRecord]] = {}
    for record in records:
        if record.parent_span_id is not None:
            children.setdefault((record.trace_id, record.parent_span_id), []).append(record)

    def takes(record: SpanRecord, event: LogEvent) -> bool:
        """`record` has no choice yet, or only this one (joined before, when the record was first mapped)."""
        identity = _event_identity(event.as_span_event())
        joined = (e.as_span_event() for e in by_span.get((record.trace_id, record.span_id), ()))
        return all(_event_identity(e) == identity for e in (*record.events, *joined) if e.name == _CHOICE)

    for key in list(by_span):
        parent = by_id[key]
        if _MODEL_KEY in parent.attributes:
            continue
        for event in [e for e in by_span[key] if e.name == _CHOICE]:
            open_calls = [
                child
                for child in children.get(key, ())
                if _MODEL_KEY in child.attributes
                and child.start_ns <= event.time_ns <= child.end_ns
                and takes(child, event)
            ]
            if len(open_calls) == 1:
                by_span[key].remove(event)
                by_span.setdefault((open_calls[0].trace_id, open_calls[0].span_id), []).append(event)


def _event_identity(event: EventRecord) -> tuple[str, int, str]:
    attributes = event.attributes if isinstance(event.attributes, Mapping) else {}
    return event.name, event.time_ns, repr(sorted(attributes.items(), key=lambda item: item[0]))
