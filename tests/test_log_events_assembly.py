"""GenAI log records in the sidecar's spool and assembler: durable, joined to their span before mapping, re-mapped
onto a span shipped earlier, or shipped as events when their span never comes. A real spool on disk, a fake clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.records import generation, span, span_id, trace_id

from maxim_otel_bridge.log_events import LogEvent
from maxim_otel_bridge.schema import validate_batch
from maxim_otel_bridge.sidecar.assembler import AssembledTrace, Assembler
from maxim_otel_bridge.sidecar.ingest import Verdict
from maxim_otel_bridge.sidecar.mapper import ProcessMapper
from maxim_otel_bridge.sidecar.spool import PAGE_SIZE, Spool

DETAILS = "gen_ai.client.inference.operation.details"
WAIT_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_800_000_000_000_000_000

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def spool(tmp_path: Path, clock: Clock) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool", wall_clock_ns=clock)
    yield s
    s.close()


def details(trace: int, span_number: int | None, question: str = "Weather in Paris?") -> LogEvent:
    """openai-v2's EVENT_ONLY record: the whole call's messages and output on one record."""
    return LogEvent(
        trace_id=trace_id(trace),
        span_id=span_id(span_number) if span_number is not None else None,
        name=DETAILS,
        time_ns=1_700_000_000_000_000_000 + 7,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": [
                {"role": "system", "parts": [{"type": "text", "content": "Answer with the weather."}]},
                {"role": "user", "parts": [{"type": "text", "content": question}]},
            ],
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}
            ],
        },
    )


def message(trace: int, span_number: int, name: str, body: dict, at: int) -> LogEvent:
    """Traceloop's events mode: one record per message, content in the body."""
    return LogEvent(
        trace_id=trace_id(trace), span_id=span_id(span_number), name=name, time_ns=at, attributes={}, body=body
    )


def contentful_generation(trace: int, span_number: int, parent: int | None):
    """A chat span carrying its content itself (openai-v2 SPAN_AND_EVENT)."""
    record = generation(trace, span_number, parent)
    attributes = dict(record.attributes)
    attributes["gen_ai.input.messages"] = (
        '[{"role": "system", "parts": [{"type": "text", "content": "Answer with the weather."}]},'
        ' {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]'
    )
    attributes["gen_ai.output.messages"] = (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}]'
    )
    return dataclasses.replace(record, attributes=attributes)


def entities_of(trace: AssembledTrace) -> dict[str, dict]:
    assert validate_batch({"repoId": "r", "logs": trace.entities}) == []
    return {e["id"]: e for e in trace.entities}


def ship(spool: Spool, traces: list[AssembledTrace]) -> None:
    """What the shipper does once Maxim accepted the entities."""
    spool.complete(
        {t.trace_id: (t.seqs, t.placements) for t in traces},
        log_event_seqs=[seq for t in traces for seq in t.log_event_seqs],
        retained=[(t.trace_id, sid, blob) for t in traces for sid, blob in t.retained],
    )


EXPECTED_MESSAGES = [
    {"role": "system", "content": "Answer with the weather."},
    {"role": "user", "content": "Weather in Paris?"},
]


def content(entity: dict) -> tuple[list, list]:
    choices = [(c["finish_reason"], c["message"]["content"]) for c in (entity.get("result") or {}).get("choices", [])]
    return entity.get("messages") or [], choices


# -- spool ------------------------------------------------------------------------------------------


def test_log_records_are_durable_across_a_restart_and_stored_once(tmp_path: Path, clock: Clock) -> None:
    directory = tmp_path / "spool"
    first = Spool(directory, wall_clock_ns=clock)
    assert first.accept_log_events([details(1, 2), details(1, 2)]).accepted
    assert first.accept_log_events([details(1, 2)]).accepted  # the client's retry: still one row
    first.close()

    again = Spool(directory, wall_clock_ns=clock)
    try:
        [stored] = again.read_log_events(trace_id(1))
        assert stored.span_id == span_id(2)
        assert again.stats().log_events == 1
        assert again.stats().traces == 1
        assert again.takes_log_events(60)  # records from the last run count as recent
    finally:
        again.close()


