"""OTLP trace requests (protobuf and OTLP/JSON) -> `SpanRecord`s. Pure: no I/O, no transport.

Both encodings produce identical records, normalized like the SDK path (`record.py`): ids as lowercase
hex, attribute values as JSON types, bytes as base64 text. One small function per OTLP type.

A request that cannot be parsed at all raises `MalformedRequest` (the receiver answers
INVALID_ARGUMENT / 400). A span that parses but is unusable (a zero or short trace or span id ...)
is left out and counted in `DecodedSpans.rejected`, so the rest of the request is still kept; the
receiver reports it through OTLP's partial success.

The protobuf path is the hot one: `FromString` (upb) and direct field access, no json_format round
trip. The JSON path walks the parsed document by hand, since OTLP/JSON differs from the protobuf JSON
mapping (hex ids, not base64).

The receivers use `split_trace_request_protobuf` instead of decoding on the protobuf path: it checks every
span as `decode_trace_request_protobuf` does (ids, links) but keeps each span as protobuf bytes
(`EncodedSpan`: a request holding that span alone, with its resource and its scope), and reads only what
the spool needs (ids, parent, kind). The attributes are then decoded once, where the span is mapped
(`decode_encoded_spans`), instead of being decoded, serialized to JSON and parsed back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from maxim_otel_bridge.record import (
    EventRecord,
    LinkRecord,
    SpanKind,
    SpanRecord,
    StatusCode,
)
from maxim_otel_bridge.sidecar.otlp_common import (
    InvalidItem,
    MalformedRequest,
    Problems,
    decode_attributes,
    j_attributes,
    j_hex,
    j_int64,
    j_list,
    j_object,
    j_optional_object,
    j_str,
    j_uint64,
    json_request_items,
    label,
)

__all__ = [
    "DecodedSpans",
    "EncodedSpan",
    "MalformedRequest",
    "decode_bodies",
    "decode_encoded_spans",
    "decode_trace_request_json",
    "decode_trace_request_protobuf",
    "join_encoded_spans",
    "split_trace_request_protobuf",
]

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_VALID_KINDS = frozenset(range(SpanKind.UNSPECIFIED, SpanKind.CONSUMER + 1))
_VALID_STATUS_CODES = frozenset((StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR))


@dataclass(frozen=True, slots=True)
class EncodedSpan:
    """One checked span still in OTLP protobuf: what the spool needs to know of it, and its bytes."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: int
    """As sent (`decode_encoded_spans` normalizes an unknown kind, as decoding does)."""
    span: bytes
    """The span as a `spans` field of its `ScopeSpans`: tag, length, serialized `Span`."""
    resource: bytes
    """Its resource as the `resource` field of a `ResourceSpans` (b"" without one): one bytes object shared by
    the spans of one `ResourceSpans` of a request, which `join_encoded_spans` frames once for them all."""
    scope: bytes
    """Its scope as the `scope` field of a `ScopeSpans` (b"" without one), shared likewise."""

    @property
    def data(self) -> bytes:
        """A serialized `ExportTraceServiceRequest` holding the span alone, with its resource and its scope."""
        return join_encoded_spans((self,))


@dataclass(frozen=True, slots=True)
class DecodedSpans:
    records: tuple[SpanRecord, ...] | tuple[EncodedSpan, ...]
    rejected: int = 0
    """Spans left out because they were invalid."""
    error_message: str = ""
    """What was wrong (rejected spans, dropped links); empty when nothing was."""


def _decoded(records: list[SpanRecord] | list[EncodedSpan], problems: Problems) -> DecodedSpans:
    return DecodedSpans(tuple(records), problems.rejected, problems.message)


# ---------------------------------------------------------------------------------------------------
# Protobuf


def decode_trace_request_protobuf(data: bytes) -> DecodedSpans:
    """Decode a serialized `ExportTraceServiceRequest`."""
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedRequest(f"body is not a valid OTLP protobuf trace request: {exc}") from None
    records: list[SpanRecord] = []
    problems = Problems()
    previous: tuple[Resource, dict[str, Any]] | None = None
    for resource_spans in request.resource_spans:
        # Stored spans each carry their resource (`EncodedSpan`): a resource equal to the one before is decoded once.
        message = resource_spans.resource
        if previous is None or message != previous[0]:
            previous = (message, decode_attributes(message.attributes))
        _decode_resource_spans(resource_spans, previous[1], records, problems)
    return _decoded(records, problems)


