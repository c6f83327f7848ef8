"""Small builders of `SpanRecord`s for the sidecar's spool, assembler and shipper tests."""

from __future__ import annotations

from typing import Any

from maxim_otel_bridge.record import SpanKind, SpanRecord


def trace_id(n: int) -> str:
    return f"{n:032x}"


def span_id(n: int) -> str:
    return f"{n:016x}"


def span(
    trace: int,
    span_number: int,
    parent: int | None = None,
    *,
    name: str = "step",
    kind: int = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
    start_ns: int = 1_700_000_000_000_000_000,
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id(trace),
        span_id=span_id(span_number),
        parent_span_id=span_id(parent) if parent is not None else None,
        name=name,
        start_ns=start_ns + span_number * 1000,
        end_ns=start_ns + span_number * 1000 + 500,
        attributes=attributes or {},
        kind=kind,
        resource={"service.name": "svc"},
    )


def generation(trace: int, span_number: int, parent: int | None) -> SpanRecord:
    """A GenAI chat span (becomes a Maxim generation)."""
    return span(
        trace,
        span_number,
        parent,
        name="chat gpt-4o",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 30,
        },
    )


def small_trace(trace: int, children: int = 2) -> list[SpanRecord]:
    """A root span and `children` generations under it, children first (the order SDKs export them)."""
    kids = [generation(trace, 2 + i, 1) for i in range(children)]
    return [*kids, span(trace, 1, None, name="agent")]
