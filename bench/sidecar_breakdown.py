"""Where the sidecar's CPU per span goes, stage by stage, on the benchmark's span set.

    python bench/sidecar_breakdown.py [passes]

Runs the sidecar's parts in this process, one stage at a time over the whole span set (OTLP requests as the
load generator sends them), and reports process CPU microseconds per span (every thread: the spool's writer
included): checking and splitting the requests as the receivers do, storing them in a durable spool
(`synchronous=full`), claiming the ready traces (reading rows and placements; the mapper is bypassed), mapping
them and serializing the entities (the mapping workers' work, `map_traces`; its first step, decoding the stored
spans into records, is also timed alone), sending the entities to a counting sink with `MaximClient`, and
deleting what was delivered (`Spool.complete`). CPU time is less sensitive to other load on the machine than
throughput; each stage's least CPU over a few passes (3 by default, each with a fresh spool) is reported.

The last lines add the stages up: the CPU one span costs the sidecar with nothing else running, and the rate
this machine's usable CPUs would reach if they did only that work, with no coordination cost at all. The
throughput phase of `run.py` cannot pass that bound; its load generator and counting sink share the same CPUs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sinks import SinkProcess
from spanset import SpanSetSpec, build_spans, encode_requests

from maxim_otel_bridge.client import ClientOptions, MaximClient
from maxim_otel_bridge.config import Destination, Secret
from maxim_otel_bridge.mapping import MappingOptions
from maxim_otel_bridge.sidecar.assembler import Assembler
from maxim_otel_bridge.sidecar.cpus import usable_cpus
from maxim_otel_bridge.sidecar.mapper import TraceInput, TraceOutput, map_traces
from maxim_otel_bridge.sidecar.otlp_decode import decode_bodies
from maxim_otel_bridge.sidecar.otlp_decode import split_trace_request_protobuf
from maxim_otel_bridge.sidecar.spool import Spool


class _Recording:
    """A mapper that maps nothing: it keeps the inputs, so claiming is measured without the mapping."""

    def __init__(self) -> None:
        self.inputs: list[TraceInput] = []

    def map(self, inputs: Sequence[TraceInput]) -> list[TraceOutput]:
        self.inputs.extend(inputs)
        return [TraceOutput(item.trace_id, [], {}) for item in inputs]

    def close(self) -> None:
        pass


def measure(requests: list[bytes], sink_url: str, workdir: Path) -> dict[str, float]:
    """One pass over `requests` through a fresh spool: CPU seconds per stage."""
    cpu: dict[str, float] = {}

    def timed(stage: str, started: float) -> None:
        cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - started

    started = time.process_time()
    decoded = [split_trace_request_protobuf(data).records for data in requests]
    timed("receive (OTLP protobuf checked and split)", started)

    spool = Spool(workdir / "spool", synchronous="full")
    started = time.process_time()
    for records in decoded:
        spool.accept_spans(records)
    timed("spool intake (accept_spans, durable)", started)

    recorder = _Recording()
    assembler = Assembler(spool, wait_s=0.0, max_spans=1000, mapper=recorder)
    client = MaximClient(Destination(base_url=sink_url, api_key=Secret("bench"), repo_id="bench"), ClientOptions())
    options = MappingOptions()
    while True:
        started = time.process_time()
        batch = assembler.claim()
        timed("claim (ready traces, rows, placements)", started)
        if not batch:
            break
        inputs, recorder.inputs = recorder.inputs, []
        started = time.process_time()
        outputs = map_traces(inputs, options)
        timed(MAPPING, started)
        started = time.process_time()
        for item in inputs:
            decode_bodies(item.blobs)
        timed(DECODING, started)
        started = time.process_time()
        client.send_encoded([entity for out in outputs for entity in out.entities])
        timed("send (MaximClient to a counting sink)", started)
        started = time.process_time()
        spool.complete({trace.trace_id: (trace.seqs, out.placements) for trace, out in zip(batch, outputs)})
        timed("complete (delete delivered, keep placements)", started)
        assembler.release([trace.trace_id for trace in batch])
    client.close()
    spool.close()
    return cpu


MAPPING = "mapping + entity JSON (map_traces, the workers' work)"
DECODING = "  of which decoding the stored spans (timed alone)"


def main() -> None:
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    requests = [r.data for r in encode_requests(build_spans(SpanSetSpec()))]
    n = sum(len(split_trace_request_protobuf(data).records) for data in requests)
    best: dict[str, float] = {}
    with SinkProcess("http") as sink:
        for _ in range(passes):
            with tempfile.TemporaryDirectory(prefix="maxim-breakdown-") as tmp:
                for stage, seconds in measure(requests, sink.url, Path(tmp)).items():
                    best[stage] = min(seconds, best.get(stage, seconds))
    print(f"{n} spans in {len(requests)} OTLP requests; the least CPU of {passes} passes per stage")
    for stage, seconds in best.items():
        print(f"{stage:<56} {seconds / n * 1e6:7.1f} us/span")
    own = sum(seconds for stage, seconds in best.items() if stage not in (MAPPING, DECODING))
    total = own + best[MAPPING]
    cpus = usable_cpus()
    print(f"{'sidecar without the mapping':<56} {own / n * 1e6:7.1f} us/span")
    print(f"{'all stages: what a span costs the sidecar':<56} {total / n * 1e6:7.1f} us/span")
    print(f"{f'bound: {cpus} CPUs doing only these stages':<56} {cpus * n / total:7.0f} spans/s")


if __name__ == "__main__":
    main()
