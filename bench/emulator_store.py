"""The local store's cost: batches written per second over HTTP, and the time to read back a large trace.

    .venv/bin/python bench/emulator_store.py [--traces 200] [--spans 50]

Each trace is one batch: the trace, `--spans` spans in a two-level tree, and one generation per span (all
valid by the published schema). Wall time on a shared machine: read the numbers as an order of magnitude.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx

from maxim_otel_bridge.emulator import EmulatorServer
from maxim_otel_bridge.schema import validate_batch


def trace_batch(n: int, spans: int) -> dict:
    trace_id = f"{n:032x}"
    at = "2026-01-01T00:00:00.000Z"
    logs: list[dict] = [{"id": trace_id, "type": "trace", "name": f"request {n}", "startTimestamp": at}]
    for s in range(spans):
        span_id = f"{n:08x}{s:08x}"
        parent = f"{n:08x}{0:08x}" if s else None
        span = {"id": span_id, "type": "span", "name": f"step {s}", "traceId": trace_id, "startTimestamp": at}
        if parent:
            span["spanId"] = parent
        logs.append(span)
        logs.append({
            "id": f"{span_id}g", "type": "generation", "traceId": trace_id, "spanId": span_id, "model": "gpt-4o",
            "provider": "openai", "messages": [{"role": "user", "content": "x" * 200}],
            "modelParameters": {"temperature": 0}, "startTimestamp": at, "endTimestamp": at,
        })
    return {"repoId": "bench", "logs": logs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--spans", type=int, default=50)
    args = parser.parse_args()
    batches = [trace_batch(n, args.spans) for n in range(args.traces)]
    assert not validate_batch(batches[0])
    bodies = [json.dumps(b).encode() for b in batches]
    entities = sum(len(b["logs"]) for b in batches)
    headers = {"x-maxim-api-key": "bench", "content-type": "application/json"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(Path(tmp) / "bench.db") as store,
        httpx.Client(base_url=store.url, headers=headers) as http,
    ):
        started = time.perf_counter()
        for body in bodies:
            assert http.post("/v1/logs/batch", content=body).status_code == 200
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        for n in range(min(20, args.traces)):
            response = http.get("/v1/log-repositories/logs/traces", params={"id": f"{n:032x}"})
            assert response.status_code == 200
        read_s = (time.perf_counter() - started) / min(20, args.traces)
    result = {
        "batches": args.traces,
        "entities": entities,
        "write_entities_per_s": round(entities / write_s),
        "write_batches_per_s": round(args.traces / write_s, 1),
        "read_trace_ms": round(read_s * 1000, 1),
        "entities_per_trace": 1 + 2 * args.spans,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
