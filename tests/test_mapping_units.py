"""Unit tests for the mapping's small pure modules: coercion, values, ids, provider, classify,
messages, usage, params, errors, results."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from maxim_otel_bridge.mapping import MappedPart, MappingOptions, map_trace_part
from maxim_otel_bridge.mapping.candidates import Choice, Usage
from maxim_otel_bridge.mapping.classify import (
    GENERATION,
    RETRIEVAL,
    SPAN,
    TOOL_CALL,
    classify,
)
from maxim_otel_bridge.mapping.coerce import (
    coerce_float,
    coerce_int,
    coerce_str,
    parse_json,
)
from maxim_otel_bridge.mapping.errors import error_info
from maxim_otel_bridge.mapping.ids import (
    event_id,
    is_valid_id,
    iso_timestamp,
    unix_seconds,
)
from maxim_otel_bridge.mapping.keysets import KeySetMemo
from maxim_otel_bridge.mapping.messages import (
    genai_choices,
    genai_messages,
    openai_choice,
)
from maxim_otel_bridge.mapping.params import genai_params
from maxim_otel_bridge.mapping.precedence import read_usage
from maxim_otel_bridge.mapping.provider import normalize_provider
from maxim_otel_bridge.mapping.result import completion_result
from maxim_otel_bridge.mapping.usage import usage_object
from maxim_otel_bridge.mapping.values import (
    TRUNCATION_MARKER,
    bound_value,
    is_bounded,
    to_json_text,
    truncate_text,
)
from maxim_otel_bridge.record import EventRecord, SpanRecord, StatusCode
from maxim_otel_bridge.schema import PROVIDERS, validate_batch, validate_entity

TRACE = "0af7651916cd43dd8448eb211c80319c"


def mapped(*args, **kwargs) -> MappedPart:
    """`map_trace_part`, with the payload checked against Maxim's schema (every payload a test makes is)."""
    part = map_trace_part(*args, **kwargs)
    assert validate_batch({"repoId": "r", "logs": part.entities}) == []
    return part


def record(span_id: str = "b7ad6b7169203331", parent: str | None = None, **overrides) -> SpanRecord:
    fields = dict(
        trace_id=TRACE,
        span_id=span_id,
        parent_span_id=parent,
        name="s",
        start_ns=1_700_000_000_123_456_789,
        end_ns=1_700_000_001_000_000_000,
    )
    fields.update(overrides)
    return SpanRecord(**fields)


def only(entities: list[dict], kind: str) -> dict:
    matches = [e for e in entities if e["type"] == kind]
    assert len(matches) == 1, matches
    return matches[0]


# --- coercion -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        ("42", 42),
        (" 7 ", 7),
        (5.0, 5),
        ("5.0", 5),
        (True, None),
        (False, None),
        (5.5, None),
        ("abc", None),
        (None, None),
        ([1], None),
        (float("nan"), None),
        (float("inf"), None),
    ],
)
def test_coerce_int_refuses_bools_and_junk(value, expected) -> None:
    assert coerce_int(value) == expected


def test_coerce_float_and_str() -> None:
    assert coerce_float("0.5") == 0.5
    assert coerce_float(True) is None
    assert coerce_float("nan") is None
    assert coerce_str("") is None
    assert coerce_str(3) == "3"
    assert coerce_str({"a": 1}) is None


def test_parse_json_keeps_raw_text_when_malformed() -> None:
    parsed = parse_json('[{"role": "user", "parts": [')
    assert not parsed.ok and parsed.raw == '[{"role": "user", "parts": ['


# --- values -------------------------------------------------------------------------------------------


def test_truncation_keeps_prefix_and_shows_marker() -> None:
    text = "x" * 150
    cut = truncate_text(text, 100)
    assert cut.startswith("x" * 100)
    assert cut.endswith(TRUNCATION_MARKER.format(dropped=50))
    assert truncate_text("short", 100) == "short"


