"""Decoding OTLP log requests into GenAI `LogEvent`s: the SDK's own encoder in, the in-process path's events out."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as LogRecordPb
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from maxim_otel_bridge.log_events import LogEvent, from_readable_log_record
from maxim_otel_bridge.sidecar.otlp_decode import MalformedRequest
from maxim_otel_bridge.sidecar.otlp_logs import decode_logs_request_json, decode_logs_request_protobuf

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
DETAILS = "gen_ai.client.inference.operation.details"


def sdk_records() -> list[ReadableLogRecord]:
    """Real SDK log records inside a real span: a details event, Traceloop-style events, and an app log line."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "weather"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("genai.test")
    tracer = TracerProvider().get_tracer("genai.test")
    with tracer.start_as_current_span("chat gpt-4o"):
        logger.emit(
            LogRecord(
                event_name=DETAILS,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
                    "gen_ai.usage.input_tokens": 3,
                },
            )
        )
        # Traceloop and SDKs before 1.35: the name in an attribute, the content in a dict body.
        logger.emit(
            LogRecord(
                attributes={"event.name": "gen_ai.choice", "gen_ai.provider.name": "openai"},
                body={"index": 0, "message": {"content": None}, "tool_calls": [{"id": "c1", "type": "function"}]},
            )
        )
        logger.emit(LogRecord(body="GET /health 200", attributes={"http.status": 200}))
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "outside any span"}))
    provider.shutdown()
    return list(exporter.get_finished_logs())


def test_the_sdk_encoders_output_decodes_to_what_the_in_process_path_builds() -> None:
    records = sdk_records()
    body = encode_logs(records).SerializeToString()
    decoded = decode_logs_request_protobuf(body)
    in_process = [e for e in (from_readable_log_record(r) for r in records) if e is not None and e.trace_id]
    assert list(decoded.events) == in_process
    assert [e.name for e in decoded.events] == [DETAILS, "gen_ai.choice"]
    # The app's log line, and the GenAI record with no trace to hang it on, are taken and ignored.
    assert (decoded.ignored, decoded.rejected, decoded.error_message) == (2, 0, "")
    details, choice = decoded.events
    assert details.span_id is not None and details.trace_id is not None
    assert details.resource["service.name"] == "weather"
    assert details.scope_name == "genai.test"
    assert choice.body == {"index": 0, "message": {"content": None}, "tool_calls": [{"id": "c1", "type": "function"}]}
    assert "event.name" not in choice.attributes


def kv(key: str, text: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=text))


def request_of(*records: LogRecordPb) -> bytes:
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=list(records))])]
    ).SerializeToString()


def genai(trace_id: bytes = bytes.fromhex(TRACE), span_id: bytes = bytes.fromhex(SPAN)) -> LogRecordPb:
    return LogRecordPb(event_name="gen_ai.user.message", trace_id=trace_id, span_id=span_id, time_unix_nano=5)


def test_records_with_malformed_ids_are_rejected_and_the_rest_kept() -> None:
    decoded = decode_logs_request_protobuf(
        request_of(genai(), genai(trace_id=b"\x01" * 5), genai(span_id=b"\x02" * 3), genai(trace_id=b""), genai())
    )
    assert len(decoded.events) == 2
    assert decoded.rejected == 3
    assert "trace_id must be 16 bytes, got 5" in decoded.error_message
    assert "span_id must be 8 bytes, got 3" in decoded.error_message
    assert "span id without a trace id" in decoded.error_message


def test_zero_ids_mean_absent_and_the_observed_time_stands_in_for_a_missing_time() -> None:
    record = LogRecordPb(
        event_name="gen_ai.choice", trace_id=bytes.fromhex(TRACE), span_id=bytes(8), observed_time_unix_nano=77
    )
    [event] = decode_logs_request_protobuf(request_of(record)).events
    assert (event.trace_id, event.span_id, event.time_ns) == (TRACE, None, 77)


def test_a_non_genai_event_name_is_ignored_without_reading_its_attributes() -> None:
    app_event = LogRecordPb(event_name="browser.page_view", trace_id=b"junk", attributes=[kv("event.name", "gen_ai.x")])
    decoded = decode_logs_request_protobuf(request_of(app_event))
    assert (decoded.events, decoded.ignored, decoded.rejected) == ((), 1, 0)


@pytest.mark.parametrize("body", [b"\xff\xfe not protobuf", b"\x0a\x05\x01"])
def test_a_body_that_is_not_a_logs_request_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest, match="logs request"):
        decode_logs_request_protobuf(body)


def json_request(*records: dict) -> bytes:
    return orjson.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "weather"}}]},
                    "scopeLogs": [{"scope": {"name": "genai.test"}, "logRecords": list(records)}],
                }
            ]
        }
    )


def test_json_decodes_like_protobuf() -> None:
    body = {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "hi"}}]}}
    decoded = decode_logs_request_json(
        json_request(
            {
                "timeUnixNano": "1700000000000000000",
                "traceId": TRACE.upper(),
                "spanId": SPAN,
                "eventName": "gen_ai.user.message",
                "body": body,
                "attributes": [{"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}}],
            },
            {  # legacy name attribute
                "traceId": TRACE,
                "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.choice"}}],
                "observedTimeUnixNano": 9,
            },
            {"body": {"stringValue": "an application log line"}, "traceId": TRACE},
            {"eventName": "gen_ai.tool.message", "traceId": "abc"},
            {"eventName": "gen_ai.tool.message", "traceId": TRACE, "spanId": 7},
        )
    )
    user, choice = decoded.events
    assert user == LogEvent(
        trace_id=TRACE,
        span_id=SPAN,
        name="gen_ai.user.message",
        time_ns=1_700_000_000_000_000_000,
        attributes={"gen_ai.provider.name": "openai"},
        body={"content": "hi"},
        resource={"service.name": "weather"},
        scope_name="genai.test",
    )
    assert (choice.name, choice.span_id, choice.time_ns, choice.attributes) == ("gen_ai.choice", None, 9, {})
    assert (decoded.ignored, decoded.rejected) == (1, 2)
    assert "traceId must be 32 hex digits" in decoded.error_message
    assert "spanId must be a hex string, got int" in decoded.error_message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object with resourceLogs"),
        (b'{"resourceLogs": {"a": 1}}', "resourceLogs must be a list"),
        (b'{"resourceLogs": [{"scopeLogs": 3}]}', "resourceLogs[0]: scopeLogs must be a list"),
    ],
)
def test_json_that_is_not_a_logs_request_is_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedRequest, match=reason.replace("[", r"\[").replace("]", r"\]")):
        decode_logs_request_json(body)


def test_records_outside_a_span_context_keep_their_trace_only_when_they_have_one() -> None:
    # A record emitted with an explicit span context outside any active span (how instrumentations emit
    # after the span ended) keeps both ids.
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    context = trace.set_span_in_context(
        trace.NonRecordingSpan(trace.SpanContext(int(TRACE, 16), int(SPAN, 16), is_remote=False))
    )
    provider.get_logger("x").emit(LogRecord(event_name=DETAILS, context=context))
    provider.shutdown()
    [event] = decode_logs_request_protobuf(encode_logs(exporter.get_finished_logs()).SerializeToString()).events
    assert (event.trace_id, event.span_id) == (TRACE, SPAN)
