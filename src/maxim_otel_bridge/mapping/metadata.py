"""What a span carries beyond the entity's own fields, kept in `metadata` so nothing is silently lost."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from maxim_otel_bridge.record import SpanKind, SpanRecord

__all__ = ["KIND_NAMES", "entity_metadata"]

KIND_NAMES = {
    SpanKind.UNSPECIFIED: "unspecified",
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


def entity_metadata(
    record: SpanRecord,
    consumed: Callable[[str], bool],
    include_resource: bool,
) -> dict[str, Any]:
    """The span's attributes (less those the entity carries), then `otel.*` facts about the span.

    The resource is included only when the trace's own metadata does not already hold the same one.
    """
    metadata: dict[str, Any] = {key: value for key, value in sorted(record.attributes.items()) if not consumed(key)}
    metadata["otel.span_kind"] = KIND_NAMES.get(record.kind, str(record.kind))
    if record.scope_name:
        metadata["otel.scope.name"] = record.scope_name
    if record.scope_version:
        metadata["otel.scope.version"] = record.scope_version
    if record.status_message:
        metadata["otel.status_description"] = record.status_message
    if record.links:
        metadata["otel.links"] = [
            {
                "trace_id": link.trace_id,
                "span_id": link.span_id,
                **({"attributes": dict(link.attributes)} if link.attributes else {}),
            }
            for link in record.links
        ]
    if include_resource and isinstance(record.resource, Mapping) and record.resource:
        metadata["otel.resource"] = dict(sorted(record.resource.items()))
    return metadata