def test_bound_value_cleans_nested_values() -> None:
    bounded = bound_value({"a": ["y" * 20, float("nan"), {"b": float("inf")}], 3: b"raw"}, 10)
    assert bounded["a"][0] == "y" * 10 + TRUNCATION_MARKER.format(dropped=10)
    assert bounded["a"][1] == "nan"
    assert bounded["a"][2] == {"b": "inf"}
    assert bounded["3"] == "b'raw'"


def test_oversized_message_is_truncated_with_marker_in_payload() -> None:
    huge = "word " * 5000
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": huge}]}]),
        }
    )
    entities = mapped([rec], MappingOptions(max_value_chars=1000)).entities
    content = only(entities, "generation")["messages"][0]["content"]
    assert content == huge[:1000] + TRUNCATION_MARKER.format(dropped=len(huge) - 1000)
    assert validate_batch({"repoId": "r", "logs": entities}) == []


def test_references_are_never_truncated() -> None:
    bounded = bound_value(
        {
            "id": "x" * 30,
            "error": {"errorId": "e" * 30, "errorMessage": "m" * 30},
            "messages": [{"tool_call_id": "c" * 30, "content": "t" * 30}],
        },
        10,
    )
    assert bounded["id"] == "x" * 30 and bounded["error"]["errorId"] == "e" * 30
    assert bounded["messages"][0]["tool_call_id"] == "c" * 30
    assert bounded["error"]["errorMessage"] == "m" * 10 + TRUNCATION_MARKER.format(dropped=20)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(max_value=-(2**63) + 2, min_value=-(2**63) - 2)
    | st.floats()
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@given(_JSON_VALUES)
def test_json_text_is_the_stdlib_rendering(value) -> None:
    stdlib = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert to_json_text(value) == stdlib
    parsed = parse_json(stdlib)
    assert parsed.ok and repr(parsed.value) == repr(json.loads(stdlib))


@pytest.mark.parametrize(
    "text",
    [
        "[123456789012345678901234567890, 9223372036854775807, -9223372036854775809, 18446744073709551616]",
        '{"a": NaN, "b": Infinity, "c": 1e400, "d": "\\ud800", "e": 1, "e": 2}',
        '["\ud800"]',
        "[1.5e-7, 0.1, -0, 2.2250738585072011e-308]",
    ],
)
def test_json_is_read_as_the_stdlib_reads_it(text) -> None:
    parsed = parse_json(text)
    assert parsed.ok and repr(parsed.value) == repr(json.loads(text))


