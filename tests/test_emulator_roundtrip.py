"""Real OTel SDK spans -> MaximSpanExporter -> the local store over HTTP -> fetch_trace -> the nested timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from maxim_otel_bridge import MaximSpanExporter
from maxim_otel_bridge.config import Destination
from maxim_otel_bridge.emulator import EmulatorServer
from maxim_otel_bridge.readback import fetch_trace, format_trace_tree
from maxim_otel_bridge.schema import validate_entity

KEY = "sk-roundtrip-local"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(tmp_path / "store.db", api_key=KEY) as server:
        yield server


def exporter_for(store: EmulatorServer, tmp_path: Path, **options: object) -> MaximSpanExporter:
    return MaximSpanExporter(
        api_key=KEY, repo_id="repo-local", base_url=store.url, environ={},
        dead_letter_path=tmp_path / "dead.jsonl", **options,  # type: ignore[arg-type]
    )


def hex_id(span: trace.Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def chat_attributes(model: str, prompt: str, answer: str, tokens: tuple[int, int]) -> dict:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]
        ),
    }


def run_agents(tracer: trace.Tracer) -> dict[str, str]:
    """planner agent > (chat, tool call, booker agent > chat that fails)."""
    with tracer.start_as_current_span(
        "invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
    ) as planner:
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes=chat_attributes("gpt-4o", "Plan", "Search", (40, 8))
        ) as chat:
            pass
        with tracer.start_as_current_span(
            "execute_tool search",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.arguments": '{"q": "Oslo"}',
                "gen_ai.tool.call.result": "2 flights",
            },
        ) as tool:
            pass
        with (
            tracer.start_as_current_span(
                "invoke_agent booker",
                attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "booker"},
            ) as booker,
            tracer.start_as_current_span(
                "chat gpt-4o-mini",
                kind=trace.SpanKind.CLIENT,
                attributes=chat_attributes("gpt-4o-mini", "Book", "", (12, 0)),
            ) as failed,
        ):
            failed.set_status(Status(StatusCode.ERROR, "rate limited"))
    return {
        "trace": format(planner.get_span_context().trace_id, "032x"),
        "planner": hex_id(planner),
        "chat": hex_id(chat),
        "tool": hex_id(tool),
        "booker": hex_id(booker),
        "failed": hex_id(failed),
    }


def test_exporter_round_trip_through_the_local_store(store: EmulatorServer, tmp_path: Path) -> None:
    exporter = exporter_for(store, tmp_path)
    provider = TracerProvider(resource=Resource.create({"service.name": "trip-agent"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    ids = run_agents(provider.get_tracer("test.roundtrip"))
    provider.shutdown()
    stats = exporter.stats
    assert (stats.entities_dead_lettered, stats.failed_sends, stats.entities_pending) == (0, 0, 0)

    result = fetch_trace(Destination.resolve(KEY, "repo-local", store.url, environ={}), ids["trace"])
    assert result.ok, result.error
    data = result.data
    assert data["id"] == ids["trace"] and data["name"] == "invoke_agent planner"
    assert isinstance(data["duration"], (int, float)) and data["duration"] >= 0

    (planner,) = data["timeline"]
    assert (planner["id"], planner["type"]) == (ids["planner"], "span")
    children = {entry["id"]: entry for entry in planner["timeline"]}
    assert set(children) == {ids["chat"], ids["tool"], ids["booker"]}
    chat = children[ids["chat"]]
    assert chat["type"] == "generation" and chat["model"] == "gpt-4o"
    assert chat["completionResult"]["usage"] == {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}
    assert chat["completionResult"]["choices"][0]["message"]["content"] == "Search"
    tool = children[ids["tool"]]
    assert tool["type"] == "toolCall" and tool["name"] == "search" and tool["result"] == "2 flights"
    booker = children[ids["booker"]]
    (failed,) = booker["timeline"]
    assert failed["id"] == ids["failed"] and failed["type"] == "generation"
    assert "rate limited" in json.dumps(failed.get("error")) + json.dumps(failed["completionResult"])
    # Children are in time order, and every stored entity is valid by the published schema.
    starts = [entry["startTimestamp"] for entry in planner["timeline"]]
    assert starts == sorted(starts)
    stored = [store.store.get(ids[name]) for name in ("planner", "chat", "tool", "booker", "failed")]
    assert all(entity is not None and validate_entity(entity.data) == [] for entity in stored)

    tree = format_trace_tree(data)
    assert "model gpt-4o (openai)  tokens 40 in / 8 out / 48 total" in tree
    (failed_line,) = [line for line in tree.splitlines() if "generation chat gpt-4o-mini" in line]
    assert failed_line.startswith(("   │  └─ generation", "      └─ generation"))  # under booker, under planner
    assert "ERROR" in failed_line and "rate limited" in failed_line


def test_children_shipped_before_their_parent_end_up_nested(store: EmulatorServer, tmp_path: Path) -> None:
    # trace_wait=0: each export ships what it has, so the generation reaches the store before its agent span
    # has ended; the exporter announces the parent with a bare placeholder that the finished span later fills.
    exporter = exporter_for(store, tmp_path, trace_wait=0)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.roundtrip")
    with tracer.start_as_current_span("invoke_agent solo", attributes={"gen_ai.operation.name": "invoke_agent"}) as agent:
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=trace.SpanKind.CLIENT, attributes=chat_attributes("gpt-4o", "Hi", "Hello", (3, 2))
        ) as chat:
            pass
        assert exporter.force_flush()
        assert store.store.get(hex_id(chat)) is not None
        placeholder = store.store.get(hex_id(agent))
        assert placeholder is not None and "name" not in placeholder.data and placeholder.version == 1
    provider.shutdown()
    assert exporter.stats.entities_dead_lettered == 0  # nothing refused by the store's schema check
    finished = store.store.get(hex_id(agent))
    assert finished is not None and finished.data["name"] == "invoke_agent solo" and finished.version > 1

    trace_id = format(agent.get_span_context().trace_id, "032x")
    result = fetch_trace(Destination.resolve(KEY, "repo-local", store.url, environ={}), trace_id)
    assert result.ok, result.error
    (top,) = result.data["timeline"]
    assert top["id"] == hex_id(agent)
    assert [entry["id"] for entry in top["timeline"]] == [hex_id(chat)]
