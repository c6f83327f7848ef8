"""The durable spool on a real SQLite file: durability, dedup, byte cap, readiness, completion, concurrency."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import orjson
import pytest
from fakes.records import generation, small_trace, span, span_id, trace_id

from maxim_otel_bridge.mapping import Placement
from maxim_otel_bridge.record import SpanKind
from maxim_otel_bridge.sidecar.ingest import Verdict
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
from maxim_otel_bridge.sidecar.otlp_decode import decode_bodies
from maxim_otel_bridge.sidecar.spool import MAX_GROUP_SPANS, SPOOL_FILE, Spool, is_local_root


class FakeWallClock:
    """Wall-clock nanoseconds the test moves by hand (readiness is measured against it)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def spool(tmp_path: Path, clock: FakeWallClock):
    s = Spool(tmp_path / "spool", wall_clock_ns=clock)
    yield s
    s.close()


def test_accepted_spans_survive_reopening_the_spool(tmp_path: Path, clock: FakeWallClock) -> None:
    directory = tmp_path / "spool"
    first = Spool(directory, wall_clock_ns=clock)
    records = small_trace(7, children=3)
    assert first.accept_spans(records).verdict is Verdict.ACCEPTED
    first.close()

    again = Spool(directory, wall_clock_ns=clock)
    try:
        stored = again.read_trace(trace_id(7))
        assert [s.record for s in stored] == records
        assert again.stats().spans == 4 and again.stats().traces == 1
    finally:
        again.close()


def test_directory_and_file_are_private(spool: Spool) -> None:
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    assert (spool.directory / SPOOL_FILE).exists()


def test_existing_directory_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    s = Spool(directory)
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    finally:
        s.close()


def test_a_request_sent_twice_is_stored_once(spool: Spool) -> None:
    records = small_trace(1) + small_trace(2)
    assert spool.accept_spans(records).accepted
    assert spool.accept_spans(records).accepted  # a client retrying after a lost answer
    assert spool.stats().spans == 6
    assert [s.record for s in spool.read_trace(trace_id(1))] == records[:3]


def test_the_spans_of_one_trace_in_one_request_are_one_group(spool: Spool) -> None:
    records = [generation(3, 2, 1), span(4, 1), generation(3, 3, 1), span(3, 1), span(4, 2, 1)]
    assert spool.accept_spans(records).accepted
    [(seq3, _)] = spool.read_trace_rows(trace_id(3))
    [(seq4, _)] = spool.read_trace_rows(trace_id(4))
    assert seq3 < seq4  # in order of each trace's first span
    assert spool.spooled_span_ids(trace_id(3)) == {span_id(1): seq3, span_id(2): seq3, span_id(3): seq3}
    assert [s.record for s in spool.read_trace(trace_id(3))] == [records[0], records[2], records[3]]
    assert sorted(spool.ready_traces(10, wait_s=60)) == [trace_id(3), trace_id(4)]  # both roots came
    spool.accept_spans([generation(3, 9, 1)])
    assert spool.stats().spans == 6 and len(spool.read_trace_rows(trace_id(3))) == 2


def test_a_request_with_many_spans_of_one_trace_is_stored_in_bounded_groups(spool: Spool) -> None:
    records = [span(5, 1)] + [generation(5, n, 1) for n in range(2, MAX_GROUP_SPANS * 2 + 20)]
    assert spool.accept_spans(records).accepted
    rows = spool.read_trace_rows(trace_id(5))
    assert len(rows) == 3
    assert [len(decode_bodies([body])) for _, body in rows] == [MAX_GROUP_SPANS, MAX_GROUP_SPANS, 19]
    assert [s.record for s in spool.read_trace(trace_id(5))] == records


def _empty_bytes(tmp_path: Path) -> int:
    """What an empty spool file counts against the cap (its tables' and indexes' first pages)."""
    empty = Spool(tmp_path / "empty")
    try:
        return empty.used_bytes
    finally:
        empty.close()