@pytest.mark.parametrize("offset", range(10))
@pytest.mark.parametrize("number", [-(2**63) - 1, 2**64, 10**40])
def test_an_integer_beyond_64_bits_is_read_exactly_wherever_it_sits(offset, number) -> None:
    # Whatever the integer's position, the quick look at every 9th byte must not miss its digits.
    text = f'["{"x" * offset}", {number}, "1 2 3 4 5 6 7 8 9"]'
    parsed = parse_json(text)
    assert parsed.ok and parsed.value[1] == number and type(parsed.value[1]) is int


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.binary(max_size=3),
    lambda inner: st.lists(inner, max_size=3)
    | st.tuples(inner)
    | st.dictionaries(st.sampled_from(["id", "spanId", "content", 1]) | st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@given(_JSONISH, st.integers(min_value=1, max_value=8))
def test_a_value_called_bounded_is_what_bounding_would_give(value, limit) -> None:
    if is_bounded(value, limit):
        bounded = bound_value(value, limit)
        assert bounded == value and json.dumps(bounded) == json.dumps(value)


def test_values_bounding_would_change_are_not_bounded() -> None:
    assert is_bounded({"id": "x" * 30, "messages": [{"content": "short", "n": 1, "f": 0.5}]}, 10)
    assert not is_bounded({"messages": [{"content": "x" * 11}]}, 10)
    assert not is_bounded({"a": [float("nan")]}, 10)
    assert not is_bounded({3: "a"}, 10)
    assert not is_bounded({"a": ("tuple",)}, 10)
    assert not is_bounded({"a": b"raw"}, 10)


def test_key_set_memo_remembers_per_key_set_within_its_bounds() -> None:
    seen: list[tuple[str, ...]] = []

    def compute(keys: tuple[str, ...]) -> int:
        seen.append(keys)
        return len(keys)

    memo = KeySetMemo(compute, max_entries=2, max_keys=3)
    assert [memo({"a": 1}), memo({"a": 2}), memo({"a": 1, "b": 2}), memo({"b": 1, "a": 2})] == [1, 1, 2, 2]
    assert seen == [("a",), ("a", "b"), ("b", "a")]  # same keys, same order: computed once
    memo({"c": 0})  # a third key set: the memo starts over
    memo({"a": 0})
    assert seen[-2:] == [("c",), ("a",)]
    memo({"w": 0, "x": 0, "y": 0, "z": 0})  # more keys than max_keys: computed every time
    memo({"w": 0, "x": 0, "y": 0, "z": 0})
    assert seen[-2:] == [("w", "x", "y", "z")] * 2


@pytest.mark.parametrize("bad", [{"max_value_chars": 0}, {"max_value_chars": True}, {"unknown_provider": "cohere"}])
def test_options_refuse_invalid_settings(bad) -> None:
    with pytest.raises(ValueError):
        MappingOptions(**bad)


# --- ids and time ---------------------------------------------------------------------------------------


def test_iso_timestamp_matches_javascript_to_iso_string() -> None:
    assert iso_timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123Z"
    assert iso_timestamp(1_000_000) == "1970-01-01T00:00:00.001Z"
    assert iso_timestamp(0) is None
    assert iso_timestamp(10**30) is None
    assert unix_seconds(1_700_000_000_999_999_999) == 1_700_000_000


def test_session_ids_maxim_would_refuse_get_a_stable_safe_stand_in() -> None:
    entities = mapped([record(attributes={"session.id": "user:42@example.com"})]).entities
    session, trace = entities[0], entities[1]
    assert is_valid_id(session["id"]) and session["id"].startswith("user_42_example_com-")
    assert session["name"] == "user:42@example.com" and trace["sessionId"] == session["id"]
    again = mapped([record(attributes={"session.id": "user:42@example.com"})]).entities
    assert again[0]["id"] == session["id"]
    other = mapped([record(attributes={"session.id": "user_42@example.com"})]).entities
    assert other[0]["id"] != session["id"]
    long_id = "a" * 500
    assert is_valid_id(mapped([record(attributes={"session.id": long_id})]).entities[0]["id"])


def test_derived_ids_match_maxims_id_pattern() -> None:
    assert is_valid_id(event_id("b7ad6b7169203331", 3))
    assert not is_valid_id("a b")


@given(st.text(alphabet=st.sampled_from("aZ09_-é٣ \n\x00") | st.characters(), max_size=8))
def test_an_id_is_valid_exactly_when_maxims_pattern_matches_it_whole(value) -> None:
    assert is_valid_id(value) == (re.fullmatch(r"[a-zA-Z0-9_-]+", value) is not None)


# --- provider -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("aws.bedrock", "bedrock"),
        ("azure.ai.openai", "azure"),
        ("az.ai.openai", "azure"),
        ("azure.ai.inference", "azure"),
        ("az.ai.inference", "azure"),
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("gcp.gen_ai", "google"),
        ("vertex_ai", "google"),
        ("gemini", "google"),
        ("groq", "groq"),
        ("together", "together"),
        ("huggingface", "huggingface"),
        ("OpenAI", "openai"),
        ("openai.chat", "openai"),
        ("anthropic.messages", "anthropic"),
    ],
)
def test_known_providers_map_into_maxims_enum(raw: str, expected: str) -> None:
    choice = normalize_provider(raw, "openai")
    assert (choice.provider, choice.original) == (expected, None)


@pytest.mark.parametrize("raw", ["cohere", "deepseek", "mistral_ai", "x_ai", "function", "ibm.watsonx.ai"])
def test_unknown_provider_uses_fallback_and_keeps_original(raw: str) -> None:
    choice = normalize_provider(raw, "groq")
    assert (choice.provider, choice.original) == ("groq", raw)


