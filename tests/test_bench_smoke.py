"""The benchmark harness on a tiny input: the span set is what it claims, the decode ceiling counts right.

Correctness only: no timing is asserted here (the figures live in bench/results.json).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.record import from_readable_span
from maxim_otel_bridge.schema import validate_batch

BENCH = Path(__file__).resolve().parents[1] / "bench"
CAPTURED = Path(__file__).resolve().parent / "fixtures" / "captured" / "openai_v2.json"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in ("spanset", "ceiling", "hotspots")}
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def tiny(bench):
    spec = bench["spanset"].SpanSetSpec(traces=3)
    return spec, bench["spanset"].build_spans(spec)


def test_span_set_shape(bench, tiny):
    _, spans = tiny
    assert len(spans) == 3 * 10
    assert bench["spanset"].span_counts(spans) == {"invoke_agent": 3, "chat": 15, "execute_tool": 12}
    ends = [s.end_time for s in spans]
    assert ends == sorted(ends)  # the order a BatchSpanProcessor exports them in
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 3
    assert {s.context.trace_id for s in spans} == {r.context.trace_id for r in roots}
    for span in spans:
        if span.parent is not None:
            assert span.parent.span_id in {r.context.span_id for r in roots}
    chats = [s for s in spans if s.name.startswith("chat ")]
    for chat in chats:
        assert 1400 <= len(chat.attributes["gen_ai.input.messages"]) <= 1800
        assert 400 <= len(chat.attributes["gen_ai.output.messages"]) <= 600
        json.loads(chat.attributes["gen_ai.input.messages"])
        json.loads(chat.attributes["gen_ai.output.messages"])


def test_chat_spans_carry_the_keys_openai_v2_emits(tiny):
    captured = json.loads(CAPTURED.read_text())["scenarios"]["chat"]
    real_keys = set().union(*(s["attributes"] for s in captured if s["name"].startswith("chat ")))
    for chat in (s for s in tiny[1] if s.name.startswith("chat ")):
        assert real_keys <= set(chat.attributes), real_keys - set(chat.attributes)
        assert chat.instrumentation_scope.name == captured[0]["scope_name"]


def test_span_set_maps_to_valid_entities(tiny):
    _, spans = tiny
    by_trace: dict[int, list] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(from_readable_span(span))
    for records in by_trace.values():
        entities = map_trace_part(records).entities
        assert validate_batch({"repoId": "bench", "logs": entities}) == []
        kinds = sorted(e["type"] for e in entities)
        assert kinds.count("generation") == 5 and kinds.count("toolCall") == 4


def test_requests_relabel_to_new_traces(bench, tiny):
    spanset = bench["spanset"]
    _, spans = tiny
    requests = spanset.encode_requests(spans, max_spans=8)
    assert sum(r.spans for r in requests) == 30
    assert sorted(t for r in requests for t in r.roots) == [0, 1, 2]
    original = [
        s
        for r in requests
        for rs in ExportTraceServiceRequest.FromString(r.data).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    moved = [
        s
        for r in requests
        for rs in ExportTraceServiceRequest.FromString(spanset.relabel(r.data, 7)).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert len(moved) == len(original)
    for before, after in zip(original, moved):
        assert after.trace_id != before.trace_id and after.trace_id[8:] == before.trace_id[8:]
        assert after.span_id != before.span_id and after.span_id[4:] == before.span_id[4:]
        assert list(after.attributes) == list(before.attributes)
    trace_ids = {s.trace_id.hex() for s in moved}
    assert trace_ids == {spanset.trace_id_hex(7, i) for i in range(3)}
    # Parents follow their spans into the new round.
    span_ids = {s.span_id for s in moved}
    assert all(s.parent_span_id in span_ids for s in moved if s.parent_span_id)


def test_decode_ceiling_counts_every_span_and_attribute(bench, tiny):
    spanset, ceiling = bench["spanset"], bench["ceiling"]
    _, spans = tiny
    requests = [r.data for r in spanset.encode_requests(spans, max_spans=8)]
    expected_attributes = sum(len(s.attributes) for s in spans) + len(requests) * len(spans[0].resource.attributes)
    walked = [ceiling.walk_request(data) for data in requests]
    assert sum(s for s, _ in walked) == 30
    # finish_reasons is an array of one value: the walk reads the array's element, one more value per chat.
    assert sum(a for _, a in walked) == expected_attributes
    result = ceiling.decode_ceiling(requests)
    assert result.spans == 30 and result.attributes == expected_attributes
    assert result.seconds > 0 and result.spans_per_s > 0


def test_walk_reads_nested_values(bench):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "s"
    nested = AnyValue()
    nested.kvlist_value.values.extend([KeyValue(key="a", value=AnyValue(int_value=1))])
    nested.kvlist_value.values.extend([KeyValue(key="b", value=AnyValue(string_value="x"))])
    span.attributes.extend([KeyValue(key="map", value=nested), KeyValue(key="flag", value=AnyValue(bool_value=True))])
    assert bench["ceiling"].walk_request(request.SerializeToString()) == (1, 2)


def test_hotspots_summary(bench, tmp_path):
    hotspots = bench["hotspots"]
    profile = tmp_path / "profile.txt"
    profile.write_text(
        "main (app.py:1);work (app.py:5);parse (lib.py:9) 6\n"
        "main (app.py:1);work (app.py:5) 2\n"
        "main (app.py:1);idle (app.py:7) 2\n"
    )
    total, spots = hotspots.summarize(hotspots.read_profile(profile))
    assert total == 10
    by_name = {s.function: s for s in spots}
    assert by_name["work (app.py)"].inclusive == pytest.approx(0.8)
    assert by_name["parse (lib.py)"].self_share == pytest.approx(0.6)
    total, spots = hotspots.summarize(hotspots.read_profile(profile), within="work")
    assert total == 8 and spots[0].function == "work (app.py)"


def test_sidecar_breakdown_runs_every_stage_and_delivers_every_entity(bench, tiny, tmp_path):
    breakdown = importlib.import_module("sidecar_breakdown")
    sinks = importlib.import_module("sinks")
    _, spans = tiny
    requests = [r.data for r in bench["spanset"].encode_requests(spans, max_spans=8)]
    by_trace: dict[int, list] = {}
    for s in spans:
        by_trace.setdefault(s.context.trace_id, []).append(from_readable_span(s))
    expected = sum(len(map_trace_part(records).entities) for records in by_trace.values())
    with sinks.SinkProcess("http") as sink:
        first = breakdown.measure(requests, sink.url, tmp_path / "first")
        again = breakdown.measure(requests, sink.url, tmp_path / "again")
        assert sink.wait_for_entities(2 * expected, 30)["entities"] == 2 * expected
    assert breakdown.MAPPING in first and breakdown.DECODING in first
    assert set(first) == set(again)
    assert all(seconds >= 0 for seconds in first.values())


def test_exporter_compare_runs_every_exporter_each_round(bench, capsys):
    compare = importlib.import_module("exporter_compare")
    compare.main([str(BENCH.parent / "src"), "--rounds", "1", "--traces", "2"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["rounds"]) == {"otlp-grpc", "before", "now", "otlp-http"}
    assert all(len(figures) == 1 and figures[0] > 0 for figures in report["rounds"].values())
    assert report["now_over_before"] > 0


def test_exporter_stages_times_every_stage_and_delivers_every_entity(bench):
    stages = importlib.import_module("exporter_stages")
    sinks = importlib.import_module("sinks")
    spanset = bench["spanset"]
    spec = spanset.SpanSetSpec(traces=2)
    warmup = spanset.SpanSetSpec(traces=stages.WARMUP_TRACES, first_trace=10_000_000)
    expected = 0
    for spans in (spanset.build_spans(spec), spanset.build_spans(warmup)):
        by_trace: dict[int, list] = {}
        for s in spans:
            by_trace.setdefault(s.context.trace_id, []).append(from_readable_span(s))
        expected += sum(len(map_trace_part(records).entities) for records in by_trace.values())
    with sinks.SinkProcess("http") as sink:
        n, cpu, seconds = stages.measure(2, sink.url)
        assert sink.wait_for_entities(expected, 30)["entities"] == expected
    assert n == 2 * spec.spans_per_trace and cpu > 0
    assert set(seconds) == {label for _, _, label in stages.STAGES} and all(s > 0 for s in seconds.values())
    # The wrappers are taken off again.
    assert all(getattr(owner, name).__qualname__.endswith(name) for owner, name, _ in stages.STAGES)


def test_sidecar_threads_are_summed_by_name_a_pool_counted_once(bench):
    processes = importlib.import_module("sidecar_processes")
    names = {10: "otlp-grpc_0", 11: "otlp-grpc_1", 12: "shipper-0", 13: "event_engine"}
    before = {10: 1.0, 11: 0.0, 12: 0.0}  # 13 started during the load; 14 ended before its name was read
    loaded = {10: 2.0, 11: 1.0, 12: 1.0, 13: 0.2}
    drained = {10: 2.0, 11: 1.0, 12: 2.5, 13: 0.2, 14: 0.5}
    threads = processes._threads_by_name(names, (before, loaded, drained), (2.0, 1.0), 1_000_000)
    assert list(threads) == ["shipper-0", "otlp-grpc", "ended", "event_engine"]
    assert threads["shipper-0"] == {"load_cores": 0.5, "drain_cores": 1.5, "cpu_us_per_span": 2.5}
    assert threads["otlp-grpc"] == {"load_cores": 1.0, "drain_cores": 0.0, "cpu_us_per_span": 2.0}
    assert threads["ended"] == {"load_cores": 0.0, "drain_cores": 0.5, "cpu_us_per_span": 0.5}
    assert threads["event_engine"] == {"load_cores": 0.1, "drain_cores": 0.0, "cpu_us_per_span": 0.2}


def test_mapping_instructions_are_counted_the_same_twice(bench, capsys):
    instructions = importlib.import_module("mapping_instructions")
    counts = []
    for _ in range(2):
        instructions.main(["--traces", "3"])
        result = json.loads(capsys.readouterr().out)
        assert result["spans"] == 30
        counts.append(result["instructions_per_span"]["installed"])
    assert counts[0] > 10_000 and abs(counts[0] - counts[1]) / counts[0] < 0.01