def test_log_records_count_against_the_byte_cap_and_are_refused_at_shutdown(tmp_path: Path, clock: Clock) -> None:
    directory = tmp_path / "spool"
    empty = Spool(directory, wall_clock_ns=clock)
    empty_bytes = empty.used_bytes
    empty.close()
    spool = Spool(directory, max_bytes=empty_bytes + 1, wall_clock_ns=clock)
    try:
        big = dataclasses.replace(details(1, 2), body={"content": "x" * 200_000})
        assert spool.accept_log_events([big]).accepted  # taken while there is room
        # Part of it fits in the table's first page, counted in the empty file already.
        assert spool.used_bytes > empty_bytes + 200_000 - PAGE_SIZE
        refused = spool.accept_log_events([details(1, 3)])
        assert refused.verdict is Verdict.OVERLOADED and refused.retry_after_s > 0
        spool.close_intake()
        assert spool.accept_log_events([details(1, 4)]).verdict is Verdict.SHUTTING_DOWN
    finally:
        spool.close()


# -- joined before mapping ----------------------------------------------------------------------------


def test_a_record_that_arrives_before_its_span_is_joined_to_it(spool: Spool, clock: Clock) -> None:
    spool.accept_log_events([details(1, 2)])
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=100)
    assert assembler.claim() == []  # waits for its span (and the trace's root)
    spool.accept_spans([generation(1, 2, 1), span(1, 1, name="agent")])

    [trace] = assembler.claim()
    by_id = entities_of(trace)
    assert content(by_id[span_id(2)]) == (EXPECTED_MESSAGES, [("stop", "Sunny.")])
    assert [e for e in trace.entities if e["type"] == "event"] == []
    assert len(trace.log_event_seqs) == 1
    ship(spool, [trace])
    assembler.release([trace.trace_id])
    assert spool.stats().log_events == 0 and spool.stats().traces == 0


def test_per_message_records_rebuild_the_conversation_in_order(spool: Spool) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    records = [
        message(1, 2, "gen_ai.system.message", {"content": "Answer with the weather."}, 10),
        message(1, 2, "gen_ai.user.message", {"content": "Weather in Paris?"}, 11),
        message(1, 2, "gen_ai.assistant.message", {"content": None, "tool_calls": [call]}, 12),
        message(1, 2, "gen_ai.tool.message", {"content": "18C", "id": "call_1"}, 13),
        message(1, 2, "gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"content": "Sunny."}}, 14),
    ]
    spool.accept_log_events(list(reversed(records)))  # arrival order does not matter: time order does
    spool.accept_spans([generation(1, 2, 1), span(1, 1, name="agent")])
    [trace] = Assembler(spool, wait_s=WAIT_S, max_spans=100).claim()
    messages, choices = content(entities_of(trace)[span_id(2)])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["id"] == "call_1"
    assert choices == [("stop", "Sunny.")]


def test_the_same_content_on_the_span_and_on_a_record_is_not_doubled(spool: Spool) -> None:
    spool.accept_log_events([details(1, 2)])
    spool.accept_spans([contentful_generation(1, 2, 1), span(1, 1, name="agent")])
    [trace] = Assembler(spool, wait_s=WAIT_S, max_spans=100).claim()
    assert content(entities_of(trace)[span_id(2)]) == (EXPECTED_MESSAGES, [("stop", "Sunny.")])


# -- late and orphan records ----------------------------------------------------------------------------


def test_a_record_after_its_span_shipped_re_sends_the_same_generation_with_the_content(
    spool: Spool, clock: Clock
) -> None:
    spool.accept_log_events([details(9, 2)])  # this sidecar takes log records: it remembers shipped generations
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=100)
    spool.accept_spans([generation(1, 2, 1), span(1, 1, name="agent")])
    [first] = [t for t in assembler.claim() if t.trace_id == trace_id(1)]
    assert content(entities_of(first)[span_id(2)]) == ([], [])
    ship(spool, [first])
    assembler.release([first.trace_id])

    spool.accept_log_events([details(1, 2)])
    [late] = [t for t in assembler.claim() if t.trace_id == trace_id(1)]  # at once: no window to wait
    by_id = entities_of(late)
    assert content(by_id[span_id(2)]) == (EXPECTED_MESSAGES, [("stop", "Sunny.")])
    assert by_id[span_id(2)]["spanId"] == span_id(1)  # the same entity, under the same parent
    assert [e for e in late.entities if e["type"] == "event"] == []
    ship(spool, [late])
    assembler.release([late.trace_id])

    # Whole now: the same record sent again (a client retry after a lost answer) adds nothing.
    spool.accept_log_events([dataclasses.replace(details(1, 2), time_ns=8)])
    [again] = [t for t in assembler.claim() if t.trace_id == trace_id(1)]
    assert again.entities == [] and len(again.log_event_seqs) == 1
    ship(spool, [again])
    assert spool.read_log_events(trace_id(1)) == []