def test_unknown_provider_in_payload_is_in_enum_with_original_tag() -> None:
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_PROVIDER_NAME: "mistral_ai",
            ga.GEN_AI_REQUEST_MODEL: "mistral-large",
        }
    )
    entities = mapped([rec], MappingOptions(unknown_provider="huggingface")).entities
    generation = only(entities, "generation")
    assert generation["provider"] == "huggingface" and generation["provider"] in PROVIDERS
    assert generation["tags"]["provider.original"] == "mistral_ai"
    assert validate_batch({"repoId": "r", "logs": entities}) == []


# --- classification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "name", "expected"),
    [
        ({ga.GEN_AI_OPERATION_NAME: "chat"}, "x", GENERATION),
        ({ga.GEN_AI_OPERATION_NAME: "text_completion"}, "x", GENERATION),
        ({ga.GEN_AI_OPERATION_NAME: "generate_content"}, "x", GENERATION),
        ({ga.GEN_AI_OPERATION_NAME: "completion"}, "x", GENERATION),
        ({ga.GEN_AI_OPERATION_NAME: "execute_tool"}, "x", TOOL_CALL),
        ({ga.GEN_AI_OPERATION_NAME: "retrieval"}, "x", RETRIEVAL),
        ({ga.GEN_AI_OPERATION_NAME: "invoke_agent", ga.GEN_AI_REQUEST_MODEL: "m"}, "x", SPAN),
        ({ga.GEN_AI_OPERATION_NAME: "embeddings", ga.GEN_AI_REQUEST_MODEL: "m"}, "x", SPAN),
        ({"openinference.span.kind": "LLM"}, "x", GENERATION),
        ({"openinference.span.kind": "RERANKER"}, "x", RETRIEVAL),
        ({"openinference.span.kind": "TOOL"}, "x", TOOL_CALL),
        ({"openinference.span.kind": "CHAIN", ga.GEN_AI_REQUEST_MODEL: "m"}, "x", SPAN),
        ({"ai.model.id": "gpt"}, "ai.generateText.doGenerate", GENERATION),
        ({}, "ai.toolCall", TOOL_CALL),
        ({ga.GEN_AI_TOOL_NAME: "search"}, "running tool", TOOL_CALL),
        ({"traceloop.span.kind": "tool"}, "x", TOOL_CALL),
        ({"llm.request.type": "chat"}, "x", GENERATION),
        ({ga.GEN_AI_RETRIEVAL_QUERY_TEXT: "q"}, "x", RETRIEVAL),
        ({ga.GEN_AI_REQUEST_MODEL: "m"}, "x", GENERATION),
        ({ga.GEN_AI_AGENT_NAME: "a"}, "x", SPAN),
        ({}, "GET /", SPAN),
        ({"maxim.entity.type": "retrieval", ga.GEN_AI_OPERATION_NAME: "chat"}, "x", RETRIEVAL),
        ({"maxim.entity.type": "toolCall"}, "x", TOOL_CALL),
        ({"maxim.entity.type": "nonsense", ga.GEN_AI_OPERATION_NAME: "chat"}, "x", GENERATION),
    ],
)
def test_classify(attributes, name, expected) -> None:
    assert classify(record(name=name, attributes=attributes)) == expected


def test_db_query_result_events_make_a_retrieval() -> None:
    rec = record(events=(EventRecord("db.query.result", 1, {"db.query.result.id": "1"}),))
    assert classify(rec) == RETRIEVAL


# --- messages ----------------------------------------------------------------------------------------------


def test_genai_messages_with_tool_calls_and_results() -> None:
    value = json.dumps(
        [
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"x": 1}}]},
            {"role": "user", "parts": [{"type": "tool_call_response", "id": "c1", "result": "ok"}]},
        ]
    )
    messages = genai_messages(value, "b7ad6b7169203331")
    assert messages == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}],
        },
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
    ]


