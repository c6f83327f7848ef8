"""The OTLP/gRPC receiver, on a real server on port 0, driven by the official OTLP exporter and a raw channel."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fakes.otlp_requests import CHILD, RICH_RECORDS, ROOT, TRACE, kv, request_pb, rich_request_pb, s, span_pb
from fakes.span_sinks import FailingSink, GatedSink, MemorySink
from fakes.tls import self_signed_cert
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.record import from_readable_span
from maxim_otel_bridge.sidecar.grpc_receiver import TRACE_SERVICE, GrpcReceiver
from maxim_otel_bridge.sidecar.ingest import (
    AcceptResult,
    ReceiverLimits,
    ReceiverStartError,
    TlsFiles,
    Verdict,
)
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics

TOKEN = "tkn-9f8e7d6c5b4a"
TID, SID = bytes.fromhex(TRACE), bytes.fromhex(ROOT)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def receiver(sink: MemorySink) -> Iterator[GrpcReceiver]:
    rx = GrpcReceiver("127.0.0.1:0", sink, ReceiverLimits(max_request_bytes=256 * 1024, max_workers=2))
    rx.start()
    yield rx
    rx.stop(1)


class RawClient:
    """Sends bytes as an Export call, so tests control exactly what arrives."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.channel = (
            grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        )
        self._export = self.channel.unary_unary(
            f"/{TRACE_SERVICE}/Export", response_deserializer=ExportTraceServiceResponse.FromString
        )

    def export(self, body: bytes, **kwargs: object) -> ExportTraceServiceResponse:
        return self._export(body, timeout=10, **kwargs)

    def error(self, body: bytes, **kwargs: object) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            self.export(body, **kwargs)
        return caught.value

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def client(receiver: GrpcReceiver) -> Iterator[RawClient]:
    c = RawClient(f"127.0.0.1:{receiver.bound_port}")
    yield c
    c.close()


def good_body() -> bytes:
    return request_pb(span_pb("good", TID, SID)).SerializeToString()


def assert_still_serving(client: RawClient, sink: MemorySink) -> None:
    before = len(sink.records)
    assert client.export(good_body()) == ExportTraceServiceResponse()
    assert len(sink.records) == before + 1


def sdk_provider(*exporters: object) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-test", "team": "obs"}))
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    return provider


def make_spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("bridge.tests", "0.1")
    with tracer.start_as_current_span("linked") as linked:
        context = linked.get_span_context()
    attrs = {"str": "v", "int": 2**40, "float": 1.25, "bool": True, "strs": ["a", "b"], "ints": [1, 2]}
    with tracer.start_as_current_span("agent", kind=SpanKind.SERVER, attributes=attrs) as root:
        root.add_event("step", {"n": 1})
        with tracer.start_as_current_span("tool", links=[Link(context, {"why": "retry"})]) as tool:
            tool.set_status(Status(StatusCode.ERROR, "boom"))


# -- the official exporter as the client -------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip])
def test_official_exporter_spans_arrive_as_the_same_records_as_in_process(
    receiver: GrpcReceiver, sink: MemorySink, compression: grpc.Compression | None
) -> None:
    memory = InMemorySpanExporter()
    otlp = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{receiver.bound_port}", insecure=True, compression=compression
    )
    provider = sdk_provider(memory, otlp)
    make_spans(provider)
    provider.shutdown()

    expected = {r.span_id: r for r in map(from_readable_span, memory.get_finished_spans())}
    got = {r.span_id: r for r in sink.records}
    assert got == expected
    by_name = sink.by_name()
    assert by_name["tool"].parent_span_id == by_name["agent"].span_id
    assert by_name["tool"].status_message == "boom"
    assert by_name["tool"].links[0].span_id == by_name["linked"].span_id
    assert by_name["agent"].resource["team"] == "obs"
    assert (by_name["agent"].scope_name, by_name["agent"].scope_version) == ("bridge.tests", "0.1")
    assert (
        receiver.metrics.registry.get_sample_value(
            "maxim_bridge_receiver_accepted_spans_total", {"receiver": "grpc"}
        )
        == 3
    )


