"""The decode ceiling: how fast Python can merely parse OTLP trace requests and walk their attributes.

Nothing a sidecar written in Python does per span can be cheaper than this: parse the protobuf (upb, the
fastest runtime) and touch every attribute key and value of every span, event and resource. The sidecar's
throughput is reported as a fraction of this rate, measured on the same requests in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

__all__ = ["CeilingResult", "decode_ceiling", "walk_request"]


@dataclass(frozen=True, slots=True)
class CeilingResult:
    spans: int
    attributes: int
    seconds: float
    """CPU seconds of this thread (the walk is single-threaded: wall time on a shared machine would count
    other processes' work)."""

    @property
    def spans_per_s(self) -> float:
        return self.spans / self.seconds if self.seconds > 0 else 0.0


def _walk_value(value) -> int:
    """Read the value (recursing into arrays and maps); returns how many scalar values were read."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return sum(_walk_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        total = 0
        for kv in value.kvlist_value.values:
            kv.key  # noqa: B018 - touching the field is the point
            total += _walk_value(kv.value)
        return total
    if which is not None:
        getattr(value, which)
    return 1


def _walk_attributes(attributes) -> int:
    count = 0
    for kv in attributes:
        kv.key  # noqa: B018 - touching the field is the point
        _walk_value(kv.value)
        count += 1
    return count


def walk_request(data: bytes) -> tuple[int, int]:
    """Parse one serialized request and read every attribute; returns (spans, attributes)."""
    request = ExportTraceServiceRequest.FromString(data)
    spans = attributes = 0
    for resource_spans in request.resource_spans:
        attributes += _walk_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans += 1
                span.trace_id, span.span_id, span.parent_span_id, span.name  # noqa: B018
                span.start_time_unix_nano, span.end_time_unix_nano  # noqa: B018
                attributes += _walk_attributes(span.attributes)
                for event in span.events:
                    attributes += _walk_attributes(event.attributes)
    return spans, attributes


def decode_ceiling(requests: Sequence[bytes], min_seconds: float = 0.0) -> CeilingResult:
    """Walk every request (repeating the list until `min_seconds` of CPU have passed); the achieved rate."""
    spans = attributes = 0
    started = time.thread_time()
    while True:
        for data in requests:
            s, a = walk_request(data)
            spans += s
            attributes += a
        elapsed = time.thread_time() - started
        if elapsed >= min_seconds or not requests:
            return CeilingResult(spans, attributes, elapsed)
