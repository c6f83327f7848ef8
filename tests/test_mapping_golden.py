"""Golden payloads: real SDK spans for each scenario, mapped, validated, compared to tests/golden/*.json.

Regenerate with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_mapping_golden.py`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.sdk_spans import SpanRecorder
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.schema import validate_batch

GOLDEN = Path(__file__).parent / "golden"

SYSTEM = {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]}


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def chat() -> list[SpanRecord]:
    rec = SpanRecorder()
    attributes = {
        ga.GEN_AI_OPERATION_NAME: "chat",
        ga.GEN_AI_PROVIDER_NAME: "openai",
        ga.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        ga.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        ga.GEN_AI_REQUEST_MAX_TOKENS: 64,
        ga.GEN_AI_REQUEST_TOP_P: 0.9,
        ga.GEN_AI_REQUEST_SEED: 7,
        ga.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        ga.GEN_AI_RESPONSE_ID: "chatcmpl-abc",
        ga.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        ga.GEN_AI_USAGE_INPUT_TOKENS: 21,
        ga.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        ga.GEN_AI_INPUT_MESSAGES: _json(
            [SYSTEM, {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}]
        ),
        ga.GEN_AI_OUTPUT_MESSAGES: _json(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}], "finish_reason": "stop"}]
        ),
        "server.address": "api.openai.com",
    }
    with rec.span("chat gpt-4o-mini", 0, 420, attributes, kind=SpanKind.CLIENT):
        pass
    return rec.records()


def tool_round_trip() -> list[SpanRecord]:
    rec = SpanRecorder()
    user = {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}
    call = {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    base = {ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_PROVIDER_NAME: "openai", ga.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    with rec.span(
        "invoke_agent weather", 0, 1000, {ga.GEN_AI_OPERATION_NAME: "invoke_agent", ga.GEN_AI_AGENT_NAME: "weather"}
    ):
        with rec.span(
            "chat gpt-4o",
            10,
            300,
            {
                **base,
                ga.GEN_AI_INPUT_MESSAGES: _json([user]),
                ga.GEN_AI_OUTPUT_MESSAGES: _json(
                    [{"role": "assistant", "parts": [call], "finish_reason": "tool_call"}]
                ),
                ga.GEN_AI_USAGE_INPUT_TOKENS: 50,
                ga.GEN_AI_USAGE_OUTPUT_TOKENS: 12,
            },
            kind=SpanKind.CLIENT,
        ):
            pass
        with rec.span(
            "execute_tool get_weather",
            310,
            400,
            {
                ga.GEN_AI_OPERATION_NAME: "execute_tool",
                ga.GEN_AI_TOOL_NAME: "get_weather",
                ga.GEN_AI_TOOL_DESCRIPTION: "Current weather for a city",
                ga.GEN_AI_TOOL_CALL_ID: "call_1",
                ga.GEN_AI_TOOL_CALL_ARGUMENTS: _json({"city": "Paris"}),
                ga.GEN_AI_TOOL_CALL_RESULT: _json({"temp_c": 18}),
            },
        ):
            pass
        with rec.span(
            "chat gpt-4o",
            410,
            900,
            {
                **base,
                ga.GEN_AI_INPUT_MESSAGES: _json(
                    [
                        user,
                        {"role": "assistant", "parts": [call]},
                        {
                            "role": "tool",
                            "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"temp_c": 18}}],
                        },
                    ]
                ),
                ga.GEN_AI_OUTPUT_MESSAGES: _json(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "18°C in Paris."}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
                ga.GEN_AI_USAGE_INPUT_TOKENS: 80,
                ga.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
            },
            kind=SpanKind.CLIENT,
        ):
            pass
    return rec.records()


def streaming() -> list[SpanRecord]:
    # A streamed call: no finish_reasons attribute (it is inside the output message), chunk events.
    rec = SpanRecorder()
    with rec.span(
        "chat gpt-4o-mini",
        0,
        800,
        {
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_PROVIDER_NAME: "openai",
            ga.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            ga.GEN_AI_REQUEST_STREAM: True,
            ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.12,
            ga.GEN_AI_USAGE_INPUT_TOKENS: 9,
            ga.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
            ga.GEN_AI_INPUT_MESSAGES: _json([{"role": "user", "parts": [{"type": "text", "content": "Count to ten"}]}]),
            ga.GEN_AI_OUTPUT_MESSAGES: _json(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "1 2 3 4 5 6 7 8 9 10"}],
                        "finish_reason": "stop",
                    }
                ]
            ),
        },
        kind=SpanKind.CLIENT,
    ) as span:
        rec.event(span, "First Token Stream Event", 120)
    return rec.records()


def deprecated_events() -> list[SpanRecord]:
    # Pre-1.37 instrumentation: content as span events, usage under the deprecated keys only.
    rec = SpanRecorder()
    with rec.span(
        "chat gpt-3.5-turbo",
        0,
        500,
        {
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_SYSTEM: "az.ai.openai",
            ga.GEN_AI_REQUEST_MODEL: "gpt-35-turbo",
            ga.GEN_AI_USAGE_PROMPT_TOKENS: 14,
            ga.GEN_AI_USAGE_COMPLETION_TOKENS: 6,
        },
        kind=SpanKind.CLIENT,
    ) as span:
        rec.event(span, "gen_ai.system.message", 1, {"content": "Be brief."})
        rec.event(span, "gen_ai.user.message", 2, {"content": "Hello?"})
        rec.event(
            span, "gen_ai.choice", 490, {"index": 0, "finish_reason": "stop", "message": _json({"content": "Hi."})}
        )
    return rec.records()


def error() -> list[SpanRecord]:
    rec = SpanRecorder()
    with rec.span(
        "chat claude-3-5-sonnet",
        0,
        90,
        {
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_PROVIDER_NAME: "anthropic",
            ga.GEN_AI_REQUEST_MODEL: "claude-3-5-sonnet",
            ERROR_TYPE: "RateLimitError",
            ga.GEN_AI_INPUT_MESSAGES: _json([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
        },
        kind=SpanKind.CLIENT,
        error="429 Too Many Requests",
    ) as span:
        rec.event(
            span,
            "exception",
            89,
            {
                "exception.type": "anthropic.RateLimitError",
                "exception.message": "rate limited",
                "exception.stacktrace": "Traceback (most recent call last): ...",
            },
        )
    return rec.records()


def retrieval() -> list[SpanRecord]:
    rec = SpanRecorder()
    docs = [
        {"id": "doc-1", "score": 0.92, "content": "Paris is the capital of France."},
        {"id": "doc-2", "score": 0.41},
    ]
    with rec.span(
        "retrieval wiki",
        0,
        35,
        {
            ga.GEN_AI_OPERATION_NAME: "retrieval",
            ga.GEN_AI_DATA_SOURCE_ID: "wiki",
            ga.GEN_AI_RETRIEVAL_QUERY_TEXT: "capital of France",
            ga.GEN_AI_RETRIEVAL_DOCUMENTS: _json(docs),
        },
    ):
        pass
    return rec.records()


def embeddings() -> list[SpanRecord]:
    rec = SpanRecorder()
    with rec.span(
        "embeddings text-embedding-3-small",
        0,
        60,
        {
            ga.GEN_AI_OPERATION_NAME: "embeddings",
            ga.GEN_AI_PROVIDER_NAME: "openai",
            ga.GEN_AI_REQUEST_MODEL: "text-embedding-3-small",
            ga.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 1536,
            ga.GEN_AI_USAGE_INPUT_TOKENS: 8,
        },
        kind=SpanKind.CLIENT,
    ):
        pass
    return rec.records()


def multi_level_agent() -> list[SpanRecord]:
    """agent > generation > HTTP child (re-parented); agent > tool; nested agents; session only on a child."""
    rec = SpanRecorder()
    chat = {ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_PROVIDER_NAME: "aws.bedrock", ga.GEN_AI_REQUEST_MODEL: "claude"}
    with rec.span(
        "invoke_agent planner",
        0,
        2000,
        {
            ga.GEN_AI_OPERATION_NAME: "invoke_agent",
            ga.GEN_AI_AGENT_NAME: "planner",
            "input.value": "Plan a trip",
            "output.value": "Trip planned",
        },
    ) as planner:
        rec.event(planner, "plan.updated", 5, {"steps": 2})
        with rec.span(
            "chat claude",
            10,
            400,
            {
                **chat,
                ga.GEN_AI_CONVERSATION_ID: "conv-42",
                ga.GEN_AI_INPUT_MESSAGES: _json(
                    [{"role": "user", "parts": [{"type": "text", "content": "Plan a trip"}]}]
                ),
                ga.GEN_AI_OUTPUT_MESSAGES: _json(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "Step 1"}]}]
                ),
            },
            kind=SpanKind.CLIENT,
        ):
            with rec.span("POST /model/invoke", 20, 390, {"http.request.method": "POST"}, kind=SpanKind.CLIENT) as http:
                rec.event(http, "http.retry", 100, {"attempt": 1})
        with rec.span(
            "execute_tool search",
            410,
            500,
            {
                ga.GEN_AI_OPERATION_NAME: "execute_tool",
                ga.GEN_AI_TOOL_NAME: "search",
                ga.GEN_AI_TOOL_CALL_ARGUMENTS: _json({"q": "flights"}),
            },
        ):
            pass
        with rec.span(
            "invoke_agent booker", 510, 1900, {ga.GEN_AI_OPERATION_NAME: "invoke_agent", ga.GEN_AI_AGENT_NAME: "booker"}
        ):
            with rec.span(
                "chat claude", 520, 900, {**chat, ga.GEN_AI_USAGE_INPUT_TOKENS: 10, ga.GEN_AI_USAGE_OUTPUT_TOKENS: 3}
            ):
                pass
    return rec.records()


SCENARIOS: dict[str, Callable[[], list[SpanRecord]]] = {
    "chat": chat,
    "tool_round_trip": tool_round_trip,
    "streaming": streaming,
    "deprecated_events": deprecated_events,
    "error": error,
    "retrieval": retrieval,
    "embeddings": embeddings,
    "multi_level_agent": multi_level_agent,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_payload(name: str) -> None:
    entities = map_trace_part(SCENARIOS[name]()).entities
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(entities, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert entities == json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_mapping_is_deterministic_and_order_independent(name: str) -> None:
    records = SCENARIOS[name]()
    assert map_trace_part(records).entities == map_trace_part(list(reversed(records))).entities
