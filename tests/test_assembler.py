"""Trace assembly from a real spool: whole traces, parents first, parts linked through persisted placements."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fakes.otlp_requests import CHILD, ROOT, TRACE, request_pb, span_pb
from fakes.records import generation, small_trace, span, span_id, trace_id

from maxim_otel_bridge.deadletter import DeadLetterFile, read_dead_letters
from maxim_otel_bridge.mapping import MappingOptions
from maxim_otel_bridge.schema import validate_batch
from maxim_otel_bridge.sidecar.assembler import Assembler
from maxim_otel_bridge.sidecar.mapper import InlineMapper, MappingWorkerError, ProcessMapper, TraceInput
from maxim_otel_bridge.sidecar.otlp_decode import decode_trace_request_protobuf, split_trace_request_protobuf
from maxim_otel_bridge.sidecar.spool import Spool


def _valid(entities: list[dict]) -> list[dict]:
    assert validate_batch({"repoId": "r", "logs": entities}) == []
    return entities


def _parent_of(entity: dict) -> str | None:
    return entity.get("spanId")


@pytest.fixture
def spool(tmp_path: Path):
    s = Spool(tmp_path / "spool")
    yield s
    s.close()


def test_spans_from_separate_requests_ship_as_one_trace_parents_first(spool: Spool) -> None:
    spool.accept_spans([generation(1, 3, 2)])
    spool.accept_spans([span(1, 2, 1, name="tool loop")])
    assembler = Assembler(spool, wait_s=60, max_spans=100)
    assert assembler.claim() == []  # no root yet
    spool.accept_spans([span(1, 1, name="agent")])

    [trace] = assembler.claim()
    entities = _valid(trace.entities)
    assert trace.trace_id == trace_id(1) and trace.span_count == 3
    order = [e["id"] for e in entities]
    assert order.index(span_id(1)) < order.index(span_id(2)) < order.index(span_id(3))
    by_id = {e["id"]: e for e in entities}
    assert _parent_of(by_id[span_id(3)]) == span_id(2)
    assert _parent_of(by_id[span_id(2)]) == span_id(1)


def test_a_claimed_trace_is_not_claimed_twice_until_released(spool: Spool) -> None:
    spool.accept_spans(small_trace(2))
    assembler = Assembler(spool, wait_s=60, max_spans=100)
    assert len(assembler.claim()) == 1
    assert assembler.in_flight == 1
    assert assembler.claim() == []
    assembler.release([trace_id(2)])
    assert len(assembler.claim()) == 1


def test_a_late_child_links_to_its_parent_shipped_earlier_even_after_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    first = Spool(directory)
    first.accept_spans([span(3, 2, 1, name="tool loop"), span(3, 1, name="agent")])
    [part] = Assembler(first, wait_s=0, max_spans=100).claim()
    first.complete({part.trace_id: (part.seqs, part.placements)})
    first.close()

    again = Spool(directory)
    try:
        again.accept_spans([generation(3, 7, 2)])  # a child that ended after its trace shipped
        [late] = Assembler(again, wait_s=0, max_spans=100).claim()
        entities = _valid(late.entities)
        generation_entity = next(e for e in entities if e["id"] == span_id(7))
        assert _parent_of(generation_entity) == span_id(2)
        # The parent is not sent again as a placeholder: it is known.
        assert span_id(2) not in [e["id"] for e in entities]
    finally:
        again.close()


def test_a_span_that_comes_again_in_another_request_ships_once(spool: Spool) -> None:
    records = small_trace(7)
    spool.accept_spans(records)
    spool.accept_spans([records[0], generation(7, 9, 1)])  # re-batched by a collector after a lost answer
    [trace] = Assembler(spool, wait_s=0, max_spans=100).claim()
    ids = [e["id"] for e in _valid(trace.entities) if e["type"] != "trace"]
    assert sorted(ids) == sorted({span_id(1), span_id(2), span_id(3), span_id(9)}) and len(ids) == len(set(ids))
    assert trace.span_count == 5 and len(trace.seqs) == 2  # both groups go once delivered


def test_a_trace_larger_than_the_budget_goes_in_parts(spool: Spool) -> None:
    records = [span(4, 1, name="agent")] + [generation(4, n, 1) for n in range(2, 12)]
    for start in range(0, len(records), 2):
        spool.accept_spans(records[start : start + 2])  # a long-running agent's batches
    assembler = Assembler(spool, wait_s=0, max_spans=4)
    shipped: set[str] = set()
    for expected in (4, 4, 3):
        [part] = assembler.claim()
        assert part.span_count == expected
        _valid(part.entities)
        spool.complete({part.trace_id: (part.seqs, part.placements)})
        assembler.release([part.trace_id])
        shipped.update(part.placements)
    assert {span_id(n) for n in range(1, 12)} <= shipped
    assert assembler.claim() == []


def test_the_budget_spans_several_traces(spool: Spool) -> None:
    for n in range(10, 20):
        spool.accept_spans(small_trace(n, children=2))
    parts = Assembler(spool, wait_s=60, max_spans=9).claim()
    assert [p.trace_id for p in parts] == [trace_id(10), trace_id(11), trace_id(12)]


def test_mapping_options_are_applied(spool: Spool) -> None:
    spool.accept_spans([span(5, 1, attributes={"note": "y" * 500})])
    mapper = InlineMapper(MappingOptions(max_value_chars=100))
    [part] = Assembler(spool, wait_s=0, max_spans=10, mapper=mapper).claim()
    text = str(_valid(part.entities))
    assert "y" * 101 not in text and "truncated" in text


def test_a_mapping_failure_dead_letters_the_raw_spans(spool: Spool, tmp_path: Path, monkeypatch) -> None:
    import maxim_otel_bridge.sidecar.mapper as mapper_module

    def broken(*args, **kwargs):
        raise RuntimeError("mapping bug")

    monkeypatch.setattr(mapper_module, "map_trace_part", broken)
    spool.accept_spans(small_trace(6))
    letters = tmp_path / "dead.jsonl"
    [part] = Assembler(spool, wait_s=0, max_spans=10, dead_letters=DeadLetterFile(letters)).claim()
    assert part.mapping_failed and part.entities == [] and part.span_count == 3
    lines = list(read_dead_letters(letters))
    assert sorted(line["entity"]["span_id"] for line in lines) == [span_id(1), span_id(2), span_id(3)]
    assert all("mapping bug" in line["reason"] for line in lines)


def test_spans_spooled_as_protobuf_map_and_dead_letter_like_decoded_ones(
    spool: Spool, tmp_path: Path, monkeypatch
) -> None:
    import maxim_otel_bridge.sidecar.mapper as mapper_module

    body = request_pb(
        span_pb("agent", bytes.fromhex(TRACE), bytes.fromhex(ROOT)),
        span_pb("step", bytes.fromhex(TRACE), bytes.fromhex(CHILD), bytes.fromhex(ROOT)),
    ).SerializeToString()
    spool.accept_spans(split_trace_request_protobuf(body).records)
    [part] = Assembler(spool, wait_s=0, max_spans=10).claim()
    expected = InlineMapper().map(
        [TraceInput(TRACE, [orjson.dumps(r.to_json_obj()) for r in decode_trace_request_protobuf(body).records], {})]
    )
    assert part.encoded == expected[0].entities and {e["id"] for e in _valid(part.entities)} >= {ROOT, CHILD}

    def broken(*args, **kwargs):
        raise RuntimeError("mapping bug")

    monkeypatch.setattr(mapper_module, "map_trace_part", broken)
    letters = tmp_path / "dead.jsonl"
    Assembler(spool, wait_s=0, max_spans=10, dead_letters=DeadLetterFile(letters)).claim(flush=True)
    lines = list(read_dead_letters(letters))
    assert sorted(line["entity"]["span_id"] for line in lines) == sorted([ROOT, CHILD])
    assert all(line["entity"]["trace_id"] == TRACE for line in lines)


def test_mapping_in_a_worker_process_gives_the_same_entities(tmp_path: Path) -> None:
    inline_spool = Spool(tmp_path / "inline")
    process_spool = Spool(tmp_path / "process")
    mapper = ProcessMapper(MappingOptions(max_value_chars=50), workers=1)
    try:
        for s in (inline_spool, process_spool):
            for n in range(20, 25):
                s.accept_spans(small_trace(n, children=3))
            s.accept_spans([span(25, 1, attributes={"note": "z" * 80})])
        inline = Assembler(
            inline_spool, wait_s=0, max_spans=100, mapper=InlineMapper(MappingOptions(max_value_chars=50))
        )
        in_process = Assembler(process_spool, wait_s=0, max_spans=100, mapper=mapper)
        expected = inline.claim()
        got = in_process.claim()
        assert [(t.trace_id, t.entities, t.placements, t.span_count) for t in got] == [
            (t.trace_id, t.entities, t.placements, t.span_count) for t in expected
        ]
        assert len(got) == 6
        _valid([e for t in got for e in t.entities])
    finally:
        mapper.close()
        inline_spool.close()
        process_spool.close()


def test_a_worker_that_cannot_start_is_reported_and_its_batches_are_mapped_here(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maxim_otel_bridge.sidecar import mapper as mapper_module

    monkeypatch.setattr(mapper_module, "_WORKER_MAIN", "import sys; sys.exit(3)")
    mapper = ProcessMapper(workers=1)
    try:
        with pytest.raises(MappingWorkerError):
            mapper.warm_up()  # the sidecar then maps in its shipping threads
        spool.accept_spans(small_trace(32))
        [part] = Assembler(spool, wait_s=0, max_spans=10, mapper=mapper).claim()
        assert len(_valid(part.entities)) == 4
        assert mapper.worker_pids() == []
    finally:
        mapper.close()


def test_a_closed_process_mapper_leaves_no_worker_behind() -> None:
    import os

    mapper = ProcessMapper(workers=2)
    mapper.warm_up()
    pids = mapper.worker_pids()
    assert len(pids) == 2
    mapper.close()
    assert mapper.worker_pids() == []
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # exited and reaped: not a zombie either


def test_a_dead_mapping_worker_is_replaced_and_the_batch_still_mapped(spool: Spool) -> None:
    import os
    import signal

    mapper = ProcessMapper(workers=1)
    try:
        mapper.warm_up()
        for pid in mapper.worker_pids():
            os.kill(pid, signal.SIGKILL)
        spool.accept_spans(small_trace(30))
        [part] = Assembler(spool, wait_s=0, max_spans=10, mapper=mapper).claim()
        assert len(_valid(part.entities)) == 4
        spool.complete({part.trace_id: (part.seqs, part.placements)})
        spool.accept_spans(small_trace(31))
        [part] = Assembler(spool, wait_s=0, max_spans=10, mapper=mapper).claim()  # the new workers map
        assert part.trace_id == trace_id(31) and len(part.entities) == 4
    finally:
        mapper.close()


def test_a_worker_failing_again_and_again_is_restarted_after_a_growing_pause(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maxim_otel_bridge.sidecar import mapper as mapper_module

    monkeypatch.setattr(mapper_module, "_WORKER_MAIN", "import sys; sys.exit(3)")
    starts: list[float] = []
    real_start = mapper_module._Worker._start

    def counted_start(self):  # noqa: ANN001, ANN202 - the worker's own method, wrapped
        starts.append(now[0])
        return real_start(self)

    monkeypatch.setattr(mapper_module._Worker, "_start", counted_start)
    now = [100.0]
    mapper = ProcessMapper(workers=1, clock=lambda: now[0])
    assembler = Assembler(spool, wait_s=0, max_spans=10, mapper=mapper)
    try:
        mapped = 0
        for _ in range(6):  # batches at the same moment: the first failure restarts at once, then a pause
            spool.accept_spans(small_trace(40 + mapped))
            ship(assembler, spool)
            mapped += 1
        assert starts == [100.0, 100.0]
        now[0] += 1.0  # the pause after two failures in a row
        spool.accept_spans(small_trace(60))
        ship(assembler, spool)
        assert starts == [100.0, 100.0, 101.0]
    finally:
        mapper.close()


def ship(assembler: Assembler, spool: Spool) -> None:
    """Claim the one ready trace, check it was mapped, and remove it from the spool as a delivery would."""
    [part] = assembler.claim()
    assert len(_valid(part.entities)) == 4
    spool.complete({part.trace_id: (part.seqs, part.placements)})
    assembler.release([part.trace_id])