def test_over_the_byte_cap_refuses_with_a_retry_delay_and_keeps_what_it_had(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="maxim_otel_bridge.sidecar.spool")
    s = Spool(tmp_path / "spool", max_bytes=_empty_bytes(tmp_path) + 200_000)
    try:
        big = {"payload": "x" * 20_000}
        accepted = refused = 0
        verdicts = []
        for n in range(1, 40):
            result = s.accept_spans([span(n, 1, attributes=big)])
            verdicts.append(result.verdict)
            if result.accepted:
                accepted += 1
            else:
                refused += 1
                assert result.verdict is Verdict.OVERLOADED
                assert result.retry_after_s > 0
        assert accepted > 0 and refused > 0
        # Everything acknowledged is there, nothing refused slipped in.
        assert s.stats().spans == accepted
        assert verdicts.index(Verdict.OVERLOADED) == accepted  # refusals start once full and stay
        # Delivering frees room: intake resumes.
        ready = s.ready_traces(100, wait_s=0)
        s.complete({t: ([x.seq for x in s.read_trace(t)], {}) for t in ready})
        assert s.stats().spans == 0
        assert s.accept_spans([span(99, 1, attributes=big)]).accepted
        messages = [r.getMessage() for r in caplog.records]
        assert sum("spool is full" in m for m in messages) == 1  # one line, not one per refused request
        assert f"spool has room again: taking spans ({refused} refused while full)" in messages
    finally:
        s.close()


def test_after_close_intake_spans_are_refused_as_shutting_down(spool: Spool) -> None:
    spool.close_intake()
    result = spool.accept_spans(small_trace(1))
    assert result.verdict is Verdict.SHUTTING_DOWN
    assert spool.stats().spans == 0


def test_concurrent_requests_are_all_stored(spool: Spool) -> None:
    metrics = BridgeMetrics()
    spool.metrics = metrics
    results: list[bool] = []
    lock = threading.Lock()

    def client(worker: int) -> None:
        for n in range(25):
            ok = spool.accept_spans(small_trace(worker * 1000 + n, children=4)).accepted
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results) and len(results) == 200
    assert spool.stats().spans == 200 * 5
    assert spool.stats().traces == 200
    assert metrics.spool_spooled_spans._value.get() == 1000


def test_local_roots() -> None:
    assert is_local_root(span(1, 1))
    assert not is_local_root(span(1, 2, 1))
    assert is_local_root(span(1, 2, 1, kind=SpanKind.SERVER))  # parent ran in the calling service
    assert is_local_root(span(1, 2, 0))  # an all-zero parent id means none


def test_a_trace_is_ready_when_its_root_arrives(spool: Spool) -> None:
    children = [generation(3, 2, 1), generation(3, 3, 1)]
    assert spool.accept_spans(children).accepted
    assert spool.ready_traces(10, wait_s=5) == []
    assert spool.accept_spans([span(3, 1)]).accepted
    assert spool.ready_traces(10, wait_s=5) == [trace_id(3)]


def test_a_trace_without_root_is_ready_after_the_wait(spool: Spool, clock: FakeWallClock) -> None:
    assert spool.accept_spans([generation(4, 2, 1)]).accepted
    assert spool.ready_traces(10, wait_s=5) == []
    assert spool.next_due_s(5) == pytest.approx(5)
    clock.advance(5)
    assert spool.ready_traces(10, wait_s=5) == [trace_id(4)]
    assert spool.next_due_s(5) == 0


def test_ready_traces_are_oldest_first_and_skip_excluded(spool: Spool, clock: FakeWallClock) -> None:
    for n in (10, 11, 12):
        spool.accept_spans(small_trace(n))
        clock.advance(1)
    assert spool.ready_traces(10, wait_s=60) == [trace_id(10), trace_id(11), trace_id(12)]
    assert spool.ready_traces(2, wait_s=60, exclude=[trace_id(10)]) == [trace_id(11), trace_id(12)]
    assert spool.ready_traces(10, wait_s=60, flush=True) == [trace_id(10), trace_id(11), trace_id(12)]


def test_flush_takes_traces_that_are_not_ready(spool: Spool) -> None:
    spool.accept_spans([generation(5, 2, 1)])
    assert spool.ready_traces(10, wait_s=60) == []
    assert spool.ready_traces(10, wait_s=60, flush=True) == [trace_id(5)]


