"""OTLP trace requests built by hand, in protobuf and in OTLP/JSON, with the records they must decode to.

`RICH_JSON` is written the way the OTLP/JSON spec says a client sends it (hex ids, integer enums,
int64 as decimal strings, lowerCamelCase keys), not generated from the protobuf, so the two decoding
paths are checked against each other and against `RICH_RECORDS`, also written by hand.
"""

from __future__ import annotations

import base64
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from maxim_otel_bridge.record import EventRecord, LinkRecord, SpanKind, SpanRecord, StatusCode

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
CHILD = "eee19b7ec3c1b173"
LINKED_TRACE = "0af7651916cd43dd8448eb211c80319c"
LINKED_SPAN = "b7ad6b7169203331"
BIG_INT = 2**62 + 7  # past 2**53: a JSON number would lose it, so OTLP/JSON sends int64 as a string
RAW_BYTES = b"\x00\x01\xfe\xff binary"
T0 = 1_767_225_600_000_000_000


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


def span_pb(
    name: str,
    trace_id: bytes,
    span_id: bytes,
    parent: bytes = b"",
    attributes: list[KeyValue] | None = None,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 5,
        attributes=attributes or [],
    )


def request_pb(*spans: Span, resource: list[KeyValue] | None = None) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=resource or []),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="tests"), spans=list(spans))],
            )
        ]
    )


def rich_request_pb() -> ExportTraceServiceRequest:
    every_value = [
        kv("str", s("hello")),
        kv("bool", AnyValue(bool_value=True)),
        kv("int", AnyValue(int_value=BIG_INT)),
        kv("negative", AnyValue(int_value=-42)),
        kv("double", AnyValue(double_value=0.25)),
        kv("bytes", AnyValue(bytes_value=RAW_BYTES)),
        kv(
            "array",
            AnyValue(
                array_value=ArrayValue(
                    values=[s("a"), AnyValue(int_value=2), AnyValue(bool_value=False), AnyValue()]
                )
            ),
        ),
        kv(
            "kvlist",
            AnyValue(
                kvlist_value=KeyValueList(
                    values=[
                        kv("inner", s("x")),
                        kv(
                            "nested",
                            AnyValue(
                                kvlist_value=KeyValueList(values=[kv("deep", AnyValue(double_value=1.5))])
                            ),
                        ),
                        kv("unset", AnyValue()),
                    ]
                )
            ),
        ),
        kv("empty", AnyValue()),
    ]
    root = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(ROOT),
        name="invoke_agent planner",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 9_000_000,
        attributes=every_value,
        events=[
            Span.Event(
                time_unix_nano=T0 + 1_000,
                name="exception",
                attributes=[kv("exception.type", s("ValueError"))],
            ),
            Span.Event(time_unix_nano=T0 + 2_000, name="bare"),
        ],
        links=[
            Span.Link(
                trace_id=bytes.fromhex(LINKED_TRACE),
                span_id=bytes.fromhex(LINKED_SPAN),
                attributes=[kv("link.reason", s("retry"))],
            )
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="tool failed"),
    )
    child = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(CHILD),
        parent_span_id=bytes.fromhex(ROOT),
        name="chat gpt-4o",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + 1_000_000,
        end_time_unix_nano=T0 + 8_000_000,
        attributes=[kv("gen_ai.operation.name", s("chat"))],
        status=Status(code=Status.STATUS_CODE_OK),
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        kv("service.name", s("agent-svc")),
                        kv("service.instance.id", AnyValue(int_value=7)),
                    ]
                ),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name="agents", version="1.2.3"), spans=[root]),
                    ScopeSpans(scope=InstrumentationScope(name="openai"), spans=[child]),
                ],
            )
        ]
    )


