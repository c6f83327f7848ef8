"""maxim-otel-bridge benchmarks: what observability costs the application, and whether the sidecar keeps up.

    python bench/run.py            # the full run (a few minutes), 60 s destination outage
    python bench/run.py --quick    # under two minutes: shorter phases, 15 s outage (said so in the output)
    python bench/run.py --profile  # also record the sidecar under py-spy and print its hot spots
    python bench/run.py --exporter-only  # only the exporters' CPU per span, printed as JSON
                                   # (--profile-raw FILE keeps the raw profile for bench/hotspots.py)

Everything is measured side by side in one run, on one span set (`spanset.py`: 1,000 agent traces of 10
spans, openai-v2 attributes), and reported as ratios or throughputs:

1. Exporter cost: process CPU per span of `MaximSpanExporter` (mapping, serialization, HTTP to a counting
   sink) vs the official `OTLPSpanExporter` over gRPC to a counting sink; each in a fresh process,
   alternating, median of the rounds. The official OTLP/HTTP exporter is shown for reference.
2. Sidecar throughput: `maxim-otel-bridge serve` (durable spool, defaults) fed pre-encoded OTLP/gRPC
   requests by a separate process as fast as it accepts them; sustained spans/s = spans sent / time until
   the last of their entities reached the counting sink. Against the decode ceiling (`ceiling.py`).
3. Memory: the sidecar's peak RSS (VmHWM) during (2), and during a destination outage (the sink answers 503)
   at the load (2) sustained, in a fresh sidecar; then the recovery: every accepted span must arrive.
4. Latency: at a moderate steady load (a quarter of (2), at most 5,000 spans/s), from a root span being sent
   to the last entity of its trace reaching the sink: p50 and p99.

Writes `bench/results.json` and prints a table with each target and pass/fail. It measures the package the
interpreter imports: `.venv/bin/python` the Python source, `.venv-compiled/bin/python` (made by
`MAXIM_BRIDGE_COMPILE=1 ./scripts/test.sh`) the compiled build the container image ships (`mapping_build`).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ceiling import decode_ceiling
from hotspots import read_profile, summarize
from sidecar_proc import SidecarProcess
from sinks import SinkProcess
from spanset import SpanSetSpec, build_spans, encode_requests, span_counts, trace_parts

from maxim_otel_bridge.mapping import COMPILED, map_trace_part
from maxim_otel_bridge.record import from_readable_span
from maxim_otel_bridge.schema import validate_batch
from maxim_otel_bridge.sidecar.settings import SETTINGS

RESULTS_PATH = HERE / "results.json"
LATENCY_MAX_RATE = 5000.0
LATENCY_FRACTION = 0.25


@dataclass(frozen=True, slots=True)
class Plan:
    quick: bool
    ceiling_s: float
    exporter_rounds: int
    throughput_s: float
    outage_s: float
    latency_s: float
    drain_timeout_s: float

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 2.0, 3, 10.0, 15.0, 8.0, 90.0)
        return cls(False, 5.0, 5, 30.0, 60.0, 30.0, 300.0)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def default_setting(name: str) -> Any:
    return next(s.default for s in SETTINGS if s.name == name)


def entities_per_trace(spans: list) -> tuple[int, int]:
    """Entities the mapping makes of the span set (total, and per trace), checked against Maxim's schema."""
    counts = set()
    total = 0
    for index, records in enumerate(trace_parts(from_readable_span(span) for span in spans)):
        entities = map_trace_part(records).entities
        if index < 5:
            problems = validate_batch({"repoId": "bench-repo", "logs": entities})
            if problems:
                raise SystemExit(f"the span set maps to entities Maxim would refuse: {problems[:3]}")
        counts.add(len(entities))
        total += len(entities)
    if len(counts) != 1:
        raise SystemExit(f"traces map to different entity counts {sorted(counts)}: completion cannot be counted")
    return total, counts.pop()


# -- 1. exporter cost ---------------------------------------------------------------------------------------