def test_late_per_message_records_keep_the_earlier_ones(spool: Spool) -> None:
    spool.accept_log_events([message(9, 2, "gen_ai.user.message", {"content": "x"}, 1)])
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=100)
    spool.accept_log_events([message(1, 2, "gen_ai.user.message", {"content": "Weather in Paris?"}, 11)])
    spool.accept_spans([generation(1, 2, 1), span(1, 1, name="agent")])
    [first] = [t for t in assembler.claim() if t.trace_id == trace_id(1)]
    assert content(entities_of(first)[span_id(2)]) == ([{"role": "user", "content": "Weather in Paris?"}], [])
    ship(spool, [first])
    assembler.release([first.trace_id])

    choice = {"index": 0, "finish_reason": "stop", "message": {"content": "Sunny."}}
    spool.accept_log_events([message(1, 2, "gen_ai.choice", choice, 14)])
    [late] = [t for t in assembler.claim() if t.trace_id == trace_id(1)]
    # The re-sent entity replaces the first by id: it must carry the earlier message as well as the choice.
    assert content(entities_of(late)[span_id(2)]) == (
        [{"role": "user", "content": "Weather in Paris?"}],
        [("stop", "Sunny.")],
    )


def test_a_record_whose_span_never_comes_ships_as_an_event_after_the_window(spool: Spool, clock: Clock) -> None:
    spool.accept_spans([span(1, 1, name="agent")])
    spool.accept_log_events([details(1, 5)])  # span 5 never arrives
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=100)
    [part] = assembler.claim()
    assert set(entities_of(part)) == {trace_id(1), span_id(1)}
    assert part.log_event_seqs == ()  # the record waits
    ship(spool, [part])
    assembler.release([part.trace_id])
    assert spool.stats().traces == 1  # kept for the record

    clock.advance(WAIT_S - 1)
    assert assembler.claim() == []
    clock.advance(2)
    [orphan] = assembler.claim()
    [event] = [e for e in orphan.entities if e["type"] == "event"]
    assert event["traceId"] == trace_id(1) and event["name"] == DETAILS
    assert event["metadata"]["otel.span_id"] == span_id(5)
    assert event["metadata"]["gen_ai.input.messages"][1]["parts"][0]["content"] == "Weather in Paris?"
    entities_of(orphan)
    ship(spool, [orphan])
    assert spool.stats().log_events == 0 and spool.stats().traces == 0