def test_tool_call_without_id_gets_a_stable_one() -> None:
    value = [{"role": "assistant", "parts": [{"type": "tool_call", "name": "f", "arguments": "{}"}]}]
    first = genai_messages(value, "b7ad6b7169203331")
    assert first == genai_messages(value, "b7ad6b7169203331")
    assert is_valid_id(first[0]["tool_calls"][0]["id"])


def test_malformed_message_json_is_kept_as_text() -> None:
    raw = '[{"role": "user", "parts": [{"type": "text", "content": "cut in ha'
    assert genai_messages(raw, "s") == [{"role": "user", "content": raw}]
    assert genai_choices(raw, "s") == [Choice(index=0, content=raw)]


def test_malformed_messages_survive_into_a_valid_payload() -> None:
    raw = '[{"role": "user", "parts": [{"type": "te'
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_INPUT_MESSAGES: raw,
            ga.GEN_AI_OUTPUT_MESSAGES: "{not json",
        }
    )
    entities = mapped([rec]).entities
    generation = only(entities, "generation")
    assert generation["messages"] == [{"role": "user", "content": raw}]
    assert generation["result"]["choices"][0]["message"]["content"] == "{not json"
    assert validate_batch({"repoId": "r", "logs": entities}) == []


def test_system_instructions_come_first_and_parts_become_content_lists() -> None:
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "Be kind."}]),
            ga.GEN_AI_INPUT_MESSAGES: json.dumps(
                [
                    {
                        "role": "user",
                        "parts": [
                            {"type": "text", "content": "What is this?"},
                            {"type": "uri", "modality": "image", "mime_type": "image/png", "uri": "https://x/y.png"},
                            {"type": "file", "modality": "audio", "file_id": "f1"},
                        ],
                    }
                ]
            ),
        }
    )
    generation = only(mapped([rec]).entities, "generation")
    assert generation["messages"][0] == {"role": "system", "content": "Be kind."}
    assert generation["messages"][1]["content"][:2] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    assert json.loads(generation["messages"][1]["content"][2]["text"])["file_id"] == "f1"
    assert validate_entity(generation) == []


def test_reasoning_goes_to_metadata_not_the_answer() -> None:
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "reasoning", "content": "think"}, {"type": "text", "content": "answer"}],
                    }
                ]
            ),
        }
    )
    generation = only(mapped([rec]).entities, "generation")
    assert generation["result"]["choices"][0]["message"]["content"] == "answer"
    assert generation["metadata"]["reasoning"] == ["think"]


def test_choice_event_with_flat_tool_calls() -> None:
    choice = openai_choice(
        {
            "index": 1,
            "finish_reason": "tool_calls",
            "message": {
                "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "g", "arguments": {"a": 2}}}]
            },
        },
        "s",
        0,
    )
    assert choice.index == 1 and choice.finish_reason == "tool_calls"
    assert choice.tool_calls[0]["function"] == {"name": "g", "arguments": '{"a":2}'}


def test_operation_details_event_is_read_and_not_repeated_as_event() -> None:
    details = EventRecord(
        "gen_ai.client.inference.operation.details",
        5,
        {
            ga.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": "q"}]}]),
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "a"}], "finish_reason": "stop"}]
            ),
        },
    )
    rec = record(attributes={ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_REQUEST_MODEL: "m"}, events=(details,))
    entities = mapped([rec]).entities
    generation = only(entities, "generation")
    assert generation["messages"] == [{"role": "user", "content": "q"}]
    assert generation["result"]["choices"][0]["message"]["content"] == "a"
    assert not [e for e in entities if e["type"] == "event"]


