"""The normalized span record: the one shape every input path produces and the mapping consumes.

The SDK path (`ReadableSpan`) and the sidecar path (OTLP protobuf and OTLP/JSON) both turn spans into
`SpanRecord`s, so there is exactly one mapping implementation. Records are plain, immutable and
JSON-serializable (`to_json_obj` / `from_json_obj`), which is also how the sidecar's spool stores them.

Attribute values are normalized to JSON types: str, bool, int, float, lists of those, and dicts for
OTLP key-value lists. Bytes become base64 text (JSON cannot carry them and Maxim takes strings).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "EventRecord",
    "LinkRecord",
    "SpanRecord",
    "SpanKind",
    "StatusCode",
    "normalize_value",
    "normalize_attributes",
    "from_readable_span",
]


class SpanKind:
    """OTLP's span kind numbers (the SDK's enum is one lower: its INTERNAL is 0)."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode:
    """OTLP's status codes (identical to the SDK's)."""

    UNSET = 0
    OK = 1
    ERROR = 2


_EMPTY: Mapping[str, Any] = {}


@dataclass(slots=True)
class EventRecord:
    """A span event, or an OTel log record joined to a span (same shape: a name, a time, attributes).

    Never modified once built; not frozen for the same reason as `SpanRecord`.
    """

    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def to_json_obj(self) -> dict[str, Any]:
        return {"name": self.name, "time_ns": self.time_ns, "attributes": dict(self.attributes)}

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> EventRecord:
        return cls(name=obj["name"], time_ns=obj["time_ns"], attributes=obj.get("attributes") or {})


@dataclass(frozen=True, slots=True)
class LinkRecord:
    trace_id: str
    span_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def to_json_obj(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "span_id": self.span_id, "attributes": dict(self.attributes)}

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> LinkRecord:
        return cls(trace_id=obj["trace_id"], span_id=obj["span_id"], attributes=obj.get("attributes") or {})


@dataclass(slots=True)
class SpanRecord:
    """One finished span. Ids are lowercase hex: trace 32 chars, span 16 chars; no parent is None.

    Never modified once built (records are shared: a buffered span is also the remembered shipped one), so
    a changed span is a new record (`dataclasses.replace`). Not declared frozen only because a frozen
    dataclass's constructor sets each field through a guarded call: that cost ten times more than the
    plain one, once for every span the bridge reads.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[EventRecord, ...] = ()
    links: tuple[LinkRecord, ...] = ()
    kind: int = SpanKind.INTERNAL
    status_code: int = StatusCode.UNSET
    status_message: str = ""
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""

    @property
    def is_root(self) -> bool:
        return self.parent_span_id is None

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "attributes": dict(self.attributes),
            "events": [e.to_json_obj() for e in self.events],
            "links": [link.to_json_obj() for link in self.links],
            "kind": self.kind,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "resource": dict(self.resource),
            "scope_name": self.scope_name,
            "scope_version": self.scope_version,
        }

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> SpanRecord:
        return cls(
            trace_id=obj["trace_id"],
            span_id=obj["span_id"],
            parent_span_id=obj.get("parent_span_id"),
            name=obj.get("name", ""),
            start_ns=obj.get("start_ns", 0),
            end_ns=obj.get("end_ns", 0),
            attributes=obj.get("attributes") or {},
            events=tuple(EventRecord.from_json_obj(e) for e in obj.get("events") or ()),
            links=tuple(LinkRecord.from_json_obj(link) for link in obj.get("links") or ()),
            kind=obj.get("kind", SpanKind.INTERNAL),
            status_code=obj.get("status_code", StatusCode.UNSET),
            status_message=obj.get("status_message", ""),
            resource=obj.get("resource") or {},
            scope_name=obj.get("scope_name", ""),
            scope_version=obj.get("scope_version", ""),
        )


def normalize_value(value: Any) -> Any:
    """Turn any OTel attribute value into a JSON type (tuples to lists, bytes to base64 text)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if type(value) is tuple:
        # The SDK stores every sequence attribute as a tuple of plain scalars: a list copy is all it needs,
        # without the abstract-class checks below (which cost more than the copy).
        for item in value:
            if type(item) not in _SCALARS:
                break
        else:
            return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): normalize_value(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [normalize_value(v) for v in value]
    return str(value)


_SCALARS = frozenset({str, bool, int, float})


def normalize_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    # Most values are plain scalars already: copy the dict whole (in C), then replace only the others
    # (same keys, same order).
    normalized = dict(attributes)
    for key, value in attributes.items():
        if type(value) not in _SCALARS and value is not None:
            normalized[key] = normalize_value(value)
    return normalized


_last_resource: tuple[Any, Mapping[str, Any]] = (None, _EMPTY)


def _resource_attributes(resource: Any) -> Mapping[str, Any]:
    """The resource's attributes normalized once per resource object, not once per span.

    A process has one resource (an SDK `Resource` is immutable), so the records of its spans share one
    mapping; records are never modified, so sharing it is safe.
    """
    global _last_resource
    if resource is None:
        return _EMPTY
    cached, attributes = _last_resource
    if cached is not resource:
        attributes = normalize_attributes(resource.attributes)
        _last_resource = (resource, attributes)  # one reference swap: a race only normalizes twice
    return attributes


def _span_id_hex(span_id: int) -> str:
    return format(span_id, "016x")


def _trace_id_hex(trace_id: int) -> str:
    return format(trace_id, "032x")


def _sealed_attributes(owner: Any) -> Any:
    """The attributes of an SDK span, event or link, read without the SDK's copying accessors.

    The SDK keeps them in a `BoundedAttributes` whose plain dict is final once the attributes are made
    immutable (when a span ends; event and link attributes are born immutable), so reading that dict is safe
    and skips a copy under a lock plus a call per key. Anything else (a live span, another SDK version, a
    hand-made `ReadableSpan`) goes through the public `attributes` property.
    """
    attributes = getattr(owner, "_attributes", None)
    if getattr(attributes, "_immutable", False) is True:
        inner = getattr(attributes, "_dict", None)
        if type(inner) is dict:
            return inner
    return owner.attributes


def from_readable_span(span: ReadableSpan) -> SpanRecord:
    """Build a record from an SDK span (the in-process exporter's input)."""
    context = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    status = span.status
    # The public accessors copy under a lock; most spans have no events and no links, which the SDK's own
    # lists tell without a copy (anything else, or another SDK version, goes through the accessors).
    events = span.events if getattr(span, "_events", True) else ()
    links = span.links if getattr(span, "_links", True) else ()
    # Positional, in field order: keyword arguments cost a third of building the record, once per span.
    return SpanRecord(
        _trace_id_hex(context.trace_id),
        _span_id_hex(context.span_id),
        _span_id_hex(parent.span_id) if parent is not None and parent.span_id else None,
        span.name,
        span.start_time or 0,
        span.end_time or span.start_time or 0,
        normalize_attributes(_sealed_attributes(span)),
        tuple(EventRecord(e.name, e.timestamp or 0, normalize_attributes(_sealed_attributes(e))) for e in events)
        if events
        else (),
        tuple(
            LinkRecord(
                _trace_id_hex(link.context.trace_id),
                _span_id_hex(link.context.span_id),
                normalize_attributes(_sealed_attributes(link)),
            )
            for link in links
        )
        if links
        else (),
        # `_value_` is the member's value as stored (Enum's documented sunder name); `.value` is a descriptor
        # call per access.
        span.kind._value_ + 1,
        status.status_code._value_,
        status.description or "",
        _resource_attributes(span.resource),
        scope.name if scope is not None else "",
        (scope.version or "") if scope is not None else "",
    )
