"""Which process of the sidecar sets its sustained rate: each one's CPU while it receives and while it drains.

    python bench/sidecar_cpu.py [MAP_WORKERS ...]

For each `map_workers` value (default: 1 2), starts `maxim-otel-bridge serve` with its other defaults, feeds it
10 s of closed-loop OTLP/gRPC load as `run.py --quick` does, waits until every entity reached the counting sink,
and prints one JSON line: the sustained rate, and for each process of the sidecar's tree (the sidecar, its
mapping workers) the cores it used during the load and during the drain after it, and its CPU per span. A
process near one core while the others are not is the one that sets the rate.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Plan, entities_per_trace, run_load
from sidecar_proc import SidecarProcess
from sinks import SinkProcess
from spanset import SpanSetSpec, build_spans, encode_requests

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _snapshot(sidecar: SidecarProcess) -> dict[int, float]:
    cpu: dict[int, float] = {}
    for pid in sidecar.tree():
        try:
            cpu[pid] = _cpu_s(pid)
        except OSError:
            continue  # exited meanwhile
    return cpu


def measure(workdir: Path, requests_path: Path, per_trace: int, spans_per_trace: int, workers: str) -> dict:
    plan = Plan.make(True)
    with SinkProcess("http") as sink:
        sidecar = SidecarProcess(workdir, sink.url, settings={"MAXIM_BRIDGE_MAP_WORKERS": workers})
        sidecar.start()
        try:
            before, started = _snapshot(sidecar), time.monotonic()
            load = run_load(requests_path, sidecar.grpc_endpoint, "max", plan.throughput_s, 4)
            loaded, load_end = _snapshot(sidecar), time.monotonic()
            sink.wait_for_entities(load["spans"] // spans_per_trace * per_trace, plan.drain_timeout_s)
            drained, drain_end = _snapshot(sidecar), time.monotonic()
        finally:
            sidecar.stop()
    spans = load["spans"]
    processes = [
        {
            "pid": pid,
            "role": "sidecar" if pid == sidecar.pid else "mapping worker",
            "load_cores": round((loaded.get(pid, 0.0) - before.get(pid, 0.0)) / (load_end - started), 2),
            "drain_cores": round((drained[pid] - loaded.get(pid, 0.0)) / (drain_end - load_end), 2),
            "cpu_us_per_span": round((drained[pid] - before.get(pid, 0.0)) / spans * 1e6, 1),
        }
        for pid in drained
    ]
    return {
        "map_workers": workers,
        "spans": spans,
        "sustained_spans_per_s": round(spans / (drain_end - started)),
        "load_s": round(load_end - started, 1),
        "drain_s": round(drain_end - load_end, 1),
        "processes": processes,
        "load_client_cpu_us_per_span": round(load["cpu_s"] / spans * 1e6, 1),
    }


def main(argv: list[str]) -> None:
    spec = SpanSetSpec()
    spans = build_spans(spec)
    _, per_trace = entities_per_trace(spans)
    with tempfile.TemporaryDirectory(prefix="maxim-cpu-") as tmp:
        requests_path = Path(tmp) / "requests.pickle"
        requests_path.write_bytes(pickle.dumps(encode_requests(spans)))
        for workers in argv or ["1", "2"]:
            result = measure(Path(tmp) / f"w{workers}", requests_path, per_trace, spec.spans_per_trace, workers)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