def test_complete_deletes_delivered_rows_and_remembers_placements(spool: Spool, clock: FakeWallClock) -> None:
    spool.accept_spans(small_trace(6))
    stored = spool.read_trace(trace_id(6))
    clock.advance(2)
    late = generation(6, 9, 1)
    spool.accept_spans([late])  # arrived while the first part was being shipped
    placements = {span_id(1): Placement("span", None), span_id(2): Placement("generation", span_id(1))}
    spool.complete({trace_id(6): ([s.seq for s in stored], placements)})

    left = spool.read_trace(trace_id(6))
    assert [s.record for s in left] == [late]
    assert spool.known(trace_id(6)) == placements
    # Its parent is placed: the late span need not wait for a root that already went.
    assert spool.ready_traces(10, wait_s=5) == [trace_id(6)]
    spool.complete({trace_id(6): ([s.seq for s in left], {})})
    assert spool.stats().traces == 0 and spool.stats().spans == 0
    # Later still, a span of the shipped trace arrives: ready at once for the same reason.
    spool.accept_spans([generation(6, 10, 2)])
    assert spool.ready_traces(10, wait_s=5) == [trace_id(6)]
    # A trace never shipped still waits for its root (or the wait).
    spool.accept_spans([generation(60, 2, 1)])
    assert spool.ready_traces(10, wait_s=5) == [trace_id(6)]


def test_placements_are_forgotten_after_the_retention(spool: Spool, clock: FakeWallClock) -> None:
    spool.accept_spans(small_trace(8))
    stored = spool.read_trace(trace_id(8))
    spool.complete({trace_id(8): ([s.seq for s in stored], {span_id(1): Placement("span", None)})})
    clock.advance(30)
    assert spool.purge_placements(60) == 0
    clock.advance(31)
    assert spool.purge_placements(60) == 1
    assert spool.known(trace_id(8)) == {}


def test_bytes_and_oldest_age_are_reported(spool: Spool, clock: FakeWallClock) -> None:
    metrics = BridgeMetrics()
    spool.metrics = metrics
    assert spool.oldest_age_s() == 0
    spool.accept_spans(small_trace(9))
    clock.advance(3)
    spool.refresh_gauges()
    assert metrics.spool_oldest_span_age_seconds._value.get() == pytest.approx(3)
    assert metrics.spool_bytes._value.get() == spool.used_bytes > 0
    text = metrics.render()[0].decode()
    assert "maxim_bridge_spool_oldest_span_age_seconds 3.0" in text