def test_every_any_value_type_arrives(client: RawClient, sink: MemorySink) -> None:
    assert client.export(rich_request_pb().SerializeToString()) == ExportTraceServiceResponse()
    assert tuple(sink.records) == RICH_RECORDS


def test_an_empty_request_succeeds_without_calling_the_sink(client: RawClient, sink: MemorySink) -> None:
    assert client.export(b"") == ExportTraceServiceResponse()
    assert sink.calls == 0


# -- bad input ---------------------------------------------------------------------------------------------------


def test_invalid_spans_are_rejected_through_partial_success_and_the_rest_kept(
    receiver: GrpcReceiver, client: RawClient, sink: MemorySink
) -> None:
    body = request_pb(
        span_pb("ok", TID, SID), span_pb("zero", bytes(16), SID), span_pb("short", TID, SID[:4])
    ).SerializeToString()
    response = client.export(body)
    assert response.partial_success.rejected_spans == 2
    assert "span 'zero': trace_id is all zeros" in response.partial_success.error_message
    assert "span 'short': span_id must be 8 bytes, got 4" in response.partial_success.error_message
    assert [r.name for r in sink.records] == ["ok"]
    metrics = receiver.metrics.registry
    assert (
        metrics.get_sample_value(
            "maxim_bridge_receiver_refused_spans_total", {"receiver": "grpc", "reason": "invalid"}
        )
        == 2
    )
    assert (
        metrics.get_sample_value(
            "maxim_bridge_receiver_requests_total", {"receiver": "grpc", "signal": "traces", "outcome": "partial"}
        )
        == 1
    )


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff\xff garbage", rich_request_pb().SerializeToString()[:-7], b"\x0a\x05ab"],
    ids=["garbage", "truncated", "short-field"],
)
def test_malformed_bodies_get_invalid_argument_and_the_server_keeps_serving(
    client: RawClient, sink: MemorySink, body: bytes
) -> None:
    error = client.error(body)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid OTLP protobuf trace request" in error.details()
    assert sink.calls == 0
    assert_still_serving(client, sink)


def test_oversized_request_gets_resource_exhausted(client: RawClient, sink: MemorySink) -> None:
    body = request_pb(span_pb("big", TID, SID, attributes=[kv("blob", s("x" * 300_000))])).SerializeToString()
    error = client.error(body)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.calls == 0
    assert_still_serving(client, sink)


def test_gzip_bomb_is_measured_after_decompression(client: RawClient, sink: MemorySink) -> None:
    body = request_pb(
        span_pb("bomb", TID, SID, attributes=[kv("zeros", s("0" * 5_000_000))])
    ).SerializeToString()
    assert len(gzip.compress(body)) < 256 * 1024  # small on the wire, 20x the limit once inflated
    error = client.error(body, compression=grpc.Compression.Gzip)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.calls == 0
    assert_still_serving(client, sink)


def test_a_huge_attribute_within_the_default_limit_arrives_whole() -> None:
    sink = MemorySink()
    rx = GrpcReceiver("127.0.0.1:0", sink)  # defaults: 4 MiB
    rx.start()
    client = RawClient(f"127.0.0.1:{rx.bound_port}")
    try:
        big = "y" * 3_500_000
        client.export(
            request_pb(span_pb("big", TID, SID, attributes=[kv("blob", s(big))])).SerializeToString()
        )
        assert sink.records[0].attributes["blob"] == big
    finally:
        client.close()
        rx.stop(1)


# -- backpressure ----------------------------------------------------------------------------------------------


def retry_delay_s(error: grpc.RpcError) -> tuple[float, float]:
    """(delay from grpc-status-details-bin, delay from google.rpc.retryinfo-bin)."""
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == code_pb2.UNAVAILABLE
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    bare = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    return (info.retry_delay.ToNanoseconds() / 1e9, bare.retry_delay.ToNanoseconds() / 1e9)