def measure_exporters(plan: Plan, traces: int) -> dict[str, Any]:
    runs: dict[str, list[dict]] = {"otlp-grpc": [], "maxim": [], "otlp-http": []}
    with SinkProcess("http") as http_sink, SinkProcess("grpc") as grpc_sink:
        targets = {"otlp-grpc": grpc_sink.endpoint, "maxim": http_sink.url, "otlp-http": http_sink.url}
        for round_no in range(plan.exporter_rounds):
            for kind, results in runs.items():
                say(f"exporter cost: {kind} (round {round_no + 1}/{plan.exporter_rounds})")
                out = subprocess.run(
                    [sys.executable, str(HERE / "exporter_cost.py"), kind, targets[kind], str(traces)],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if out.returncode != 0:
                    raise SystemExit(f"exporter_cost.py {kind} failed:\n{out.stderr[-3000:]}")
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    per_span = {kind: statistics.median(r["cpu_s"] / r["spans"] for r in rs) for kind, rs in runs.items()}
    return {
        "cpu_us_per_span": {kind: value * 1e6 for kind, value in per_span.items()},
        "maxim_entities_delivered": runs["maxim"][-1]["delivered"],
        "rounds": plan.exporter_rounds,
        "exporter_cpu_ratio": per_span["maxim"] / per_span["otlp-grpc"],
        "exporter_cpu_ratio_vs_otlp_http": per_span["maxim"] / per_span["otlp-http"],
    }


# -- 2-4. sidecar ---------------------------------------------------------------------------------------------


def run_load(requests_path: Path, endpoint: str, mode: str, seconds: float, arg: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "load_client.py"), str(requests_path), endpoint, mode, str(seconds), str(arg)],
        capture_output=True,
        text=True,
        timeout=seconds + 600,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"load_client.py failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout)
    if result["failures"]:
        raise SystemExit(f"the sidecar failed {result['failures']} requests: {result['errors']}")
    return result