def test_tool_message_event_and_legacy_content_events() -> None:
    events = (
        EventRecord("gen_ai.user.message", 1, {"content": "hi"}),
        EventRecord(
            "gen_ai.assistant.message",
            2,
            {
                "tool_calls": json.dumps(
                    [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
                )
            },
        ),
        EventRecord("gen_ai.tool.message", 3, {"content": "42", "id": "t1"}),
    )
    rec = record(attributes={ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_REQUEST_MODEL: "m"}, events=events)
    generation = only(mapped([rec]).entities, "generation")
    assert [m["role"] for m in generation["messages"]] == ["user", "assistant", "tool"]
    assert generation["messages"][2]["tool_call_id"] == "t1"

    legacy = record(
        attributes={ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_REQUEST_MODEL: "m"},
        events=(
            EventRecord("gen_ai.content.prompt", 1, {"gen_ai.prompt": json.dumps([{"role": "user", "content": "p"}])}),
            EventRecord(
                "gen_ai.content.completion",
                2,
                {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "c"}])},
            ),
        ),
    )
    generation = only(mapped([legacy]).entities, "generation")
    assert generation["messages"] == [{"role": "user", "content": "p"}]
    assert generation["result"]["choices"][0]["message"]["content"] == "c"


# --- usage, params, result --------------------------------------------------------------------------------------


def test_usage_from_deprecated_keys_only_is_not_lost() -> None:
    usage = read_usage(record(attributes={ga.GEN_AI_USAGE_PROMPT_TOKENS: 11, ga.GEN_AI_USAGE_COMPLETION_TOKENS: "4"}))
    assert usage_object(usage) == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


def test_usage_current_keys_win_and_explicit_total_is_kept() -> None:
    usage = read_usage(
        record(
            attributes={
                ga.GEN_AI_USAGE_INPUT_TOKENS: 10,
                ga.GEN_AI_USAGE_PROMPT_TOKENS: 99,
                ga.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
                "gen_ai.usage.total_tokens": 13,
                ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
                ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1,
            }
        )
    )
    assert usage_object(usage) == {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 13}
    assert usage.details == {"cache_read_input_tokens": 4, "reasoning_output_tokens": 1}


def test_usage_refuses_bool_and_negative_counts() -> None:
    assert (
        read_usage(record(attributes={ga.GEN_AI_USAGE_INPUT_TOKENS: True, ga.GEN_AI_USAGE_OUTPUT_TOKENS: -3})) is None
    )


def test_cache_and_reasoning_counts_become_metrics() -> None:
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_USAGE_INPUT_TOKENS: 10,
            ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
        }
    )
    generation = only(mapped([rec]).entities, "generation")
    assert generation["metrics"] == {"cache_read_input_tokens": 4}
    assert generation["result"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}


def test_params_use_maxims_names_and_keep_other_names() -> None:
    params = genai_params(
        {
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_REQUEST_TEMPERATURE: 0.1,
            ga.GEN_AI_REQUEST_TOP_P: 0.5,
            ga.GEN_AI_REQUEST_MAX_TOKENS: 9,
            ga.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.2,
            ga.GEN_AI_REQUEST_PRESENCE_PENALTY: 0.3,
            ga.GEN_AI_REQUEST_TOP_K: 40,
            ga.GEN_AI_REQUEST_STOP_SEQUENCES: ["\n"],
            ga.GEN_AI_REQUEST_SEED: 1,
            ga.GEN_AI_OPENAI_REQUEST_SEED: 2,
        }
    )
    assert params == {
        "temperature": 0.1,
        "topP": 0.5,
        "maxTokens": 9,
        "frequencyPenalty": 0.2,
        "presencePenalty": 0.3,
        "top_k": 40,
        "stop_sequences": ["\n"],
        "seed": 1,
    }


def test_text_completion_uses_the_text_result_shape() -> None:
    result = completion_result(
        response_id="r",
        created=1,
        model="m",
        choices=[Choice(0, "done")],
        finish_reasons=["stop"],
        usage=Usage(1, 2),
        error=None,
        text_completion=True,
    )
    assert result["object"] == "text_completion"
    assert result["choices"] == [{"index": 0, "text": "done", "logprobs": None, "finish_reason": "stop"}]