@pytest.mark.parametrize(
    ("verdict", "retry_after", "advertised"),
    [(Verdict.OVERLOADED, 2.5, 2.5), (Verdict.SHUTTING_DOWN, 0.0, 1.0)],
)
def test_a_refusing_sink_gives_unavailable_with_retry_info(
    verdict: Verdict, retry_after: float, advertised: float
) -> None:
    sink = MemorySink([AcceptResult(verdict, retry_after)])
    rx = GrpcReceiver("127.0.0.1:0", sink)
    rx.start()
    client = RawClient(f"127.0.0.1:{rx.bound_port}")
    try:
        error = client.error(good_body())
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert verdict.value.replace("_", " ") in error.details()
        assert retry_delay_s(error) == (advertised, advertised)
        assert sink.records == []
        assert (
            rx.metrics.registry.get_sample_value(
                "maxim_bridge_receiver_refused_spans_total", {"receiver": "grpc", "reason": verdict.value}
            )
            == 1
        )
        assert_still_serving(client, sink)
    finally:
        client.close()
        rx.stop(1)


def test_the_official_exporter_retries_after_overload_and_nothing_is_lost() -> None:
    sink = MemorySink([AcceptResult(Verdict.OVERLOADED, 0.05), AcceptResult(Verdict.OVERLOADED, 0.05)])
    rx = GrpcReceiver("127.0.0.1:0", sink)
    rx.start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{rx.bound_port}", insecure=True, timeout=20)
        memory = InMemorySpanExporter()
        provider = sdk_provider(memory)
        make_spans(provider)
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        assert sink.calls == 3
        assert len(sink.records) == 3
        exporter.shutdown()
    finally:
        rx.stop(1)


def test_a_sink_that_raises_gives_a_retryable_answer_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rx = GrpcReceiver("127.0.0.1:0", FailingSink())
    rx.start()
    client = RawClient(f"127.0.0.1:{rx.bound_port}")
    try:
        for _ in range(2):
            assert client.error(good_body()).code() == grpc.StatusCode.UNAVAILABLE
        assert "span sink failed" in caplog.text
        assert (
            rx.metrics.registry.get_sample_value(
                "maxim_bridge_receiver_requests_total", {"receiver": "grpc", "signal": "traces", "outcome": "error"}
            )
            == 2
        )
    finally:
        client.close()
        rx.stop(1)


# -- security -------------------------------------------------------------------------------------------------


def test_bearer_token_is_required_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = MemorySink()
    metrics = BridgeMetrics()
    rx = GrpcReceiver("127.0.0.1:0", sink, auth_token=Secret(TOKEN), metrics=metrics)
    rx.start()
    client = RawClient(f"127.0.0.1:{rx.bound_port}")
    try:
        for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)]:
            error = client.error(good_body(), metadata=metadata)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert TOKEN not in error.details()
        assert sink.calls == 0
        client.export(good_body(), metadata=(("authorization", f"Bearer {TOKEN}"),))
        exporter = OTLPSpanExporter(
            endpoint=f"127.0.0.1:{rx.bound_port}", insecure=True, headers={"authorization": f"Bearer {TOKEN}"}
        )
        memory = InMemorySpanExporter()
        make_spans(sdk_provider(memory))
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(sink.records) == 4
    finally:
        client.close()
        rx.stop(1)
    assert "refused a call without a valid bearer token" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in metrics.render()[0].decode()
    assert TOKEN not in repr(rx.__dict__)


def test_tls_with_a_self_signed_certificate(tmp_path: Path, sink: MemorySink) -> None:
    cert = self_signed_cert(tmp_path)
    rx = GrpcReceiver("127.0.0.1:0", sink, tls=cert.files)
    rx.start()
    try:
        exporter = OTLPSpanExporter(
            endpoint=f"localhost:{rx.bound_port}",
            credentials=grpc.ssl_channel_credentials(root_certificates=cert.cert_pem),
        )
        memory = InMemorySpanExporter()
        make_spans(sdk_provider(memory))
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(sink.records) == 3

        plaintext = RawClient(f"127.0.0.1:{rx.bound_port}")
        assert plaintext.error(good_body()).code() == grpc.StatusCode.UNAVAILABLE
        plaintext.close()
        secure = RawClient(f"localhost:{rx.bound_port}", grpc.ssl_channel_credentials(cert.cert_pem))
        assert_still_serving(secure, sink)
        secure.close()
    finally:
        rx.stop(1)


