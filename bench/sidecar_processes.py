"""Each process of the sidecar under the throughput phase's load: its CPU while receiving and while draining,
and its memory.

    python bench/sidecar_processes.py [MAP_WORKERS ...]

For each `map_workers` value (default: 1 2), starts `maxim-otel-bridge serve` with its other defaults, feeds it
10 s of closed-loop OTLP/gRPC load as `run.py --quick` does, waits until every entity reached the counting sink,
and prints one JSON line: the sustained rate, the tree's peak RSS as `run.py` reports it, and for each process
of the sidecar's tree (the sidecar, its mapping workers) its command line, the cores it used during the load
and during the drain after it, its CPU per span, its resident memory now and its own peak (VmHWM). A process
near one core while the others are not is the one that sets the rate; the peaks say where the memory is. The
load generator's CPU per span and the counting sink's cores and CPU per span are reported beside them: on a
small machine they take their share of the same cores.
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
from sidecar_proc import SidecarProcess, read_status_kb
from sinks import SinkProcess
from spanset import SpanSetSpec, build_spans, encode_requests

_TICKS = os.sysconf("SC_CLK_TCK")


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:100]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _cpu_snapshot(sidecar: SidecarProcess) -> dict[int, float]:
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
            sink_before, before, started = _cpu_s(sink.pid), _cpu_snapshot(sidecar), time.monotonic()
            load = run_load(requests_path, sidecar.grpc_endpoint, "max", plan.throughput_s, 4)
            sink_loaded, loaded, load_end = _cpu_s(sink.pid), _cpu_snapshot(sidecar), time.monotonic()
            sink.wait_for_entities(load["spans"] // spans_per_trace * per_trace, plan.drain_timeout_s)
            sink_drained, drained, drain_end = _cpu_s(sink.pid), _cpu_snapshot(sidecar), time.monotonic()
            spans = load["spans"]
            processes = []
            for pid in drained:
                try:
                    memory = {
                        "rss_mb": read_status_kb(pid, "VmRSS") // 1024,
                        "peak_mb": read_status_kb(pid, "VmHWM") // 1024,
                    }
                    command = _command(pid)
                except (OSError, KeyError):
                    continue  # exited meanwhile
                processes.append(
                    {
                        "pid": pid,
                        "command": command,
                        "load_cores": round((loaded.get(pid, 0.0) - before.get(pid, 0.0)) / (load_end - started), 2),
                        "drain_cores": round((drained[pid] - loaded.get(pid, 0.0)) / (drain_end - load_end), 2),
                        "cpu_us_per_span": round((drained[pid] - before.get(pid, 0.0)) / spans * 1e6, 1),
                        **memory,
                    }
                )
            tree_peak_mb = round(sidecar.peak_rss_mb(), 1)
        finally:
            sidecar.stop()
    return {
        "map_workers": workers,
        "spans": spans,
        "sustained_spans_per_s": round(spans / (drain_end - started)),
        "load_s": round(load_end - started, 1),
        "drain_s": round(drain_end - load_end, 1),
        "tree_peak_mb": tree_peak_mb,
        "processes": processes,
        "load_client_cpu_us_per_span": round(load["cpu_s"] / spans * 1e6, 1),
        # The counting sink shares the machine too (a real Maxim would not): its cores while the sidecar
        # receives and while it drains, and its CPU per span.
        "sink": {
            "load_cores": round((sink_loaded - sink_before) / (load_end - started), 2),
            "drain_cores": round((sink_drained - sink_loaded) / (drain_end - load_end), 2),
            "cpu_us_per_span": round((sink_drained - sink_before) / spans * 1e6, 1),
        },
    }


def main(argv: list[str]) -> None:
    spec = SpanSetSpec()
    spans = build_spans(spec)
    _, per_trace = entities_per_trace(spans)
    with tempfile.TemporaryDirectory(prefix="maxim-processes-") as tmp:
        requests_path = Path(tmp) / "requests.pickle"
        requests_path.write_bytes(pickle.dumps(encode_requests(spans)))
        for workers in argv or ["1", "2"]:
            result = measure(Path(tmp) / f"w{workers}", requests_path, per_trace, spec.spans_per_trace, workers)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
