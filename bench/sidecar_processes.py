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

`sidecar_threads` splits the sidecar process the same way, thread by thread: the receivers' pool, the spool's
writer, each shipping thread, gRPC's own threads. Python's thread names come from `py-spy dump` when py-spy is
on the PATH or beside the interpreter (the kernel calls every Python thread "python"); a pool's threads are
added up under its name.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
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
    return _cpu_s_of(Path(f"/proc/{pid}/stat"))


def _cpu_s_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of `pid`, by thread id."""
    cpu: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu[int(task.name)] = _cpu_s_of(task / "stat")
        except OSError:
            continue  # ended meanwhile
    return cpu


def _thread_names(pid: int) -> dict[int, str]:
    """Thread names by thread id: Python's names from `py-spy dump` where it is installed (every Python thread
    is "python" to the kernel), the kernel's for the rest (gRPC's own threads name themselves)."""
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[int(task.name)] = (task / "comm").read_text().strip()
        except OSError:
            continue  # ended meanwhile
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return names  # no py-spy: kernel names only
    for match in re.finditer(r'^Thread (\d+) \([a-z]+\): "(.*)"$', out.stdout, re.MULTILINE):
        names[int(match.group(1))] = match.group(2)
    return names


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
            threads_before = _thread_cpu_s(sidecar.pid)
            load = run_load(requests_path, sidecar.grpc_endpoint, "max", plan.throughput_s, 4)
            sink_loaded, loaded, load_end = _cpu_s(sink.pid), _cpu_snapshot(sidecar), time.monotonic()
            threads_loaded = _thread_cpu_s(sidecar.pid)
            sink.wait_for_entities(load["spans"] // spans_per_trace * per_trace, plan.drain_timeout_s)
            sink_drained, drained, drain_end = _cpu_s(sink.pid), _cpu_snapshot(sidecar), time.monotonic()
            threads_drained = _thread_cpu_s(sidecar.pid)
            names = _thread_names(sidecar.pid)
            spans = load["spans"]
            phases_s = (load_end - started, drain_end - load_end)
            threads = _threads_by_name(names, (threads_before, threads_loaded, threads_drained), phases_s, spans)
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
        # The sidecar process's threads, by name (a pool's threads added up): where its CPU goes.
        "sidecar_threads": threads,
        "load_client_cpu_us_per_span": round(load["cpu_s"] / spans * 1e6, 1),
        # The counting sink shares the machine too (a real Maxim would not): its cores while the sidecar
        # receives and while it drains, and its CPU per span.
        "sink": {
            "load_cores": round((sink_loaded - sink_before) / (load_end - started), 2),
            "drain_cores": round((sink_drained - sink_loaded) / (drain_end - load_end), 2),
            "cpu_us_per_span": round((sink_drained - sink_before) / spans * 1e6, 1),
        },
    }


def _threads_by_name(
    names: dict[int, str],
    snapshots: tuple[dict[int, float], dict[int, float], dict[int, float]],
    phases_s: tuple[float, float],
    spans: int,
) -> dict[str, dict[str, float]]:
    before, loaded, drained = snapshots
    totals: dict[str, list[float]] = {}
    for tid, end in drained.items():
        # A pool's threads differ only by their number: "ThreadPoolExecutor-0_3" counts as "ThreadPoolExecutor-0".
        name = re.sub(r"_\d+$", "", names.get(tid, "ended"))
        load = loaded.get(tid, 0.0) - before.get(tid, 0.0)
        drain = end - loaded.get(tid, 0.0)
        total = totals.setdefault(name, [0.0, 0.0])
        total[0] += load
        total[1] += drain
    return {
        name: {
            "load_cores": round(load / phases_s[0], 2),
            "drain_cores": round(drain / phases_s[1], 2),
            "cpu_us_per_span": round((load + drain) / spans * 1e6, 1),
        }
        for name, (load, drain) in sorted(totals.items(), key=lambda item: -(item[1][0] + item[1][1]))
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
