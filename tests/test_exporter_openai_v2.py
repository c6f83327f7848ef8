"""End to end with the official openai-v2 instrumentation: the real `openai` client over real HTTP to a local
OpenAI-compatible server (`fakes.openai_server`), real GenAI spans, `BatchSpanProcessor` + `MaximSpanExporter`,
delivered to the batch sink. Only OpenAI's server is faked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fakes.batch_sink import BatchSink
from fakes.genai_app import WEATHER_TOOL
from fakes.openai_server import OpenAIServer, tool_call_reply
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from maxim_otel_bridge import MaximSpanExporter


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[TracerProvider, BatchSink]]:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    with BatchSink(api_key="maxim-key") as sink:
        exporter = MaximSpanExporter(
            api_key="maxim-key",
            repo_id="repo-openai",
            base_url=sink.url,
            dead_letter_path=tmp_path / "dead.jsonl",
            environ={},
        )
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            yield provider, sink
        finally:
            instrumentor.uninstrument()
            provider.shutdown()


def test_agent_with_openai_tool_round_trip(instrumented: tuple[TracerProvider, BatchSink]) -> None:
    provider, sink = instrumented
    tracer = provider.get_tracer("weather.agent")
    messages: list[dict] = [
        {"role": "system", "content": "Answer with the weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    with OpenAIServer() as server:
        client = openai.OpenAI(api_key="sk-openai-test", base_url=server.base_url, max_retries=0)
        with tracer.start_as_current_span(
            "invoke_agent weather", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather"}
        ) as agent:
            first = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], temperature=0.1
            )
            call = first.choices[0].message.tool_calls[0]
            with tracer.start_as_current_span(
                "execute_tool get_weather",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": call.function.name,
                    "gen_ai.tool.call.id": call.id,
                    "gen_ai.tool.call.arguments": call.function.arguments,
                    "gen_ai.tool.call.result": "18C, sunny",
                },
            ) as tool:
                pass
            messages += tool_call_reply(call, "18C, sunny")
            chunks = list(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    tools=[WEATHER_TOOL],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
        assert len(server.requests) == 2
    provider.shutdown()

    assert sink.problems() == []
    got = sink.entities_by_id()
    trace_id = format(agent.get_span_context().trace_id, "032x")
    agent_id = format(agent.get_span_context().span_id, "016x")
    assert got[trace_id]["type"] == "trace"
    assert got[agent_id]["type"] == "span"
    assert "spanId" not in got[agent_id]

    streamed_id = chunks[0].id
    generations = {e["result"]["id"]: e for e in got.values() if e["type"] == "generation"}
    assert set(generations) == {first.id, streamed_id}
    for generation in generations.values():
        assert (generation["traceId"], generation["spanId"]) == (trace_id, agent_id)
        assert generation["provider"] == "openai"
        assert generation["model"] == "gpt-4o-mini-2024-07-18"

    asked = generations[first.id]
    assert asked["modelParameters"]["temperature"] == 0.1
    assert asked["messages"] == [
        {"role": "system", "content": "Answer with the weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    tool_calls = asked["result"]["choices"][0]["message"]["tool_calls"]
    assert tool_calls[0]["id"] == call.id
    assert tool_calls[0]["function"]["name"] == "get_weather"
    assert json.loads(tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert first.usage is not None
    assert asked["result"]["usage"] == {
        "prompt_tokens": first.usage.prompt_tokens,
        "completion_tokens": first.usage.completion_tokens,
        "total_tokens": first.usage.total_tokens,
    }

    answered = generations[streamed_id]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answered["result"]["choices"][0]["message"]["content"] == text == "It is 18°C and sunny in Paris."
    usage = chunks[-1].usage
    assert usage is not None
    assert answered["result"]["usage"]["prompt_tokens"] == usage.prompt_tokens
    assert answered["result"]["usage"]["completion_tokens"] == usage.completion_tokens
    tool_message = next(m for m in answered["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == call.id

    tool_entity = got[format(tool.get_span_context().span_id, "016x")]
    assert (tool_entity["type"], tool_entity["name"], tool_entity["spanId"]) == ("toolCall", "get_weather", agent_id)
    assert tool_entity["result"] == "18C, sunny"
