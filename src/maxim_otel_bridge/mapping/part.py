"""`map_trace_part`: the span records of one trace (or part of one) to Maxim entities, parents first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from maxim_otel_bridge.mapping.classify import GENERATION, SPAN, classify
from maxim_otel_bridge.mapping.content_policy import apply_content_policy
from maxim_otel_bridge.mapping.conventions.maxim import with_entity_fields
from maxim_otel_bridge.mapping.entities import (
    BUILDERS,
    Where,
    placeholder_span_entity,
    session_entity,
    trace_entity,
)
from maxim_otel_bridge.mapping.errors import EXCEPTION_EVENT, error_info
from maxim_otel_bridge.mapping.events import event_entities
from maxim_otel_bridge.mapping.ids import is_valid_id, safe_id
from maxim_otel_bridge.mapping.options import MappedPart, MappingOptions, Placement
from maxim_otel_bridge.mapping.precedence import consumed_event_names, forget_last_plan, read_session_id
from maxim_otel_bridge.mapping.tree import layout
from maxim_otel_bridge.mapping.values import bound_value, is_bounded
from maxim_otel_bridge.record import SpanRecord

__all__ = ["map_trace_part"]

_NO_PLACEMENTS: Mapping[str, Placement] = {}
_DEFAULT_OPTIONS = MappingOptions()


_MAX_OTEL_ID_CHARS = 64  # OTel ids are 32 (trace) and 16 (span) hex digits; longer is junk


def _usable(record: Any) -> bool:
    return (
        isinstance(record, SpanRecord)
        and isinstance(record.trace_id, str)
        and isinstance(record.span_id, str)
        and len(record.trace_id) <= _MAX_OTEL_ID_CHARS
        and len(record.span_id) <= _MAX_OTEL_ID_CHARS
        and is_valid_id(record.trace_id)
        and is_valid_id(record.span_id)
        and (record.parent_span_id is None or isinstance(record.parent_span_id, str))
    )


def _root(records: Mapping[str, SpanRecord]) -> SpanRecord | None:
    roots = [r for r in records.values() if r.parent_span_id is None]
    return min(roots, key=lambda r: (r.start_ns, r.span_id)) if roots else None


def _session_id(records: Mapping[str, SpanRecord], root: SpanRecord | None, order: Sequence[str]) -> str | None:
    # The root decides; otherwise any span that carries one (often only a child does).
    candidates = ([root] if root is not None else []) + [records[s] for s in order]
    for record in candidates:
        session_id = read_session_id(record)
        if session_id is not None:
            return session_id
    return None


_BUILT_PLAIN = ("messages", "result")
"""A generation's items that hold only dicts with string keys, lists, strings, integers and None, a few levels
deep: every input-messages and output-choices reader, and the completion result, build them so (a test checks
it). They are the bulk of a model call's entity."""
_EXACT_TYPES_ONLY = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _refuse(value: Any) -> Any:
    raise TypeError


def _is_bounded_entity(entity: dict, limit: int) -> bool:
    """`is_bounded(entity, limit)` for an entity as the builders made it (no content policy applied).

    For a generation's messages and result, bounded means that no string in them is longer than `limit`, and
    their JSON text is at least as long as any string in it (a character is at least one byte): when that
    text fits, the walk skips them. A subclass of str, int, dict or list (whose length or items could say
    otherwise), or an integer beyond 64 bits, makes orjson refuse, and then the walk decides.
    """
    if type(entity) is dict and entity.get("type") == GENERATION:
        try:
            text = orjson.dumps(
                (entity.get("messages"), entity.get("result")), default=_refuse, option=_EXACT_TYPES_ONLY
            )
        except orjson.JSONEncodeError:
            text = None
        if text is not None and len(text) <= limit:
            return is_bounded(entity, limit, skip=_BUILT_PLAIN)
    return is_bounded(entity, limit)


