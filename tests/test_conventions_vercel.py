"""The Vercel AI SDK: spans from a real Node run (mock models from `ai/test`, the OpenTelemetry Node SDK exporting
OTLP/HTTP JSON) decoded by the sidecar's OTLP decoder and mapped.

Golden tests read `tests/fixtures/captured/vercel_ai.json` (written by `tests/capture/capture_python.py vercel_ai`);
the live tests run `npm ci` once and the script again: once into a capture receiver, compared with the fixture, and
once into a real `maxim-otel-bridge serve` process shipping to the fake Maxim batch endpoint.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from capture import vercel_ai
from capture.summary import summary
from fakes.batch_sink import BatchSink
from fakes.serve_process import clean_environ, serving

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.schema import validate_batch

FIXTURE = Path(__file__).parent / "fixtures" / "captured" / "vercel_ai.json"
MODEL = "gpt-4o-mini-2024-07-18"
ANSWER = "It is 18°C and sunny in Paris."


@cache
def _fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _records(scenario: str) -> list[SpanRecord]:
    return [SpanRecord.from_json_obj(obj) for obj in _fixture()["scenarios"][scenario]]


def _entities(records: list[SpanRecord]) -> list[dict[str, Any]]:
    entities = map_trace_part(records).entities
    assert validate_batch({"repoId": "repo", "logs": entities}) == []
    return entities


def _of(entities: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in entities if e["type"] == kind]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def test_generate_text_with_a_tool_round_trip() -> None:
    entities = _entities(_records("tool_round_trip"))
    (session,) = _of(entities, "session")
    (trace,) = _of(entities, "trace")
    (outer,) = _of(entities, "span")
    asked, answered = _of(entities, "generation")
    (tool,) = _of(entities, "toolCall")

    # ai.telemetry.metadata carries the session and user of the whole trace.
    assert session["id"] == trace["sessionId"] == "session-42"
    assert trace["tags"]["user.id"] == "user-7"
    assert trace["output"] == ANSWER
    # The outer ai.generateText is a span; its two doGenerate model calls and the tool hang under it.
    assert outer["name"] == "ai.generateText" and "spanId" not in outer
    assert [e["spanId"] for e in (asked, tool, answered)] == [outer["id"]] * 3
    assert [e["startTimestamp"] <= f["startTimestamp"] for e, f in ((asked, tool), (tool, answered))] == [True, True]

    assert (asked["model"], asked["provider"], asked["modelParameters"]) == (
        MODEL,
        "openai",
        {"temperature": 0.2},
    )
    assert asked["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    (choice,) = asked["result"]["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert (
        call["id"],
        call["function"]["name"],
        json.loads(call["function"]["arguments"]),
    ) == ("call_1", "get_weather", {"city": "Paris"})
    assert asked["result"]["usage"] == _usage(20, 7)

    assert (tool["name"], json.loads(tool["args"]), tool["result"]) == (
        "get_weather",
        {"city": "Paris"},
        "18C, sunny",
    )

    assert answered["messages"][2:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "18C, sunny", "tool_call_id": "call_1"},
    ]
    assert answered["result"]["choices"][0]["message"]["content"] == ANSWER
    assert answered["result"]["choices"][0]["finish_reason"] == "stop"
    assert answered["result"]["usage"] == _usage(31, 9)


def test_outer_span_usage_is_not_counted_twice() -> None:
    records = _records("tool_round_trip")
    (outer_record,) = [r for r in records if r.name == "ai.generateText"]
    entities = _entities(records)
    # The SDK sums its steps on the outer span; only the model calls carry usage in Maxim.
    summed = sum(g["result"]["usage"]["total_tokens"] for g in _of(entities, "generation"))
    assert outer_record.attributes["ai.usage.totalTokens"] == summed
    assert [e for e in entities if "result" in e and e["type"] != "generation" and e["type"] != "toolCall"] == []


def test_stream_text_keeps_usage_and_first_chunk_time() -> None:
    entities = _entities(_records("streaming"))
    (generation,) = _of(entities, "generation")
    assert generation["name"] == "ai.streamText.doStream"
    assert generation["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert generation["result"]["choices"][0]["message"]["content"] == ANSWER
    assert generation["result"]["usage"] == _usage(12, 9)
    assert generation["metrics"]["time_to_first_chunk_seconds"] > 0


def test_embed_many_is_spans_only() -> None:
    entities = _entities(_records("embeddings"))
    assert _of(entities, "generation") == []
    assert sorted(e["name"] for e in _of(entities, "span")) == [
        "ai.embedMany",
        "ai.embedMany.doEmbed",
        "ai.embedMany.doEmbed",
    ]


def test_images_become_image_url_parts() -> None:
    # On the model call the SDK writes both as `file` parts: the link with `image/*`, the bytes as base64.
    (generation,) = _of(_entities(_records("multimodal")), "generation")
    (user,) = generation["messages"]
    assert user["content"] == [
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {
            "type": "image_url",
            "image_url": {
                "url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAACAAFUok9dAAAAAElFTkSuQmCC"
            },
        },
    ]
    assert generation["result"]["choices"][0]["message"]["content"] == ANSWER


def _without(record: SpanRecord, *prefixes: str) -> SpanRecord:
    return replace(
        record,
        attributes={k: v for k, v in record.attributes.items() if not k.startswith(prefixes)},
    )


def _generation_of(record: SpanRecord) -> dict[str, Any]:
    (generation,) = _of(_entities([record]), "generation")
    return generation


def test_precedence_when_conventions_meet_on_one_span() -> None:
    # A real doGenerate span carries both gen_ai.* and ai.*; make them disagree to see which one wins.
    (record,) = [r for r in _records("tool_round_trip") if r.name == "ai.generateText.doGenerate"][:1]
    record = replace(record, parent_span_id=None)
    disagreeing = replace(
        record,
        attributes={
            **record.attributes,
            "ai.usage.inputTokens": 999,
            "ai.response.model": "vercel-model",
            "llm.model_name": "openinference-model",
            "llm.token_count.prompt": 555,
        },
    )
    got = _generation_of(disagreeing)
    assert got["model"] == MODEL  # gen_ai.response.model first
    assert got["result"]["usage"]["prompt_tokens"] == 20  # gen_ai.usage.input_tokens first

    no_genai = _without(disagreeing, "gen_ai.")
    got = _generation_of(no_genai)
    assert got["model"] == "openinference-model"  # then OpenInference
    assert got["result"]["usage"]["prompt_tokens"] == 555

    vercel_only = _without(no_genai, "llm.")
    got = _generation_of(vercel_only)
    assert got["model"] == "vercel-model"  # then ai.response.model, then ai.model.id
    assert got["result"]["usage"]["prompt_tokens"] == 999
    assert _generation_of(_without(vercel_only, "ai.response.model"))["model"] == "gpt-4o-mini"


def test_live_node_run_matches_the_fixture() -> None:
    assert vercel_ai.node_available(), "node and npm are needed for the Vercel AI SDK test"
    live = vercel_ai.capture()
    assert _fixture()["version"] == vercel_ai.ai_version(), "the ai package changed: re-capture and review the diff"
    for scenario, records in live.items():
        captured = _records(scenario)
        key = lambda r: (r.name, sorted(r.attributes))
        assert sorted(map(key, records)) == sorted(map(key, captured)), scenario
        assert summary(_entities(records)) == summary(_entities(captured)), scenario


def test_node_app_through_a_real_serve_process(tmp_path: Path) -> None:
    assert vercel_ai.node_available(), "node and npm are needed for the Vercel AI SDK test"
    vercel_ai.ensure_installed()
    api_key = "sk-vercel-serve-8675309"
    with BatchSink(api_key=api_key) as sink:
        env = clean_environ({"MAXIM_API_KEY": api_key, "MAXIM_LOG_REPO_ID": "repo-node", "MAXIM_BASE_URL": sink.url})
        args = ["--assembly-wait", "0.5", "--grace-period", "5"]
        with serving(tmp_path / "spool", env, args) as serve:
            vercel_ai.run_script(f"{serve.http_url}/v1/traces")

            def generations_with_usage(s: BatchSink) -> list[dict[str, Any]]:
                return [e for e in s.entities_by_id().values() if e.get("type") == "generation" and "result" in e]

            # Three doGenerate calls and one doStream call: each a generation with its usage.
            assert sink.wait_for(lambda s: len(generations_with_usage(s)) == 4, timeout=30), serve.log
            assert serve.terminate() == 0
        assert sink.problems() == []
        received = sink.entities_by_id()
    usages = sorted(tuple(g["result"]["usage"].values()) for g in generations_with_usage(sink))
    assert usages == [(12, 9, 21), (20, 7, 27), (31, 9, 40), (40, 9, 49)]
    assert {g["model"] for g in generations_with_usage(sink)} == {MODEL}
    (tool,) = [e for e in received.values() if e.get("type") == "toolCall"]
    assert (tool["name"], tool["result"]) == ("get_weather", "18C, sunny")
    assert {e["sessionId"] for e in received.values() if e.get("type") == "trace"} == {"session-42"}
    assert api_key not in serve.log
