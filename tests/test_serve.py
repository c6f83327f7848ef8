"""`maxim-otel-bridge serve` as a real process: the official OTLP exporters in, the batch sink out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.batch_sink import BatchSink
from fakes.serve_process import (
    ServeProcess,
    clean_environ,
    descendants,
    free_port,
    make_spans,
    otlp_body,
    serving,
    span_hex,
    trace_hex,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from maxim_otel_bridge.schema import validate_entity

API_KEY = "sk-serve-secret-5550123"
FAST = ["--assembly-wait", "0.5", "--grace-period", "5"]


@pytest.fixture
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


def maxim_env(sink: BatchSink, api_key: str = API_KEY) -> dict[str, str]:
    return clean_environ({"MAXIM_API_KEY": api_key, "MAXIM_LOG_REPO_ID": "repo-serve", "MAXIM_BASE_URL": sink.url})


def test_official_grpc_and_http_exporters_deliver_correct_entities(tmp_path: Path, sink: BatchSink) -> None:
    grpc_traces = make_spans(3)
    http_traces = make_spans(3)
    with serving(tmp_path / "spool", maxim_env(sink), FAST) as serve:
        grpc_exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{serve.grpc_port}", insecure=True, timeout=10)
        http_exporter = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=10)
        try:
            for spans in grpc_traces:
                assert grpc_exporter.export(spans) is SpanExportResult.SUCCESS
            for spans in http_traces:
                assert http_exporter.export(spans) is SpanExportResult.SUCCESS
        finally:
            grpc_exporter.shutdown()
            http_exporter.shutdown()
        every = [s for spans in grpc_traces + http_traces for s in spans]
        assert sink.wait_for_entities([span_hex(s) for s in every] + [trace_hex(s) for s in every], timeout=15)
        assert serve.terminate() == 0

    received = sink.entities_by_id()
    for spans in grpc_traces + http_traces:
        root = next(s for s in spans if s.parent is None)
        trace_entity = received[trace_hex(root)]
        assert trace_entity["type"] == "trace"
        assert received[span_hex(root)]["type"] == "span"
        for child in spans:
            if child is root:
                continue
            entity = received[span_hex(child)]
            assert entity["type"] == "generation" and entity["model"] == "gpt-4o"
            assert entity["traceId"] == trace_hex(root) and entity["spanId"] == span_hex(root)
    assert sink.problems() == []
    for entity in sink.entities():
        assert validate_entity(entity) == []
    assert all(r.body["repoId"] == "repo-serve" for r in sink.requests)
    assert API_KEY not in serve.log


def test_kill_9_while_streaming_loses_nothing_acknowledged(tmp_path: Path, sink: BatchSink) -> None:
    traces = make_spans(400, children=9)  # 4,000 spans
    acknowledged: list[str] = []
    lock = threading.Lock()
    spool = tmp_path / "spool"

    def stream(serve: ServeProcess, part: list) -> None:
        with httpx.Client(timeout=5) as client:
            for spans in part:
                try:
                    response = client.post(
                        f"{serve.http_url}/v1/traces",
                        content=otlp_body(spans),
                        headers={"content-type": "application/x-protobuf"},
                    )
                except httpx.TransportError:
                    return  # the process is gone
                if response.status_code == 200:
                    with lock:
                        acknowledged.extend(span_hex(s) for s in spans)

    # Mapping in a worker process: the crash must not leave it behind either.
    with serving(spool, maxim_env(sink), [*FAST, "--map-workers", "1"]) as serve:
        helpers = descendants(serve.process.pid)
        assert helpers, "the mapping worker processes are running"
        clients = [threading.Thread(target=stream, args=(serve, traces[i::4])) for i in range(4)]
        for client in clients:
            client.start()
        # Kill while four clients are mid-stream, the writer is committing and the shipper is deleting.
        while True:
            with lock:
                if len(acknowledged) >= 1500:
                    break
            time.sleep(0.01)
        serve.kill()
        for client in clients:
            client.join()
    assert 1500 <= len(acknowledged) < 4000
    end = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in helpers) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists()], "helper processes outlived the sidecar"

    with serving(spool, maxim_env(sink), FAST) as again:
        delivered = sink.wait_for(lambda s: set(acknowledged) <= set(s.entities_by_id()), timeout=30)
        ids = [e["id"] for e in sink.entities()]
        lost = set(acknowledged) - set(ids)
        duplicates = len(ids) - len(set(ids))
        print(f"kill -9: acknowledged {len(acknowledged)} spans, lost {len(lost)}, duplicate entities {duplicates}")
        assert delivered and not lost
        assert again.terminate() == 0
    assert sink.problems() == []


def test_sigterm_exits_0_within_the_grace_and_keeps_unshipped_spans(tmp_path: Path, sink: BatchSink) -> None:
    sink.refuse_connections()  # Maxim unreachable: nothing can ship before the stop
    traces = make_spans(5)
    spool = tmp_path / "spool"
    with serving(spool, maxim_env(sink), ["--grace-period", "2", "--assembly-wait", "0"]) as serve:
        exporter = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=10)
        for spans in traces:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        started = time.monotonic()
        assert serve.terminate(timeout=15) == 0
        took = time.monotonic() - started
        assert took < 2 + 5, took  # the grace period plus process teardown on a busy machine
        assert "stay in the spool" in serve.log

    sink.resume()
    with serving(spool, maxim_env(sink), FAST) as again:
        ids = [span_hex(s) for spans in traces for s in spans]
        assert sink.wait_for_entities(ids, timeout=15)
        assert again.terminate() == 0


def test_a_full_spool_answers_503_and_unavailable_and_loses_nothing(tmp_path: Path, sink: BatchSink) -> None:
    import grpc
    from google.rpc import error_details_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    sink.refuse_connections()  # nothing drains while the spool fills
    traces = make_spans(200, children=9)
    acknowledged: list[str] = []
    args = ["--spool-max-bytes", "256KiB", "--assembly-wait", "0", "--grace-period", "1"]
    with serving(tmp_path / "spool", maxim_env(sink), args) as serve:
        refused = None
        with httpx.Client(timeout=5) as client:
            for spans in traces:
                response = client.post(
                    f"{serve.http_url}/v1/traces",
                    content=otlp_body(spans),
                    headers={"content-type": "application/x-protobuf"},
                )
                if response.status_code != 200:
                    refused = response
                    break
                acknowledged.extend(span_hex(s) for s in spans)
        assert refused is not None and refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert acknowledged

        with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(otlp_body(traces[-1]))
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(request, timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            trailers = dict(caught.value.trailing_metadata())
            retry_info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
            assert retry_info.retry_delay.seconds >= 1

        assert serve.readyz()[1]["spool"]["full"] is True
        metrics = serve.get("/metrics")[1].decode()
        assert 'maxim_bridge_receiver_refused_spans_total{reason="overloaded",receiver="http"} 10.0' in metrics
        assert 'maxim_bridge_receiver_refused_spans_total{reason="overloaded",receiver="grpc"} 10.0' in metrics

        sink.resume()
        assert sink.wait_for(lambda s: set(acknowledged) <= set(s.entities_by_id()), timeout=30)
        assert serve.terminate() == 0


def test_without_an_api_key_spans_go_to_the_embedded_local_store(tmp_path: Path) -> None:
    from maxim_otel_bridge.config import Destination, Secret
    from maxim_otel_bridge.readback import fetch_trace

    local_port = free_port()
    traces = make_spans(2)
    spool = tmp_path / "spool"
    args = [*FAST, "--local-store-endpoint", f"127.0.0.1:{local_port}"]
    with serving(spool, clean_environ(), args) as serve:
        status, body = serve.readyz()
        assert status == 200
        assert body["destination"]["embedded_local_store"] is True
        assert body["destination"]["url"] == f"http://127.0.0.1:{local_port}"
        exporter = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=10)
        for spans in traces:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()

        local = Destination(f"http://127.0.0.1:{local_port}", Secret("local"), "local")
        for spans in traces:
            root = next(s for s in spans if s.parent is None)
            end = time.monotonic() + 15
            while not (result := fetch_trace(local, trace_hex(root))).ok and time.monotonic() < end:
                time.sleep(0.1)
            assert result.ok, result.error
            assert result.data["id"] == trace_hex(root)
        assert serve.terminate() == 0
    warnings = [line for line in serve.log.splitlines() if "embedded local store" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert (spool / "local-store.sqlite3").exists()


def test_the_auth_token_setting_reaches_the_receivers(tmp_path: Path, sink: BatchSink) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    token = "otlp-token-314159"
    traces = make_spans(1)
    with serving(tmp_path / "spool", maxim_env(sink), [*FAST, "--auth-token", token]) as serve:
        anonymous = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=5)
        assert anonymous.export(traces[0]) is SpanExportResult.FAILURE
        anonymous.shutdown()
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(otlp_body(traces[0]))
        with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel, pytest.raises(grpc.RpcError) as refused:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert serve.readyz()[1]["spool"]["spans"] == 0  # nothing refused was stored

        exporter = HttpSpanExporter(
            endpoint=f"{serve.http_url}/v1/traces", timeout=5, headers={"Authorization": f"Bearer {token}"}
        )
        assert exporter.export(traces[0]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert sink.wait_for_entities([span_hex(s) for s in traces[0]], timeout=15)
        assert serve.terminate() == 0
    assert token not in serve.log
