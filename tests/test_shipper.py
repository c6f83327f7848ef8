"""Shipping from a real spool through the real client to the real batch sink: delivery, outages, refusals."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.batch_sink import BatchSink, CannedResponse, reject_entity_ids
from fakes.records import small_trace, span_id, trace_id

from maxim_otel_bridge.client import ClientOptions, MaximClient
from maxim_otel_bridge.config import Destination, Secret
from maxim_otel_bridge.deadletter import read_dead_letters
from maxim_otel_bridge.retry import BackoffPolicy
from maxim_otel_bridge.schema import validate_entity
from maxim_otel_bridge.sidecar.assembler import Assembler
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
from maxim_otel_bridge.sidecar.shipper import DestinationGate, Shipper, TimedTransport
from maxim_otel_bridge.sidecar.spool import Spool

API_KEY = "sk-shipper-secret-0123456789"


class Rig:
    """Spool + assembler + client + shipper wired like the sidecar, against one batch sink."""

    def __init__(self, tmp_path: Path, sink: BatchSink, *, concurrency: int = 2, api_key: str = API_KEY) -> None:
        self.metrics = BridgeMetrics()
        self.spool = Spool(tmp_path / "spool", metrics=self.metrics)
        self.dead_letters = tmp_path / "dead.jsonl"
        self.client = MaximClient(
            Destination(sink.url, Secret(api_key), "repo-1"),
            ClientOptions(
                max_batch_entities=50,
                timeout=2.0,
                backoff=BackoffPolicy(initial=0.05, maximum=0.1),
                dead_letter_path=str(self.dead_letters),
            ),
            transport=TimedTransport(self.metrics),
        )
        self.gate = DestinationGate(BackoffPolicy(initial=0.2, maximum=0.4))
        self.assembler = Assembler(self.spool, wait_s=0.0, max_spans=200)
        self.shipper = Shipper(
            self.spool,
            self.assembler,
            self.client,
            self.gate,
            concurrency=concurrency,
            send_deadline=0.3,
            metrics=self.metrics,
        )

    def requests_by_outcome(self, outcome: str) -> float:
        histogram = self.metrics.exporter_request_duration_seconds.labels(outcome)
        return sum(bucket.get() for bucket in histogram._buckets)

    def close(self) -> None:
        self.shipper.stop()
        self.spool.close()
        self.client.close()


@pytest.fixture
def sink() -> Iterator[BatchSink]:
    with BatchSink(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, sink: BatchSink) -> Iterator[Rig]:
    r = Rig(tmp_path, sink, concurrency=4)
    yield r
    r.close()


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _span_ids(traces: range) -> set[str]:
    return {r.span_id for n in traces for r in small_trace(n)} | {trace_id(n) for n in traces}


def test_the_gate_and_the_counts_are_updated_before_delivered_rows_go(rig: Rig, sink: BatchSink) -> None:
    # Whoever sees the spool drained must also see the destination as reachable and the spans counted.
    seen: list[tuple[str, float]] = []
    complete = rig.spool.complete

    def watched(done, **kwargs):
        if done:
            seen.append((rig.gate.status().state, rig.metrics.exporter_sent_spans._value.get()))
        return complete(done, **kwargs)

    rig.spool.complete = watched  # type: ignore[method-assign]
    for n in range(1, 11):
        assert rig.spool.accept_spans(small_trace(n)).accepted
    rig.shipper.start()
    assert _wait(lambda: rig.spool.stats().spans == 0)
    assert seen and all(state == "ok" and sent > 0 for state, sent in seen)


def test_spooled_traces_are_delivered_and_removed(rig: Rig, sink: BatchSink) -> None:
    for n in range(1, 31):
        assert rig.spool.accept_spans(small_trace(n)).accepted
    rig.shipper.start()
    assert _wait(lambda: rig.spool.stats().spans == 0)
    received = sink.entities_by_id()
    assert set(received) >= {span_id(1), span_id(2), span_id(3)}
    assert {e["traceId"] for e in sink.entities() if e["type"] != "trace"} == {trace_id(n) for n in range(1, 31)}
    assert sink.problems() == []
    for entity in sink.entities():
        assert validate_entity(entity) == []
    assert all(r.headers["x-maxim-api-key"] == API_KEY for r in sink.requests)
    assert rig.metrics.exporter_sent_spans._value.get() == 90
    assert rig.requests_by_outcome("success") == sink.request_count
    assert rig.gate.status().state == "ok"


def test_an_outage_is_bridged_with_a_bounded_request_rate(rig: Rig, sink: BatchSink) -> None:
    sink.refuse_connections()
    for n in range(1, 101):
        rig.spool.accept_spans(small_trace(n))
    rig.shipper.start()
    time.sleep(2.0)
    during = rig.requests_by_outcome("network")
    status = rig.gate.status()
    assert status.state == "backing_off" and status.last_error
    # 4 workers without a shared gate would retry about every 0.1 s each (~80 attempts in 2 s). Paused
    # 0.2-0.4 s between probes, one probe send (about 3 attempts within its 0.3 s deadline) at a time:
    assert during in range(1, 31), during  # at least one probe, at most 30
    assert rig.spool.stats().spans == 300  # nothing lost, nothing removed
    assert rig.metrics.exporter_send_failed_spans._value.get() > 0

    sink.resume()
    assert _wait(lambda: rig.spool.stats().spans == 0)
    delivered = {e["id"] for e in sink.entities()}
    assert delivered == {r.span_id for n in range(1, 101) for r in small_trace(n)} | {
        trace_id(n) for n in range(1, 101)
    }
    assert rig.gate.status().state == "ok"


@pytest.mark.parametrize("retry_after", [None, "1"])
def test_503_answers_are_retried_until_delivered(rig: Rig, sink: BatchSink, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    sink.enqueue(*[CannedResponse(503, headers) for _ in range(4)])
    for n in range(1, 6):
        rig.spool.accept_spans(small_trace(n))
    rig.shipper.start()
    assert _wait(lambda: rig.spool.stats().spans == 0)
    assert sink.pending_responses == 0
    assert {e["id"] for e in sink.entities()} >= {trace_id(n) for n in range(1, 6)}
    statuses = [r.status for r in sink.requests]
    assert statuses.count(503) == 4
    assert rig.requests_by_outcome("retryable") == 4


def test_a_refused_api_key_keeps_the_spans_and_reports_auth_failure(tmp_path: Path, sink: BatchSink) -> None:
    rig = Rig(tmp_path, sink, api_key="wrong-key")
    try:
        rig.spool.accept_spans(small_trace(1))
        rig.shipper.start()
        assert _wait(lambda: rig.gate.status().state == "auth_failed")
        time.sleep(0.5)
        assert rig.spool.stats().spans == 3
        # Paused between probes, never retried inside a send: a handful of requests, not a storm.
        assert sink.request_count in range(1, 7)  # at least one probe, at most 6
        assert "wrong-key" not in str(rig.gate.status())
    finally:
        rig.close()


def test_entities_maxim_refuses_are_dead_lettered_and_removed(rig: Rig, sink: BatchSink) -> None:
    sink.decide = reject_entity_ids([span_id(3)])
    for n in range(1, 4):
        rig.spool.accept_spans(small_trace(n))
    rig.shipper.start()
    assert _wait(lambda: rig.spool.stats().spans == 0)
    letters = list(read_dead_letters(rig.dead_letters))
    assert {line["entity"]["id"] for line in letters} == {span_id(3)}
    assert rig.metrics.exporter_dead_lettered_spans._value.get() == len(letters)
    stored = {e["id"] for e in sink.entities()}
    assert span_id(1) in stored and span_id(3) not in stored


def test_drain_ships_incomplete_traces_within_the_grace(tmp_path: Path, sink: BatchSink) -> None:
    rig = Rig(tmp_path, sink)
    rig.assembler.wait_s = 3600  # nothing is ready on its own
    try:
        rig.spool.accept_spans(small_trace(1)[:2])  # children only, root never comes
        rig.shipper.start()
        assert rig.shipper.drain(5.0)
        assert rig.spool.stats().spans == 0
        assert {span_id(2), span_id(3)} <= {e["id"] for e in sink.entities()}
    finally:
        rig.spool.close()
        rig.client.close()


def test_drain_gives_up_at_the_grace_and_keeps_the_rest(tmp_path: Path, sink: BatchSink) -> None:
    rig = Rig(tmp_path, sink)
    sink.refuse_connections()
    try:
        rig.spool.accept_spans(small_trace(1))
        rig.shipper.start()
        started = time.monotonic()
        assert not rig.shipper.drain(0.5)
        assert time.monotonic() - started < 5.0
        assert rig.spool.stats().spans == 3
    finally:
        rig.spool.close()
        rig.client.close()


def test_gate_lets_one_probe_through_while_paused() -> None:
    gate = DestinationGate(BackoffPolicy(initial=0.2, maximum=1.0, jitter=0.0))
    assert gate.wait_turn()
    assert gate.failed(retry_after=None, auth_failed=False, error="down") == pytest.approx(0.2)
    assert not gate.wait_turn(deadline=time.monotonic() + 0.05)  # paused
    time.sleep(0.2)
    assert gate.wait_turn()  # the probe
    got_turn = threading.Event()
    other = threading.Thread(target=lambda: gate.wait_turn() and got_turn.set())
    other.start()
    assert not got_turn.wait(0.3)  # while the probe is out, the others wait
    assert gate.failed(retry_after=0.5, auth_failed=False, error="down") == pytest.approx(0.5)  # Retry-After wins
    assert got_turn.wait(3.0)  # after the pause, the next probe
    gate.succeeded()
    other.join()
    assert gate.wait_turn() and gate.status().state == "ok"
    assert gate.failed(retry_after=100.0, auth_failed=True, error="HTTP 401") == pytest.approx(1.0)  # capped
    assert gate.status().state == "auth_failed"
    gate.close()
    assert not gate.wait_turn()


def test_old_placements_are_purged_while_shipping(rig: Rig, sink: BatchSink, monkeypatch) -> None:
    import maxim_otel_bridge.sidecar.shipper as shipper_module

    monkeypatch.setattr(shipper_module, "PURGE_EVERY_S", 0.0)
    rig.shipper.placement_retention = 0.2
    rig.spool.accept_spans(small_trace(1))
    rig.shipper.start()
    assert _wait(lambda: rig.spool.stats().spans == 0)
    assert rig.spool.known(trace_id(1))  # remembered right after shipping
    assert _wait(lambda: rig.spool.known(trace_id(1)) == {})
