"""OpenLLMetry as Traceloop's SDK emits it: workflow / agent / task / tool decorators, association properties, the
OpenAI instrumentation in both content modes, the Mistral instrumentation's indexed `gen_ai.prompt.{i}.*` and the
Chroma instrumentation's `db.query.result` events.

traceloop-sdk cannot share the project's environment (it pins older OpenTelemetry packages and installs some forty
instrumentations), so these spans were captured in a virtualenv of its own by `tests/capture/traceloop_sdk.py`
(its docstring has the commands); the tests here map the captured records.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.schema import validate_batch

FIXTURE = Path(__file__).parent / "fixtures" / "captured" / "traceloop_sdk.json"
ANSWER = "It is 18°C and sunny in Paris."


@cache
def _fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _entities(variant: str) -> list[dict[str, Any]]:
    records = [SpanRecord.from_json_obj(obj) for obj in _fixture()["scenarios"][variant]]
    entities = map_trace_part(records).entities
    assert validate_batch({"repoId": "repo", "logs": entities}) == []
    return entities


def _named(entities: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (entity,) = [e for e in entities if e.get("name") == name and e["type"] not in ("trace", "session")]
    return entity


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@pytest.mark.parametrize("variant", ["content_on_spans", "content_in_events"])
def test_workflow_tree_session_and_user(variant: str) -> None:
    entities = _entities(variant)
    (session,) = [e for e in entities if e["type"] == "session"]
    (trace,) = [e for e in entities if e["type"] == "trace"]
    assert session["id"] == trace["sessionId"] == "session-42"
    assert trace["tags"]["user.id"] == "user-7"
    assert trace["name"] == "plan_trip.workflow"

    workflow = _named(entities, "plan_trip.workflow")
    agent = _named(entities, "weather_agent.agent")
    task = _named(entities, "find_guides.task")
    tool = _named(entities, "get_weather")
    assert (workflow["type"], agent["type"], task["type"], tool["type"]) == (
        "span",
        "span",
        "span",
        "toolCall",
    )
    assert "spanId" not in workflow
    assert agent["spanId"] == task["spanId"] == workflow["id"]
    generations = [e for e in entities if e["type"] == "generation"]
    assert [g["spanId"] for g in generations] == [agent["id"], agent["id"]]
    assert tool["spanId"] == agent["id"]
    # The decorator records `{"args": [], "kwargs": {...}}`; the tool's arguments are the keyword arguments.
    assert (json.loads(tool["args"]), tool["result"]) == (
        {"city": "Paris"},
        "18C, sunny",
    )
    # Usage and model survive even when the message content left the spans.
    assert [g["result"]["usage"] for g in generations] == [_usage(5, 16), _usage(23, 8)]
    assert {(g["model"], g["provider"]) for g in generations} == {("gpt-4o-mini-2024-07-18", "openai")}
    # Decorated spans carry no usage of their own to count again.
    assert all("result" not in e for e in (workflow, agent, task))


def test_content_on_spans_gives_the_conversation() -> None:
    asked, answered = [e for e in _entities("content_on_spans") if e["type"] == "generation"]
    assert asked["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    (choice,) = asked["result"]["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert answered["messages"][-1] == {
        "role": "tool",
        "content": "18C, sunny",
        "tool_call_id": call["id"],
    }
    assert answered["result"]["choices"][0]["message"]["content"] == ANSWER


def test_content_in_events_mode_sends_generations_without_content() -> None:
    # With use_legacy_attributes=False the messages go to log events, which a span exporter never sees.
    generations = [e for e in _entities("content_in_events") if e["type"] == "generation"]
    assert [g["messages"] for g in generations] == [[], []]


def test_mistral_indexed_prompt_and_completion() -> None:
    entities = _entities("mistralai_indexed")
    asked, answered = [e for e in entities if e["type"] == "generation"]
    assert asked["model"] == "mistral-small-latest"
    # Mistral is outside Maxim's provider enum: sent as openai, the original kept as a tag.
    assert (asked["provider"], asked["tags"]["provider.original"]) == (
        "openai",
        "MistralAI",
    )
    assert asked["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert asked["result"]["choices"][0]["finish_reason"] == "tool_calls"
    assert asked["result"]["usage"] == _usage(7, 16)
    # The instrumentation records neither tool calls nor an empty assistant content: only the roles remain.
    assert answered["messages"][2:] == [
        {"role": "assistant", "content": None},
        {"role": "tool", "content": "18C, sunny"},
    ]
    assert answered["result"]["choices"][0]["message"]["content"] == ANSWER
    assert answered["result"]["usage"] == _usage(26, 8)


def test_chroma_query_results_become_a_retrieval() -> None:
    entities = _entities("chromadb_retrieval")
    added, queried = _named(entities, "chroma.add"), _named(entities, "chroma.query")
    # Adding documents is a plain span; a query with `db.query.result` events is a retrieval with them as output.
    assert (added["type"], queried["type"]) == ("span", "retrieval")
    documents = [json.loads(d) for d in queried["output"]]
    assert [(d["id"], d["document"]) for d in documents] == [
        ("guide-1", "Paris in spring: mild, often sunny."),
        ("guide-2", "Packing for rain in Paris."),
    ]
    assert documents[0]["distance"] == 0.0 and json.loads(documents[1]["metadata"]) == {"source": "guides"}
    # The events are the retrieval's output, not separate event entities.
    assert [e for e in entities if e["type"] == "event"] == []
