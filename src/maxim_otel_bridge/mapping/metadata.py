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


_kept_memo: dict[tuple[Callable[[str], bool], tuple[str, ...]], tuple[str, ...]] = {}
_KEPT_MEMO_ENTRIES = 1024
_KEPT_MEMO_KEYS = 64
"""Key sets with more keys than this are not remembered (junk can carry thousands of keys)."""


def _kept_keys(attributes: Mapping[str, Any], consumed: Callable[[str], bool]) -> tuple[str, ...]:
    """The attribute keys metadata keeps, sorted. Spans of one instrumentation carry the same keys, so the
    answer is remembered per key set and predicate instead of sorting and asking for every span."""
    keys = tuple(attributes)
    if len(keys) > _KEPT_MEMO_KEYS:
        return tuple(key for key in sorted(keys) if not consumed(key))
    memo_key = (consumed, keys)
    kept = _kept_memo.get(memo_key)
    if kept is None:
        kept = tuple(key for key in sorted(keys) if not consumed(key))
        if len(_kept_memo) >= _KEPT_MEMO_ENTRIES:
            _kept_memo.clear()
        _kept_memo[memo_key] = kept
    return kept


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
