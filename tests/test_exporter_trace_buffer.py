"""TraceBuffer: when a trace is ready, bounded memory without loss, remembered placements."""

from __future__ import annotations

import pytest

from maxim_otel_bridge.log_events import LogEvent
from maxim_otel_bridge.mapping import Placement
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.trace_buffer import BufferOptions, TraceBuffer

T1 = "a" * 32
T2 = "b" * 32
T3 = "c" * 32


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def rec(trace_id: str, span_id: str, parent: str | None) -> SpanRecord:
    return SpanRecord(trace_id, span_id.rjust(16, "0"), parent.rjust(16, "0") if parent else None, "s", 1, 2)


def ids(part_records: tuple[SpanRecord, ...]) -> list[str]:
    return [r.span_id.lstrip("0") for r in part_records]


def make(clock: FakeClock, **options: object) -> TraceBuffer:
    return TraceBuffer(BufferOptions(**options), clock=clock)  # type: ignore[arg-type]


def test_children_wait_for_their_local_root() -> None:
    clock = FakeClock()
    buffer = make(clock, trace_wait=5)
    assert buffer.add([(rec(T1, "2", "1"), False), (rec(T1, "3", "2"), False)]) is False
    assert buffer.take_ready() == []
    assert buffer.add([(rec(T1, "1", None), True)]) is True
    (part,) = buffer.take_ready()
    assert (part.trace_id, part.reason, ids(part.records)) == (T1, "root", ["2", "3", "1"])
    assert buffer.span_count == 0 and buffer.trace_count == 0


def test_a_trace_without_its_root_goes_after_trace_wait() -> None:
    clock = FakeClock()
    buffer = make(clock, trace_wait=5)
    buffer.add([(rec(T1, "2", "1"), False)])
    clock.now += 1
    buffer.add([(rec(T2, "9", "8"), False)])
    assert buffer.next_due() == 55.0
    clock.now = 54.9
    assert buffer.take_ready() == []
    clock.now = 55.0
    (part,) = buffer.take_ready()
    assert (part.trace_id, part.reason) == (T1, "waited")
    assert buffer.next_due() == 56.0


def test_flush_takes_everything() -> None:
    buffer = make(FakeClock())
    buffer.add([(rec(T1, "2", "1"), False), (rec(T2, "3", "1"), False)])
    parts = buffer.take_ready(flush=True)
    assert [(p.trace_id, p.reason) for p in parts] == [(T1, "flush"), (T2, "flush")]
    assert buffer.next_due() is None


def test_over_the_cap_the_oldest_traces_go_early_and_nothing_is_lost() -> None:
    buffer = make(FakeClock(), max_spans=4)
    buffer.add([(rec(T1, "1", "f"), False), (rec(T1, "2", "f"), False)])
    buffer.add([(rec(T2, "3", "f"), False), (rec(T2, "4", "f"), False)])
    assert buffer.add([(rec(T3, "5", "f"), False)]) is True  # 5 > 4: the shipper must wake
    parts = buffer.take_ready()
    assert [(p.trace_id, p.reason) for p in parts] == [(T1, "overflow")]
    assert buffer.span_count == 3
    rest = buffer.take_ready(flush=True)
    assert sorted(i for p in parts + rest for i in ids(p.records)) == ["1", "2", "3", "4", "5"]


def test_a_span_exported_twice_counts_once_and_keeps_the_last_version() -> None:
    buffer = make(FakeClock())
    first = rec(T1, "1", None)
    second = SpanRecord(T1, first.span_id, None, "renamed", 1, 3)
    buffer.add([(first, False), (second, False)])
    assert buffer.span_count == 1
    (part,) = buffer.take_ready(flush=True)
    assert [r.name for r in part.records] == ["renamed"]


def test_late_children_of_a_shipped_trace_go_once_their_parents_are_known() -> None:
    clock = FakeClock()
    buffer = make(clock, trace_wait=30)
    buffer.remember(T1, {"1".rjust(16, "0"): Placement("span", None)})
    # "3"'s parent "2" is neither known nor waiting: it may still come, so hold both.
    buffer.add([(rec(T1, "3", "2"), False)])
    assert buffer.take_ready() == []
    buffer.add([(rec(T1, "2", "1"), False)])
    (part,) = buffer.take_ready()
    assert (part.reason, ids(part.records)) == ("complete", ["3", "2"])


def test_known_placements_are_remembered_with_a_bounded_lru() -> None:
    buffer = make(FakeClock(), max_remembered_spans=3)
    buffer.remember(T1, {"s1": Placement("span", None), "s2": Placement("generation", "s1")})
    buffer.remember(T2, {"s3": Placement("span", None)})
    assert buffer.known(T1)["s2"] == Placement("generation", "s1")  # T1 now most recently used
    buffer.remember(T3, {"s4": Placement("span", None)})
    assert buffer.known(T2) == {}  # least recently used trace forgotten
    assert set(buffer.known(T1)) == {"s1", "s2"}
    assert set(buffer.known(T3)) == {"s4"}


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="trace_wait"):
        BufferOptions(trace_wait=-1)
    with pytest.raises(ValueError, match="max_spans"):
        BufferOptions(max_spans=0)
    with pytest.raises(ValueError, match="max_shipped_records"):
        BufferOptions(max_shipped_records=0)


