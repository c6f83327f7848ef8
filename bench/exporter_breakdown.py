"""Where `MaximSpanExporter`'s CPU per span goes, stage by stage, on the benchmark's span set.

    python bench/exporter_breakdown.py [traces]

Runs the stages of the exporter's data path over the whole span set and reports CPU microseconds per span:
reading the SDK span (`from_readable_span`), mapping a trace (`map_trace_part`, with the share of it spent
checking value bounds), serializing the entities (orjson, as the exporter does as soon as a trace is mapped)
and, for reference, the official OTLP encoder (`encode_spans` + `SerializeToString`) on the same spans.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from spanset import SpanSetSpec, build_spans, trace_parts

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.mapping import part as mapping_part
from maxim_otel_bridge.record import from_readable_span


def cpu(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def main() -> None:
    traces = int(sys.argv[1]) if len(sys.argv) > 1 else SpanSetSpec().traces
    spans = build_spans(SpanSetSpec(traces=traces))
    n = len(spans)
    records = []
    read_s = cpu(lambda: records.extend(from_readable_span(s) for s in spans))
    parts = trace_parts(records)

    # Trace by trace, as the exporter goes: map, check bounds, serialize, then drop the entities (the exporter
    # keeps only their bytes). Keeping every mapped entity alive instead would bill the mapping for garbage
    # collections of a heap the exporter never builds.
    # The check `map_trace_part` runs on each entity (a tree from before the entity-aware check has only the walk).
    check = getattr(mapping_part, "_is_bounded_entity", None) or mapping_part.is_bounded
    limit = 100_000
    clock = time.process_time
    map_s = bound_s = serialize_s = 0.0
    entity_count = 0
    for part in parts:
        started = clock()
        entities = map_trace_part(part).entities
        mapped_at = clock()
        for entity in entities:
            check(entity, limit)
        checked_at = clock()
        for entity in entities:
            orjson.dumps(entity)
        map_s += mapped_at - started
        bound_s += checked_at - mapped_at
        serialize_s += clock() - checked_at
        entity_count += len(entities)
    otlp_s = cpu(lambda: [encode_spans(spans[i : i + 512]).SerializeToString() for i in range(0, n, 512)])

    def us(seconds: float) -> str:
        return f"{seconds / n * 1e6:7.1f} us/span"

    print(f"{n} spans, {entity_count} entities")
    print(f"read SDK span (from_readable_span)      {us(read_s)}")
    print(f"map_trace_part                          {us(map_s)}")
    print(f"  of which the bounds check (alone)     {us(bound_s)}")
    print(f"serialize entities (orjson)             {us(serialize_s)}")
    print(f"official OTLP encode (reference)        {us(otlp_s)}")


if __name__ == "__main__":
    main()