def split_trace_request_protobuf(data: bytes) -> DecodedSpans:
    """Check a serialized `ExportTraceServiceRequest` like `decode_trace_request_protobuf`, keeping each valid
    span as an `EncodedSpan` (its attributes are not decoded here)."""
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedRequest(f"body is not a valid OTLP protobuf trace request: {exc}") from None
    spans: list[EncodedSpan] = []
    problems = Problems()
    for resource_spans in request.resource_spans:
        # The resource and each scope are serialized once, as the fields they are in their messages, and shared
        # by their spans: `join_encoded_spans` frames the spans with them without building new messages.
        head = _field(1, resource_spans.resource.SerializeToString()) if resource_spans.HasField("resource") else b""
        for scope_spans in resource_spans.scope_spans:
            scope = _field(1, scope_spans.scope.SerializeToString()) if scope_spans.HasField("scope") else b""
            for span in scope_spans.spans:
                try:
                    spans.append(_split_span(span, head, scope, problems))
                except InvalidItem as exc:
                    problems.reject(f"span {label(span.name)}: {exc}")
    return _decoded(spans, problems)


def _split_span(span: Span, head: bytes, scope: bytes, problems: Problems) -> EncodedSpan:
    trace_id = _decode_trace_id(span.trace_id)
    span_id = _decode_span_id(span.span_id, "span_id")
    parent_span_id = _decode_parent_span_id(span.parent_span_id)
    if span.links:
        _drop_invalid_links(span, problems)
    body = span.SerializeToString()
    return EncodedSpan(trace_id, span_id, parent_span_id, span.kind, b"\x12" + _varint(len(body)) + body, head, scope)


def join_encoded_spans(spans: Sequence[EncodedSpan]) -> bytes:
    """`spans`, in order, as one serialized `ExportTraceServiceRequest`: each run of spans sharing a resource
    and a scope (as they came in one request) is one `ResourceSpans` / `ScopeSpans`, so the resource and the
    scope are written once per run, not once per span, and decoding reads each once."""
    chunks: list[bytes] = []
    start = 0
    count = len(spans)
    while start < count:
        resource = spans[start].resource
        # ResourceSpans { resource (field 1), scope_spans (field 2)... } as field 1 of the request.
        resource_chunks: list[bytes] = [resource]
        while start < count and spans[start].resource is resource:
            scope = spans[start].scope
            # ScopeSpans { scope (field 1), spans (field 2: `EncodedSpan.span`)... }, field 2 of the ResourceSpans.
            end = start + 1
            while end < count and spans[end].scope is scope and spans[end].resource is resource:
                end += 1
            _frame(2, [scope, *[span.span for span in spans[start:end]]], resource_chunks)
            start = end
        _frame(1, resource_chunks, chunks)
    return b"".join(chunks)


def _frame(number: int, payload: list[bytes], out: list[bytes]) -> None:
    """Append to `out` a length-delimited field (field numbers below 16 fit the one-byte tag) whose payload is
    the concatenation of `payload`, without joining it."""
    out.append(bytes((number << 3 | 2,)))
    out.append(_varint(sum(map(len, payload))))
    out.extend(payload)