def event(trace_id: str | None, span_id: str | None, name: str = "gen_ai.choice", at: int = 1) -> LogEvent:
    return LogEvent(trace_id, span_id.rjust(16, "0") if span_id else None, name, at, body={"index": 0})


def test_an_event_leaves_with_the_part_that_holds_its_span() -> None:
    buffer = make(FakeClock(), trace_wait=5)
    buffer.add_events([event(T1, "2")])
    buffer.add([(rec(T1, "2", "1"), False)])
    assert buffer.take_ready() == []  # the span waits for its root, and the event with it
    assert (buffer.span_count, buffer.event_count) == (1, 1)
    buffer.add([(rec(T1, "1", None), True)])
    (part,) = buffer.take_ready()
    assert (part.reason, ids(part.records), part.events, part.orphans) == ("root", ["2", "1"], (event(T1, "2"),), ())
    assert buffer.event_count == 0


def test_an_event_whose_span_is_still_to_come_waits_for_it() -> None:
    clock = FakeClock()
    buffer = make(clock, trace_wait=5)
    buffer.add([(rec(T1, "1", None), True)])
    buffer.add_events([event(T1, "3")])  # its span, a child of "1", has not ended yet
    (part,) = buffer.take_ready()
    assert (ids(part.records), part.events, part.orphans) == (["1"], (), ())
    buffer.remember(T1, {"1".rjust(16, "0"): Placement("span", None)}, part.records)
    clock.now += 1
    buffer.add([(rec(T1, "3", "1"), False)])
    (later,) = buffer.take_ready()
    assert (later.reason, ids(later.records), later.events) == ("complete", ["3"], (event(T1, "3"),))


def test_an_event_whose_span_shipped_is_late_and_ready_at_once() -> None:
    buffer = make(FakeClock(), trace_wait=5)
    shipped = rec(T1, "2", None)
    buffer.remember(T1, {shipped.span_id: Placement("generation", None)}, [shipped])
    assert buffer.add_events([event(T1, "2", at=1)]) is True
    assert buffer.add_events([event(T1, "2", at=2)]) is True
    (part,) = buffer.take_ready()  # one part per trace: the span is mapped again once, with both
    assert (part.reason, part.records, [e.time_ns for e in part.events]) == ("late", (), [1, 2])
    assert buffer.shipped_records(T1, [shipped.span_id]) == [shipped]


def test_an_event_whose_span_never_comes_leaves_as_an_orphan_after_trace_wait() -> None:
    clock = FakeClock()
    buffer = make(clock, trace_wait=5)
    buffer.add_events([event(T1, "9")])
    assert buffer.next_due() == 55.0
    clock.now = 54.9
    assert buffer.take_ready() == []
    clock.now = 55.0
    (part,) = buffer.take_ready()
    assert (part.reason, part.records, part.events, part.orphans) == ("waited", (), (), (event(T1, "9"),))
    assert buffer.next_due() is None and buffer.event_count == 0


def test_an_event_without_span_or_trace_id_goes_at_once() -> None:
    buffer = make(FakeClock())
    assert buffer.add_events([event(T1, None), event(None, None)]) is True
    assert [(p.reason, p.orphans) for p in buffer.take_ready()] == [
        ("orphan", (event(T1, None),)),
        ("orphan", (event(None, None),)),
    ]


def test_a_flush_that_holds_events_keeps_those_still_waiting_for_their_span() -> None:
    buffer = make(FakeClock(), trace_wait=5)
    buffer.add([(rec(T1, "2", "1"), False)])
    buffer.add_events([event(T1, "2"), event(T1, "7")])
    (part,) = buffer.take_ready(flush=True, hold_events=True)
    assert (ids(part.records), part.events, part.orphans) == (["2"], (event(T1, "2"),), ())
    assert buffer.event_count == 1
    (rest,) = buffer.take_ready(flush=True)
    assert rest.orphans == (event(T1, "7"),)


def test_events_count_toward_the_cap() -> None:
    buffer = make(FakeClock(), max_spans=2)
    buffer.add([(rec(T1, "1", "f"), False)])
    assert buffer.add_events([event(T2, "5"), event(T2, "6")]) is True
    parts = buffer.take_ready()
    assert [(p.trace_id, p.reason) for p in parts] == [(T1, "overflow")]
    assert buffer.event_count == 2


def test_shipped_records_are_kept_with_a_bounded_lru() -> None:
    buffer = make(FakeClock(), max_shipped_records=2)
    one, two, three = rec(T1, "1", None), rec(T2, "2", None), rec(T3, "3", None)
    buffer.remember(T1, {}, [one])
    buffer.remember(T2, {}, [two])
    assert buffer.shipped_records(T1, [one.span_id]) == [one]  # T1 now most recently used
    buffer.remember(T3, {}, [three])
    assert buffer.shipped_records(T2, [two.span_id]) == []
    # A late event for a forgotten span is not late any more: it waits, then goes as an orphan.
    buffer.add_events([event(T2, "2")])
    assert buffer.take_ready(flush=True)[0].orphans == (event(T2, "2"),)
