"""What a span carries beyond the entity's own fields, kept in `metadata` so nothing is silently lost."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from maxim_otel_bridge.mapping.coerce import coerce_mapping
from maxim_otel_bridge.mapping.keysets import KeySetMemo
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


_JSON_OBJECT_KEY = "metadata"
"""OpenInference's `metadata` attribute: the application's own object, sent as JSON text because attributes
cannot hold objects. Kept as the object (text that is not an object stays as it is), so Maxim shows its fields."""

_kept_keys_by_predicate: dict[Callable[[str], bool], KeySetMemo[tuple[str, ...]]] = {}
_MAX_PREDICATES = 64
"""Callers pass one predicate per entity type (`precedence.consumed_by`); a caller passing a new one every
time only makes the memo start over."""


def _kept_keys(attributes: Mapping[str, Any], consumed: Callable[[str], bool]) -> tuple[str, ...]:
    """The attribute keys metadata keeps, sorted: the same for every span with the same keys, so remembered."""
    memo = _kept_keys_by_predicate.get(consumed)
    if memo is None:
        if len(_kept_keys_by_predicate) >= _MAX_PREDICATES:
            _kept_keys_by_predicate.clear()
        memo = _kept_keys_by_predicate[consumed] = KeySetMemo(
            lambda keys: tuple(key for key in sorted(keys) if not consumed(key))
        )
    return memo(attributes)


def entity_metadata(
    record: SpanRecord,
    consumed: Callable[[str], bool],
    include_resource: bool,
) -> dict[str, Any]:
    """The span's attributes (less those the entity carries), then `otel.*` facts about the span.

    The resource is included only when the trace's own metadata does not already hold the same one.
    """
    attributes = record.attributes
    metadata: dict[str, Any] = {key: attributes[key] for key in _kept_keys(attributes, consumed)}
    carried = metadata.get(_JSON_OBJECT_KEY)
    if isinstance(carried, str):
        parsed = coerce_mapping(carried)
        if parsed is not None:
            metadata[_JSON_OBJECT_KEY] = dict(parsed)
    kind_name = KIND_NAMES.get(record.kind)
    metadata["otel.span_kind"] = kind_name if kind_name is not None else str(record.kind)
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
