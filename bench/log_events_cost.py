"""CPU cost of GenAI content that arrives as log events, against the same content on span attributes.

    python bench/log_events_cost.py [traces] [rounds]

Captures one real agent turn of the official openai-v2 instrumentation (three chat calls under an agent span,
against the tests' local OpenAI server) in `SPAN_ONLY` mode and in `EVENT_ONLY` mode, copies it into
`traces` traces (new trace ids), and times, per mode, what the in-process pipeline does between `export()`
and the HTTP client: reading the SDK objects into records and events, the trace buffer, joining the events
to their spans, and mapping. Prints one JSON line per mode (the best of `rounds`): mode, traces,
generations, cpu_s, us_per_generation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def capture(mode: str) -> tuple[list[Any], list[Any]]:
    """One agent turn's ReadableSpans and ReadableLogRecords, from the real instrumentation."""
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = mode
    import openai
    from fakes.openai_server import OpenAIServer
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    messages: list[dict] = [
        {"role": "system", "content": "Answer with the weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    try:
        with OpenAIServer() as server, tracer_provider.get_tracer("bench").start_as_current_span("invoke_agent"):
            client = openai.OpenAI(api_key="sk-bench", base_url=server.base_url, max_retries=0)
            first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[tool])
            call = first.choices[0].message.tool_calls[0]
            messages += [
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"},
            ]
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[tool])
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    finally:
        instrumentor.uninstrument()
    return list(spans.get_finished_spans()), list(logs.get_finished_logs())


def run(spans: list[Any], logs: list[Any], traces: int) -> tuple[float, int]:
    """CPU seconds to read, buffer, join and map `traces` copies of one turn; and the generations made."""
    from maxim_otel_bridge.log_events import attach_log_events, from_readable_log_record
    from maxim_otel_bridge.mapping import MappingOptions, map_trace_part
    from maxim_otel_bridge.record import from_readable_span
    from maxim_otel_bridge.trace_buffer import BufferOptions, TraceBuffer

    buffer = TraceBuffer(BufferOptions(max_spans=10_000_000, max_shipped_records=10_000_000))
    options = MappingOptions()
    generations = 0
    started = time.process_time()
    for n in range(traces):
        trace_id = format(n + 1, "032x")
        records = [dataclasses.replace(from_readable_span(s), trace_id=trace_id) for s in spans]
        events = []
        for data in logs:
            event = from_readable_log_record(data)
            if event is not None:
                events.append(dataclasses.replace(event, trace_id=trace_id))
        buffer.add_events(events)
        buffer.add([(r, r.parent_span_id is None) for r in records])
        for part in buffer.take_ready():
            joined, _ = attach_log_events(part.records, part.events)
            mapped = map_trace_part(joined, options, buffer.known(part.trace_id))
            buffer.remember(part.trace_id, mapped.placements, joined)
            generations += sum(1 for e in mapped.entities if e["type"] == "generation")
    return time.process_time() - started, generations


def main() -> None:
    traces = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for mode in ("SPAN_ONLY", "EVENT_ONLY"):
        spans, logs = capture(mode)
        best, generations = min(run(spans, logs, traces) for _ in range(rounds))
        print(
            json.dumps(
                {
                    "mode": mode,
                    "traces": traces,
                    "generations": generations,
                    "cpu_s": round(best, 3),
                    "us_per_generation": round(best / generations * 1e6, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