def test_span_level_finish_reasons_fill_choices() -> None:
    rec = record(
        attributes={
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_REQUEST_MODEL: "m",
            ga.GEN_AI_RESPONSE_FINISH_REASONS: ("length",),
            ga.GEN_AI_RESPONSE_ID: "resp-1",
            ga.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "a"}]}]),
        }
    )
    result = only(mapped([rec]).entities, "generation")["result"]
    assert result["id"] == "resp-1"
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["created"] == 1_700_000_001


# --- errors --------------------------------------------------------------------------------------------------------


def test_error_from_status_error_type_and_exception() -> None:
    exception = EventRecord(
        "exception", 5, {"exception.type": "ValueError", "exception.message": "bad", "exception.stacktrace": "tb"}
    )
    info = error_info(record(status_code=StatusCode.ERROR, events=(exception,)))
    assert (info.message, info.type, info.stacktrace) == ("bad", "ValueError", "tb")
    assert error_info(record(attributes={"error.type": "timeout"})).message == "timeout"
    assert error_info(record(status_code=StatusCode.OK, events=(exception,))) is None
    assert error_info(record()) is None


def test_span_error_has_stable_error_id_and_tool_error_shape() -> None:
    span = record(status_code=StatusCode.ERROR, status_message="boom")
    tool = record(
        "c0ffee0000000001",
        parent=span.span_id,
        status_code=StatusCode.ERROR,
        status_message="tool failed",
        attributes={ga.GEN_AI_OPERATION_NAME: "execute_tool", ga.GEN_AI_TOOL_NAME: "t"},
    )
    entities = mapped([span, tool]).entities
    assert only(entities, "span")["error"] == {"errorId": "b7ad6b7169203331-error", "errorMessage": "boom"}
    assert only(entities, "toolCall")["error"] == {"errorMessage": "tool failed"}
    assert validate_batch({"repoId": "r", "logs": entities}) == []


def test_handled_exception_event_becomes_an_event_entity() -> None:
    exception = EventRecord("exception", 5, {"exception.type": "KeyError"})
    entities = mapped([record(status_code=StatusCode.OK, events=(exception,))]).entities
    event = only(entities, "event")
    assert event["name"] == "exception" and event["metadata"]["exception.type"] == "KeyError"
    assert "error" not in only(entities, "span")


# --- trace, session, tool and retrieval fields -------------------------------------------------------------


def test_session_from_resource_and_user_tag() -> None:
    rec = record(resource={"session.id": "s-1", "service.name": "svc"}, attributes={"user.id": "u-1"})
    entities = mapped([rec]).entities
    assert entities[0] == {"id": "s-1", "type": "session"}
    trace = only(entities, "trace")
    assert trace["sessionId"] == "s-1" and trace["tags"] == {"user.id": "u-1"}


def test_each_resource_gives_its_own_session_and_user() -> None:
    first, second = {"session.id": "s-1", "user.id": "u-1"}, {"session.id": "s-2"}
    for resource, session, user in ((first, "s-1", "u-1"), (second, "s-2", None), (first, "s-1", "u-1")):
        trace = only(mapped([record(resource=resource)]).entities, "trace")
        assert trace["sessionId"] == session
        assert trace.get("tags", {}).get("user.id") == user


@pytest.mark.parametrize(
    "key",
    [
        "session.id",
        ga.GEN_AI_CONVERSATION_ID,
        "traceloop.association.properties.session_id",
        "ai.telemetry.metadata.sessionId",
    ],
)
def test_every_session_key_is_read(key: str) -> None:
    entities = mapped([record(attributes={key: "sess"})]).entities
    assert only(entities, "trace")["sessionId"] == "sess"


def test_tool_call_defaults_and_json_args() -> None:
    rec = record(name="execute_tool lookup", attributes={ga.GEN_AI_OPERATION_NAME: "execute_tool"})
    tool = only(mapped([rec]).entities, "toolCall")
    assert (tool["name"], tool["description"], tool["args"]) == ("lookup", "", "{}")
    assert validate_entity(tool) == []


