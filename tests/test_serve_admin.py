"""The admin endpoint of a real `serve` process: /healthz, /readyz (auth failure, outage), /metrics; outages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.batch_sink import BatchSink, CannedResponse, ReceivedRequest
from fakes.serve_process import clean_environ, make_spans, serving, span_hex
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from maxim_otel_bridge import __version__
from maxim_otel_bridge.mapping import part as mapping_part

API_KEY = "sk-admin-secret-777000111"
FAST = ["--assembly-wait", "0", "--grace-period", "3"]


@pytest.fixture
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


def maxim_env(sink: BatchSink, api_key: str = API_KEY) -> dict[str, str]:
    return clean_environ({"MAXIM_API_KEY": api_key, "MAXIM_LOG_REPO_ID": "repo-admin", "MAXIM_BASE_URL": sink.url})


def _wait(predicate, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _export(url: str, traces: list) -> None:
    exporter = HttpSpanExporter(endpoint=f"{url}/v1/traces", timeout=10)
    try:
        for spans in traces:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def test_healthz_readyz_and_metrics(tmp_path: Path, sink: BatchSink) -> None:
    traces = make_spans(4)
    with serving(tmp_path / "spool", maxim_env(sink), FAST) as serve:
        assert serve.get("/healthz")[0] == 200
        status, body = serve.readyz()
        assert status == 200 and body["ready"] is True and body["reasons"] == []
        assert body["receivers"] == {"grpc": "up", "http": "up"}
        assert body["spool"]["writable"] is True and body["spool"]["dir"] == str(tmp_path / "spool")
        assert body["destination"]["url"] == sink.url
        assert body["destination"]["embedded_local_store"] is False
        assert body["destination"]["status"] == "unknown"

        _export(serve.http_url, traces)
        assert sink.wait_for_entities([span_hex(s) for spans in traces for s in spans], timeout=15)
        assert _wait(lambda: serve.readyz()[1]["spool"]["spans"] == 0)
        assert serve.readyz()[1]["destination"]["status"] == "ok"

        status, metrics = serve.get("/metrics")
        text = metrics.decode()
        assert status == 200
        assert 'maxim_bridge_receiver_accepted_spans_total{receiver="http"} 20.0' in text
        assert "maxim_bridge_spool_spooled_spans_total 20.0" in text
        assert "maxim_bridge_exporter_sent_spans_total 20.0" in text
        assert "maxim_bridge_spool_oldest_span_age_seconds 0.0" in text
        assert 'maxim_bridge_exporter_request_duration_seconds_count{outcome="success"}' in text
        # The sidecar runs the build this test process imports: source, or extension modules when compiled.
        build = "python" if mapping_part.__file__.endswith(".py") else "compiled"
        assert f'maxim_bridge_build_info{{mapping="{build}",version="{__version__}"}} 1.0' in text
        for name in (
            "maxim_bridge_spool_bytes",
            "maxim_bridge_exporter_dead_lettered_spans_total",
            "maxim_bridge_exporter_send_failed_spans_total",
            "maxim_bridge_receiver_refused_spans",
        ):
            assert name in text
        assert serve.get("/nope")[0] == 404
        assert serve.terminate() == 0
    assert API_KEY not in serve.log


def test_a_refused_api_key_makes_the_sidecar_not_ready_with_the_reason(tmp_path: Path, sink: BatchSink) -> None:
    wrong = "sk-wrong-key-123123123"
    with serving(tmp_path / "spool", maxim_env(sink, api_key=wrong), FAST) as serve:
        _export(serve.http_url, make_spans(1))
        assert _wait(lambda: serve.readyz()[0] == 503)
        body = serve.readyz()[1]
        assert body["ready"] is False
        assert body["destination"]["status"] == "auth_failed"
        assert any("MAXIM_API_KEY" in reason for reason in body["reasons"])
        assert body["spool"]["spans"] == 5  # kept, not dropped
        assert serve.terminate() == 0
    assert wrong not in serve.log
    assert serve.log.count("refused the API key") == 1  # said once, not on every retry


def test_a_503_outage_is_delivered_after_recovery_with_a_bounded_request_rate(tmp_path: Path) -> None:
    down = threading.Event()
    down.set()

    def decide(request: ReceivedRequest) -> CannedResponse | None:
        return CannedResponse(503, {"Retry-After": "1"}) if down.is_set() else None

    traces = make_spans(30)
    args = [*FAST, "--ship-concurrency", "4", "--send-deadline", "1.5"]
    with BatchSink(api_key=API_KEY, decide=decide) as sink, serving(tmp_path / "spool", maxim_env(sink), args) as serve:
        _export(serve.http_url, traces)
        time.sleep(3.0)
        during = sink.request_count
        body = serve.readyz()[1]
        assert body["ready"] is True  # an unreachable Maxim is absorbed by the spool
        assert body["destination"]["status"] == "backing_off"
        # Retry-After 1 s honoured by one probing sender at a time: a handful of requests in 3 s,
        # not 4 senders x retries.
        assert during in range(1, 11), during  # at least one probe, at most 10
        down.clear()
        ids = [span_hex(s) for spans in traces for s in spans]
        assert sink.wait_for_entities(ids, timeout=20)
        assert serve.terminate() == 0
