"""Real OpenTelemetry SDK spans, recorded in memory and turned into `SpanRecord`s.

Ids come from a sequential generator and every time is given explicitly, so the same scenario always
produces the same records (what golden files need). Nothing else is faked: spans are made by the SDK.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from maxim_otel_bridge.record import SpanRecord, from_readable_span

BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MS = 1_000_000


class SequentialIds(IdGenerator):
    """Trace ids 1, 2, ... and span ids 1, 2, ... (hex-padded by the record), reproducible."""

    def __init__(self, trace_start: int = 0xA1, span_start: int = 0x10) -> None:
        self._traces = itertools.count(trace_start)
        self._spans = itertools.count(span_start)

    def generate_trace_id(self) -> int:
        return next(self._traces)

    def generate_span_id(self) -> int:
        return next(self._spans)


class SpanRecorder:
    """A tracer whose finished spans are kept in memory; `records()` gives them as `SpanRecord`s."""

    def __init__(self, resource: Mapping[str, Any] | None = None, scope: str = "test.scope") -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource(dict(resource or {"service.name": "golden-app"})), id_generator=SequentialIds()
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer(scope, "1.0.0")

    @contextmanager
    def span(
        self,
        name: str,
        start_ms: int,
        end_ms: int,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        error: str | None = None,
    ) -> Iterator[trace.Span]:
        """A span from `start_ms` to `end_ms` (after BASE_NS), current inside the block."""
        span = self.tracer.start_span(
            name, kind=kind, attributes=dict(attributes or {}), start_time=BASE_NS + start_ms * MS
        )
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield span
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=BASE_NS + end_ms * MS)

    def event(self, span: trace.Span, name: str, at_ms: int, attributes: Mapping[str, Any] | None = None) -> None:
        span.add_event(name, dict(attributes or {}), timestamp=BASE_NS + at_ms * MS)

    def records(self) -> list[SpanRecord]:
        return [from_readable_span(span) for span in self.exporter.get_finished_spans()]

    def shutdown(self) -> None:
        self.provider.shutdown()