RICH_JSON: dict[str, Any] = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "agent-svc"}},
                    {"key": "service.instance.id", "value": {"intValue": 7}},
                ]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "agents", "version": "1.2.3"},
                    "spans": [
                        {
                            "traceId": TRACE,
                            "spanId": ROOT,
                            "parentSpanId": "",
                            "name": "invoke_agent planner",
                            "kind": 2,
                            "startTimeUnixNano": str(T0),
                            "endTimeUnixNano": str(T0 + 9_000_000),
                            "attributes": [
                                {"key": "str", "value": {"stringValue": "hello"}},
                                {"key": "bool", "value": {"boolValue": True}},
                                {"key": "int", "value": {"intValue": str(BIG_INT)}},
                                {"key": "negative", "value": {"intValue": "-42"}},
                                {"key": "double", "value": {"doubleValue": 0.25}},
                                {
                                    "key": "bytes",
                                    "value": {"bytesValue": base64.b64encode(RAW_BYTES).decode()},
                                },
                                {
                                    "key": "array",
                                    "value": {
                                        "arrayValue": {
                                            "values": [
                                                {"stringValue": "a"},
                                                {"intValue": "2"},
                                                {"boolValue": False},
                                                {},
                                            ]
                                        }
                                    },
                                },
                                {
                                    "key": "kvlist",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [
                                                {"key": "inner", "value": {"stringValue": "x"}},
                                                {
                                                    "key": "nested",
                                                    "value": {
                                                        "kvlistValue": {
                                                            "values": [
                                                                {"key": "deep", "value": {"doubleValue": 1.5}}
                                                            ]
                                                        }
                                                    },
                                                },
                                                {"key": "unset", "value": {}},
                                            ]
                                        }
                                    },
                                },
                                {"key": "empty", "value": {}},
                            ],
                            "droppedAttributesCount": 0,
                            "events": [
                                {
                                    "timeUnixNano": str(T0 + 1_000),
                                    "name": "exception",
                                    "attributes": [
                                        {"key": "exception.type", "value": {"stringValue": "ValueError"}}
                                    ],
                                },
                                {"timeUnixNano": str(T0 + 2_000), "name": "bare"},
                            ],
                            "links": [
                                {
                                    "traceId": LINKED_TRACE,
                                    "spanId": LINKED_SPAN,
                                    "attributes": [{"key": "link.reason", "value": {"stringValue": "retry"}}],
                                }
                            ],
                            "status": {"code": 2, "message": "tool failed"},
                            "someFutureField": {"ignored": True},
                        }
                    ],
                },
                {
                    "scope": {"name": "openai"},
                    "spans": [
                        {
                            "traceId": TRACE.upper(),
                            "spanId": CHILD,
                            "parentSpanId": ROOT,
                            "name": "chat gpt-4o",
                            "kind": 3,
                            "startTimeUnixNano": T0 + 1_000_000,
                            "endTimeUnixNano": str(T0 + 8_000_000),
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}
                            ],
                            "status": {"code": 1},
                        }
                    ],
                },
            ],
            "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
        }
    ]
}

_RESOURCE = {"service.name": "agent-svc", "service.instance.id": 7}

RICH_RECORDS = (
    SpanRecord(
        trace_id=TRACE,
        span_id=ROOT,
        parent_span_id=None,
        name="invoke_agent planner",
        start_ns=T0,
        end_ns=T0 + 9_000_000,
        attributes={
            "str": "hello",
            "bool": True,
            "int": BIG_INT,
            "negative": -42,
            "double": 0.25,
            "bytes": base64.b64encode(RAW_BYTES).decode(),
            "array": ["a", 2, False, None],
            "kvlist": {"inner": "x", "nested": {"deep": 1.5}, "unset": None},
        },
        events=(
            EventRecord("exception", T0 + 1_000, {"exception.type": "ValueError"}),
            EventRecord("bare", T0 + 2_000, {}),
        ),
        links=(LinkRecord(LINKED_TRACE, LINKED_SPAN, {"link.reason": "retry"}),),
        kind=SpanKind.SERVER,
        status_code=StatusCode.ERROR,
        status_message="tool failed",
        resource=_RESOURCE,
        scope_name="agents",
        scope_version="1.2.3",
    ),
    SpanRecord(
        trace_id=TRACE,
        span_id=CHILD,
        parent_span_id=ROOT,
        name="chat gpt-4o",
        start_ns=T0 + 1_000_000,
        end_ns=T0 + 8_000_000,
        attributes={"gen_ai.operation.name": "chat"},
        kind=SpanKind.CLIENT,
        status_code=StatusCode.OK,
        resource=_RESOURCE,
        scope_name="openai",
    ),
)
