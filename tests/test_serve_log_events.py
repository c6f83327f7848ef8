"""GenAI content that arrives as OTLP log records, through a real `serve` process.

A real app process (`fakes.genai_app`: the real `openai` client, a real instrumentation, the official OTLP span
AND log exporters over gRPC or HTTP) talks to the local OpenAI-compatible server; the sidecar ships to the batch
sink. Whether the content rides on the spans (openai-v2 `SPAN_ONLY`), on log records only (`EVENT_ONLY`,
Traceloop's events mode) or on both (`SPAN_AND_EVENT`), the generations must carry the same messages, tool
calls and choices, once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.batch_sink import BatchSink
from fakes.genai_app import MODES, TOOL_RESULT
from fakes.openai_server import OpenAIServer
from fakes.serve_process import ServeProcess, clean_environ, serving, span_hex, trace_hex
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from maxim_otel_bridge.schema import validate_entity

API_KEY = "sk-serve-logs-5550123"
TESTS_DIR = Path(__file__).resolve().parent
SERVE_ARGS = ["--assembly-wait", "1", "--grace-period", "5"]


@pytest.fixture(scope="module")
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, sink: BatchSink) -> Iterator[ServeProcess]:
    """One sidecar for every mode: starting one is the slow part."""
    env = clean_environ({"MAXIM_API_KEY": API_KEY, "MAXIM_LOG_REPO_ID": "repo-logs", "MAXIM_BASE_URL": sink.url})
    with serving(tmp_path_factory.mktemp("logs") / "spool", env, SERVE_ARGS) as process:
        yield process


def run_app(mode: str, protocol: str, serve: ServeProcess, openai_server: OpenAIServer) -> dict[str, str]:
    endpoint = f"127.0.0.1:{serve.grpc_port}" if protocol == "grpc" else serve.http_url
    done = subprocess.run(
        [sys.executable, "-m", "fakes.genai_app", mode, protocol, endpoint, openai_server.base_url],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=TESTS_DIR,
        env=clean_environ({"PYTHONPATH": str(TESTS_DIR), "OTEL_SDK_DISABLED": "false"}),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def trace_entities(sink: BatchSink, trace_id: str) -> list[dict]:
    """Every accepted entity of one trace, as sent (not merged)."""
    return [e for e in sink.entities() if e.get("traceId") == trace_id or e.get("id") == trace_id]


def merged_generations(sink: BatchSink, trace_id: str) -> list[dict]:
    merged = sink.entities_by_id()
    ids = {e["id"] for e in trace_entities(sink, trace_id) if e.get("type") == "generation"}
    return sorted((merged[i] for i in ids), key=lambda g: g.get("startTimestamp") or "")


def has_content(generation: dict) -> bool:
    return bool(generation.get("messages")) and bool((generation.get("result") or {}).get("choices"))


def message_view(message: dict) -> dict[str, Any]:
    """What a message says, without the encoding details that differ between packages (JSON spacing)."""
    view: dict[str, Any] = {"role": message.get("role"), "content": message.get("content") or None}
    calls = message.get("tool_calls") or []
    if calls:
        view["tool_calls"] = [
            (c.get("id"), c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
        ]
    if message.get("tool_call_id"):
        view["tool_call_id"] = message["tool_call_id"]
    return view


def generation_view(generation: dict) -> dict[str, Any]:
    choices = generation["result"]["choices"]
    return {
        "messages": [message_view(m) for m in generation["messages"]],
        "choices": [(c.get("finish_reason"), message_view(c["message"])) for c in choices],
    }


def expected_views(app: dict[str, str], mode: str) -> list[dict[str, Any]]:
    call = (app["tool_call_id"], "get_weather", {"city": "Paris"})
    system = {"role": "system", "content": "Answer with the weather."}
    user = {"role": "user", "content": "Weather in Paris?"}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    # Traceloop's gen_ai.tool.message body holds the content only: the id is that of the call it answers.
    tool = {"role": "tool", "content": TOOL_RESULT, "tool_call_id": app["tool_call_id"]}
    return [
        {"messages": [system, user], "choices": [("tool_calls", assistant)]},
        {
            "messages": [system, user, assistant, tool],
            "choices": [("stop", {"role": "assistant", "content": "It is 18°C and sunny in Paris."})],
        },
    ]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("mode", MODES)
def test_generations_carry_the_same_content_in_every_mode(
    mode: str, protocol: str, serve: ServeProcess, sink: BatchSink, openai_server: OpenAIServer
) -> None:
    app = run_app(mode, protocol, serve, openai_server)
    trace_id = app["trace_id"]

    def complete(s: BatchSink) -> bool:
        generations = merged_generations(s, trace_id)
        return len(generations) == 2 and all(has_content(g) for g in generations)

    sink.wait_for(complete, timeout=20)
    generations = merged_generations(sink, trace_id)
    assert [generation_view(g) for g in generations] == expected_views(app, mode)
    for generation in generations:
        assert generation["spanId"] == app["agent_span_id"]
        assert generation["model"] == "gpt-4o-mini-2024-07-18"

    # Nothing doubled: every generation entity sent carries each message once, no record went as an event.
    sent = trace_entities(sink, trace_id)
    for entity in sent:
        if entity.get("type") == "generation" and entity.get("messages"):
            assert len(entity["messages"]) in (2, 4)
            assert len(entity["result"]["choices"]) == 1
    assert [e for e in sent if e.get("type") == "event"] == []
    assert sink.problems() == []
    for entity in sent:
        assert validate_entity(entity) == []


def test_log_records_are_counted_and_the_key_stays_out_of_the_log(
    serve: ServeProcess, sink: BatchSink, openai_server: OpenAIServer
) -> None:
    run_app("EVENT_ONLY", "http", serve, openai_server)
    status, body = serve.get("/metrics")
    assert status == 200
    text = body.decode()
    name = "maxim_bridge_receiver_accepted_log_records_total"
    accepted = [line for line in text.splitlines() if line.startswith(name)]
    assert accepted and float(accepted[0].rsplit(" ", 1)[1]) >= 2
    assert "maxim_bridge_spool_spooled_log_records_total" in text
    assert API_KEY not in serve.log


# -- late and orphan records: the official exporters, the order of arrival chosen by the test -----------------


def chat_with_details(question: str) -> tuple[list, list]:
    """A real SDK chat span under an agent span, and the details log record openai-v2 emits for it (EVENT_ONLY)."""
    spans = InMemorySpanExporter()
    logs = InMemoryLogRecordExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracer = tracer_provider.get_tracer("weather.agent")
    with tracer.start_as_current_span("invoke_agent weather"):
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
            },
        ):
            logger_provider.get_logger("opentelemetry.util.genai.handler").emit(
                LogRecord(
                    event_name="gen_ai.client.inference.operation.details",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": question}]}],
                        "gen_ai.output.messages": [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "Sunny."}],
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )
            )
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return list(spans.get_finished_spans()), list(logs.get_finished_logs())


def test_a_record_after_its_span_shipped_updates_the_same_generation(serve: ServeProcess, sink: BatchSink) -> None:
    span_exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{serve.grpc_port}", insecure=True, timeout=10)
    log_exporter = HttpLogExporter(endpoint=f"{serve.http_url}/v1/logs", timeout=10)
    try:
        # The sidecar remembers shipped generations for late records while it receives log records at all.
        _, warm_up = chat_with_details("warm up")
        assert log_exporter.export(warm_up) is LogRecordExportResult.SUCCESS
        spans, records = chat_with_details("Weather in Paris?")
        chat = next(s for s in spans if s.name.startswith("chat"))
        chat_id, trace = span_hex(chat), trace_hex(chat)
        assert span_exporter.export(spans) is SpanExportResult.SUCCESS
        assert sink.wait_for_entities([chat_id], timeout=15)
        assert "messages" not in sink.entities_by_id()[chat_id] or not sink.entities_by_id()[chat_id]["messages"]

        assert log_exporter.export(records) is LogRecordExportResult.SUCCESS
        assert sink.wait_for(lambda s: has_content(s.entities_by_id().get(chat_id, {})), timeout=15)
    finally:
        span_exporter.shutdown()
        log_exporter.shutdown()
    generation = sink.entities_by_id()[chat_id]
    assert generation["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert [c["message"]["content"] for c in generation["result"]["choices"]] == ["Sunny."]
    assert [e for e in trace_entities(sink, trace) if e.get("type") == "event"] == []
    assert sink.problems() == []


def test_a_record_whose_span_never_arrives_ships_as_an_event(serve: ServeProcess, sink: BatchSink) -> None:
    spans, records = chat_with_details("Is anyone there?")
    root = next(s for s in spans if s.parent is None)
    chat = next(s for s in spans if s.parent is not None)
    span_exporter = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=10)
    log_exporter = GrpcLogExporter(endpoint=f"127.0.0.1:{serve.grpc_port}", insecure=True, timeout=10)
    try:
        assert span_exporter.export([root]) is SpanExportResult.SUCCESS  # the chat span is lost on the way
        assert log_exporter.export(records) is LogRecordExportResult.SUCCESS
    finally:
        span_exporter.shutdown()
        log_exporter.shutdown()
    trace = trace_hex(root)

    def shipped(s: BatchSink) -> bool:
        return any(e.get("type") == "event" for e in trace_entities(s, trace))

    assert sink.wait_for(shipped, timeout=15)  # after the assembly window (1 s here)
    [event] = [e for e in trace_entities(sink, trace) if e.get("type") == "event"]
    assert event["name"] == "gen_ai.client.inference.operation.details"
    assert event["metadata"]["otel.span_id"] == span_hex(chat)
    assert event["metadata"]["gen_ai.input.messages"][0]["parts"][0]["content"] == "Is anyone there?"
    assert sink.entities_by_id()[span_hex(root)]["type"] == "span"
    assert sink.problems() == []


def test_acknowledged_records_survive_kill_9_and_join_spans_sent_after_the_restart(
    tmp_path: Path, sink: BatchSink
) -> None:
    env = clean_environ({"MAXIM_API_KEY": API_KEY, "MAXIM_LOG_REPO_ID": "repo-logs", "MAXIM_BASE_URL": sink.url})
    args = ["--assembly-wait", "60", "--grace-period", "5"]  # records wait for their span, whatever happens
    spool = tmp_path / "spool"
    spans, records = chat_with_details("Still there after a crash?")
    chat = next(s for s in spans if s.parent is not None)
    with serving(spool, env, args) as serve:
        exporter = GrpcLogExporter(endpoint=f"127.0.0.1:{serve.grpc_port}", insecure=True, timeout=10)
        assert exporter.export(records) is LogRecordExportResult.SUCCESS  # acknowledged: on disk
        exporter.shutdown()
        serve.kill()
    with serving(spool, env, args) as serve:
        exporter = HttpSpanExporter(endpoint=f"{serve.http_url}/v1/traces", timeout=10)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        chat_id = span_hex(chat)
        assert sink.wait_for(lambda s: has_content(s.entities_by_id().get(chat_id, {})), timeout=15)
    generation = sink.entities_by_id()[chat_id]
    assert generation["messages"] == [{"role": "user", "content": "Still there after a crash?"}]
    assert [e for e in trace_entities(sink, trace_hex(chat)) if e.get("type") == "event"] == []