def test_a_trace_of_only_records_ships_after_the_window(spool: Spool, clock: Clock) -> None:
    spool.accept_log_events([details(4, 2), details(4, None, question="no span at all")])
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=100)
    assert assembler.claim() == []
    clock.advance(WAIT_S + 1)
    [trace] = assembler.claim()
    by_type: dict[str, list[dict]] = {}
    for entity in entities_of(trace).values():
        by_type.setdefault(entity["type"], []).append(entity)
    assert [e["id"] for e in by_type["trace"]] == [trace_id(4)]
    assert len(by_type["event"]) == 2


def test_a_record_for_a_span_shipped_before_records_were_seen_goes_under_its_parent(
    spool: Spool, clock: Clock
) -> None:
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=100)
    spool.accept_spans([generation(1, 2, 1), span(1, 1, name="agent")])
    [first] = assembler.claim()
    assert first.retained == ()  # no log records seen: nothing remembered
    ship(spool, [first])
    assembler.release([first.trace_id])

    spool.accept_log_events([details(1, 2)])
    clock.advance(WAIT_S + 1)
    [late] = assembler.claim()
    [event] = [e for e in late.entities if e["type"] == "event"]
    assert event["spanId"] == span_id(1)  # under the generation's parent span: content kept, not lost


def test_records_wait_for_a_span_that_is_spooled_but_beyond_this_part(spool: Spool) -> None:
    spool.accept_spans([span(1, n, 1 if n > 1 else None, name=f"s{n}") for n in range(1, 4)])
    spool.accept_spans([generation(1, 9, 1)])
    spool.accept_log_events([details(1, 9)])
    assembler = Assembler(spool, wait_s=WAIT_S, max_spans=3)
    [part] = assembler.claim()
    assert part.span_count == 3 and part.log_event_seqs == ()
    ship(spool, [part])
    assembler.release([part.trace_id])
    [rest] = assembler.claim()
    assert content(entities_of(rest)[span_id(9)])[0] == EXPECTED_MESSAGES


def test_worker_processes_join_records_and_return_what_to_remember(tmp_path: Path, clock: Clock) -> None:
    spool = Spool(tmp_path / "spool", wall_clock_ns=clock)
    mapper = ProcessMapper(workers=1)
    try:
        spool.accept_log_events([message(1, 3, "gen_ai.user.message", {"content": "Weather in Paris?"}, 11)])
        spool.accept_spans([generation(1, 2, 1), generation(1, 3, 1), span(1, 1, name="agent")])
        [trace] = Assembler(spool, wait_s=WAIT_S, max_spans=100, mapper=mapper).claim()
        assert content(entities_of(trace)[span_id(3)])[0] == [{"role": "user", "content": "Weather in Paris?"}]
        retained = dict(trace.retained)
        assert set(retained) == {span_id(2), span_id(3)}  # both lack content (no output yet)
        assert b"gen_ai.user.message" in retained[span_id(3)]  # kept with the record joined
    finally:
        mapper.close()
        spool.close()


def test_after_a_restart_a_late_record_still_finds_the_generation_it_belongs_to(tmp_path: Path, clock: Clock) -> None:
    directory = tmp_path / "spool"
    first = Spool(directory, wall_clock_ns=clock)
    first.accept_log_events([details(9, None)])  # records come in
    first.accept_spans([generation(1, 2, 1), span(1, 1, name="agent")])
    assembler = Assembler(first, wait_s=WAIT_S, max_spans=100)
    shipped = assembler.claim(flush=True)  # everything goes, the records of trace 9 as events
    ship(first, shipped)
    assert first.stats().log_events == 0
    first.close()

    clock.advance(60)
    again = Spool(directory, wall_clock_ns=clock)
    try:
        assert again.takes_log_events(3600)  # it remembered generations a minute ago: records were coming in
        again.accept_log_events([details(1, 2)])
        [late] = Assembler(again, wait_s=WAIT_S, max_spans=100).claim()
        by_id = entities_of(late)
        assert content(by_id[span_id(2)]) == (EXPECTED_MESSAGES, [("stop", "Sunny.")])
        assert [e for e in late.entities if e["type"] == "event"] == []
    finally:
        again.close()
