"""Content capture off and redaction patterns: real SDK spans and captured instrumentation spans, mapped.

Every payload is checked against Maxim's schema; the checks look at every string the entities carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.sdk_spans import SpanRecorder
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_mapping_golden import SCENARIOS

from maxim_otel_bridge.mapping import MappingOptions, map_trace_part
from maxim_otel_bridge.mapping.content_policy import (
    CONTENT_PLACEHOLDER,
    REDACTION_MARKER,
    apply_content_policy,
    is_content_key,
    redact,
    without_content,
)
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.schema import validate_batch

FIXTURES = Path(__file__).parent / "fixtures" / "captured"
NO_CONTENT = MappingOptions(capture_content=False)


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string leaf with its path (keys are not leaves)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, f"{path}[]")


def valid(entities: list[dict]) -> list[dict]:
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    return entities


def by_type(entities: list[dict], kind: str) -> list[dict]:
    return [e for e in entities if e["type"] == kind]


def captured(name: str) -> dict[str, list[SpanRecord]]:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return {
        scenario: [SpanRecord.from_json_obj(obj) for obj in objs] for scenario, objs in fixture["scenarios"].items()
    }


ALL_CAPTURED = sorted(path.stem for path in FIXTURES.glob("*.json"))


# -- options ---------------------------------------------------------------------------------------------------


def test_patterns_are_compiled_once_and_a_bad_one_is_named_by_position_not_text() -> None:
    options = MappingOptions(redact=["sk-[A-Za-z0-9]{8,}", re.compile(r"\d{4}-\d{4}")])
    assert all(isinstance(p, re.Pattern) for p in options.redact)
    assert options == MappingOptions(redact=tuple(options.redact))
    with pytest.raises(ValueError, match=r"redact\[1\] is not a valid regular expression") as caught:
        MappingOptions(redact=["ok", "sk-secret(unclosed"])
    assert "sk-secret" not in str(caught.value)
    with pytest.raises(ValueError, match=r"redact\[0\] matches the empty string"):
        MappingOptions(redact=["x*"])
    with pytest.raises(ValueError, match="capture_content"):
        MappingOptions(capture_content="no")  # type: ignore[arg-type]
    assert "sk-" not in repr(options), "patterns may spell out secrets: not in the repr"


def test_nothing_asked_is_the_same_list_untouched() -> None:
    entities = [{"id": "a", "type": "span", "name": "x"}]
    assert apply_content_policy(entities, MappingOptions()) is entities


# -- content capture off ---------------------------------------------------------------------------------------


def test_tool_round_trip_keeps_structure_roles_usage_and_tool_names() -> None:
    records = SCENARIOS["tool_round_trip"]()
    full = valid(map_trace_part(records).entities)
    bare = valid(map_trace_part(records, NO_CONTENT).entities)
    assert [e["id"] for e in bare] == [e["id"] for e in full]

    first, second = by_type(bare, "generation")
    full_second = by_type(full, "generation")[1]
    assert [m["role"] for m in second["messages"]] == [m["role"] for m in full_second["messages"]]
    assert second["messages"][0]["content"] == CONTENT_PLACEHOLDER
    call = first["result"]["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], call["function"]["arguments"]) == (
        "call_1",
        "get_weather",
        CONTENT_PLACEHOLDER,
    )
    assert second["messages"][2]["tool_call_id"] == "call_1"
    assert second["result"]["choices"][0]["finish_reason"] == "stop"
    assert second["result"]["usage"] == full_second["result"]["usage"]
    assert (second["model"], second["provider"], second["modelParameters"]) == (
        full_second["model"],
        full_second["provider"],
        full_second["modelParameters"],
    )

    (tool,) = by_type(bare, "toolCall")
    assert (tool["name"], tool["description"], tool["args"], tool["result"]) == (
        "get_weather",
        "Current weather for a city",
        CONTENT_PLACEHOLDER,
        CONTENT_PLACEHOLDER,
    )
    for path, text in strings(bare):
        assert "Paris" not in text and "18" not in text, path


def test_retrieval_trace_and_span_metadata_content_is_withheld() -> None:
    retrieval = valid(map_trace_part(SCENARIOS["retrieval"](), NO_CONTENT).entities)
    (entity,) = by_type(retrieval, "retrieval")
    assert entity["input"] == CONTENT_PLACEHOLDER
    assert entity["output"] == [CONTENT_PLACEHOLDER, CONTENT_PLACEHOLDER], "one placeholder per document"
    assert entity["metadata"]["gen_ai.data_source.id"] == "wiki"

    agent = valid(map_trace_part(SCENARIOS["multi_level_agent"](), NO_CONTENT).entities)
    (trace,) = by_type(agent, "trace")
    assert (trace["input"], trace["output"], trace["name"]) == (
        CONTENT_PLACEHOLDER,
        CONTENT_PLACEHOLDER,
        "invoke_agent planner",
    )
    planner = next(e for e in agent if e.get("name") == "invoke_agent planner" and e["type"] == "span")
    assert planner["metadata"]["input.value"] == CONTENT_PLACEHOLDER
    assert planner["metadata"]["gen_ai.agent.name"] == "planner"
    for _, text in strings(agent):
        assert "Plan a trip" not in text and "Step 1" not in text and "flights" not in text


def test_text_parts_images_and_logprobs_keep_their_count_not_their_content() -> None:
    entity = {
        "id": "g",
        "type": "generation",
        "model": "m",
        "provider": "openai",
        "modelParameters": {},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "u"}}]},
            {"role": "assistant", "content": None},
            {"role": "assistant", "content": ""},
        ],
        "result": {
            "id": "r",
            "object": "text_completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "text": "secret", "finish_reason": "stop", "logprobs": {"tokens": ["secret"]}}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
        "metadata": {"reasoning": ["because"], "gen_ai.request.seed": 3},
    }
    out = without_content(entity)
    assert valid([out])
    assert out["messages"][0]["content"] == [{"type": "text", "text": CONTENT_PLACEHOLDER}] * 2
    assert out["messages"][1]["content"] is None and out["messages"][2]["content"] == ""
    choice = out["result"]["choices"][0]
    assert (choice["text"], choice["logprobs"], choice["finish_reason"]) == (CONTENT_PLACEHOLDER, None, "stop")
    assert out["metadata"] == {"reasoning": [CONTENT_PLACEHOLDER], "gen_ai.request.seed": 3}
    assert entity["messages"][0]["content"][0]["text"] == "hi", "the input is not modified"


@pytest.mark.parametrize(
    ("key", "content"),
    [
        ("gen_ai.input.messages", True),
        ("input.value", True),
        ("traceloop.entity.output", True),
        ("ai.toolCall.args", True),
        ("gen_ai.prompt.0.content", True),
        ("gen_ai.prompt.0.role", False),
        ("llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments", True),
        ("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", False),
        ("retrieval.documents.1.document.content", True),
        ("retrieval.documents.1.document.score", False),
        ("gen_ai.request.model", False),
        ("gen_ai.tool.name", False),
        ("gen_ai.usage.input_tokens", False),
    ],
)
def test_content_keys(key: str, content: bool) -> None:
    assert is_content_key(key) is content


# Words that only occur in the captured scenarios' prompts, answers, tool arguments, results and documents.
CAPTURED_CONTENT = re.compile(r"Paris|sunny|weather in|18C|18°C|cat\.png|data:image|capital|Eiffel", re.IGNORECASE)


@pytest.mark.parametrize("name", ALL_CAPTURED)
def test_no_captured_content_survives_for_any_instrumentation(name: str) -> None:
    for scenario, records in captured(name).items():
        full = valid(map_trace_part(records).entities)
        bare = valid(map_trace_part(records, NO_CONTENT).entities)
        assert [e["id"] for e in bare] == [e["id"] for e in full], scenario
        for path, text in strings(bare):
            assert not CAPTURED_CONTENT.search(text), f"{name}/{scenario}: {path} = {text[:120]!r}"
        for before, after in zip(by_type(full, "generation"), by_type(bare, "generation"), strict=True):
            assert [m["role"] for m in after["messages"]] == [m["role"] for m in before["messages"]]
            assert after["model"] == before["model"]
            assert after.get("result", {}).get("usage") == before.get("result", {}).get("usage")
            assert after.get("metrics") == before.get("metrics")
        for before, after in zip(by_type(full, "toolCall"), by_type(bare, "toolCall"), strict=True):
            assert after["name"] == before["name"]


# -- redaction -------------------------------------------------------------------------------------------------

SECRET = "sk-live-4f9a8b7c6d5e"
EMAIL = "ada@example.com"
PATTERNS = MappingOptions(redact=[r"sk-live-[0-9a-f]+", r"[\w.]+@[\w.]+\.com"])


def _leaky_trace() -> list[SpanRecord]:
    """A secret and an e-mail address in every place a string can come from."""
    rec = SpanRecorder(resource={"service.name": "app", "deploy.owner": EMAIL})
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"my key is {SECRET}, mail {EMAIL}"}]}]
    call = {"type": "tool_call", "id": "call_1", "name": "email_to", "arguments": {"to": EMAIL, "key": SECRET}}
    with rec.span(
        f"agent for {EMAIL}",
        0,
        1000,
        {
            ga.GEN_AI_OPERATION_NAME: "invoke_agent",
            "input.value": f"help {EMAIL}",
            "session.id": "s-1",
            "user.id": EMAIL,
            "maxim.tag.owner": EMAIL,
            "app.token": SECRET,
        },
    ) as agent:
        rec.event(agent, "note", 5, {"detail": f"key {SECRET}"})
        with rec.span(
            "chat gpt-4o",
            10,
            300,
            {
                ga.GEN_AI_OPERATION_NAME: "chat",
                ga.GEN_AI_PROVIDER_NAME: "openai",
                ga.GEN_AI_REQUEST_MODEL: "gpt-4o",
                ga.GEN_AI_INPUT_MESSAGES: json.dumps(messages),
                ga.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [call]}]),
            },
        ):
            pass
        with rec.span(
            "execute_tool email_to",
            310,
            400,
            {
                ga.GEN_AI_OPERATION_NAME: "execute_tool",
                ga.GEN_AI_TOOL_NAME: "email_to",
                ga.GEN_AI_TOOL_CALL_ID: "call_1",
                ga.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"to": EMAIL, "key": SECRET}),
                ga.GEN_AI_TOOL_CALL_RESULT: f"sent to {EMAIL}",
            },
            error=f"refused for {EMAIL}",
        ):
            pass
    return rec.records()


def test_no_string_matching_a_pattern_is_left_anywhere() -> None:
    records = _leaky_trace()
    full = valid(map_trace_part(records).entities)
    assert any(SECRET in text for _, text in strings(full)) and any(EMAIL in text for _, text in strings(full))
    redacted = valid(map_trace_part(records, PATTERNS).entities)
    assert [(e["id"], e["type"]) for e in redacted] == [(e["id"], e["type"]) for e in full]
    for path, text in strings(redacted):
        assert SECRET not in text and EMAIL not in text, path
    (trace,) = by_type(redacted, "trace")
    assert trace["name"] == f"agent for {REDACTION_MARKER}"
    assert trace["tags"] == {"owner": REDACTION_MARKER, "user.id": REDACTION_MARKER}
    (tool,) = by_type(redacted, "toolCall")
    assert json.loads(tool["args"]) == {"to": REDACTION_MARKER, "key": REDACTION_MARKER}, "JSON stays JSON"
    assert tool["error"]["errorMessage"] == f"refused for {REDACTION_MARKER}"


def test_ids_and_enum_fields_are_never_rewritten() -> None:
    options = MappingOptions(redact=[r"[0-9a-f]{16}", r"\buser\b", r"openai", r"span", r"call_1"])
    entities = valid(map_trace_part(_leaky_trace(), options).entities)
    full = map_trace_part(_leaky_trace()).entities
    for before, after in zip(full, entities, strict=True):
        for key in ("id", "type", "traceId", "spanId", "sessionId"):
            assert after.get(key) == before.get(key)
    generation, *_ = by_type(entities, "generation")
    assert generation["provider"] == "openai"
    assert generation["messages"][0]["role"] == "user"
    assert generation["result"]["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"


def test_metadata_is_redacted_whatever_its_keys() -> None:
    entity = {"id": "abc", "type": "span", "metadata": {"id": "abc", "type": "abc", "nested": [{"id": "abc"}]}}
    out = redact(entity, MappingOptions(redact=["abc"]).redact)
    assert out == {
        "id": "abc",
        "type": "span",
        "metadata": {"id": REDACTION_MARKER, "type": REDACTION_MARKER, "nested": [{"id": REDACTION_MARKER}]},
    }


def test_redaction_runs_before_truncation() -> None:
    # Cut first, the secret's head would be left before the marker and slip past the pattern.
    rec = SpanRecorder()
    with rec.span("s", 0, 1, {"note": "x" * 10 + SECRET}):
        pass
    options = MappingOptions(max_value_chars=15, redact=[r"sk-live-[0-9a-f]+"])
    (span,) = by_type(map_trace_part(rec.records(), options).entities, "span")
    assert span["metadata"]["note"].startswith("x" * 10 + "[REDA")
    assert "sk-" not in span["metadata"]["note"]


def test_both_settings_together_still_validate_for_every_golden_scenario() -> None:
    options = MappingOptions(capture_content=False, redact=[r"Paris", r"gpt-4o"])
    for name, scenario in SCENARIOS.items():
        entities = valid(map_trace_part(scenario(), options).entities)
        for path, text in strings(entities):
            assert "Paris" not in text and "gpt-4o" not in text, (name, path)


@pytest.mark.parametrize(
    "patterns",
    [
        [r"sk-[A-Za-z0-9]{8,}", r"\b\d{3}-\d{2}-\d{4}\b"],  # combined into one scan
        [r"(['\"])secret\1", r"sk-[A-Za-z0-9]{8,}"],  # a backreference: applied one by one
        [r"(?i)SK-[a-z0-9]{8,}", r"\b\d{3}-\d{2}-\d{4}\b"],  # a global inline flag: applied one by one
        [r"(?P<k>sk)-[A-Za-z0-9]{8,}", r"(?P<k>\d{3})-\d{2}-\d{4}"],  # duplicate group names
    ],
)
def test_several_patterns_redact_as_if_applied_one_after_another(patterns: list[str]) -> None:
    compiled = [re.compile(p) for p in patterns]
    texts = ["key sk-abcdef123456 and 123-45-6789", "nothing here", "'secret' and \"secret\"", "SK-ABCDEFGH1"]
    for text in texts:
        expected = text
        for pattern in compiled:
            expected = pattern.sub(REDACTION_MARKER, expected)
        assert redact({"id": "x", "name": text}, compiled)["name"] == expected
