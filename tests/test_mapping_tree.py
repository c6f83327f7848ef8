"""Where spans hang in Maxim: leaves re-parented, parts linked through `known`, missing parents, cycles."""

from __future__ import annotations

from fakes.sdk_spans import SpanRecorder
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from maxim_otel_bridge.mapping import MappedPart, Placement, map_trace_part
from maxim_otel_bridge.record import EventRecord, SpanRecord
from maxim_otel_bridge.schema import validate_batch

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CHAT = {ga.GEN_AI_OPERATION_NAME: "chat", ga.GEN_AI_REQUEST_MODEL: "m"}
TOOL = {ga.GEN_AI_OPERATION_NAME: "execute_tool", ga.GEN_AI_TOOL_NAME: "t"}


def mapped(*args, **kwargs) -> MappedPart:
    """`map_trace_part`, with the payload checked against Maxim's schema (every payload a test makes is)."""
    part = map_trace_part(*args, **kwargs)
    assert validate_batch({"repoId": "r", "logs": part.entities}) == []
    return part


def span(span_id: str, parent: str | None, attributes=None, start: int = 1, **extra) -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE,
        span_id=span_id,
        parent_span_id=parent,
        name=f"n{span_id[-2:]}",
        start_ns=start * 1_000_000,
        end_ns=start * 1_000_000 + 5,
        attributes=attributes or {},
        **extra,
    )


def by_id(part: MappedPart) -> dict[str, dict]:
    return {e["id"]: e for e in part.entities}


def assert_valid_and_linked(part: MappedPart, also_known: set[str] = frozenset()) -> None:
    """Schema-valid, and every spanId names a `span` sent earlier in this part or known before."""
    assert validate_batch({"repoId": "r", "logs": part.entities}) == []
    seen_spans: set[str] = set(also_known)
    for entity in part.entities:
        if "spanId" in entity:
            assert entity["spanId"] in seen_spans, (entity["id"], entity["spanId"])
        if entity["type"] == "span":
            seen_spans.add(entity["id"])


def test_children_of_a_generation_hang_under_the_nearest_span() -> None:
    part = mapped(
        [
            span("a000000000000001", None),
            span("a000000000000002", "a000000000000001", CHAT, start=2),
            span("a000000000000003", "a000000000000002", {"http.request.method": "POST"}, start=3),
            span("a000000000000004", "a000000000000003", TOOL, start=4),
        ]
    )
    entities = by_id(part)
    assert entities["a000000000000002"]["spanId"] == "a000000000000001"
    assert entities["a000000000000003"]["spanId"] == "a000000000000001"  # re-parented past the generation
    assert entities["a000000000000004"]["spanId"] == "a000000000000003"
    assert part.placements["a000000000000003"] == Placement("span", "a000000000000001")
    assert_valid_and_linked(part)


def test_leaf_at_the_root_sends_its_children_to_the_trace() -> None:
    part = mapped([span("b000000000000001", None, CHAT), span("b000000000000002", "b000000000000001", TOOL, start=2)])
    tool = by_id(part)["b000000000000002"]
    assert "spanId" not in tool and tool["traceId"] == TRACE
    assert part.placements["b000000000000002"] == Placement("toolCall", None)
    assert_valid_and_linked(part)


def test_events_of_a_leaf_hang_under_its_maxim_parent() -> None:
    generation = span("c000000000000002", "c000000000000001", CHAT, events=(EventRecord("custom", 7, {"k": 1}),))
    part = mapped([span("c000000000000001", None), generation])
    event = next(e for e in part.entities if e["type"] == "event")
    assert event["spanId"] == "c000000000000001"
    assert event["id"] == "c000000000000002-event-0"
    assert event["metadata"]["otel.span_id"] == "c000000000000002"
    assert_valid_and_linked(part)


