"""Where `MaximSpanExporter`'s CPU goes in a real export run, stage by stage, on the benchmark's span set.

    python bench/exporter_stages.py [traces]

Exports the span set to a counting sink exactly as `exporter_cost.py` does (512-span batches, then
`force_flush`), with each stage of the exporter's threads wrapped to add up the CPU time of the thread running
it (`time.thread_time`): the caller's `export()` (reading the SDK spans, buffering them, and any mapping it does
itself when the buffer is full), the pipeline's mapping of trace parts (`Pipeline._map`), staging (mapping plus
serializing the entities, `Pipeline._stage`), and sending (`MaximClient.send_encoded`). The process's CPU over
the whole run is printed with them; what the stages do not cover is the pipeline's own bookkeeping, thread
switches and the garbage collector. Unlike `exporter_breakdown.py`, which times each stage alone over the span
set, this shows how the stages share a run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from exporter_cost import WARMUP_TRACES, export_all, make_exporter
from sinks import SinkProcess
from spanset import SpanSetSpec, build_spans

from maxim_otel_bridge.client import MaximClient
from maxim_otel_bridge.exporter import MaximSpanExporter
from maxim_otel_bridge.pipeline import Pipeline

STAGES: tuple[tuple[type, str, str], ...] = (
    (MaximSpanExporter, "export", "export() in the caller's thread"),
    (Pipeline, "_stage", "staging: mapping and serializing"),
    (Pipeline, "_map", "  of which mapping (Pipeline._map)"),
    (MaximClient, "send_encoded", "sending (MaximClient.send_encoded)"),
)


class StageClock:
    """Adds up the thread CPU time spent inside wrapped methods, per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {label: 0.0 for _, _, label in STAGES}
        self._lock = threading.Lock()
        self._restore: list[tuple[type, str, Callable[..., Any]]] = []

    def wrap(self, owner: type, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with self._lock:
                    self.seconds[label] += spent

        self._restore.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self) -> StageClock:  # noqa: PYI034 - not subclassed
        for owner, name, label in STAGES:
            self.wrap(owner, name, label)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)


def measure(traces: int, sink_url: str) -> tuple[int, float, dict[str, float]]:
    """(spans, process CPU seconds, CPU seconds per stage) of one export run to the sink at `sink_url`."""
    spans = build_spans(SpanSetSpec(traces=traces))
    warmup = build_spans(SpanSetSpec(traces=WARMUP_TRACES, first_trace=10_000_000))
    exporter = make_exporter("maxim", sink_url)
    try:
        export_all(exporter, warmup)
        with StageClock() as clock:
            started = time.process_time()
            export_all(exporter, spans)
            cpu = time.process_time() - started
    finally:
        exporter.shutdown()
    return len(spans), cpu, clock.seconds


def main() -> None:
    traces = int(sys.argv[1]) if len(sys.argv) > 1 else SpanSetSpec().traces
    with SinkProcess("http") as sink:
        n, cpu, stages = measure(traces, sink.url)
    print(f"{n} spans; process CPU {cpu / n * 1e6:.1f} us/span")
    for label, seconds in stages.items():
        print(f"{label:<40} {seconds / n * 1e6:7.1f} us/span")


if __name__ == "__main__":
    main()
