"""How many spans per second `map_trace_part` maps, on realistic GenAI traces.

Run: .venv/bin/python bench/mapping_throughput.py [traces] [--content-policy]
Each trace: an agent span, two chat generations with JSON messages, a tool call, an HTTP child of a
generation (re-parented) and a custom event: 5 spans, 6+ entities.

`--content-policy` maps the same traces again with content capture off, with two redaction patterns, and
with both, and prints the CPU time per span of each next to the default's.
"""

from __future__ import annotations

import json
import sys
import time

from maxim_otel_bridge.mapping import MappingOptions, map_trace_part
from maxim_otel_bridge.record import EventRecord, SpanRecord


def _trace(n: int) -> list[SpanRecord]:
    trace_id = f"{n:032x}"
    agent, chat1, tool, chat2, http = (f"{n * 8 + i:016x}" for i in range(1, 6))
    user = {"role": "user", "parts": [{"type": "text", "content": "What's the weather in Paris? " * 20}]}
    call = {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.response.id": f"resp-{n}",
    }
    t = 1_767_225_600_000_000_000 + n * 10_000_000_000
    return [
        SpanRecord(
            trace_id,
            agent,
            None,
            "invoke_agent weather",
            t,
            t + 9_000_000,
            {"gen_ai.operation.name": "invoke_agent", "session.id": f"s{n % 10}"},
            events=(EventRecord("plan", t + 1, {"steps": 2}),),
            resource={"service.name": "bench"},
        ),
        SpanRecord(
            trace_id,
            chat1,
            agent,
            "chat gpt-4o",
            t + 1,
            t + 3_000_000,
            {
                **chat,
                "gen_ai.input.messages": json.dumps([user]),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [call], "finish_reason": "tool_call"}]
                ),
            },
            resource={"service.name": "bench"},
        ),
        SpanRecord(
            trace_id,
            http,
            chat1,
            "POST",
            t + 2,
            t + 2_900_000,
            {"http.request.method": "POST"},
            resource={"service.name": "bench"},
        ),
        SpanRecord(
            trace_id,
            tool,
            agent,
            "execute_tool weather",
            t + 3_100_000,
            t + 4_000_000,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "weather",
                "gen_ai.tool.call.arguments": '{"city":"Paris"}',
                "gen_ai.tool.call.result": '{"t":18}',
            },
            resource={"service.name": "bench"},
        ),
        SpanRecord(
            trace_id,
            chat2,
            agent,
            "chat gpt-4o",
            t + 4_100_000,
            t + 8_000_000,
            {
                **chat,
                "gen_ai.input.messages": json.dumps(
                    [
                        user,
                        {"role": "assistant", "parts": [call]},
                        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"t": 18}}]},
                    ]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "18C"}], "finish_reason": "stop"}]
                ),
            },
            resource={"service.name": "bench"},
        ),
    ]


POLICIES = {
    "content off": MappingOptions(capture_content=False),
    "redact x2": MappingOptions(redact=[r"sk-[A-Za-z0-9]{20,}", r"[\w.+-]+@[\w-]+\.[\w.]+"]),
    "both": MappingOptions(capture_content=False, redact=[r"sk-[A-Za-z0-9]{20,}", r"[\w.+-]+@[\w-]+\.[\w.]+"]),
}


def _cpu_per_span(traces: list[list[SpanRecord]], options: MappingOptions) -> tuple[float, int]:
    started = time.process_time()
    entities = sum(len(map_trace_part(t, options).entities) for t in traces)
    return time.process_time() - started, entities


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 2000
    traces = [_trace(n) for n in range(1, count + 1)]
    spans = sum(len(t) for t in traces)
    started = time.perf_counter()
    entities = sum(len(map_trace_part(t).entities) for t in traces)
    elapsed = time.perf_counter() - started
    print(
        f"{count} traces, {spans} spans -> {entities} entities in {elapsed:.2f} s: "
        f"{spans / elapsed:,.0f} spans/s, {elapsed / spans * 1e6:.0f} us/span"
    )
    if "--content-policy" in sys.argv[1:]:
        # Alternate default and policy runs so drift on a shared machine hits both alike; best of 3 each.
        for name, options in POLICIES.items():
            runs = [(_cpu_per_span(traces, MappingOptions())[0], _cpu_per_span(traces, options)[0]) for _ in range(3)]
            base, cost = min(r[0] for r in runs), min(r[1] for r in runs)
            print(
                f"  {name:12s} {cost / spans * 1e6:5.0f} us/span CPU vs {base / spans * 1e6:5.0f} default "
                f"({(cost - base) / spans * 1e6:+.0f} us/span)"
            )


if __name__ == "__main__":
    main()
