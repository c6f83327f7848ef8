"""The sidecar's content settings, end to end: OTLP/HTTP -> `serve` (mapping in a worker process) -> raw bytes at the fake Maxim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.batch_sink import BatchSink
from fakes.serve_process import clean_environ, serving
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_exporter import run_agent

from maxim_otel_bridge.mapping.content_policy import CONTENT_PLACEHOLDER, REDACTION_MARKER

API_KEY = "sk-serve-policy-5550199"
SECRET = "sk-live-0a1b2c3d4e5f"


@pytest.fixture
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


def test_content_off_and_redaction_through_the_sidecar(tmp_path: Path, sink: BatchSink) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("policy")
    with tracer.start_as_current_span("request", attributes={"app.api_token": SECRET}):
        ids = run_agent(tracer)
    provider.shutdown()
    spans = memory.get_finished_spans()

    env = clean_environ(
        {
            "MAXIM_API_KEY": API_KEY,
            "MAXIM_LOG_REPO_ID": "repo-policy",
            "MAXIM_BASE_URL": sink.url,
            "MAXIM_BRIDGE_CAPTURE_CONTENT": "false",
            "MAXIM_BRIDGE_REDACT": json.dumps([r"sk-live-[0-9a-f]+"]),
        }
    )
    args = ["--assembly-wait", "0.5", "--grace-period", "5", "--map-workers", "1"]
    with serving(tmp_path / "spool", env, args) as serve:
        exporter = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=10)
        try:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
        assert sink.wait_for_entities([ids["trace"], ids["agent"], ids["chat"], ids["tool"]], timeout=20)
        assert serve.terminate() == 0
        log = serve.log

    wire = b"".join(request.raw_body for request in sink.requests)
    for withheld in (b"Paris", b"You report weather", b"sunny, 21C", SECRET.encode()):
        assert withheld not in wire
    assert sink.problems() == []
    entities = sink.entities_by_id()
    chat = entities[ids["chat"]]
    assert [m["role"] for m in chat["messages"]] == ["system", "user"]
    assert chat["result"]["usage"]["total_tokens"] == 30
    assert chat["result"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert entities[ids["tool"]]["args"] == CONTENT_PLACEHOLDER
    request_span = next(e for e in sink.entities() if e.get("name") == "request" and e["type"] == "span")
    assert request_span["metadata"]["app.api_token"] == REDACTION_MARKER
    assert "content policy: message content not captured, 1 redaction pattern(s)" in log
    assert SECRET not in log and API_KEY not in log and "sk-live-[0-9a-f]+" not in log
