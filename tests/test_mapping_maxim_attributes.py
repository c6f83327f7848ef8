"""The project's own `maxim.*` attributes on real SDK spans: tags, metrics, evaluators, feedback, overrides.

Every payload is checked against Maxim's schema; wrong-typed values are left out with a visible note.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes.sdk_spans import SpanRecorder
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from maxim_otel_bridge import MaximSpanExporter
from maxim_otel_bridge.config import Destination
from maxim_otel_bridge.emulator import EmulatorServer
from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.mapping.conventions.maxim import IGNORED_KEY
from maxim_otel_bridge.readback import fetch_trace
from maxim_otel_bridge.schema import validate_batch

CHAT = {
    ga.GEN_AI_OPERATION_NAME: "chat",
    ga.GEN_AI_PROVIDER_NAME: "openai",
    ga.GEN_AI_REQUEST_MODEL: "gpt-4o",
    ga.GEN_AI_USAGE_INPUT_TOKENS: 10,
    ga.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
    "gen_ai.usage.cache_read.input_tokens": 4,
    ga.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
    ga.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}]),
}
TOOL = {ga.GEN_AI_OPERATION_NAME: "execute_tool", ga.GEN_AI_TOOL_NAME: "lookup"}
RETRIEVAL = {ga.GEN_AI_OPERATION_NAME: "retrieval", ga.GEN_AI_RETRIEVAL_QUERY_TEXT: "q"}


def mapped(root: dict[str, Any], **children: dict[str, Any]) -> dict[str, dict]:
    """One agent span with `root` attributes and a child span per keyword; entities by name (trace: 'trace')."""
    rec = SpanRecorder()
    with rec.span("agent", 0, 100, {ga.GEN_AI_OPERATION_NAME: "invoke_agent", **root}):
        for index, (name, attributes) in enumerate(children.items()):
            with rec.span(name, 10 + index * 10, 15 + index * 10, attributes):
                pass
    entities = map_trace_part(rec.records()).entities
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    named = {e.get("name", e["type"]): e for e in entities if e["type"] != "trace"}
    named["trace"] = next(e for e in entities if e["type"] == "trace")
    return named


def test_tags_in_both_spellings_the_singular_winning_and_not_repeated_in_metadata() -> None:
    e = mapped({}, chat={**CHAT, "maxim.tag.env": "prod", "maxim.tags.team": "search", "maxim.tags.env": "dev"})
    assert e["chat"]["tags"] == {"env": "prod", "team": "search"}
    assert not any(key.startswith("maxim.tag") for key in e["chat"]["metadata"])


def test_metrics_land_where_maxims_schema_has_room_for_them() -> None:
    e = mapped(
        {"maxim.metric.turns": 3},
        chat={**CHAT, "maxim.metric.quality": 0.75, "maxim.metric.cache_read_input_tokens": 5},
        lookup={**TOOL, "maxim.metric.rows": 12},
        search={**RETRIEVAL, "maxim.metric.recall": "0.5"},
    )
    # A generation merges them with the metrics it derives (the application's value wins on a clash).
    assert e["chat"]["metrics"] == {"cache_read_input_tokens": 5, "quality": 0.75}
    assert e["search"]["metrics"] == {"recall": 0.5}
    # Tool calls have no metrics field: tags `metric.<name>`.
    assert e["lookup"]["tags"] == {"metric.rows": "12"}
    # Spans have none either: the attribute stays in the span's metadata; the root's also goes on the trace.
    assert e["agent"]["metadata"]["maxim.metric.turns"] == 3
    assert "metrics" not in e["agent"]
    assert e["trace"]["metrics"] == {"turns": 3}


def test_wrong_typed_metrics_are_left_out_with_a_note_and_the_entity_kept() -> None:
    e = mapped({}, chat={**CHAT, "maxim.metric.quality": "high", "maxim.metric.flag": True, "maxim.metric.ok": 1})
    assert e["chat"]["metrics"] == {"cache_read_input_tokens": 4, "ok": 1}
    assert e["chat"]["metadata"][IGNORED_KEY] == [
        "maxim.metric.flag=True: not a number",
        "maxim.metric.quality='high': not a number",
    ]


@pytest.mark.parametrize(
    "value",
    [("clarity", "toxicity"), "clarity, toxicity", '["clarity", "toxicity"]', ["clarity", "toxicity", "clarity"]],
)
def test_evaluators_from_an_array_a_json_array_or_a_comma_list(value: Any) -> None:
    e = mapped(
        {},
        chat={
            **CHAT,
            "maxim.evaluate": value,
            "maxim.evaluate.variables.expected": "Hello",
            "maxim.evaluate.variables.max_words": 5,
        },
    )
    assert e["chat"]["evaluate"] == {
        "evaluators": ["clarity", "toxicity"],
        "variables": {"expected": "Hello", "max_words": "5"},
    }
    assert not any(key.startswith("maxim.evaluate") for key in e["chat"]["metadata"])


def test_evaluators_on_spans_retrievals_and_the_trace() -> None:
    e = mapped(
        {"maxim.evaluate": ("step-check",), "maxim.trace.evaluate": ("task-success",)},
        search={**RETRIEVAL, "maxim.evaluate": "relevance"},
    )
    assert e["agent"]["evaluate"] == {"evaluators": ["step-check"]}
    assert e["search"]["evaluate"] == {"evaluators": ["relevance"]}
    assert e["trace"]["evaluate"] == {"evaluators": ["task-success"]}


def test_evaluators_that_cannot_go_anywhere_are_noted() -> None:
    e = mapped(
        {},
        lookup={**TOOL, "maxim.evaluate": ("x",)},
        chat={**CHAT, "maxim.evaluate": 7},
        plain={"maxim.evaluate.variables.a": "b"},
    )
    assert "evaluate" not in e["lookup"]
    assert e["lookup"]["metadata"][IGNORED_KEY] == ["maxim.evaluate: Maxim's toolCall takes no evaluators"]
    assert "evaluate" not in e["chat"]
    assert e["chat"]["metadata"][IGNORED_KEY] == ["maxim.evaluate=7: expected evaluator names (a string array)"]
    assert e["plain"]["metadata"][IGNORED_KEY] == ["maxim.evaluate.variables.*: no maxim.evaluate to use them"]


@pytest.mark.parametrize(("own", "kept"), [(5, [5]), ("a note", ["a note"]), (("x", "y"), ["x", "y"])])
def test_a_spans_own_ignored_attribute_is_kept_before_the_notes(own: Any, kept: list[Any]) -> None:
    e = mapped({}, lookup={**TOOL, IGNORED_KEY: own, "maxim.evaluate": ("x",)})
    assert e["lookup"]["metadata"][IGNORED_KEY] == [*kept, "maxim.evaluate: Maxim's toolCall takes no evaluators"]


def test_feedback_on_the_root_span_is_the_traces() -> None:
    e = mapped({"maxim.feedback.score": 4, "maxim.feedback.comment": "useful"})
    assert e["trace"]["feedback"] == {"score": 4, "comment": "useful"}


@pytest.mark.parametrize(
    ("attributes", "note"),
    [
        ({"maxim.feedback.score": "great"}, "maxim.feedback.score='great': not a number"),
        ({"maxim.feedback.comment": "meh"}, "maxim.feedback.comment: no maxim.feedback.score (Maxim requires a score)"),
    ],
)
def test_unusable_feedback_is_noted_on_the_trace(attributes: dict[str, Any], note: str) -> None:
    e = mapped(attributes)
    assert "feedback" not in e["trace"]
    assert e["trace"]["metadata"][IGNORED_KEY] == [note]


def test_session_user_and_trace_name_overrides_win_over_the_conventions() -> None:
    e = mapped(
        {
            "session.id": "from-otel",
            "maxim.session.id": "from-maxim",
            "user.id": "u-otel",
            "maxim.user.id": "u-maxim",
            "maxim.trace.name": "Checkout assistant",
        }
    )
    assert e["trace"]["sessionId"] == "from-maxim"
    assert e["trace"]["tags"]["user.id"] == "u-maxim"
    assert e["trace"]["name"] == "Checkout assistant"
    assert e["agent"]["name"] == "agent", "the span keeps its own name"


def test_the_entity_type_override_still_decides() -> None:
    e = mapped({}, step={"maxim.entity.type": "retrieval", "input.value": "q", "maxim.metric.k": 3})
    assert e["step"]["type"] == "retrieval"
    assert e["step"]["metrics"] == {"k": 3}


def test_through_the_exporter_to_the_local_store_and_back(tmp_path: Path) -> None:
    """Real spans -> MaximSpanExporter -> the emulator over HTTP -> the trace as Maxim's read API shows it."""
    key = "sk-maxim-attributes-local"
    with EmulatorServer(tmp_path / "store.db", api_key=key) as store:
        exporter = MaximSpanExporter(
            api_key=key, repo_id="repo-local", base_url=store.url, environ={}, dead_letter_path="none"
        )
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("maxim-attributes")
        with tracer.start_as_current_span(
            "support request",
            attributes={
                "maxim.trace.name": "Support",
                "maxim.feedback.score": 5,
                "maxim.feedback.comment": "solved",
                "maxim.metric.turns": 2,
                "maxim.trace.evaluate": ["task-success"],
                "maxim.tag.tier": "gold",
            },
        ) as root:
            with tracer.start_as_current_span(
                "chat gpt-4o",
                attributes={**CHAT, "maxim.evaluate": ["clarity"], "maxim.metric.quality": 0.9},
            ) as chat:
                pass
        assert exporter.force_flush(10_000)
        provider.shutdown()
        trace_id = format(root.get_span_context().trace_id, "032x")
        result = fetch_trace(Destination.resolve(key, "repo-local", store.url, environ={}), trace_id)
    assert result.ok, result.error
    data = result.data
    assert (data["name"], data["tags"]) == ("Support", {"tier": "gold"})
    assert data["feedback"] == {"score": 5, "comment": "solved"}
    (root_entry,) = data["timeline"]
    (generation,) = root_entry["timeline"]
    assert generation["id"] == format(chat.get_span_context().span_id, "016x")
    assert generation["evaluate"] == {"evaluators": ["clarity"]}
    assert generation["metrics"]["quality"] == 0.9