def _drop_invalid_links(span: Span, problems: Problems) -> None:
    # The same links `_decode_links` would drop, removed from the message before it is kept.
    for index in reversed(range(len(span.links))):
        link = span.links[index]
        try:
            _decode_trace_id(link.trace_id)
            _decode_span_id(link.span_id, "span_id")
        except InvalidItem as exc:
            del span.links[index]
            problems.note(f"span {label(span.name)}: dropped a link: {exc}")


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (field numbers below 16 fit the one-byte tag)."""
    return bytes((number << 3 | 2,)) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    if value < 0x4000:  # every span under 16 KiB: one or two bytes without a loop
        return bytes((value,)) if value < 0x80 else bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_encoded_spans(data: bytes) -> list[SpanRecord]:
    """The records of `join_encoded_spans` results (one, or several concatenated), in order: exactly what
    `decode_trace_request_protobuf` makes of those spans. (Concatenated requests are one request holding them
    all: one parse for a whole trace.)"""
    decoded = decode_trace_request_protobuf(data)
    if decoded.rejected:
        raise ValueError(f"encoded spans that are not valid: {decoded.error_message}")
    return list(decoded.records)


def decode_bodies(bodies: Sequence[bytes]) -> list[SpanRecord]:
    """The records of the spool's span bodies, in order.

    An orjson array of records starts with `[` (a single record, from an earlier spool, with `{`); anything else
    is `EncodedSpan`s (protobuf requests, whose first byte is the tag of field 1). Consecutive protobuf bodies are
    decoded together: concatenated, they are one request.
    """
    records: list[SpanRecord] = []
    run: list[bytes] = []
    for body in bodies:
        first = body[:1]
        if first == b"[" or first == b"{":
            if run:
                records.extend(decode_encoded_spans(b"".join(run)))
                run = []
            loaded = orjson.loads(body)
            if first == b"{":
                records.append(SpanRecord.from_json_obj(loaded))
            else:
                records.extend([SpanRecord.from_json_obj(obj) for obj in loaded])
        else:
            run.append(body)
    if run:
        records.extend(decode_encoded_spans(b"".join(run)))
    return records


def _decode_resource_spans(
    resource_spans: ResourceSpans, resource: Mapping[str, Any], out: list[SpanRecord], problems: Problems
) -> None:
    # `resource` is decoded once and shared by the resource's spans: records are immutable by contract.
    for scope_spans in resource_spans.scope_spans:
        scope = scope_spans.scope
        for span in scope_spans.spans:
            try:
                out.append(_decode_span(span, resource, scope.name, scope.version, problems))
            except InvalidItem as exc:
                problems.reject(f"span {label(span.name)}: {exc}")


def _decode_span(
    span: Span,
    resource: Mapping[str, Any],
    scope_name: str,
    scope_version: str,
    problems: Problems,
) -> SpanRecord:
    status = span.status  # each access to a sub-message builds a wrapper: read it once
    events = span.events
    # Positional, in field order: keywords cost a lookup each, and this runs once per span.
    return SpanRecord(
        _decode_trace_id(span.trace_id),
        _decode_span_id(span.span_id, "span_id"),
        _decode_parent_span_id(span.parent_span_id),
        span.name,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        decode_attributes(span.attributes),
        tuple([_decode_event(event) for event in events]) if events else (),
        _decode_links(span, problems) if span.links else (),
        _decode_kind(span.kind),
        _decode_status_code(status.code),
        status.message,
        resource,
        scope_name,
        scope_version,
    )


def _decode_event(event: Span.Event) -> EventRecord:
    return EventRecord(
        name=event.name, time_ns=event.time_unix_nano, attributes=decode_attributes(event.attributes)
    )


def _decode_trace_id(raw: bytes) -> str:
    if len(raw) != 16:
        raise InvalidItem(f"trace_id must be 16 bytes, got {len(raw)}")
    if raw == _ZERO_TRACE_ID:
        raise InvalidItem("trace_id is all zeros")
    return raw.hex()


def _decode_span_id(raw: bytes, field: str) -> str:
    if len(raw) != 8:
        raise InvalidItem(f"{field} must be 8 bytes, got {len(raw)}")
    if raw == _ZERO_SPAN_ID:
        raise InvalidItem(f"{field} is all zeros")
    return raw.hex()


def _decode_parent_span_id(raw: bytes) -> str | None:
    # Empty means a root span; some SDKs send eight zero bytes for the same thing.
    if not raw or raw == _ZERO_SPAN_ID:
        return None
    if len(raw) != 8:
        raise InvalidItem(f"parent_span_id must be empty or 8 bytes, got {len(raw)}")
    return raw.hex()


def _decode_links(span: Span, problems: Problems) -> tuple[LinkRecord, ...]:
    if not span.links:
        return ()
    links = []
    for link in span.links:
        try:
            links.append(
                LinkRecord(
                    trace_id=_decode_trace_id(link.trace_id),
                    span_id=_decode_span_id(link.span_id, "span_id"),
                    attributes=decode_attributes(link.attributes),
                )
            )
        except InvalidItem as exc:
            # A link is auxiliary: drop it, keep the span, and say so in the response's message.
            problems.note(f"span {label(span.name)}: dropped a link: {exc}")
    return tuple(links)


def _decode_kind(kind: int) -> int:
    return kind if kind in _VALID_KINDS else SpanKind.UNSPECIFIED


def _decode_status_code(code: int) -> int:
    return code if code in _VALID_STATUS_CODES else StatusCode.UNSET


# ---------------------------------------------------------------------------------------------------
# OTLP/JSON


def decode_trace_request_json(data: bytes) -> DecodedSpans:
    """Decode an OTLP/JSON `ExportTraceServiceRequest` (hex ids, integer enums, int64 as string or number)."""
    resource_spans_list = json_request_items(data, "resourceSpans")
    records: list[SpanRecord] = []
    problems = Problems()
    for index, resource_spans in enumerate(resource_spans_list):
        try:
            _j_resource_spans(resource_spans, records, problems)
        except InvalidItem as exc:
            raise MalformedRequest(f"resourceSpans[{index}]: {exc}") from None
    return _decoded(records, problems)


def _j_resource_spans(obj: Any, out: list[SpanRecord], problems: Problems) -> None:
    obj = j_object(obj, "resourceSpans item")
    resource_obj = j_optional_object(obj, "resource")
    resource = j_attributes(resource_obj.get("attributes")) if resource_obj else {}
    for scope_spans in j_list(obj, "scopeSpans"):
        scope_spans = j_object(scope_spans, "scopeSpans item")
        scope = j_optional_object(scope_spans, "scope") or {}
        scope_name = j_str(scope.get("name"), "scope.name")
        scope_version = j_str(scope.get("version"), "scope.version")
        for span in j_list(scope_spans, "spans"):
            try:
                out.append(_j_span(span, resource, scope_name, scope_version, problems))
            except InvalidItem as exc:
                name = span.get("name") if isinstance(span, dict) else None
                problems.reject(f"span {label(name)}: {exc}")


def _j_span(
    obj: Any,
    resource: Mapping[str, Any],
    scope_name: str,
    scope_version: str,
    problems: Problems,
) -> SpanRecord:
    obj = j_object(obj, "span")
    status = j_optional_object(obj, "status") or {}
    return SpanRecord(
        trace_id=_j_trace_id(obj.get("traceId"), "traceId"),
        span_id=_j_span_id(obj.get("spanId"), "spanId"),
        parent_span_id=_j_parent_span_id(obj.get("parentSpanId")),
        name=j_str(obj.get("name"), "name"),
        start_ns=j_uint64(obj.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=j_uint64(obj.get("endTimeUnixNano"), "endTimeUnixNano"),
        attributes=j_attributes(obj.get("attributes")),
        events=tuple(_j_event(e) for e in j_list(obj, "events")),
        links=_j_links(obj, problems),
        kind=_decode_kind(_j_enum(obj.get("kind"), "kind", _KIND_NAMES)),
        status_code=_decode_status_code(_j_enum(status.get("code"), "status.code", _STATUS_NAMES)),
        status_message=j_str(status.get("message"), "status.message"),
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
    )


def _j_event(obj: Any) -> EventRecord:
    obj = j_object(obj, "event")
    return EventRecord(
        name=j_str(obj.get("name"), "event name"),
        time_ns=j_uint64(obj.get("timeUnixNano"), "event timeUnixNano"),
        attributes=j_attributes(obj.get("attributes")),
    )


def _j_links(span: dict[str, Any], problems: Problems) -> tuple[LinkRecord, ...]:
    links = []
    for obj in j_list(span, "links"):
        try:
            obj = j_object(obj, "link")
            links.append(
                LinkRecord(
                    trace_id=_j_trace_id(obj.get("traceId"), "traceId"),
                    span_id=_j_span_id(obj.get("spanId"), "spanId"),
                    attributes=j_attributes(obj.get("attributes")),
                )
            )
        except InvalidItem as exc:
            problems.note(f"span {label(span.get('name'))}: dropped a link: {exc}")
    return tuple(links)


def _j_hex_id(value: Any, field: str, size: int) -> str:
    text = j_hex(value, field, size)
    if text.count("0") == len(text):
        raise InvalidItem(f"{field} is all zeros")
    return text


def _j_trace_id(value: Any, field: str) -> str:
    return _j_hex_id(value, field, 16)


def _j_span_id(value: Any, field: str) -> str:
    return _j_hex_id(value, field, 8)


def _j_parent_span_id(value: Any) -> str | None:
    if value is None or value == "" or value == "0000000000000000":
        return None
    return _j_hex_id(value, "parentSpanId", 8)


_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": SpanKind.UNSPECIFIED,
    "SPAN_KIND_INTERNAL": SpanKind.INTERNAL,
    "SPAN_KIND_SERVER": SpanKind.SERVER,
    "SPAN_KIND_CLIENT": SpanKind.CLIENT,
    "SPAN_KIND_PRODUCER": SpanKind.PRODUCER,
    "SPAN_KIND_CONSUMER": SpanKind.CONSUMER,
}
_STATUS_NAMES = {
    "STATUS_CODE_UNSET": StatusCode.UNSET,
    "STATUS_CODE_OK": StatusCode.OK,
    "STATUS_CODE_ERROR": StatusCode.ERROR,
}


def _j_enum(value: Any, field: str, names: Mapping[str, int]) -> int:
    # OTLP/JSON says integers; the protobuf JSON mapping also allows the enum's name, so accept both.
    if value is None:
        return 0
    if isinstance(value, str) and value in names:
        return names[value]
    return j_int64(value, field, -(2**31), 2**31 - 1)
