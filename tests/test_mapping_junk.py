"""Junk never crashes the mapping and never produces a payload Maxim's schema refuses (property tests)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxim_otel_bridge.mapping import MappingOptions, map_trace_part
from maxim_otel_bridge.mapping.ids import is_valid_id
from maxim_otel_bridge.mapping.precedence import ALL_CONVENTIONS
from maxim_otel_bridge.record import EventRecord, SpanRecord
from maxim_otel_bridge.schema import PROVIDERS, validate_batch

KEYS = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.id",
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.description",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
    "gen_ai.conversation.id",
    "session.id",
    "user.id",
    "input.value",
    "output.value",
    "error.type",
    "maxim.entity.type",
    "maxim.tag.x",
    "maxim.tags.x",
    "maxim.metric.x",
    "maxim.evaluate",
    "maxim.evaluate.variables.v",
    "maxim.trace.evaluate",
    "maxim.feedback.score",
    "maxim.feedback.comment",
    "maxim.trace.name",
    "maxim.session.id",
    "maxim.user.id",
    "tag.tags",
    "openinference.span.kind",
    "llm.request.type",
    "ai.model.id",
    "ai.model.provider",
    "ai.usage.tokens",
    "traceloop.association.properties.session_id",
    "llm.usage.total_tokens",
]
EVENT_NAMES = [
    "exception",
    "gen_ai.user.message",
    "gen_ai.choice",
    "gen_ai.tool.message",
    "gen_ai.assistant.message",
    "gen_ai.client.inference.operation.details",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "x",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "chat",
            "execute_tool",
            "retrieval",
            "embeddings",
            "openai",
            "aws.bedrock",
            "LLM",
            "TOOL",
            "[",
            "[{",
            '[{"role":"user","parts":[{"type":"tool_call"}]}]',
            '[{"role": 3, "parts": "x"}]',
            '[{"role":"assistant","parts":[{"type":"tool_call_response","response":{"a":[1]}}]}]',
            '[{"index":"x","message":7}]',
            '{"content": null}',
            "[1, null, true]",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "role",
                    "parts",
                    "content",
                    "type",
                    "id",
                    "name",
                    "arguments",
                    "tool_calls",
                    "message",
                    "index",
                    "finish_reason",
                    "body",
                    "response",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
attributes = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=10)
events = st.lists(
    st.builds(
        EventRecord,
        name=st.sampled_from(EVENT_NAMES),
        time_ns=st.integers(-5, 2**66),
        attributes=st.dictionaries(
            st.sampled_from([*KEYS, "content", "message", "body", "index", "tool_calls", "id", "finish_reason"]),
            values,
            max_size=5,
        ),
    ),
    max_size=4,
)
ids = st.sampled_from(["0000000000000001", "0000000000000002", "0000000000000003", "00000000000000aa"])
records = st.lists(
    st.builds(
        SpanRecord,
        trace_id=st.just("0af7651916cd43dd8448eb211c80319c"),
        span_id=ids,
        parent_span_id=st.none() | ids | st.just("ffffffffffffffff"),
        name=st.text(max_size=20),
        start_ns=st.integers(-10, 2**70),
        end_ns=st.integers(-10, 2**70),
        attributes=attributes,
        events=events.map(tuple),
        kind=st.integers(-1, 9),
        status_code=st.integers(-1, 3),
        status_message=st.text(max_size=10),
        resource=attributes,
    ),
    max_size=5,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_junk_spans_map_to_valid_payloads(batch: list[SpanRecord]) -> None:
    part = map_trace_part(batch, MappingOptions(max_value_chars=50))
    assert validate_batch({"repoId": "r", "logs": part.entities}) == []
    for entity in part.entities:
        assert is_valid_id(entity["id"]), entity["id"]
        if entity["type"] == "generation":
            assert entity["provider"] in PROVIDERS
        if "spanId" in entity:
            referenced = [e for e in part.entities if e["id"] == entity["spanId"]]
            assert referenced and all(e["type"] == "span" for e in referenced)
    assert set(part.placements) >= {r.span_id for r in batch}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_junk_spans_with_content_off_and_redaction_still_validate(batch: list[SpanRecord]) -> None:
    # Patterns that hit ids, enum values and JSON punctuation: none of them may break the payload.
    options = MappingOptions(
        max_value_chars=50, capture_content=False, redact=[r"[0-9a-f]{4}", r"user|openai|span", r'[{}":]']
    )
    part = map_trace_part(batch, options)
    assert validate_batch({"repoId": "r", "logs": part.entities}) == []
    plain = map_trace_part(batch, MappingOptions(max_value_chars=50))
    assert [(e["id"], e["type"], e.get("spanId")) for e in part.entities] == [
        (e["id"], e["type"], e.get("spanId")) for e in plain.entities
    ]


def test_every_convention_has_a_unique_name() -> None:
    names = [c.name for c in ALL_CONVENTIONS]
    assert len(names) == len(set(names))