def _map_one_trace(
    trace_id: str, records: dict[str, SpanRecord], options: MappingOptions, known: Mapping[str, Placement]
) -> MappedPart:
    kinds = {span_id: classify(record) for span_id, record in records.items()}
    plan = layout(records, kinds, known)
    root = _root(records)

    span_entities: list[dict] = []
    root_entity: dict | None = None
    wheres: dict[tuple[str | None, bool], Where] = {}  # a trace's spans hang under a few parents: one each
    for span_id in plan.order:
        record = records[span_id]
        kind = kinds[span_id]
        parent = plan.placements[span_id].parent
        include_resource = root is None or (record.resource is not root.resource and record.resource != root.resource)
        where = wheres.get((parent, include_resource))
        if where is None:
            where = wheres[parent, include_resource] = Where(trace_id, parent, include_resource=include_resource)
        entity = with_entity_fields(BUILDERS[kind](record, where, options), record.attributes)
        span_entities.append(entity)
        if record is root:
            root_entity = entity
        if record.events:
            skip = consumed_event_names(kind)
            if error_info(record) is not None:
                skip = skip | {EXCEPTION_EVENT}
            span_entities.extend(event_entities(record, trace_id, span_id if kind == SPAN else parent, skip))

    original_session_id = _session_id(records, root, plan.order)
    session_id = safe_id(original_session_id) if original_session_id is not None else None
    entities: list[dict] = []
    if session_id is not None and original_session_id is not None:
        entities.append(session_entity(session_id, original_session_id))
    entities.append(trace_entity(trace_id, root, root_entity, session_id))
    entities.extend(placeholder_span_entity(span_id, trace_id) for span_id in plan.placeholders)
    entities.extend(span_entities)
    # The policy sees whole strings: truncating first could cut a secret in two and let its head pass.
    as_built = apply_content_policy(entities, options)
    check = _is_bounded_entity if as_built is entities else is_bounded
    limit = options.max_value_chars
    bounded = [entity if check(entity, limit) else bound_value(entity, limit) for entity in as_built]
    return MappedPart(entities=bounded, placements=plan.placements)


def map_trace_part(
    records: Sequence[SpanRecord],
    options: MappingOptions = _DEFAULT_OPTIONS,
    known: Mapping[str, Placement] = _NO_PLACEMENTS,
) -> MappedPart:
    """Map the spans of one trace to Maxim entities, ready to send in order (parents before children).

    `known` holds placements returned for earlier parts of the same trace, so late children hang under
    spans already sent. Pure and deterministic: the same input gives the same entities and ids, which
    makes re-sending idempotent (Maxim merges entities by id). Records with unusable ids are listed in
    `skipped`; a duplicate span id keeps its last record. Records of several traces are mapped trace by
    trace (sorted by trace id), though callers are expected to pass one.
    """
    forget_last_plan()
    by_trace: dict[str, dict[str, SpanRecord]] = {}
    skipped: list[str] = []
    for record in records:
        if not _usable(record):
            skipped.append(_describe(record))
            continue
        if record.parent_span_id is not None and not record.parent_span_id.strip("0"):
            # An all-zero (or empty) parent id is how some encoders spell "no parent".
            record = replace(record, parent_span_id=None)
        by_trace.setdefault(record.trace_id, {})[record.span_id] = record
    entities: list[dict] = []
    placements: dict[str, Placement] = {}
    for trace_id in sorted(by_trace):
        part = _map_one_trace(trace_id, by_trace[trace_id], options, known)
        entities.extend(part.entities)
        placements.update(part.placements)
    return MappedPart(entities=entities, placements=placements, skipped=tuple(skipped))


def _describe(record: Any) -> str:
    if not isinstance(record, SpanRecord):
        return f"not a span record: {type(record).__name__}"
    return f"span with unusable ids: trace_id={str(record.trace_id)[:64]!r} span_id={str(record.span_id)[:64]!r}"
