"""Where the sidecar's resident memory is, process by process, under the throughput phase's load.

    python bench/sidecar_memory.py [MAP_WORKERS ...]

For each `map_workers` value (default: 0 1), starts `maxim-otel-bridge serve` with its other defaults, feeds it
10 s of closed-loop OTLP/gRPC load as `run.py --quick` does, waits until every entity reached the counting
sink, and prints one JSON line: each process of the sidecar's tree (the sidecar, its mapping workers) with its
command line, resident memory now and its own peak (VmHWM), and the tree's peak as `run.py` reports it.
"""

from __future__ import annotations

import json
import pickle
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Plan, entities_per_trace, run_load
from sidecar_proc import SidecarProcess, read_status_kb
from sinks import SinkProcess
from spanset import SpanSetSpec, build_spans, encode_requests


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:100]


def measure(workdir: Path, requests_path: Path, per_trace: int, spans_per_trace: int, workers: str) -> dict:
    plan = Plan.make(True)
    with SinkProcess("http") as sink:
        sidecar = SidecarProcess(workdir, sink.url, settings={"MAXIM_BRIDGE_MAP_WORKERS": workers})
        sidecar.start()
        try:
            load = run_load(requests_path, sidecar.grpc_endpoint, "max", plan.throughput_s, 4)
            sink.wait_for_entities(load["spans"] // spans_per_trace * per_trace, plan.drain_timeout_s)
            processes = []
            for pid in sidecar.tree():
                try:
                    processes.append(
                        {
                            "command": _command(pid),
                            "rss_mb": read_status_kb(pid, "VmRSS") // 1024,
                            "peak_mb": read_status_kb(pid, "VmHWM") // 1024,
                        }
                    )
                except (OSError, KeyError):
                    continue  # exited meanwhile
            return {"map_workers": workers, "processes": processes, "tree_peak_mb": round(sidecar.peak_rss_mb(), 1)}
        finally:
            sidecar.stop()


def main(argv: list[str]) -> None:
    spec = SpanSetSpec()
    spans = build_spans(spec)
    _, per_trace = entities_per_trace(spans)
    with tempfile.TemporaryDirectory(prefix="maxim-memory-") as tmp:
        requests_path = Path(tmp) / "requests.pickle"
        requests_path.write_bytes(pickle.dumps(encode_requests(spans)))
        for workers in argv or ["0", "1"]:
            result = measure(Path(tmp) / f"w{workers}", requests_path, per_trace, spec.spans_per_trace, workers)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
