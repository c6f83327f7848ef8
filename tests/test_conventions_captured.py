"""Spans that real instrumentation packages emitted, mapped to Maxim entities.

The fixtures in `tests/fixtures/captured/` were written by `tests/capture/capture_python.py` from the packages'
own spans (nothing hand-typed). Every instrumentation ran the same scenarios against the same deterministic local
server, so they must all map to the same conversation: one summary per scenario, checked for each package. The
live tests run the installed packages again and compare with the fixtures, so an upgrade that changes what a
package emits shows up here (re-capture, review the diff, and the golden tests say whether the mapping still holds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from capture.scenarios import CAPTURES, TOOL_RESULT, package_version
from capture.summary import summary

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.schema import validate_batch

FIXTURES = Path(__file__).parent / "fixtures" / "captured"
CAPTURE_SCRIPT = Path(__file__).parent / "capture" / "capture_python.py"
OPENAI_CLIENTS = ("openai_v2", "openinference", "traceloop")
PYDANTIC_AI = ("pydantic_ai", "pydantic_ai_v2", "pydantic_ai_v3")
MODEL = "gpt-4o-mini-2024-07-18"
ANSWER = "It is 18°C and sunny in Paris."
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


@cache
def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _records(name: str, scenario: str) -> list[SpanRecord]:
    return [SpanRecord.from_json_obj(obj) for obj in _fixture(name)["scenarios"][scenario]]


def _entities(records: list[SpanRecord]) -> list[dict[str, Any]]:
    entities = map_trace_part(records).entities
    assert validate_batch({"repoId": "repo", "logs": entities}) == []
    return entities


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _expected_tool_messages(call_id: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": TOOL_RESULT, "tool_call_id": call_id},
    ]


def _text_generation(messages: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
    return {
        "model": MODEL,
        "provider": "openai",
        "messages": messages,
        "answer": ANSWER,
        "tool_calls": [],
        "finish_reason": "stop",
        "usage": usage,
    }


@pytest.mark.parametrize("name", OPENAI_CLIENTS + PYDANTIC_AI)
def test_plain_chat(name: str) -> None:
    got = summary(_entities(_records(name, "chat")))
    system_and_user = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Say hello."},
    ]
    assert got["generations"] == [_text_generation(system_and_user, _usage(5, 8))]
    assert got["trace_io"] == ("Say hello.", ANSWER)
    # A bare client call is the trace's only span; an agent run puts the call under its agent span.
    assert got["shape"] == (
        [("generation", "trace")] if name in OPENAI_CLIENTS else [("span", "trace"), ("generation", "span")]
    )


@pytest.mark.parametrize("name", OPENAI_CLIENTS + PYDANTIC_AI)
def test_tool_round_trip(name: str) -> None:
    entities = _entities(_records(name, "tool_round_trip"))
    got = summary(entities)
    asked, answered = got["generations"]
    assert asked == {
        "model": MODEL,
        "provider": "openai",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "answer": None,
        "tool_calls": [WEATHER_CALL],
        "finish_reason": "tool_calls",
        "usage": _usage(5, 16),
    }
    (first,) = [e for e in entities if e["type"] == "generation"][:1]
    call_id = first["result"]["choices"][0]["message"]["tool_calls"][0]["id"]
    assert answered == _text_generation(_expected_tool_messages(call_id), _usage(23, 8))
    if name in OPENAI_CLIENTS:
        # The application's own span holds both model calls; nobody recorded the tool run itself.
        assert got["shape"] == [
            ("span", "trace"),
            ("generation", "span"),
            ("generation", "span"),
        ]
        assert got["tools"] == []
    else:
        assert got["shape"] == [
            ("span", "trace"),
            ("generation", "span"),
            ("toolCall", "span"),
            ("generation", "span"),
        ]
        assert got["tools"] == [("get_weather", {"city": "Paris"}, TOOL_RESULT)]
        assert got["trace_io"] == ("Weather in Paris?", ANSWER)


@pytest.mark.parametrize("name", OPENAI_CLIENTS + PYDANTIC_AI)
def test_streamed_answer_keeps_its_usage(name: str) -> None:
    got = summary(_entities(_records(name, "streaming")))
    user = [{"role": "user", "content": "Weather in Paris?"}]
    if name in OPENAI_CLIENTS:
        assert got["generations"] == [_text_generation(user, _usage(5, 8))]
    else:
        assert got["generations"] == [
            _text_generation([{"role": "system", "content": "Be terse."}, *user], _usage(7, 8))
        ]
    assert got["trace_io"] == ("Weather in Paris?", ANSWER)


@pytest.mark.parametrize("name", OPENAI_CLIENTS)
def test_streamed_tool_call_is_reassembled(name: str) -> None:
    (generation,) = summary(_entities(_records(name, "streaming_tool_call")))["generations"]
    # The arguments arrive split over two chunks; the instrumentation joins them.
    assert (generation["tool_calls"], generation["finish_reason"]) == ([WEATHER_CALL], "tool_calls")
    assert not generation["answer"]  # openai-v2 and Traceloop record "", OpenInference nothing
    assert generation["usage"] == _usage(5, 16)


@pytest.mark.parametrize("name", OPENAI_CLIENTS + PYDANTIC_AI)
def test_embeddings_are_a_span_not_a_generation(name: str) -> None:
    entities = _entities(_records(name, "embeddings"))
    got = summary(entities)
    assert got["shape"] == [("span", "trace")] and got["generations"] == []
    (span,) = [e for e in entities if e["type"] == "span"]
    # The model and token count stay visible on the span rather than being lost.
    assert any("text-embedding-3-small" in str(v) for v in span.get("metadata", {}).values())


@pytest.mark.parametrize("name", ["openinference", *PYDANTIC_AI])
def test_images_become_image_url_parts(name: str) -> None:
    (generation,) = [e for e in _entities(_records(name, "multimodal")) if e["type"] == "generation"]
    (user,) = [m for m in generation["messages"] if m["role"] == "user"]
    text, url, blob = user["content"]
    assert text == {"type": "text", "text": "What is in these pictures?"}
    assert url == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png"},
    }
    assert blob["type"] == "image_url" and blob["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert generation["result"]["choices"][0]["message"]["content"] == ANSWER


@pytest.mark.parametrize("name", ["openai_v2", "traceloop"])
def test_images_dropped_by_the_instrumentation_still_give_a_generation(
    name: str,
) -> None:
    # openai-v2 records the image message with no parts and Traceloop records no input at all for list
    # contents: nothing to show, but the call, its answer and its usage still arrive.
    (generation,) = [e for e in _entities(_records(name, "multimodal")) if e["type"] == "generation"]
    assert generation["result"]["choices"][0]["message"]["content"] == ANSWER
    assert generation["result"]["usage"]["prompt_tokens"] > 0
    assert all(not isinstance(m.get("content"), list) or m["content"] for m in generation["messages"])


@pytest.mark.parametrize("name", OPENAI_CLIENTS + PYDANTIC_AI)
def test_failed_call_is_a_generation_with_its_error(name: str) -> None:
    entities = _entities(_records(name, "error"))
    (generation,) = [e for e in entities if e["type"] == "generation"]
    assert "broken" in generation["error"]["errorMessage"] and "404" in generation["error"]["errorMessage"]
    assert generation["error"]["errorType"].endswith("NotFoundError")
    assert generation["model"] == "broken"  # the requested model, though no response named one
    # No answer and no usage were reported: zero counts, no invented choice.
    assert generation["result"]["choices"] == []
    assert generation["result"]["usage"] == _usage(0, 0)
    if name in PYDANTIC_AI:
        (agent,) = [e for e in entities if e["type"] == "span"]
        assert agent["error"]["errorType"] == "pydantic_ai.exceptions.ModelNotFoundError"
        assert generation["spanId"] == agent["id"]


def test_pydantic_ai_agent_usage_is_not_counted_twice() -> None:
    entities = _entities(_records("pydantic_ai", "tool_round_trip"))
    (agent,) = [e for e in entities if e["type"] == "span"]
    assert "result" not in agent and "usage" not in json.dumps({k: v for k, v in agent.items() if k != "metadata"})
    generations = [e for e in entities if e["type"] == "generation"]
    total = sum(g["result"]["usage"]["total_tokens"] for g in generations)
    aggregated = agent["metadata"]
    assert (
        int(aggregated["gen_ai.aggregated_usage.input_tokens"])
        + int(aggregated["gen_ai.aggregated_usage.output_tokens"])
        == total
    )


def test_openinference_agent_with_retriever_reranker_and_tool() -> None:
    entities = _entities(_records("openinference_agent", "agent"))
    by_name = {e.get("name"): e for e in entities if e["type"] not in ("trace", "session")}
    (session,) = [e for e in entities if e["type"] == "session"]
    (trace,) = [e for e in entities if e["type"] == "trace"]
    # using_attributes: the session, the user and the tags reach every span; the metadata stays visible.
    assert session["id"] == trace["sessionId"] == "session-42"
    assert trace["tags"] == {"beta": "", "weather": "", "user.id": "user-7"}
    assert (trace["input"], trace["output"]) == ("Weather in Paris?", ANSWER)
    assert all(e["tags"]["beta"] == "" for e in by_name.values())
    assert by_name["weather_agent"]["metadata"]["metadata"] == {"plan": "pro"}  # the JSON text, as the object

    chain, agent = by_name["plan_trip"], by_name["weather_agent"]
    assert (chain["type"], agent["type"], agent["spanId"]) == ("span", "span", chain["id"])
    retrieved, reranked = by_name["find_guides"], by_name["rerank_guides"]
    assert (retrieved["type"], reranked["type"]) == ("retrieval", "retrieval")
    assert retrieved["input"] == reranked["input"] == "Weather in Paris?"
    assert [json.loads(d)["id"] for d in retrieved["output"]] == ["guide-1", "guide-2"]
    assert [json.loads(d)["id"] for d in reranked["output"]] == ["guide-1"]
    tool = by_name["get_weather"]
    assert (tool["type"], tool["description"], json.loads(tool["args"]), tool["result"]) == (
        "toolCall",
        "Current weather for a city.",
        {"city": "Paris"},
        TOOL_RESULT,
    )
    asked, answered = [e for e in entities if e["type"] == "generation"]
    assert [e["spanId"] for e in (retrieved, reranked, asked, tool, answered)] == [agent["id"]] * 5
    call_id = asked["result"]["choices"][0]["message"]["tool_calls"][0]["id"]
    assert summary(_entities(_records("openinference_agent", "agent")))["generations"][1] == _text_generation(
        _expected_tool_messages(call_id), _usage(23, 8)
    )


def _capture_in_a_fresh_process(name: str) -> dict[str, list[SpanRecord]]:
    # Instrumentors patch the OpenAI client for the whole process, and Traceloop's does not fully unpatch:
    # running them here would leak its spans into every later test.
    done = subprocess.run(
        [sys.executable, str(CAPTURE_SCRIPT), "--print", name],
        check=False,  # the return code is checked below, with the script's stderr in the message
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(done.stdout)
    return {scenario: [SpanRecord.from_json_obj(o) for o in objs] for scenario, objs in doc["scenarios"].items()}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_fixture_matches_the_installed_package_run_live(name: str) -> None:
    fixture = _fixture(name)
    assert fixture["version"] == package_version(name), (
        f"{fixture['package']} is now {package_version(name)}, fixtures are from {fixture['version']}: "
        "re-run tests/capture/capture_python.py and review the diff"
    )
    live = _capture_in_a_fresh_process(name)
    assert sorted(live) == sorted(fixture["scenarios"])
    for scenario, records in live.items():
        captured = _records(name, scenario)
        # The same spans with the same attribute keys: a changed key is a changed convention.
        assert [(r.name, sorted(r.attributes)) for r in records] == [
            (r.name, sorted(r.attributes)) for r in captured
        ], scenario
        assert summary(_entities(records)) == summary(_entities(captured)), scenario
