"""Spans from a real Pydantic AI agent run (its test model, a real tool) mapped to Maxim entities."""

from __future__ import annotations

from fakes.sdk_spans import SpanRecorder
from pydantic_ai import Agent
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.schema import validate_batch


def test_agent_run_with_a_tool() -> None:
    rec = SpanRecorder()
    agent = Agent(TestModel(), name="weather_agent", system_prompt="Be terse.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"18C in {city}"

    agent.instrument = InstrumentationSettings(tracer_provider=rec.provider, include_content=True)
    result = agent.run_sync("Weather in Paris?")
    rec.shutdown()

    entities = map_trace_part(rec.records()).entities
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    session, trace, agent_span, asked, tool, answered = entities
    assert session["type"] == "session" and trace["sessionId"] == session["id"]
    assert (trace["input"], trace["output"]) == ("Weather in Paris?", result.output)
    assert agent_span["type"] == "span" and agent_span["name"] == "invoke_agent weather_agent"
    # The aggregate usage of the agent is not a second count: only generations carry usage.
    assert "gen_ai.aggregated_usage.input_tokens" in agent_span["metadata"] and "result" not in agent_span

    assert [e["type"] for e in (asked, tool, answered)] == ["generation", "toolCall", "generation"]
    assert all(e["spanId"] == agent_span["id"] for e in (asked, tool, answered))
    # Pydantic AI's test model reports provider "test": outside Maxim's enum, kept as a tag.
    assert asked["provider"] == "openai" and asked["tags"] == {"provider.original": "test"}
    call = asked["result"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert tool["name"] == "get_weather" and tool["args"] == call["function"]["arguments"]
    assert tool["result"].startswith("18C in ")
    # Tool results arrive as `role: user` parts; Maxim gets a `role: tool` message paired by id.
    assert answered["messages"][-1] == {"role": "tool", "content": tool["result"], "tool_call_id": call["id"]}
    assert answered["result"]["choices"][0]["message"]["content"] == result.output
