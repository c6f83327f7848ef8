"""Assembly of stored entities into the read shape: nesting, ordering, durations, broken parent links."""

from __future__ import annotations

from fakes import maxim_entities as m

from maxim_otel_bridge.emulator.assemble import (
    assemble_trace,
    duration_ms,
    parse_timestamp,
)

T = "0af7651916cd43dd8448eb211c80319c"


def shape(timeline: list[dict]) -> list:
    """(id, children) pairs: the nesting of a timeline, without the fields."""
    return [(entry["id"], shape(entry["timeline"])) if "timeline" in entry else entry["id"] for entry in timeline]


def test_duration_in_milliseconds_across_formats() -> None:
    assert duration_ms("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.250Z") == 1250
    assert duration_ms("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.5Z") == 500
    assert duration_ms("2026-01-01T00:00:00.000001Z", "2026-01-01T00:00:00.000002Z") == 0.001
    assert duration_ms("2026-01-01T00:00:00Z", None) is None
    assert duration_ms("yesterday", "2026-01-01T00:00:00Z") is None
    assert duration_ms("2026-01-01T00:00:00", "2026-01-01T00:00:00Z") is None  # naive and aware
    assert parse_timestamp(17) is None and parse_timestamp("") is None


def test_nesting_and_time_order() -> None:
    members = [
        m.tool_call("0000000000000004", T, "0000000000000001", start=0.9),
        m.span("0000000000000002", T, "0000000000000001", start=0.2),
        m.generation("0000000000000003", T, "0000000000000002", start=0.3),
        m.span("0000000000000001", T, start=0.0),
        m.event("0000000000000005", T, at=1.5),
        m.span("0000000000000006", T, start=0.0, end=None) | {"startTimestamp": "not a time"},
    ]
    data = assemble_trace(m.trace(T), members, version=3)
    assert shape(data["timeline"]) == [
        ("0000000000000001", [("0000000000000002", ["0000000000000003"]), "0000000000000004"]),
        "0000000000000005",
        ("0000000000000006", []),
    ]
    assert data["version"] == 3 and data["duration"] == 2000
    for name in ("sessionId", "feedback", "input", "output", "tags"):
        assert data[name] is None


def test_parent_cycles_and_self_references_are_cut_not_lost() -> None:
    members = [
        m.span("000000000000000a", T, "000000000000000b"),
        m.span("000000000000000b", T, "000000000000000a"),
        m.span("000000000000000c", T, "000000000000000c"),
    ]
    data = assemble_trace(m.trace(T), members)
    nested = shape(data["timeline"])
    flat = repr(nested)
    for entity_id in ("000000000000000a", "000000000000000b", "000000000000000c"):
        assert flat.count(entity_id) == 1
    assert ("000000000000000c", []) in nested
    # The cycle a <-> b becomes one chain under the trace.
    assert any(item in nested for item in (("000000000000000a", [("000000000000000b", [])]),
                                            ("000000000000000b", [("000000000000000a", [])])))


def test_only_spans_hold_children() -> None:
    members = [
        m.generation("0000000000000001", T),
        m.event("0000000000000002", T, "0000000000000001"),  # names a generation as its parent
    ]
    data = assemble_trace(m.trace(T), members)
    assert shape(data["timeline"]) == ["0000000000000001", "0000000000000002"]


def test_generation_result_and_errors() -> None:
    failed = m.generation("0000000000000001", T) | {
        "error": {"errorMessage": "rate limited", "errorType": "RateLimitError"}
    }
    del failed["result"]
    (entry,) = assemble_trace(m.trace(T), [failed])["timeline"]
    assert entry["completionResult"] is None
    assert entry["error"] == {"errorMessage": "rate limited", "errorType": "RateLimitError"}

    with_result = m.generation("0000000000000002", T) | {"error": {"errorMessage": "truncated"}}
    (entry,) = assemble_trace(m.trace(T), [with_result])["timeline"]
    result = entry["completionResult"]
    assert result["error"] == {"errorMessage": "truncated"}
    assert result["cost"] is None and result["object"] == "chat.completion"
    assert entry["result"] == with_result["result"]


def test_retrieval_docs_from_a_single_output() -> None:
    single = m.retrieval("0000000000000001", T) | {"output": "only doc"}
    none = m.retrieval("0000000000000002", T)
    del none["output"]
    docs = {e["id"]: e["docs"] for e in assemble_trace(m.trace(T), [single, none])["timeline"]}
    assert docs == {"0000000000000001": ["only doc"], "0000000000000002": []}


def test_the_trace_and_sessions_are_not_timeline_entries() -> None:
    members = [m.trace(T), {"id": "conv-1", "type": "session"}, m.span("0000000000000001", T)]
    assert shape(assemble_trace(m.trace(T), members)["timeline"]) == [("0000000000000001", [])]