def measure_throughput(
    plan: Plan,
    workdir: Path,
    requests_path: Path,
    per_trace: int,
    spans_per_trace: int,
    profile: Path | None,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    with SinkProcess("http") as sink:
        sidecar = SidecarProcess(
            workdir / "throughput",
            sink.url,
            settings=settings,
            profile_path=profile,
            extra_profile_args=("--nonblocking", "--subprocesses"),
        )
        sidecar.start()
        try:
            cpu_before = sidecar.cpu_s()
            say(f"sidecar throughput: closed-loop OTLP/gRPC load for {plan.throughput_s:.0f}s")
            load = run_load(requests_path, sidecar.grpc_endpoint, "max", plan.throughput_s, 4)
            expected = load["spans"] // spans_per_trace * per_trace
            say(f"sidecar throughput: {load['spans']} spans accepted; waiting for {expected} entities at the sink")
            stats = sink.wait_for_entities(expected, plan.drain_timeout_s)
            cpu = sidecar.cpu_s() - cpu_before
            peak = sidecar.peak_rss_mb()
        finally:
            sidecar.stop()
    if stats["entities"] < expected:
        raise SystemExit(
            f"only {stats['entities']} of {expected} entities reached the sink within {plan.drain_timeout_s}s:\n"
            f"{sidecar.log_tail()}"
        )
    elapsed = stats["last_at"] - load["started"]
    return {
        "spans": load["spans"],
        "seconds": elapsed,
        "sidecar_spans_per_s": load["spans"] / elapsed,
        "accept_spans_per_s": load["spans"] / (load["finished"] - load["started"]),
        "sidecar_cpu_us_per_span": cpu / load["spans"] * 1e6,
        "sidecar_peak_rss_mb": peak,
        "load_client_cpu_s": load["cpu_s"],
        "entities": stats["entities"],
        "refused_requests": load["refused"],
    }


def measure_outage(
    plan: Plan, workdir: Path, requests_path: Path, rate: float, per_trace: int, spans_per_trace: int
) -> dict[str, Any]:
    with SinkProcess("http") as sink:
        sink.set_outage(True)
        with SidecarProcess(workdir / "outage", sink.url) as sidecar:
            say(f"outage: destination down for {plan.outage_s:.0f}s at {rate:,.0f} spans/s offered")
            load = run_load(requests_path, sidecar.grpc_endpoint, "rate", plan.outage_s, rate)
            peak_during = sidecar.peak_rss_mb()
            refused_by_sink = sink.stats()["refused"]
            sink.set_outage(False)
            recovered_at = time.monotonic()
            expected = load["spans"] // spans_per_trace * per_trace
            say(f"outage over: {load['spans']} spans were accepted; waiting for {expected} entities")
            stats = sink.wait_for_entities(expected, plan.drain_timeout_s)
            peak_after = sidecar.peak_rss_mb()
    return {
        "outage_s": plan.outage_s,
        "offered_spans_per_s": rate,
        "accepted_spans": load["spans"],
        "refused_requests": load["refused"],
        "sink_refusals": refused_by_sink,
        "outage_peak_rss_mb": peak_during,
        "recovery_peak_rss_mb": peak_after,
        "recovery_s": (stats["last_at"] - recovered_at) if stats["last_at"] else None,
        "entities_expected": expected,
        "entities_delivered": stats["entities"],
        "all_delivered": stats["entities"] >= expected,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure_latency(
    plan: Plan, workdir: Path, requests_path: Path, rate: float, per_trace: int, spans_per_trace: int
) -> dict[str, Any]:
    with SinkProcess("http") as sink, SidecarProcess(workdir / "latency", sink.url) as sidecar:
        say(f"latency: {rate:,.0f} spans/s steady for {plan.latency_s:.0f}s")
        load = run_load(requests_path, sidecar.grpc_endpoint, "rate", plan.latency_s, rate)
        expected = load["spans"] // spans_per_trace * per_trace
        sink.wait_for_entities(expected, plan.drain_timeout_s)
        arrivals = sink.arrivals()
    roots: dict[str, float] = load["roots"]
    latencies = [arrivals[t] - sent for t, sent in roots.items() if t in arrivals]
    if not latencies:
        raise SystemExit("no trace reached the sink in the latency phase")
    return {
        "offered_spans_per_s": rate,
        "traces": len(roots),
        "traces_arrived": len(latencies),
        "refused_requests": load["refused"],
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p99_s": percentile(latencies, 0.99),
        "latency_max_s": max(latencies),
    }


def profile_summary(path: Path) -> dict[str, Any]:
    """The sidecar profile's top functions: by self time, and the project's own by inclusive time."""
    samples, spots = summarize(read_profile(path), top=100_000)

    def rows(chosen: list) -> list[list]:
        return [[h.function, round(h.inclusive, 4), round(h.self_share, 4)] for h in chosen]

    by_self = sorted(spots, key=lambda h: -h.self_share)[:15]
    project = [h for h in spots if "maxim_otel_bridge/" in h.function][:20]
    return {"samples": samples, "by_self": rows(by_self), "project": rows(project)}


# -- report -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float
    goal: str
    passed: bool


def targets(results: dict[str, Any]) -> list[Target]:
    wait = results["assembly_wait_s"]
    checks: list[tuple[str, str, str, Callable[[float], bool]]] = [
        ("exporter_cpu_ratio", "exporter CPU/span vs OTLP gRPC", "<= 0.5", lambda v: v <= 0.5),
        ("sidecar_spans_per_s", "sidecar sustained spans/s", ">= 20,000", lambda v: v >= 20_000),
        ("sidecar_ceiling_ratio", "sidecar vs decode ceiling", ">= 0.5", lambda v: v >= 0.5),
        ("sidecar_peak_rss_mb", "sidecar peak RSS, load (MB)", "<= 200", lambda v: v <= 200),
        ("outage_peak_rss_mb", "sidecar peak RSS, outage (MB)", "<= 200", lambda v: v <= 200),
        ("latency_p99_s", "latency p99 (s)", f"<= {wait + 1:g}", lambda v: v <= wait + 1),
    ]
    return [Target(label, results[key], goal, check(results[key])) for key, label, goal, check in checks]


def table(results: dict[str, Any]) -> str:
    rows = [("measure", "value", "target", "")]
    for target in targets(results):
        rows.append(
            (
                target.name,
                f"{target.value:,.3g}" if target.value < 100 else f"{target.value:,.0f}",
                target.goal,
                "PASS" if target.passed else "FAIL",
            )
        )
    exporter = results["exporter"]
    throughput = results["throughput"]
    outage = results["outage"]
    info = [
        ("mapping build", results["mapping_build"]),
        ("exporter CPU us/span: maxim", f"{exporter['cpu_us_per_span']['maxim']:.1f}"),
        ("exporter CPU us/span: OTLP gRPC", f"{exporter['cpu_us_per_span']['otlp-grpc']:.1f}"),
        ("exporter CPU us/span: OTLP HTTP", f"{exporter['cpu_us_per_span']['otlp-http']:.1f}"),
        ("decode ceiling spans/s (1 core)", f"{results['decode_ceiling_spans_per_s']:,.0f}"),
        ("sidecar accept spans/s", f"{throughput['accept_spans_per_s']:,.0f}"),
        ("sidecar CPU us/span", f"{throughput['sidecar_cpu_us_per_span']:.0f}"),
        ("latency p50 (s)", f"{results['latency_p50_s']:.3f}"),
        ("outage", f"{outage['outage_s']:g}s" + (" (shortened: --quick)" if results["quick"] else "")),
        ("outage: accepted / refused requests", f"{outage['accepted_spans']:,} spans / {outage['refused_requests']}"),
        ("outage: all accepted spans delivered", f"{outage['all_delivered']} (after {outage['recovery_s'] or 0:.1f}s)"),
    ]
    width = max(len(r[0]) for r in rows + info)
    lines = [f"{r[0]:<{width}}  {r[1]:>12}  {r[2]:>10}  {r[3]}" for r in rows]
    lines.append("")
    lines += [f"{name:<{width}}  {value:>12}" for name, value in info]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maxim-otel-bridge benchmarks")
    parser.add_argument("--quick", action="store_true", help="a run under two minutes (15 s outage)")
    parser.add_argument("--profile", action="store_true", help="record the sidecar under py-spy (throughput phase)")
    parser.add_argument(
        "--profile-raw",
        type=Path,
        default=None,
        help="with --profile: keep py-spy's raw profile here (bench/hotspots.py reads it)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument(
        "--exporter-only",
        action="store_true",
        help="measure only the exporters' CPU per span (5 rounds, 3 with --quick) and print it as JSON",
    )
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick)
    started = time.monotonic()

    if args.exporter_only:
        print(json.dumps(measure_exporters(plan, SpanSetSpec().traces), indent=2))
        return 0

    spec = SpanSetSpec()
    say(f"building the span set: {spec.traces} traces x {spec.spans_per_trace} spans")
    spans = build_spans(spec)
    requests = encode_requests(spans)
    total_entities, per_trace = entities_per_trace(spans)
    assembly_wait = float(os.environ.get("MAXIM_BRIDGE_ASSEMBLY_WAIT") or default_setting("assembly_wait"))

    with tempfile.TemporaryDirectory(prefix="maxim-bench-") as tmp:
        workdir = Path(tmp)
        requests_path = workdir / "requests.pickle"
        with open(requests_path, "wb") as handle:
            pickle.dump(requests, handle)

        say(f"decode ceiling: parsing the requests for {plan.ceiling_s:g}s of CPU")
        ceiling = decode_ceiling([r.data for r in requests], plan.ceiling_s)
        exporter = measure_exporters(plan, spec.traces)
        profile_path = workdir / "sidecar-profile.txt" if args.profile else None
        throughput = measure_throughput(plan, workdir, requests_path, per_trace, spec.spans_per_trace, profile_path)
        rate = throughput["sidecar_spans_per_s"]
        outage = measure_outage(plan, workdir, requests_path, rate, per_trace, spec.spans_per_trace)
        latency_rate = min(LATENCY_MAX_RATE, LATENCY_FRACTION * rate)
        latency = measure_latency(plan, workdir, requests_path, latency_rate, per_trace, spec.spans_per_trace)
        hot = None
        if profile_path is not None and profile_path.exists():
            hot = profile_summary(profile_path)
            if args.profile_raw is not None:
                args.profile_raw.write_bytes(profile_path.read_bytes())
                hot["raw_profile"] = str(args.profile_raw)

    results: dict[str, Any] = {
        "quick": plan.quick,
        "exporter_cpu_ratio": exporter["exporter_cpu_ratio"],
        "sidecar_spans_per_s": throughput["sidecar_spans_per_s"],
        "sidecar_ceiling_ratio": throughput["sidecar_spans_per_s"] / ceiling.spans_per_s,
        "sidecar_peak_rss_mb": throughput["sidecar_peak_rss_mb"],
        "outage_peak_rss_mb": outage["outage_peak_rss_mb"],
        "latency_p50_s": latency["latency_p50_s"],
        "latency_p99_s": latency["latency_p99_s"],
        "assembly_wait_s": assembly_wait,
        "decode_ceiling_spans_per_s": ceiling.spans_per_s,
        "span_set": {
            "traces": spec.traces,
            "spans": len(spans),
            "by_operation": span_counts(spans),
            "otlp_requests": len(requests),
            "otlp_bytes_per_span": sum(len(r.data) for r in requests) / len(spans),
            "entities": total_entities,
            "entities_per_trace": per_trace,
        },
        "exporter": exporter,
        "throughput": throughput,
        "outage": outage,
        "latency": latency,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        # The build measured: the interpreter's installed package, compiled (setup.py) or Python source.
        "mapping_build": "compiled" if COMPILED else "python",
        "seconds": time.monotonic() - started,
    }
    if hot is not None:
        results["sidecar_profile"] = hot
    results["targets"] = [
        {"name": t.name, "value": t.value, "goal": t.goal, "passed": t.passed} for t in targets(results)
    ]
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if hot is not None:
        print(f"\nsidecar hot spots, {hot['samples']} samples over its process tree (inclusive %, self %)")
        for title, key in (("by self time", "by_self"), ("project functions, by inclusive time", "project")):
            print(f"  {title}:")
            for function, inclusive, own in hot[key]:
                print(f"    {inclusive * 100:5.1f} {own * 100:5.1f}  {function}")
    print(f"\nwrote {args.output} ({results['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
