"""OTLP logs on the receivers' ports: `LogsService/Export` (gRPC) and `POST /v1/logs` (HTTP), on real servers on
port 0, driven by the official OTLP log exporters and raw clients. Same rules as traces: auth, size limits,
partial success for invalid records, UNAVAILABLE / 503 with a retry delay when the sink refuses."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import grpc
import httpx
import orjson
import pytest
from fakes.span_sinks import MemoryLogSink, MemorySink
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs.export import LogRecordExportResult
from test_otlp_logs import SPAN, TRACE, genai, request_of, sdk_records

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.log_events import from_readable_log_record
from maxim_otel_bridge.sidecar.grpc_receiver import LOGS_SERVICE, GrpcReceiver
from maxim_otel_bridge.sidecar.http_receiver import HttpReceiver
from maxim_otel_bridge.sidecar.ingest import AcceptResult, ReceiverLimits, Verdict

PB = "application/x-protobuf"
JSON = "application/json"
TOKEN = "tkn-logs-5f6e7d8c"
LIMIT = 64 * 1024


class Receivers:
    def __init__(self, log_sink: MemoryLogSink | None, token: str | None = None) -> None:
        self.spans = MemorySink()
        self.logs = log_sink
        limits = ReceiverLimits(max_request_bytes=LIMIT, max_workers=2, read_timeout_s=5)
        secret = Secret(token) if token else None
        self.grpc = GrpcReceiver("127.0.0.1:0", self.spans, limits, secret, log_sink=log_sink)
        self.http = HttpReceiver("127.0.0.1:0", self.spans, limits, secret, log_sink=log_sink)
        self.grpc.start()
        self.http.start()

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc.bound_port}"

    @property
    def logs_url(self) -> str:
        return f"http://127.0.0.1:{self.http.bound_port}/v1/logs"

    def stop(self) -> None:
        self.grpc.stop(1)
        self.http.stop(1)


@pytest.fixture
def rx() -> Iterator[Receivers]:
    receivers = Receivers(MemoryLogSink())
    yield receivers
    receivers.stop()


def test_the_official_log_exporters_deliver_genai_events_over_grpc_and_http(rx: Receivers) -> None:
    records = sdk_records()
    exporters = [
        GrpcLogExporter(endpoint=rx.grpc_target, insecure=True, timeout=10),
        HttpLogExporter(endpoint=rx.logs_url, timeout=10),
        HttpLogExporter(endpoint=rx.logs_url, timeout=10, compression=Compression.Gzip),
    ]
    for exporter in exporters:
        assert exporter.export(records) is LogRecordExportResult.SUCCESS
        exporter.shutdown()
    in_process = [e for e in (from_readable_log_record(r) for r in records) if e is not None and e.trace_id]
    assert rx.logs is not None
    assert rx.logs.events == in_process * 3
    assert rx.spans.records == []
    registry = rx.http.metrics.registry  # each receiver has its own metrics here
    assert registry.get_sample_value("maxim_bridge_receiver_accepted_log_records_total", {"receiver": "http"}) == 4
    assert registry.get_sample_value("maxim_bridge_receiver_ignored_log_records_total", {"receiver": "http"}) == 4
    grpc_registry = rx.grpc.metrics.registry
    assert grpc_registry.get_sample_value("maxim_bridge_receiver_accepted_log_records_total", {"receiver": "grpc"}) == 2
    # Requests are counted under the signal they carry.
    requests = "maxim_bridge_receiver_requests_total"
    assert registry.get_sample_value(requests, {"receiver": "http", "signal": "logs", "outcome": "ok"}) == 2
    assert registry.get_sample_value(requests, {"receiver": "http", "signal": "traces", "outcome": "ok"}) is None
    assert grpc_registry.get_sample_value(requests, {"receiver": "grpc", "signal": "logs", "outcome": "ok"}) == 1


def logs_call(target: str) -> grpc.UnaryUnaryMultiCallable:
    channel = grpc.insecure_channel(target)
    return channel.unary_unary(f"/{LOGS_SERVICE}/Export", response_deserializer=ExportLogsServiceResponse.FromString)


def test_grpc_invalid_records_get_partial_success_and_the_rest_is_kept(rx: Receivers) -> None:
    export = logs_call(rx.grpc_target)
    response = export(request_of(genai(), genai(trace_id=b"\x01" * 3)), timeout=5)
    assert response.partial_success.rejected_log_records == 1
    assert "trace_id must be 16 bytes, got 3" in response.partial_success.error_message
    assert rx.logs is not None and [e.trace_id for e in rx.logs.events] == [TRACE]
    assert (
        rx.grpc.metrics.registry.get_sample_value(
            "maxim_bridge_receiver_refused_log_records_total", {"receiver": "grpc", "reason": "invalid"}
        )
        == 1
    )


def test_grpc_garbage_is_invalid_argument_and_the_server_keeps_serving(rx: Receivers) -> None:
    export = logs_call(rx.grpc_target)
    with pytest.raises(grpc.RpcError) as caught:
        export(b"\xff\xff\xff", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "logs request" in caught.value.details()
    assert export(request_of(genai()), timeout=5) == ExportLogsServiceResponse()
    value = rx.grpc.metrics.registry.get_sample_value
    requests = "maxim_bridge_receiver_requests_total"
    assert value(requests, {"receiver": "grpc", "signal": "logs", "outcome": "malformed"}) == 1
    assert value(requests, {"receiver": "grpc", "signal": "traces", "outcome": "malformed"}) is None


def test_grpc_refusal_is_unavailable_with_a_retry_delay() -> None:
    receivers = Receivers(MemoryLogSink([AcceptResult(Verdict.OVERLOADED, 3.0)]))
    try:
        export = logs_call(receivers.grpc_target)
        with pytest.raises(grpc.RpcError) as caught:
            export(request_of(genai()), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "cannot take log records now (overloaded)" in caught.value.details()
        assert "google.rpc.retryinfo-bin" in dict(caught.value.trailing_metadata())
        assert export(request_of(genai()), timeout=5) == ExportLogsServiceResponse()  # the retry is taken
    finally:
        receivers.stop()


def test_without_a_log_sink_logs_are_not_served() -> None:
    receivers = Receivers(None)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            logs_call(receivers.grpc_target)(request_of(genai()), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        answer = httpx.post(receivers.logs_url, content=request_of(genai()), headers={"content-type": PB})
        assert answer.status_code == 404
        # Not a logs request here: a path the receiver does not serve.
        assert (
            receivers.http.metrics.registry.get_sample_value(
                "maxim_bridge_receiver_requests_total", {"receiver": "http", "signal": "other", "outcome": "unsupported"}
            )
            == 1
        )
    finally:
        receivers.stop()


def test_http_json_with_invalid_records_gets_partial_success_in_json(rx: Receivers) -> None:
    body = orjson.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {"eventName": "gen_ai.user.message", "traceId": TRACE, "spanId": SPAN},
                                {"eventName": "gen_ai.user.message", "traceId": "nothex"},
                                {"body": {"stringValue": "an app log line"}},
                            ]
                        }
                    ]
                }
            ]
        }
    )
    answer = httpx.post(rx.logs_url, content=body, headers={"content-type": JSON})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == JSON
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "traceId must be 32 hex digits" in partial["errorMessage"]
    assert rx.logs is not None and [(e.trace_id, e.span_id) for e in rx.logs.events] == [(TRACE, SPAN)]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": PB}, b"\xff\xff\xff", 400),
        ({"content-type": JSON}, b"{nope", 400),
        ({"content-type": "text/plain"}, b"x", 415),
        ({"content-type": PB, "content-encoding": "br"}, b"x", 415),
        ({"content-type": PB}, b"\x00" * (LIMIT + 1), 413),
        ({"content-type": PB, "content-encoding": "gzip"}, gzip.compress(b"\x00" * (LIMIT * 4)), 413),
    ],
)
def test_http_refusals_follow_the_traces_rules(rx: Receivers, headers: dict, body: bytes, status: int) -> None:
    answer = httpx.post(rx.logs_url, content=body, headers=headers)
    assert answer.status_code == status
    assert rx.logs is not None and rx.logs.events == []


def test_http_overload_is_503_with_retry_after() -> None:
    receivers = Receivers(MemoryLogSink([AcceptResult(Verdict.OVERLOADED, 2.5)]))
    try:
        answer = httpx.post(receivers.logs_url, content=request_of(genai()), headers={"content-type": PB})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "3"
        retried = httpx.post(receivers.logs_url, content=request_of(genai()), headers={"content-type": PB})
        assert retried.status_code == 200
    finally:
        receivers.stop()


def test_the_bearer_token_guards_logs_too() -> None:
    receivers = Receivers(MemoryLogSink(), token=TOKEN)
    try:
        body = encode_logs(sdk_records()).SerializeToString()
        assert httpx.post(receivers.logs_url, content=body, headers={"content-type": PB}).status_code == 401
        with pytest.raises(grpc.RpcError) as caught:
            logs_call(receivers.grpc_target)(body, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        exporter = HttpLogExporter(endpoint=receivers.logs_url, headers={"authorization": f"Bearer {TOKEN}"})
        assert exporter.export(sdk_records()) is LogRecordExportResult.SUCCESS
        exporter.shutdown()
        assert receivers.logs is not None and len(receivers.logs.events) == 2
    finally:
        receivers.stop()
