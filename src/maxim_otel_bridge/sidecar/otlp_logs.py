"""OTLP log requests (protobuf and OTLP/JSON) -> `LogEvent`s of GenAI events. Pure: no I/O, no transport.

Only GenAI event records are the bridge's business (`log_events.is_genai_event` on the record's
`event_name`, or the legacy `event.name` attribute older SDKs and Traceloop use). Every other record
(application logs sharing the exporter) is accepted and counted in `DecodedLogs.ignored`, as are GenAI
records that carry no trace id: there is no trace to hang them on.

A GenAI record with a malformed id (a trace id that is not 16 bytes, a span id that is not 8, a span id
without a trace id) is left out and counted in `DecodedLogs.rejected`, so the receiver reports it through
OTLP's partial success and keeps the rest. All-zero or empty ids mean "absent", as in the SDK. A request
that cannot be parsed at all raises `MalformedRequest`.

Values are normalized exactly like the in-process path (`log_events.from_readable_log_record`): ids as
lowercase hex, attributes and body as JSON types (bytes as base64 text), the legacy name attribute dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from maxim_otel_bridge.log_events import LogEvent, event_name_of, is_genai_event
from maxim_otel_bridge.sidecar.otlp_common import (
    InvalidItem,
    MalformedRequest,
    Problems,
    decode_any_value,
    decode_attributes,
    j_any_value,
    j_attributes,
    j_hex,
    j_list,
    j_object,
    j_optional_object,
    j_str,
    j_uint64,
    json_request_items,
    label,
)

__all__ = ["DecodedLogs", "decode_logs_request_json", "decode_logs_request_protobuf"]

_LEGACY_NAME_KEY = "event.name"


@dataclass(frozen=True, slots=True)
class DecodedLogs:
    events: tuple[LogEvent, ...]
    """GenAI event records, in request order."""
    rejected: int = 0
    """GenAI records left out because their ids were malformed."""
    ignored: int = 0
    """Records taken but not kept: not GenAI events, or GenAI events without a trace id."""
    error_message: str = ""
    """What was wrong with the rejected records; empty when nothing was."""


class _Collector:
    """Sorts decoded records into kept, ignored and rejected."""

    __slots__ = ("events", "ignored", "problems")

    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self.ignored = 0
        self.problems = Problems()

    def add(self, event: LogEvent | None) -> None:
        if event is None or event.trace_id is None:
            self.ignored += 1
        else:
            self.events.append(event)

    def result(self) -> DecodedLogs:
        return DecodedLogs(tuple(self.events), self.problems.rejected, self.ignored, self.problems.message)


def _genai_event(
    name: str,
    trace_id: str | None,
    span_id: str | None,
    time_ns: int,
    attributes: dict[str, Any],
    body: Any,
    resource: Mapping[str, Any],
    scope_name: str,
) -> LogEvent:
    if span_id is not None and trace_id is None:
        raise InvalidItem("span id without a trace id")
    attributes.pop(_LEGACY_NAME_KEY, None)
    return LogEvent(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        time_ns=time_ns,
        attributes=attributes,
        body=body,
        resource=resource,
        scope_name=scope_name,
    )


# ---------------------------------------------------------------------------------------------------
# Protobuf


def decode_logs_request_protobuf(data: bytes) -> DecodedLogs:
    """Decode a serialized `ExportLogsServiceRequest`."""
    try:
        request = ExportLogsServiceRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedRequest(f"body is not a valid OTLP protobuf logs request: {exc}") from None
    out = _Collector()
    for resource_logs in request.resource_logs:
        resource: dict[str, Any] | None = None  # decoded once, and only if a GenAI record needs it
        for scope_logs in resource_logs.scope_logs:
            scope_name = scope_logs.scope.name
            for record in scope_logs.log_records:
                # Cheap bail-out first: most records sharing a logs exporter are not GenAI events.
                own_name = record.event_name
                if own_name and not is_genai_event(own_name):
                    out.ignored += 1
                    continue
                attributes = decode_attributes(record.attributes) if record.attributes else {}
                name = event_name_of(own_name, attributes)
                if not is_genai_event(name):
                    out.ignored += 1
                    continue
                if resource is None:
                    resource = decode_attributes(resource_logs.resource.attributes)
                try:
                    out.add(_decode_record(record, name, attributes, resource, scope_name))
                except InvalidItem as exc:
                    out.problems.reject(f"log record {label(name)}: {exc}")
    return out.result()


def _decode_record(
    record: LogRecord, name: str, attributes: dict[str, Any], resource: Mapping[str, Any], scope_name: str
) -> LogEvent:
    return _genai_event(
        name,
        _optional_id(record.trace_id, 16, "trace_id"),
        _optional_id(record.span_id, 8, "span_id"),
        record.time_unix_nano or record.observed_time_unix_nano,
        attributes,
        decode_any_value(record.body) if record.HasField("body") else None,
        resource,
        scope_name,
    )


def _optional_id(raw: bytes, size: int, field: str) -> str | None:
    # Log records outside a span carry no ids: empty (or all zeros, as some SDKs write) means absent.
    if not raw or not raw.strip(b"\0"):
        return None
    if len(raw) != size:
        raise InvalidItem(f"{field} must be {size} bytes, got {len(raw)}")
    return raw.hex()


# ---------------------------------------------------------------------------------------------------
# OTLP/JSON


def decode_logs_request_json(data: bytes) -> DecodedLogs:
    """Decode an OTLP/JSON `ExportLogsServiceRequest` (hex ids, int64 as string or number)."""
    resource_logs_list = json_request_items(data, "resourceLogs")
    out = _Collector()
    for index, resource_logs in enumerate(resource_logs_list):
        try:
            _j_resource_logs(resource_logs, out)
        except InvalidItem as exc:
            raise MalformedRequest(f"resourceLogs[{index}]: {exc}") from None
    return out.result()


def _j_resource_logs(obj: Any, out: _Collector) -> None:
    obj = j_object(obj, "resourceLogs item")
    resource_obj = j_optional_object(obj, "resource")
    resource = j_attributes(resource_obj.get("attributes")) if resource_obj else {}
    for scope_logs in j_list(obj, "scopeLogs"):
        scope_logs = j_object(scope_logs, "scopeLogs item")
        scope = j_optional_object(scope_logs, "scope") or {}
        scope_name = j_str(scope.get("name"), "scope.name")
        for record in j_list(scope_logs, "logRecords"):
            name = ""
            try:
                record = j_object(record, "logRecord")
                attributes = j_attributes(record.get("attributes"))
                name = event_name_of(j_str(record.get("eventName"), "eventName"), attributes)
                if not is_genai_event(name):
                    out.ignored += 1
                    continue
                out.add(_j_record(record, name, attributes, resource, scope_name))
            except InvalidItem as exc:
                out.problems.reject(f"log record {label(name)}: {exc}")


def _j_record(
    obj: dict[str, Any], name: str, attributes: dict[str, Any], resource: Mapping[str, Any], scope_name: str
) -> LogEvent:
    return _genai_event(
        name,
        _j_optional_id(obj.get("traceId"), 16, "traceId"),
        _j_optional_id(obj.get("spanId"), 8, "spanId"),
        j_uint64(obj.get("timeUnixNano"), "timeUnixNano")
        or j_uint64(obj.get("observedTimeUnixNano"), "observedTimeUnixNano"),
        attributes,
        j_any_value(obj.get("body")),
        resource,
        scope_name,
    )


def _j_optional_id(value: Any, size: int, field: str) -> str | None:
    if value is None or value == "":
        return None
    text = j_hex(value, field, size)
    return None if text.count("0") == len(text) else text
