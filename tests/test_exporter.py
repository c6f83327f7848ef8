"""MaximSpanExporter with the real OTel SDK, sending to the real batch sink server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fakes.batch_sink import BatchSink, CannedResponse, ReceivedRequest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from maxim_otel_bridge import MaximSpanExporter
from maxim_otel_bridge.config import ConfigError
from maxim_otel_bridge.deadletter import read_dead_letters
from maxim_otel_bridge.retry import BackoffPolicy

API_KEY = "sk-exporter-secret-987654321"


@pytest.fixture
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


def make_exporter(sink: BatchSink, tmp_path: Path, **options: object) -> MaximSpanExporter:
    options.setdefault("dead_letter_path", tmp_path / "dead.jsonl")
    return MaximSpanExporter(
        api_key=API_KEY,
        repo_id="repo-e2e",
        base_url=sink.url,
        environ={},
        **options,  # type: ignore[arg-type]
    )


def provider_with(exporter: MaximSpanExporter, *, batch: bool = True) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-agent"}))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=50) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


def hex_span(span: trace.Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def hex_trace(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def run_agent(tracer: trace.Tracer) -> dict[str, str]:
    """An agent that calls a model, then a tool: the shape GenAI instrumentations produce."""
    with tracer.start_as_current_span(
        "invoke_agent weather",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather", "session.id": "sess-42"},
    ) as agent:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.usage.input_tokens": 21,
                "gen_ai.usage.output_tokens": 9,
                "gen_ai.input.messages": json.dumps(
                    [
                        {"role": "system", "parts": [{"type": "text", "content": "You report weather."}]},
                        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                    ]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "call_1",
                                    "name": "get_weather",
                                    "arguments": {"city": "Paris"},
                                }
                            ],
                            "finish_reason": "tool_call",
                        }
                    ]
                ),
            },
        ) as chat:
            pass
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.description": "Current weather for a city",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                "gen_ai.tool.call.result": "sunny, 21C",
            },
        ) as tool:
            pass
    return {"trace": hex_trace(agent), "agent": hex_span(agent), "chat": hex_span(chat), "tool": hex_span(tool)}


def test_end_to_end_agent_tree_through_the_batch_span_processor(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path)
    provider = provider_with(exporter)
    ids = run_agent(provider.get_tracer("test.agent"))
    provider.shutdown()  # flushes the processor, then shuts the exporter down

    assert sink.problems() == []
    assert all(r.headers["x-maxim-api-key"] == API_KEY and r.body["repoId"] == "repo-e2e" for r in sink.requests)
    got = sink.entities_by_id()
    assert got["sess-42"] == {"id": "sess-42", "type": "session"}

    trace_entity = got[ids["trace"]]
    assert trace_entity["type"] == "trace"
    assert trace_entity["name"] == "invoke_agent weather"
    assert trace_entity["sessionId"] == "sess-42"

    agent = got[ids["agent"]]
    assert (agent["type"], agent["name"], agent["traceId"]) == ("span", "invoke_agent weather", ids["trace"])
    assert "spanId" not in agent  # directly under the trace

    chat = got[ids["chat"]]
    assert chat["type"] == "generation"
    assert (chat["traceId"], chat["spanId"]) == (ids["trace"], ids["agent"])
    assert chat["provider"] == "openai"
    assert chat["model"] == "gpt-4o-2024-08-06"
    assert chat["modelParameters"]["temperature"] == 0.2
    assert chat["messages"] == [
        {"role": "system", "content": "You report weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    choice = chat["result"]["choices"][0]
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert chat["result"]["usage"] == {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}

    tool = got[ids["tool"]]
    assert tool["type"] == "toolCall"
    assert (tool["traceId"], tool["spanId"]) == (ids["trace"], ids["agent"])
    assert (tool["name"], tool["description"]) == ("get_weather", "Current weather for a city")
    assert json.loads(tool["args"]) == {"city": "Paris"}
    assert tool["result"] == "sunny, 21C"

    # Parents arrive before children, even though the SDK exported the children first.
    order = [e["id"] for e in sink.entities()]
    assert order.index(ids["trace"]) < order.index(ids["agent"]) < order.index(ids["chat"])
    assert order.index(ids["agent"]) < order.index(ids["tool"])
    assert not (tmp_path / "dead.jsonl").exists()
    stats = exporter.stats
    assert (stats.spans_received, stats.spans_buffered, stats.entities_pending) == (3, 0, 0)
    assert stats.entities_delivered == len(sink.entities())
    assert (stats.entities_dead_lettered, stats.failed_sends) == (0, 0)


def test_children_exported_one_by_one_wait_for_their_root(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, trace_wait=60)
    provider = provider_with(exporter, batch=False)  # every span exported alone, as it ends
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root") as root:
        with tracer.start_as_current_span("child"):
            pass
        # The child was exported but waits: nothing is sent before the root ends.
        assert not sink.wait_for(lambda s: s.request_count > 0, timeout=0.3)
    assert sink.wait_for_entities([hex_span(root)], timeout=10)
    assert sink.request_count == 1  # the whole trace in one request
    assert sink.problems() == []
    provider.shutdown()


def test_a_trace_whose_root_never_ends_is_sent_after_trace_wait(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, trace_wait=0.2)
    provider = provider_with(exporter, batch=False)
    tracer = provider.get_tracer("test")
    root = tracer.start_span("never ends")
    with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)) as child:
        pass
    assert sink.wait_for_entities([hex_span(child)], timeout=10)
    entity = sink.entities_by_id()[hex_span(child)]
    assert entity["traceId"] == hex_trace(child)
    assert sink.problems() == []
    provider.shutdown()


def test_a_late_child_links_to_its_parent_already_sent(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, trace_wait=60)
    provider = provider_with(exporter, batch=False)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("agent", attributes={"gen_ai.operation.name": "invoke_agent"}) as agent:
        late = tracer.start_span("background work")  # outlives its parent
    assert sink.wait_for_entities([hex_span(agent)], timeout=10)
    late.end()
    # Its parent was sent already, so it goes without waiting for trace_wait (60 s).
    assert sink.wait_for_entities([hex_span(late)], timeout=10)
    assert sink.entities_by_id()[hex_span(late)]["spanId"] == hex_span(agent)
    assert sink.problems() == []
    provider.shutdown()


def test_a_remote_parent_makes_a_local_root(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, trace_wait=60)
    provider = provider_with(exporter, batch=False)
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(remote))
    with provider.get_tracer("test").start_as_current_span("handle request", context=context) as server_span:
        pass
    assert sink.wait_for_entities([hex_span(server_span)], timeout=10)
    assert sink.problems() == []
    provider.shutdown()


def test_over_the_span_cap_traces_go_early_and_none_is_lost(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, trace_wait=600, max_buffered_spans=3)
    provider = provider_with(exporter, batch=False)
    tracer = provider.get_tracer("test")
    roots = [tracer.start_span(f"open root {n}") for n in range(6)]
    children = []
    for root in roots:
        with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)) as child:
            children.append(hex_span(child))
    assert exporter.buffered_spans <= 3
    provider.shutdown()
    assert set(children) <= set(sink.entities_by_id())
    assert sink.problems() == []


def test_shutdown_interrupts_a_backoff_wait_and_delivers_what_is_left(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, retry_deadline=600)
    provider = provider_with(exporter, batch=False)
    sink.enqueue(CannedResponse(503, {"Retry-After": "300"}))
    with provider.get_tracer("test").start_as_current_span("root") as root:
        pass
    assert sink.wait_for(lambda s: s.request_count == 1, timeout=10)
    stopper = threading.Thread(target=provider.shutdown)
    stopper.start()
    stopper.join(timeout=20)
    assert not stopper.is_alive(), "shutdown hung in a 300 s backoff wait"
    assert hex_span(root) in sink.entities_by_id()  # the final flush's attempt got through


def test_undelivered_at_shutdown_goes_to_the_dead_letter_file(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path)
    provider = provider_with(exporter, batch=False)
    sink.decide = lambda request: CannedResponse(503)
    with provider.get_tracer("test").start_as_current_span("root") as root:
        pass
    provider.shutdown()
    letters = list(read_dead_letters(tmp_path / "dead.jsonl"))
    assert hex_span(root) in {letter["entity"]["id"] for letter in letters}
    assert all("not delivered before shutdown" in letter["reason"] and "503" in letter["reason"] for letter in letters)
    stats = exporter.stats
    assert stats.entities_delivered == 0
    assert stats.entities_dead_lettered == len(letters)
    assert stats.failed_sends >= 1


def test_pending_overflow_is_dead_lettered_not_dropped(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(
        sink, tmp_path, max_pending_entities=2, retry_deadline=0.5, backoff=BackoffPolicy(initial=0.1, maximum=0.1)
    )
    provider = provider_with(exporter, batch=False)
    sink.refuse_connections()
    tracer = provider.get_tracer("test")
    roots = []
    for n in range(3):
        with tracer.start_as_current_span(f"root {n}") as root:
            roots.append(hex_span(root))
    exporter.force_flush(timeout_millis=100)
    sink.resume()
    provider.shutdown()
    buried = {letter["entity"]["id"] for letter in read_dead_letters(tmp_path / "dead.jsonl")}
    received = set(sink.entities_by_id())
    assert set(roots) <= buried | received
    assert any("pending queue full" in letter["reason"] for letter in read_dead_letters(tmp_path / "dead.jsonl"))


def test_force_flush_delivers_buffered_traces(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, trace_wait=600)
    provider = provider_with(exporter, batch=False)
    tracer = provider.get_tracer("test")
    root = tracer.start_span("open root")
    with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)) as child:
        pass
    assert exporter.buffered_spans == 1
    assert exporter.force_flush() is True
    assert hex_span(child) in sink.entities_by_id()
    provider.shutdown()


def test_force_flush_reports_false_while_maxim_is_down(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path, backoff=BackoffPolicy(initial=0.05, maximum=0.05))
    provider = provider_with(exporter, batch=False)
    sink.refuse_connections()
    with provider.get_tracer("test").start_as_current_span("root"):
        pass
    assert exporter.force_flush(timeout_millis=300) is False
    assert exporter.pending_entities > 0
    sink.resume()
    assert exporter.force_flush(timeout_millis=5000) is True
    provider.shutdown()


def test_export_never_raises_and_a_bad_span_costs_no_other(
    sink: BatchSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = make_exporter(sink, tmp_path)
    provider = TracerProvider()
    tracer = provider.get_tracer("test")  # no processor: the spans are handed to export() by hand
    with tracer.start_as_current_span("good root") as good:
        pass
    with caplog.at_level(logging.ERROR):
        result = exporter.export([object(), good])  # type: ignore[list-item]
    assert result is SpanExportResult.FAILURE
    assert any("skipping a span that could not be read" in r.getMessage() for r in caplog.records)
    assert sink.wait_for_entities([hex_span(good)], timeout=10)
    assert exporter.stats.spans_received == 1
    exporter.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE  # after shutdown


def test_error_status_reaches_maxim(sink: BatchSink, tmp_path: Path) -> None:
    exporter = make_exporter(sink, tmp_path)
    provider = provider_with(exporter)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("agent") as agent, tracer.start_as_current_span("step") as step:
        step.set_status(Status(StatusCode.ERROR, "tool exploded"))
    provider.shutdown()
    got = sink.entities_by_id()
    assert got[hex_span(step)]["spanId"] == hex_span(agent)
    assert "tool exploded" in json.dumps(got[hex_span(step)])
    assert sink.problems() == []


# -- configuration ---------------------------------------------------------------------------------


def test_missing_key_or_repo_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="MAXIM_API_KEY"):
        MaximSpanExporter(environ={})
    with pytest.raises(ConfigError, match="MAXIM_LOG_REPO_ID"):
        MaximSpanExporter(api_key=API_KEY, environ={})


def test_settings_come_from_the_environment(sink: BatchSink, tmp_path: Path) -> None:
    env = {
        "MAXIM_API_KEY": API_KEY,
        "MAXIM_LOG_REPO_ID": "repo-env",
        "MAXIM_BASE_URL": sink.url,
        "MAXIM_BRIDGE_TRACE_WAIT": "0.1",
        "MAXIM_BRIDGE_MAX_BATCH_ENTITIES": "2",
        "MAXIM_BRIDGE_DEAD_LETTER_PATH": str(tmp_path / "env-dead.jsonl"),
    }
    exporter = MaximSpanExporter(environ=env)
    assert exporter.destination.repo_id == "repo-env"
    provider = provider_with(exporter, batch=False)
    tracer = provider.get_tracer("test")
    root = tracer.start_span("open")
    with tracer.start_as_current_span("a", context=trace.set_span_in_context(root)) as a:
        pass
    # Sent after 0.1 s without the root; trace + span in batches of at most 2.
    assert sink.wait_for_entities([hex_span(a)], timeout=10)
    assert all(len(r.logs) <= 2 for r in sink.requests)
    assert sink.requests[0].body["repoId"] == "repo-env"
    provider.shutdown()


def test_a_bad_optional_env_value_warns_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    env = {"MAXIM_BASE_URL": "http://127.0.0.1:9", "MAXIM_BRIDGE_TRACE_WAIT": "soon", "MAXIM_BRIDGE_TIMEOUT": "-3"}
    with caplog.at_level(logging.WARNING, logger="maxim_otel_bridge.exporter"):
        exporter = MaximSpanExporter(environ=env, dead_letter_path="none")
    try:
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "MAXIM_BRIDGE_TRACE_WAIT" in messages and "MAXIM_BRIDGE_TIMEOUT" in messages
        assert "trace_wait=5.0" in repr(exporter)
    finally:
        exporter.shutdown()


def test_a_local_store_needs_no_key() -> None:
    exporter = MaximSpanExporter(base_url="http://127.0.0.1:8787", environ={}, dead_letter_path="none")
    assert exporter.destination.repo_id == "local"
    exporter.shutdown()


def test_the_api_key_never_shows(sink: BatchSink, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        exporter = make_exporter(sink, tmp_path, backoff=BackoffPolicy(initial=0.05, maximum=0.05))
        texts += [repr(exporter), str(exporter), repr(exporter.destination)]
        provider = provider_with(exporter, batch=False)
        sink.enqueue(503, 401)
        with provider.get_tracer("test").start_as_current_span("root"):
            pass
        exporter.force_flush(timeout_millis=2000)
        sink.refuse_connections()
        with provider.get_tracer("test").start_as_current_span("root 2"):
            pass
        provider.shutdown()
    try:
        MaximSpanExporter(api_key=API_KEY, base_url="ftp://nowhere", environ={})
    except ConfigError as exc:
        texts.append(str(exc))
    texts += [r.getMessage() for r in caplog.records]
    texts.append((tmp_path / "dead.jsonl").read_text())
    assert len(caplog.records) >= 3
    for text in texts:
        assert API_KEY not in text


def test_registered_as_the_maxim_traces_exporter() -> None:
    (entry,) = [e for e in entry_points(group="opentelemetry_traces_exporter") if e.name == "maxim"]
    assert entry.load() is MaximSpanExporter


def test_a_mapping_failure_keeps_the_raw_spans_in_the_dead_letter_file(
    sink: BatchSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: the mapping is pure and property-tested, so a bug in it is simulated here.
    def broken_mapping(*args: object, **kwargs: object) -> None:
        raise RuntimeError("mapping bug")

    monkeypatch.setattr("maxim_otel_bridge.pipeline.map_trace_part", broken_mapping)
    exporter = make_exporter(sink, tmp_path)
    provider = provider_with(exporter, batch=False)
    with provider.get_tracer("test").start_as_current_span("root", attributes={"k": "v"}) as root:
        pass
    provider.shutdown()
    (letter,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert letter["reason"] == "mapping failed: RuntimeError: mapping bug"
    assert letter["entity"]["type"] == "spanRecord"
    assert letter["entity"]["record"]["span_id"] == hex_span(root)
    assert letter["entity"]["record"]["attributes"] == {"k": "v"}
    assert sink.request_count == 0


def test_a_poison_entity_is_dead_lettered_and_the_rest_of_its_trace_delivered(sink: BatchSink, tmp_path: Path) -> None:
    def refuse_generations(request: ReceivedRequest) -> CannedResponse | None:
        if any(e.get("type") == "generation" for e in request.logs):
            return CannedResponse(400, body={"error": {"message": "generation refused"}})
        return None

    sink.decide = refuse_generations
    exporter = make_exporter(sink, tmp_path)
    provider = provider_with(exporter)
    ids = run_agent(provider.get_tracer("test.agent"))
    provider.shutdown()
    (letter,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert letter["entity"]["id"] == ids["chat"]
    assert "HTTP 400" in letter["reason"] and "generation refused" in letter["reason"]
    got = sink.entities_by_id()
    assert {ids["trace"], ids["agent"], ids["tool"]} <= set(got)
    assert ids["chat"] not in got
    assert exporter.stats.entities_dead_lettered == 1


def test_a_wrong_key_is_reported_once_and_the_entities_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with BatchSink(api_key="the-right-key") as sink:
        exporter = make_exporter(sink, tmp_path)  # sends API_KEY: refused with 401
        provider = provider_with(exporter, batch=False)
        tracer = provider.get_tracer("test")
        with caplog.at_level(logging.ERROR, logger="maxim_otel_bridge"):
            with tracer.start_as_current_span("first"):
                pass
            assert exporter.force_flush(timeout_millis=2000) is False
            with tracer.start_as_current_span("second"):
                pass
            assert exporter.force_flush(timeout_millis=2000) is False
        assert exporter.pending_entities > 0  # kept for when the key is fixed, not dropped
        auth_errors = [r for r in caplog.records if "refused the API key" in r.getMessage()]
        assert len(auth_errors) == 1
        assert all(r.status == 401 for r in sink.requests)
        provider.shutdown()
