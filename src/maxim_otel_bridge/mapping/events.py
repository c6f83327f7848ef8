"""Span events that are not consumed elsewhere become Maxim `event` entities."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from maxim_otel_bridge.mapping.ids import event_id, iso_timestamp
from maxim_otel_bridge.record import SpanRecord

__all__ = ["event_entities"]


def event_entities(
    record: SpanRecord, trace_id: str, maxim_span_id: str | None, skip_names: Collection[str]
) -> list[dict]:
    """One entity per remaining event, id stable by position, hung under the nearest Maxim span.

    `skip_names` are events whose content the span's own entity already carries (messages, the error).
    """
    entities: list[dict] = []
    for index, event in enumerate(record.events):
        if event.name in skip_names:
            continue
        metadata = dict(event.attributes) if isinstance(event.attributes, Mapping) else {}
        timestamp = iso_timestamp(event.time_ns)
        if timestamp is not None:
            metadata["timestamp"] = timestamp
        # The event may belong to a generation or tool call that cannot hold children: say which.
        metadata["otel.span_id"] = record.span_id
        entity: dict = {
            "id": event_id(record.span_id, index),
            "type": "event",
            "name": event.name or "event",
            "traceId": trace_id,
        }
        if maxim_span_id is not None:
            entity["spanId"] = maxim_span_id
        if timestamp is not None:
            entity["startTimestamp"] = timestamp
        entity["metadata"] = metadata
        entities.append(entity)
    return entities