def test_a_failed_write_refuses_instead_of_acknowledging(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool")
    try:
        # Another connection holds the write lock past the writer's busy timeout: the write fails.
        s._writer.execute("PRAGMA busy_timeout=50")
        blocker = sqlite3.connect(s.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            result = s.accept_spans(small_trace(1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert result.verdict is Verdict.OVERLOADED
        assert not s.writable
        assert s.accept_spans(small_trace(2)).accepted
        assert s.writable
        assert s.stats().spans == 3
    finally:
        s.close()


def test_a_request_larger_than_the_cap_is_taken_while_there_is_room(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool", max_bytes=_empty_bytes(tmp_path) + 100_000)
    try:
        huge = [span(1, n, attributes={"payload": "x" * 10_000}) for n in range(1, 30)]  # ~300 KB
        assert s.accept_spans(huge).accepted  # refused forever otherwise: no retry could ever fit it
        assert s.accept_spans(small_trace(2)).verdict is Verdict.OVERLOADED  # now over the cap
    finally:
        s.close()


def test_placements_of_later_parts_are_added_to_those_kept(spool: Spool, clock: FakeWallClock) -> None:
    spool.accept_spans(small_trace(12))
    stored = spool.read_trace(trace_id(12))
    first = {span_id(1): Placement("span", None), span_id(2): Placement("generation", span_id(1))}
    spool.complete({trace_id(12): ([s.seq for s in stored], first)})
    spool.accept_spans([generation(12, 9, 1)])
    [late] = spool.read_trace(trace_id(12))
    later = {span_id(9): Placement("generation", span_id(1)), span_id(2): Placement("tool_call", span_id(1))}
    spool.complete({trace_id(12): ([late.seq], later)})
    assert spool.known(trace_id(12)) == {**first, **later}


def _earlier_spool(directory: Path, schema: str, insert: str, rows: list[tuple]) -> Path:
    """A spool file as an earlier version wrote it: its own `schema`, holding `rows`."""
    directory.mkdir()
    old = sqlite3.connect(directory / SPOOL_FILE)
    old.executescript(schema)
    old.executemany(insert, rows)
    old.commit()
    old.close()
    return directory


def test_a_spool_with_one_row_per_span_is_converted_when_opened(tmp_path: Path, clock: FakeWallClock) -> None:
    records = small_trace(30) + [generation(31, 2, 1)]
    directory = _earlier_spool(
        tmp_path / "spool",
        """
        CREATE TABLE spans (seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
            received_ns INTEGER NOT NULL, local_root INTEGER NOT NULL, body BLOB NOT NULL, UNIQUE (trace_id, span_id));
        """,
        "INSERT INTO spans (trace_id, span_id, received_ns, local_root, body) VALUES (?, ?, ?, ?, ?)",
        [(r.trace_id, r.span_id, clock.now, int(is_local_root(r)), orjson.dumps(r.to_json_obj())) for r in records],
    )
    s = Spool(directory, wall_clock_ns=clock)
    try:
        assert [x.record for x in s.read_trace(trace_id(30))] == records[:3]
        assert s.stats().spans == 4
        waiting = s.read_waiting([trace_id(30), trace_id(31)], 100)
        assert [(w.trace_id, len(w.rows), w.spans) for w in waiting] == [(trace_id(30), 3, 3), (trace_id(31), 1, 1)]
        assert decode_bodies([body for _, body in waiting[0].rows]) == records[:3]
        s.complete({w.trace_id: ([seq for seq, _ in w.rows], {}) for w in waiting})
        assert s.stats().spans == 0
        assert not sqlite3.connect(s.path).execute("SELECT 1 FROM sqlite_master WHERE name = 'spans'").fetchall()
    finally:
        s.close()


def test_a_spool_with_per_span_placements_is_converted_when_opened(tmp_path: Path, clock: FakeWallClock) -> None:
    directory = _earlier_spool(
        tmp_path / "spool",
        """
        CREATE TABLE placements (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, entity_type TEXT NOT NULL,
            parent TEXT, shipped_ns INTEGER NOT NULL, PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID;
        CREATE INDEX placements_by_age ON placements (shipped_ns);
        """,
        "INSERT INTO placements VALUES (?, ?, ?, ?, ?)",
        [
            (trace_id(1), span_id(1), "span", None, clock.now),
            (trace_id(1), span_id(2), "generation", span_id(1), clock.now),
            (trace_id(2), span_id(3), "span", None, clock.now),
        ],
    )
    s = Spool(directory, wall_clock_ns=clock)
    try:
        assert s.known(trace_id(1)) == {
            span_id(1): Placement("span", None),
            span_id(2): Placement("generation", span_id(1)),
        }
        assert s.known(trace_id(2)) == {span_id(3): Placement("span", None)}
        # A late span of a trace shipped before the upgrade is ready at once, as before.
        s.accept_spans([generation(1, 9, 2)])
        assert s.ready_traces(10, wait_s=60) == [trace_id(1)]
        clock.advance(61)
        assert s.purge_placements(60) == 2
    finally:
        s.close()


def test_the_span_budget_holds_across_many_traces(spool: Spool) -> None:
    for n in range(1, 201):
        spool.accept_spans(small_trace(n))  # 3 spans each
    asked = [trace_id(n) for n in range(200, 0, -1)]
    waiting = spool.read_waiting(asked, 400)
    # 133 whole traces, in the order asked, then the next one: its one group passes the budget by 2 spans.
    assert [w.trace_id for w in waiting] == asked[:134]
    assert [(len(w.rows), w.spans) for w in waiting] == [(1, 3)] * 134


def test_waiting_traces_are_read_in_the_order_asked_within_the_span_budget(spool: Spool) -> None:
    for n in (20, 22):
        spool.accept_spans(small_trace(n, children=3))  # 4 spans each, one request
    for record in small_trace(21, children=3):
        spool.accept_spans([record])  # 4 spans, one request each
    [first] = spool.read_waiting([trace_id(20)], 100)
    spool.complete({trace_id(20): ([seq for seq, _ in first.rows], {span_id(1): Placement("span", None)})})
    spool.accept_spans([generation(20, 9, 1)])

    waiting = spool.read_waiting([trace_id(22), trace_id(99), trace_id(20), trace_id(21)], 7)
    assert [(w.trace_id, len(w.rows), w.spans) for w in waiting] == [
        (trace_id(22), 1, 4),
        (trace_id(20), 1, 1),
        (trace_id(21), 2, 2),
    ]
    assert waiting[1].known == {span_id(1): Placement("span", None)} and waiting[0].known == {}
    # The cut trace gives its first groups in arrival order, as read_trace_rows does.
    assert waiting[2].rows == spool.read_trace_rows(trace_id(21))[:2]
    assert [r.span_id for r in decode_bodies([body for _, body in waiting[0].rows])] == [
        s.record.span_id for s in spool.read_trace(trace_id(22))
    ]
