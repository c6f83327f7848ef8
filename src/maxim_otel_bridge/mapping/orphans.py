"""GenAI log records whose span never arrived: shipped as `event` entities on their trace, not lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from maxim_otel_bridge.log_events import LogEvent
from maxim_otel_bridge.mapping.content_policy import apply_content_policy
from maxim_otel_bridge.mapping.entities import trace_entity
from maxim_otel_bridge.mapping.ids import is_valid_id, iso_timestamp
from maxim_otel_bridge.mapping.options import MappingOptions, Placement
from maxim_otel_bridge.mapping.values import bound_value

__all__ = ["orphan_event_entities"]

_NO_PLACEMENTS: Mapping[str, Placement] = {}
_DEFAULT_OPTIONS = MappingOptions()


def orphan_event_entities(
    events: Sequence[LogEvent],
    options: MappingOptions = _DEFAULT_OPTIONS,
    known: Mapping[str, Placement] = _NO_PLACEMENTS,
) -> list[dict]:
    """One `event` entity per record, under its trace (and its span's nearest Maxim span when `known` has it).

    Every trace gets a bare trace entity first (id and type only: Maxim merges it with whatever the spans
    of that trace send, before or after). Ids are stable per record (`LogEvent.key`), so a record sent twice
    stays one event. A record with no usable trace id (emitted outside any span) gets a trace of its own,
    named after the event, rather than being lost.
    """
    entities: list[dict] = []
    traces_seen: set[str] = set()
    for event in events:
        trace_id = event.trace_id
        if not trace_id or not is_valid_id(trace_id):
            trace_id = f"log-{event.key}"
            entities.append({**trace_entity(trace_id, None, None, None), "name": event.name})
            traces_seen.add(trace_id)
        if trace_id not in traces_seen:
            traces_seen.add(trace_id)
            entities.append(trace_entity(trace_id, None, None, None))
        entity: dict = {
            "id": f"{event.span_id or trace_id}-log-{event.key}",
            "type": "event",
            "name": event.name,
            "traceId": trace_id,
        }
        placement = known.get(event.span_id) if event.span_id else None
        if placement is not None:
            parent = event.span_id if placement.entity_type == "span" else placement.parent
            if parent is not None:
                entity["spanId"] = parent
        metadata: dict = dict(event.attributes)
        if event.body is not None:
            metadata["body"] = event.body
        timestamp = iso_timestamp(event.time_ns)
        if timestamp is not None:
            metadata["timestamp"] = timestamp
        if event.span_id:
            metadata["otel.span_id"] = event.span_id
        entity["metadata"] = metadata
        entities.append(entity)
    return [bound_value(entity, options.max_value_chars) for entity in apply_content_policy(entities, options)]
