"""CPU cost of one span exporter on the span set, measured in a fresh process (the application's process).

    python bench/exporter_cost.py maxim <sink url> [traces]
    python bench/exporter_cost.py otlp-grpc <sink host:port> [traces]
    python bench/exporter_cost.py otlp-http <sink url> [traces]

Calls `export()` with 512-span batches, as a `BatchSpanProcessor` would, then `force_flush()`, and measures
the process's CPU time (every thread: the Maxim exporter maps and sends on its own thread, gRPC has its
own threads) from the first export until everything reached the sink. Building the spans and constructing
the exporter are not counted; a small warm-up set with other trace ids is exported first. Prints one JSON
line: exporter, spans, cpu_s, wall_s, delivered.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from spanset import SpanSetSpec, build_spans

BATCH = 512  # the BatchSpanProcessor's default max export batch size
WARMUP_TRACES = 50


def make_exporter(kind: str, target: str) -> SpanExporter:
    if kind == "maxim":
        from maxim_otel_bridge.exporter import MaximSpanExporter

        return MaximSpanExporter(
            api_key="bench-key", repo_id="bench-repo", base_url=target, dead_letter_path="none", environ={}
        )
    if kind == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter(endpoint=target, insecure=True)
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=target.rstrip("/") + "/v1/traces")
    raise SystemExit(f"unknown exporter {kind!r}")


def export_all(exporter: SpanExporter, spans: list) -> None:
    for start in range(0, len(spans), BATCH):
        result = exporter.export(spans[start : start + BATCH])
        if result is not SpanExportResult.SUCCESS:
            raise SystemExit(f"{type(exporter).__name__}.export returned {result}")
    if not exporter.force_flush(60_000):
        raise SystemExit(f"{type(exporter).__name__}.force_flush did not deliver everything")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    kind, target = sys.argv[1], sys.argv[2]
    traces = int(sys.argv[3]) if len(sys.argv) > 3 else SpanSetSpec().traces
    spans = build_spans(SpanSetSpec(traces=traces))
    warmup = build_spans(SpanSetSpec(traces=WARMUP_TRACES, first_trace=10_000_000))
    exporter = make_exporter(kind, target)
    export_all(exporter, warmup)
    delivered_before = getattr(getattr(exporter, "stats", None), "entities_delivered", None)

    wall = time.perf_counter()
    cpu = time.process_time()
    export_all(exporter, spans)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall

    delivered = None
    if delivered_before is not None:
        delivered = exporter.stats.entities_delivered - delivered_before
    exporter.shutdown()
    print(json.dumps({"exporter": kind, "spans": len(spans), "cpu_s": cpu, "wall_s": wall, "delivered": delivered}))


if __name__ == "__main__":
    main()