def test_late_children_link_through_known_placements() -> None:
    first = mapped([span("d000000000000001", None), span("d000000000000002", "d000000000000001", CHAT)])
    second = mapped(
        [
            span("d000000000000003", "d000000000000002", start=9),
            span("d000000000000004", "d000000000000001", TOOL, start=9),
        ],
        known=first.placements,
    )
    entities = by_id(second)
    assert entities["d000000000000003"]["spanId"] == "d000000000000001"  # via the known generation's parent
    assert entities["d000000000000004"]["spanId"] == "d000000000000001"
    # A part without the root still names its trace, and nothing else about it.
    assert second.entities[0] == {"id": TRACE, "type": "trace"}
    assert_valid_and_linked(second, also_known={"d000000000000001"})


def test_unknown_parent_gets_a_placeholder_span_that_the_real_span_merges_into() -> None:
    part = mapped([span("e000000000000002", "e000000000000001", CHAT)])
    entities = part.entities
    assert entities[1] == {"id": "e000000000000001", "type": "span", "traceId": TRACE}
    assert by_id(part)["e000000000000002"]["spanId"] == "e000000000000001"
    assert part.placements["e000000000000001"] == Placement("span", None)
    assert_valid_and_linked(part)
    later = mapped([span("e000000000000001", None)], known=part.placements)
    assert by_id(later)["e000000000000001"]["type"] == "span"
    assert later.placements["e000000000000001"] == Placement("span", None)


def test_parent_cycles_in_junk_input_do_not_hang_or_lose_spans() -> None:
    part = mapped(
        [
            span("f000000000000001", "f000000000000002"),
            span("f000000000000002", "f000000000000001", start=2),
            span("f000000000000003", "f000000000000003", CHAT, start=3),
        ]
    )
    assert {e["id"] for e in part.entities if e["type"] != "trace"} == {
        "f000000000000001",
        "f000000000000002",
        "f000000000000003",
    }
    assert_valid_and_linked(part)


def test_deep_chains_do_not_recurse() -> None:
    ids = [f"{i:016x}" for i in range(1, 3001)]
    records = [span(ids[0], None, CHAT)] + [span(ids[i], ids[i - 1], CHAT, start=i) for i in range(1, len(ids))]
    part = mapped(records)
    assert all("spanId" not in e for e in part.entities)
    assert len(part.entities) == 3001


def test_ids_are_stable_and_parents_come_first() -> None:
    rec = SpanRecorder()
    with rec.span("invoke_agent a", 0, 100, {ga.GEN_AI_OPERATION_NAME: "invoke_agent"}) as agent:
        rec.event(agent, "note", 1)
        with rec.span("invoke_agent b", 10, 90, {ga.GEN_AI_OPERATION_NAME: "invoke_agent"}):
            with rec.span("chat m", 20, 30, CHAT):
                pass
    records = rec.records()
    part = mapped(records)
    again = mapped(list(reversed(records)))
    assert part.entities == again.entities and part.placements == again.placements
    assert [e["id"] for e in part.entities] == [
        records[0].trace_id,
        records[2].span_id,
        f"{records[2].span_id}-event-0",
        records[1].span_id,
        records[0].span_id,
    ]
    assert_valid_and_linked(part)


def test_duplicate_span_keeps_last_record_and_bad_records_are_reported() -> None:
    older = span("a100000000000001", None, {"v": 1})
    newer = span("a100000000000001", None, {"v": 2})
    bad = SpanRecord(trace_id="not hex!", span_id="x y", parent_span_id=None, name="bad", start_ns=0, end_ns=0)
    part = mapped([older, newer, bad, "junk"])  # type: ignore[list-item]
    assert [e["metadata"]["v"] for e in part.entities if e["type"] == "span"] == [2]
    assert len(part.skipped) == 2 and "unusable ids" in part.skipped[0] and "str" in part.skipped[1]


def test_empty_input_maps_to_nothing() -> None:
    assert mapped([]) == MappedPart(entities=[], placements={})


def test_all_zero_or_empty_parent_id_means_root() -> None:
    for parent in ("0000000000000000", ""):
        part = mapped([span("a200000000000001", parent, {"input.value": "q"})])
        assert part.entities[0]["input"] == "q"  # the trace took it as its root
        assert part.placements["a200000000000001"] == Placement("span", None)
        assert len(part.entities) == 2