def test_maxim_tag_attributes_become_tags() -> None:
    rec = record(attributes={"maxim.tag.env": "prod", "maxim.tag.build": 12, "tag.tags": ["beta"]})
    entities = mapped([rec]).entities
    assert only(entities, "span")["tags"] == {"build": "12", "env": "prod", "beta": ""}
    assert only(entities, "trace")["tags"] == {"build": "12", "env": "prod", "beta": ""}


def test_public_surface() -> None:
    import inspect

    import maxim_otel_bridge.mapping as mapping

    assert sorted(mapping.__all__) == ["COMPILED", "MappedPart", "MappingOptions", "Placement", "map_trace_part"]
    parameters = inspect.signature(mapping.map_trace_part).parameters
    assert list(parameters) == ["records", "options", "known"]
    assert parameters["options"].default == MappingOptions()
    assert dict(parameters["known"].default) == {}
    assert MappingOptions().unknown_provider in PROVIDERS


def test_metadata_keeps_unmapped_attributes_links_scope_and_foreign_resource() -> None:
    from maxim_otel_bridge.record import LinkRecord, SpanKind

    root = record(resource={"service.name": "front"}, scope_name="app", scope_version="2.0", kind=SpanKind.SERVER)
    child = record(
        "c000000000000002",
        parent=root.span_id,
        attributes={
            "db.system": "postgresql",
            ga.GEN_AI_OPERATION_NAME: "retrieval",
            ga.GEN_AI_RETRIEVAL_QUERY_TEXT: "q",
            ga.GEN_AI_RETRIEVAL_DOCUMENTS: "[]",
        },
        links=(LinkRecord("1" * 32, "2" * 16, {"why": "batch"}),),
        resource={"service.name": "search"},
    )
    entities = mapped([root, child]).entities
    trace, span, retrieval = entities
    assert trace["metadata"] == {"otel.resource": {"service.name": "front"}}
    assert span["metadata"] == {"otel.span_kind": "server", "otel.scope.name": "app", "otel.scope.version": "2.0"}
    assert retrieval["metadata"] == {
        "db.system": "postgresql",
        ga.GEN_AI_OPERATION_NAME: "retrieval",
        "otel.span_kind": "internal",
        "otel.links": [{"trace_id": "1" * 32, "span_id": "2" * 16, "attributes": {"why": "batch"}}],
        "otel.resource": {"service.name": "search"},
    }
    assert (retrieval["input"], retrieval["output"]) == ("q", [])


def test_log_record_body_joined_as_event_is_read() -> None:
    events = (
        EventRecord("gen_ai.user.message", 1, {"gen_ai.system": "openai", "body": {"content": "from a log"}}),
        EventRecord(
            "gen_ai.choice",
            2,
            {"body": json.dumps({"index": 0, "finish_reason": "stop", "message": {"content": "answer"}})},
        ),
    )
    rec = record(attributes={ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_REQUEST_MODEL: "m"}, events=events)
    generation = only(mapped([rec]).entities, "generation")
    assert generation["messages"] == [{"role": "user", "content": "from a log"}]
    assert generation["result"]["choices"][0]["message"]["content"] == "answer"


@pytest.mark.parametrize(
    ("carried", "shown"),
    [
        ('{"plan": "pro", "seats": 3}', {"plan": "pro", "seats": 3}),
        ("[1, 2]", "[1, 2]"),  # JSON, but not an object: the text as sent
        ("plan=pro", "plan=pro"),
    ],
)
def test_openinference_metadata_text_is_shown_as_the_object_it_holds(carried: str, shown: object) -> None:
    attributes = {"openinference.span.kind": "CHAIN", "metadata": carried}
    chain = SpanRecord("a" * 32, "b" * 16, None, "chain", 1, 2, attributes)
    (span,) = [e for e in map_trace_part([chain]).entities if e["type"] == "span"]
    assert span["metadata"]["metadata"] == shown


@pytest.mark.parametrize("value", ["abc\n", "\nabc", "ab c", "", "a\u00e9"])
def test_an_id_is_valid_only_when_every_character_is_allowed(value: str) -> None:
    assert not is_valid_id(value)
    assert is_valid_id("Ab_0-9")
