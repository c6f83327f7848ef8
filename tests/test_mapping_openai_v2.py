"""Spans made by the real OpenTelemetry openai-v2 instrumentation around the real OpenAI client.

Only OpenAI's server is faked (`fakes.openai_api`); the spans, their attributes and content capture
are the instrumentation's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from fakes.openai_api import ask_then_stream, fake_openai_client
from fakes.sdk_spans import SpanRecorder
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.schema import validate_batch


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[SpanRecorder]:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    rec = SpanRecorder()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=rec.provider)
    try:
        yield rec
    finally:
        instrumentor.uninstrument()
        rec.shutdown()


@pytest.fixture
def client() -> openai.OpenAI:
    return fake_openai_client()


def _generations(rec: SpanRecorder) -> list[dict]:
    # Each call is its own trace; the mapping groups records by trace id.
    entities = map_trace_part(rec.records()).entities
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    return [e for e in entities if e["type"] == "generation"]


def test_tool_call_then_streamed_answer(recorder: SpanRecorder, client: openai.OpenAI) -> None:
    ask_then_stream(client)

    asked, answered = _generations(recorder)
    assert asked["provider"] == "openai"
    assert asked["model"] == "gpt-4o-mini-2024-07-18"
    assert asked["modelParameters"] == {"temperature": 0.3}
    assert asked["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    choice = asked["result"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    # The instrumentation emits arguments as a JSON object; Maxim gets JSON text.
    assert choice["message"]["tool_calls"][0]["id"] == "call_9"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert asked["result"]["usage"] == {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
    assert asked["result"]["id"] == "chatcmpl-1"

    assert [m["role"] for m in answered["messages"]] == ["user", "assistant", "tool"]
    assert answered["messages"][2] == {"role": "tool", "content": "18C, sunny", "tool_call_id": "call_9"}
    assert answered["result"]["choices"][0]["message"]["content"] == "18°C and sunny."
    assert answered["result"]["choices"][0]["finish_reason"] == "stop"
    assert answered["result"]["usage"] == {"prompt_tokens": 31, "completion_tokens": 6, "total_tokens": 37}


def test_failed_call_becomes_a_generation_error(recorder: SpanRecorder, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
    (generation,) = _generations(recorder)
    assert generation["error"]["errorType"] == "openai.BadRequestError"
    assert "model not found" in generation["error"]["errorMessage"]
    assert generation["result"]["error"]["type"] == "openai.BadRequestError"
    assert generation["messages"] == [{"role": "user", "content": "hi"}]
