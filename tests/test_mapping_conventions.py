"""Other conventions in the same precedence chain: OpenInference (from its real OpenAI instrumentation),
OpenLLMetry/Traceloop indexed attributes, and the Vercel AI SDK's `ai.*` attributes (SDK-made spans)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from fakes.openai_api import ask_then_stream, fake_openai_client
from fakes.sdk_spans import SpanRecorder
from openinference.instrumentation.openai import OpenAIInstrumentor
from openinference.semconv.trace import MessageAttributes, SpanAttributes, ToolCallAttributes
from opentelemetry.trace import SpanKind

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.schema import validate_batch


def _mapped(rec: SpanRecorder) -> list[dict]:
    entities = map_trace_part(rec.records()).entities
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    return entities


def _only(entities: list[dict], kind: str) -> dict:
    (entity,) = [e for e in entities if e["type"] == kind]
    return entity


@pytest.fixture
def openinference_recorder() -> Iterator[SpanRecorder]:
    rec = SpanRecorder()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=rec.provider)
    try:
        yield rec
    finally:
        instrumentor.uninstrument()
        rec.shutdown()


def test_openinference_openai_spans(openinference_recorder: SpanRecorder) -> None:
    client: openai.OpenAI = fake_openai_client()
    ask_then_stream(client)
    entities = _mapped(openinference_recorder)
    asked, answered = [e for e in entities if e["type"] == "generation"]

    assert (asked["model"], asked["provider"]) == ("gpt-4o-mini-2024-07-18", "openai")
    assert asked["modelParameters"] == {"temperature": 0.3}
    assert asked["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    choice = asked["result"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert asked["result"]["usage"] == {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
    # The flattened messages are carried by the entity, not repeated in its metadata.
    assert not any(key.startswith(SpanAttributes.LLM_INPUT_MESSAGES) for key in asked["metadata"])

    assert answered["messages"][2] == {"role": "tool", "content": "18C, sunny", "tool_call_id": "call_9"}
    assert answered["result"]["choices"][0]["message"]["content"] == "18°C and sunny."
    assert answered["result"]["usage"]["total_tokens"] == 37
    # The stream's first-token event becomes the time-to-first-chunk metric, not an event entity.
    assert answered["metrics"]["time_to_first_chunk_seconds"] >= 0
    assert not [e for e in entities if e["type"] == "event"]
    # The trace of a model call at the root shows the question, not the raw request body.
    traces = [e for e in entities if e["type"] == "trace"]
    assert traces[0]["input"] == "Weather in Paris?"


def test_openinference_tool_and_retriever_spans() -> None:
    rec = SpanRecorder()
    with rec.span("agent", 0, 100, {SpanAttributes.OPENINFERENCE_SPAN_KIND: "AGENT", SpanAttributes.INPUT_VALUE: "go"}):
        with rec.span(
            "lookup",
            10,
            20,
            {
                SpanAttributes.OPENINFERENCE_SPAN_KIND: "TOOL",
                SpanAttributes.TOOL_NAME: "lookup",
                SpanAttributes.TOOL_DESCRIPTION: "Finds things",
                SpanAttributes.INPUT_VALUE: '{"q": "x"}',
                SpanAttributes.OUTPUT_VALUE: "found",
            },
        ):
            pass
        with rec.span(
            "retrieve",
            30,
            40,
            {
                SpanAttributes.OPENINFERENCE_SPAN_KIND: "RETRIEVER",
                SpanAttributes.INPUT_VALUE: "what is x",
                f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.0.document.id": "d1",
                f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.0.document.content": "x is y",
                f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.0.document.score": 0.8,
                f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.1.document.id": "d2",
            },
        ):
            pass
    entities = _mapped(rec)
    tool = _only(entities, "toolCall")
    assert (tool["name"], tool["description"], tool["args"], tool["result"]) == (
        "lookup",
        "Finds things",
        '{"q": "x"}',
        "found",
    )
    retrieval = _only(entities, "retrieval")
    assert retrieval["input"] == "what is x"
    assert [json.loads(doc) for doc in retrieval["output"]] == [
        {"id": "d1", "content": "x is y", "score": 0.8},
        {"id": "d2"},
    ]
    assert _only(entities, "trace")["input"] == "go"


def test_openinference_indexed_tool_calls_and_images() -> None:
    prefix = f"{SpanAttributes.LLM_INPUT_MESSAGES}.0."
    out = f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.0."
    rec = SpanRecorder()
    with rec.span(
        "llm",
        0,
        10,
        {
            SpanAttributes.OPENINFERENCE_SPAN_KIND: "LLM",
            SpanAttributes.LLM_MODEL_NAME: "claude-3",
            SpanAttributes.LLM_PROVIDER: "anthropic",
            prefix + MessageAttributes.MESSAGE_ROLE: "user",
            prefix + f"{MessageAttributes.MESSAGE_CONTENTS}.0.message_content.type": "text",
            prefix + f"{MessageAttributes.MESSAGE_CONTENTS}.0.message_content.text": "What is this?",
            prefix + f"{MessageAttributes.MESSAGE_CONTENTS}.1.message_content.type": "image",
            prefix + f"{MessageAttributes.MESSAGE_CONTENTS}.1.message_content.image.image.url": "https://x/cat.png",
            out + MessageAttributes.MESSAGE_ROLE: "assistant",
            out + f"{MessageAttributes.MESSAGE_TOOL_CALLS}.0.{ToolCallAttributes.TOOL_CALL_ID}": "t1",
            out + f"{MessageAttributes.MESSAGE_TOOL_CALLS}.0.{ToolCallAttributes.TOOL_CALL_FUNCTION_NAME}": "vision",
            out
            + f"{MessageAttributes.MESSAGE_TOOL_CALLS}.0.{ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON}": "{}",
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: 100,
            SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: 10,
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: 60,
        },
    ):
        pass
    generation = _only(_mapped(rec), "generation")
    assert (generation["model"], generation["provider"]) == ("claude-3", "anthropic")
    assert generation["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
    ]
    assert generation["result"]["choices"][0]["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "vision", "arguments": "{}"}}
    ]
    assert generation["result"]["usage"] == {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    assert generation["metrics"] == {"cache_read_input_tokens": 60}


def test_traceloop_indexed_messages_session_and_tool() -> None:
    rec = SpanRecorder()
    with rec.span(
        "chat_workflow.workflow",
        0,
        100,
        {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.input": '{"args": ["hi"], "kwargs": {}}',
            "traceloop.entity.output": '"bye"',
            "traceloop.association.properties.session_id": "sess-tl",
            "traceloop.association.properties.user_id": "user-tl",
        },
    ):
        with rec.span(
            "cohere.chat",
            10,
            50,
            {
                "llm.request.type": "chat",
                "gen_ai.system": "Cohere",
                "gen_ai.request.model": "command-r",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "hi",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "bye",
                "gen_ai.completion.0.finish_reason": "COMPLETE",
                "gen_ai.prompt.name": "greeting",
                "llm.usage.total_tokens": 12,
                "gen_ai.usage.prompt_tokens": 8,
                "gen_ai.usage.completion_tokens": 4,
                "llm.top_k": 5,
            },
            kind=SpanKind.CLIENT,
        ):
            pass
        with rec.span(
            "search.tool",
            60,
            70,
            {
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "search",
                "traceloop.entity.input": '{"args": ["x"]}',
                "traceloop.entity.output": '["r"]',
            },
        ):
            pass
    entities = _mapped(rec)
    assert entities[0] == {"id": "sess-tl", "type": "session"}
    trace = _only(entities, "trace")
    assert (trace["sessionId"], trace["input"], trace["output"]) == (
        "sess-tl",
        '{"args": ["hi"], "kwargs": {}}',
        '"bye"',
    )
    assert trace["tags"] == {"user.id": "user-tl"}
    generation = _only(entities, "generation")
    assert generation["provider"] == "openai" and generation["tags"] == {"provider.original": "Cohere"}
    assert generation["messages"] == [{"role": "user", "content": "hi"}]
    assert generation["result"]["choices"][0]["finish_reason"] == "complete"
    assert generation["result"]["usage"] == {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}
    assert generation["modelParameters"] == {"top_k": 5}
    assert generation["metadata"]["gen_ai.prompt.name"] == "greeting"
    assert "gen_ai.prompt.0.content" not in generation["metadata"]
    tool = _only(entities, "toolCall")
    assert (tool["name"], tool["args"], tool["result"]) == ("search", '{"args": ["x"]}', '["r"]')


def test_traceloop_db_query_result_events_become_documents() -> None:
    rec = SpanRecorder()
    with rec.span("chroma.query", 0, 10, {"db.system": "chroma"}) as span:
        rec.event(
            span,
            "db.query.result",
            5,
            {"db.query.result.id": "a", "db.query.result.distance": 0.1, "db.query.result.document": "alpha"},
        )
    entities = _mapped(rec)
    retrieval = _only(entities, "retrieval")
    assert [json.loads(d) for d in retrieval["output"]] == [{"id": "a", "distance": 0.1, "document": "alpha"}]
    assert not [e for e in entities if e["type"] == "event"]


def test_vercel_ai_sdk_spans() -> None:
    prompt = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool-call", "toolCallId": "v1", "toolName": "weather", "args": {"city": "Oslo"}}],
        },
        {
            "role": "tool",
            "content": [{"type": "tool-result", "toolCallId": "v1", "toolName": "weather", "result": {"temp": 3}}],
        },
    ]
    rec = SpanRecorder()
    with rec.span(
        "ai.generateText",
        0,
        100,
        {
            "operation.name": "ai.generateText",
            "ai.prompt": '{"prompt":"Weather?"}',
            "ai.response.text": "3°C",
            "ai.telemetry.metadata.sessionId": "vs-1",
            "ai.telemetry.metadata.userId": "vu-1",
        },
    ):
        with rec.span(
            "ai.generateText.doGenerate",
            10,
            90,
            {
                "ai.model.id": "gpt-4o",
                "ai.model.provider": "openai.chat",
                "ai.prompt.messages": json.dumps(prompt),
                "ai.response.text": "3°C in Oslo.",
                "ai.response.finishReason": "stop",
                "ai.response.id": "resp-v",
                "ai.usage.promptTokens": 40,
                "ai.response.msToFirstChunk": 250,
                "ai.usage.completionTokens": 5,
                "ai.settings.temperature": 0.5,
                "ai.settings.maxRetries": 2,
            },
            kind=SpanKind.CLIENT,
        ):
            pass
        with rec.span(
            "ai.toolCall",
            20,
            30,
            {
                "ai.toolCall.name": "weather",
                "ai.toolCall.id": "v1",
                "ai.toolCall.args": '{"city":"Oslo"}',
                "ai.toolCall.result": '{"temp":3}',
            },
        ):
            pass
    entities = _mapped(rec)
    trace = _only(entities, "trace")
    assert (trace["sessionId"], trace["input"], trace["output"]) == ("vs-1", '{"prompt":"Weather?"}', "3°C")
    generation = _only(entities, "generation")
    assert (generation["model"], generation["provider"]) == ("gpt-4o", "openai")
    assert generation["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "v1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
            ],
        },
        {"role": "tool", "content": '{"temp":3}', "tool_call_id": "v1"},
    ]
    assert generation["modelParameters"] == {"temperature": 0.5}
    result = generation["result"]
    assert (result["id"], result["choices"][0]["finish_reason"]) == ("resp-v", "stop")
    assert result["usage"] == {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45}
    assert generation["metrics"] == {"time_to_first_chunk_seconds": 0.25}
    tool = _only(entities, "toolCall")
    assert (tool["name"], tool["args"], tool["result"]) == ("weather", '{"city":"Oslo"}', '{"temp":3}')
