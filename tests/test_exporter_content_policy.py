"""The exporter's content settings, end to end: real SDK spans -> MaximSpanExporter -> the fake Maxim's raw bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.batch_sink import BatchSink
from test_exporter import provider_with, run_agent

from maxim_otel_bridge import MaximSpanExporter
from maxim_otel_bridge.config import ConfigError
from maxim_otel_bridge.exporter import ENV_CAPTURE_CONTENT, ENV_REDACT
from maxim_otel_bridge.mapping.content_policy import CONTENT_PLACEHOLDER, REDACTION_MARKER

API_KEY = "sk-exporter-policy-123456789"


@pytest.fixture
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


def exporter_from_env(sink: BatchSink, tmp_path: Path, **env: str) -> MaximSpanExporter:
    environ = {
        "MAXIM_API_KEY": API_KEY,
        "MAXIM_LOG_REPO_ID": "repo-policy",
        "MAXIM_BASE_URL": sink.url,
        "MAXIM_BRIDGE_DEAD_LETTER_PATH": str(tmp_path / "dead.jsonl"),
        **env,
    }
    return MaximSpanExporter(environ=environ)


def ship_agent(exporter: MaximSpanExporter, sink: BatchSink) -> tuple[dict[str, str], bytes]:
    provider = provider_with(exporter)
    ids = run_agent(provider.get_tracer("test"))
    provider.force_flush()
    assert sink.wait_for_entities([ids["trace"], ids["agent"], ids["chat"], ids["tool"]], timeout=10)
    provider.shutdown()
    assert sink.problems() == []
    return ids, b"".join(request.raw_body for request in sink.requests)


def test_content_off_no_message_content_reaches_the_wire(sink: BatchSink, tmp_path: Path) -> None:
    exporter = exporter_from_env(sink, tmp_path, **{ENV_CAPTURE_CONTENT: "false"})
    ids, wire = ship_agent(exporter, sink)
    for content in (b"Paris", b"You report weather", b"sunny, 21C"):
        assert content not in wire
    entities = sink.entities_by_id()
    chat = entities[ids["chat"]]
    assert [m["role"] for m in chat["messages"]] == ["system", "user"]
    assert {m["content"] for m in chat["messages"]} == {CONTENT_PLACEHOLDER}
    assert chat["result"]["usage"] == {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}
    call = chat["result"]["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == ("call_1", "get_weather")
    assert chat["result"]["choices"][0]["finish_reason"] == "tool_calls"
    tool = entities[ids["tool"]]
    assert (tool["name"], tool["args"], tool["result"]) == ("get_weather", CONTENT_PLACEHOLDER, CONTENT_PLACEHOLDER)
    assert entities[ids["trace"]]["sessionId"] == "sess-42"


def test_redaction_patterns_leave_no_match_on_the_wire(sink: BatchSink, tmp_path: Path) -> None:
    # A JSON array of patterns; the city also sits inside the tool call's JSON arguments.
    patterns = json.dumps([r"Paris", r"\d+C\b", r"report \w+"])
    exporter = exporter_from_env(sink, tmp_path, **{ENV_REDACT: patterns})
    ids, wire = ship_agent(exporter, sink)
    for secret in (b"Paris", b"21C", b"report weather"):
        assert secret not in wire
    assert REDACTION_MARKER.encode() in wire
    entities = sink.entities_by_id()
    assert json.loads(entities[ids["tool"]]["args"]) == {"city": REDACTION_MARKER}


def test_one_pattern_per_line_is_read_too(sink: BatchSink, tmp_path: Path) -> None:
    exporter = exporter_from_env(sink, tmp_path, **{ENV_REDACT: "Paris\nsunny"})
    _, wire = ship_agent(exporter, sink)
    assert b"Paris" not in wire and b"sunny" not in wire


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({ENV_REDACT: '["ok", "sk-live-(unclosed"]'}, "MAXIM_BRIDGE_REDACT: redact[1] is not a valid regular"),
        ({ENV_REDACT: "a*"}, "MAXIM_BRIDGE_REDACT: redact[0] matches the empty string"),
        ({ENV_CAPTURE_CONTENT: "maybe"}, "MAXIM_BRIDGE_CAPTURE_CONTENT"),
    ],
)
def test_a_bad_content_setting_is_a_config_error_not_a_silent_default(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    environ = {"MAXIM_BASE_URL": "http://127.0.0.1:9", **env}
    with pytest.raises(ConfigError) as caught:
        MaximSpanExporter(environ=environ, dead_letter_path="none")
    assert named in str(caught.value)
    assert "sk-live" not in str(caught.value), "a pattern may be a secret: never quoted"


def test_ids_are_references_and_survive_a_pattern_that_matches_them(sink: BatchSink, tmp_path: Path) -> None:
    exporter = exporter_from_env(sink, tmp_path, **{ENV_REDACT: r'["sess-\\d+", "[0-9a-f]{16}"]'})
    ids, _ = ship_agent(exporter, sink)
    entities = sink.entities_by_id()
    assert entities[ids["trace"]]["sessionId"] == "sess-42"
    assert entities[ids["chat"]]["spanId"] == ids["agent"]