# -- lifecycle -------------------------------------------------------------------------------------------------


def test_a_taken_port_is_a_clear_start_error(receiver: GrpcReceiver, sink: MemorySink) -> None:
    second = GrpcReceiver(f"127.0.0.1:{receiver.bound_port}", sink)
    with pytest.raises(ReceiverStartError, match=f"cannot listen on 127.0.0.1:{receiver.bound_port}"):
        second.start()


def test_unreadable_tls_files_are_a_clear_start_error(tmp_path: Path, sink: MemorySink) -> None:
    rx = GrpcReceiver("127.0.0.1:0", sink, tls=TlsFiles(tmp_path / "missing.crt", tmp_path / "missing.key"))
    with pytest.raises(ReceiverStartError, match="missing.crt"):
        rx.start()


def test_stop_lets_the_in_flight_call_finish_and_refuses_new_ones() -> None:
    sink = GatedSink()
    rx = GrpcReceiver("127.0.0.1:0", sink)
    rx.start()
    port = rx.bound_port
    client = RawClient(f"127.0.0.1:{port}")
    outcome: list[object] = []
    call = threading.Thread(target=lambda: outcome.append(client.export(good_body())))
    call.start()
    assert sink.entered.wait(10)
    stopper = threading.Thread(target=rx.stop, args=(30,))
    stopper.start()
    late = RawClient(f"127.0.0.1:{port}")
    for _ in range(200):  # wait until the server has begun stopping: new calls are refused
        try:
            late.export(b"", wait_for_ready=False)
        except grpc.RpcError as error:
            # A call racing the stop is cancelled rather than refused: both tell the client to retry.
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            break
        threading.Event().wait(0.02)
    else:
        pytest.fail("new calls were still accepted while stopping")
    sink.release()
    call.join(10)
    stopper.join(10)
    assert outcome == [ExportTraceServiceResponse()]
    assert len(sink.records) == 1
    client.close()
    late.close()


def test_metrics_count_requests_by_outcome(receiver: GrpcReceiver, client: RawClient) -> None:
    client.export(good_body())
    client.error(b"\xff\xff")
    client.export(b"")
    value = receiver.metrics.registry.get_sample_value
    requests = "maxim_bridge_receiver_requests_total"
    assert value(requests, {"receiver": "grpc", "signal": "traces", "outcome": "ok"}) == 2
    assert value(requests, {"receiver": "grpc", "signal": "traces", "outcome": "malformed"}) == 1
    assert value("maxim_bridge_receiver_accepted_spans_total", {"receiver": "grpc"}) == 1


def test_child_and_parent_ids_round_trip(client: RawClient, sink: MemorySink) -> None:
    client.export(request_pb(span_pb("child", TID, bytes.fromhex(CHILD), SID)).SerializeToString())
    assert (sink.records[0].trace_id, sink.records[0].span_id, sink.records[0].parent_span_id) == (
        TRACE,
        CHILD,
        ROOT,
    )


def test_stop_does_not_wait_past_the_grace_period_for_a_stuck_sink() -> None:
    sink = GatedSink()
    rx = GrpcReceiver("127.0.0.1:0", sink)
    rx.start()
    client = RawClient(f"127.0.0.1:{rx.bound_port}")
    errors: list[grpc.StatusCode] = []

    def call() -> None:
        try:
            client.export(good_body())
        except grpc.RpcError as error:
            errors.append(error.code())

    caller = threading.Thread(target=call)
    caller.start()
    assert sink.entered.wait(10)
    stopper = threading.Thread(target=rx.stop, args=(0.1,))
    stopper.start()
    stopper.join(10)
    try:
        assert not stopper.is_alive()  # stop returned while the sink was still stuck
        caller.join(10)
        assert errors in ([grpc.StatusCode.CANCELLED], [grpc.StatusCode.UNAVAILABLE])  # the client retries
    finally:
        sink.release()
        client.close()
