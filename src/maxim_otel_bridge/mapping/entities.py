"""One builder per Maxim entity type, each a pure function of a span record and where it hangs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maxim_otel_bridge.mapping.classify import (
    GENERATION,
    RETRIEVAL,
    SPAN,
    TOOL_CALL,
    operation_name,
)
from maxim_otel_bridge.mapping.coerce import coerce_str_list
from maxim_otel_bridge.mapping.conventions.maxim import TAG_PREFIX, read_tags, trace_fields
from maxim_otel_bridge.mapping.errors import (
    ErrorInfo,
    error_info,
    leaf_error,
    span_error,
)
from maxim_otel_bridge.mapping.ids import iso_timestamp, unix_seconds
from maxim_otel_bridge.mapping.messages import text_of_messages
from maxim_otel_bridge.mapping.metadata import entity_metadata
from maxim_otel_bridge.mapping.options import MappingOptions
from maxim_otel_bridge.mapping.precedence import (
    consumed_by,
    first,
    read_retrieval,
    read_tool,
    read_usage,
    read_user_id,
)
from maxim_otel_bridge.mapping.provider import normalize_provider
from maxim_otel_bridge.mapping.result import completion_result
from maxim_otel_bridge.record import SpanRecord

__all__ = [
    "BUILDERS",
    "PROVIDER_ORIGINAL_TAG",
    "TAG_PREFIX",
    "UNKNOWN_MODEL",
    "Where",
    "generation_entity",
    "placeholder_span_entity",
    "retrieval_entity",
    "session_entity",
    "span_entity",
    "tool_call_entity",
    "trace_entity",
]

PROVIDER_ORIGINAL_TAG = "provider.original"
"""Tag holding a provider name that had to be replaced by the fallback (Maxim's provider is an enum)."""

UNKNOWN_MODEL = "unknown"


@dataclass(frozen=True, slots=True)
class Where:
    """Where an entity goes: its trace, the Maxim span it hangs under, and whether to repeat the resource."""

    trace_id: str
    parent: str | None
    include_resource: bool


def user_tags(attributes: Mapping[str, Any]) -> dict[str, str]:
    tags = read_tags(attributes)
    # OpenInference `tag.tags` is a list of labels: each becomes a tag with an empty value.
    labels = attributes.get("tag.tags")
    if labels is not None:
        for label in coerce_str_list(labels) or ():
            tags.setdefault(label, "")
    return tags


def _base(record: SpanRecord, entity_type: str, where: Where) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": record.span_id, "type": entity_type, "name": record.name or entity_type}
    entity["traceId"] = where.trace_id
    if where.parent is not None:
        entity["spanId"] = where.parent
    start, end = iso_timestamp(record.start_ns), iso_timestamp(record.end_ns)
    if start is not None:
        entity["startTimestamp"] = start
    if end is not None:
        entity["endTimestamp"] = end
    tags = user_tags(record.attributes)
    if tags:
        entity["tags"] = tags
    return entity


def _metadata(record: SpanRecord, entity_type: str, where: Where, error: ErrorInfo | None) -> dict[str, Any]:
    metadata = entity_metadata(record, consumed_by(entity_type), where.include_resource)
    if error is not None and error.stacktrace is not None:
        metadata["exception.stacktrace"] = error.stacktrace
    return metadata


def span_entity(record: SpanRecord, where: Where, options: MappingOptions) -> dict[str, Any]:
    """Agents, workflows, embeddings, HTTP calls and everything else that is not a leaf."""
    entity = _base(record, SPAN, where)
    error = error_info(record)
    entity["metadata"] = _metadata(record, SPAN, where, error)
    if error is not None:
        entity["error"] = span_error(record, error)
    return entity


def _is_text_completion(record: SpanRecord) -> bool:
    return operation_name(record.attributes) in ("text_completion", "completion") or (
        record.attributes.get("llm.request.type") == "completion"
    )


def generation_entity(record: SpanRecord, where: Where, options: MappingOptions) -> dict[str, Any]:
    entity = _base(record, GENERATION, where)
    model = first("model", record) or UNKNOWN_MODEL
    provider = normalize_provider(first("provider", record), options.unknown_provider)
    if provider.original is not None:
        entity.setdefault("tags", {})[PROVIDER_ORIGINAL_TAG] = provider.original
    usage = read_usage(record)
    error = error_info(record)
    choices = first("output_choices", record) or []
    entity["model"] = model
    entity["provider"] = provider.provider
    entity["messages"] = first("input_messages", record) or []
    entity["modelParameters"] = first("params", record) or {}
    result = completion_result(
        response_id=first("response_id", record) or record.span_id,
        created=unix_seconds(record.end_ns),
        model=model,
        choices=choices,
        finish_reasons=first("finish_reasons", record) or [],
        usage=usage,
        error=error,
        text_completion=_is_text_completion(record),
    )
    if result is not None:
        entity["result"] = result
    metrics: dict[str, float] = dict(usage.details) if usage is not None else {}
    first_chunk = first("first_chunk_seconds", record)
    if first_chunk is not None:
        metrics["time_to_first_chunk_seconds"] = first_chunk
    if metrics:
        entity["metrics"] = metrics
    metadata = _metadata(record, GENERATION, where, error)
    reasoning = [text for choice in choices for text in choice.reasoning]
    if reasoning:
        metadata["reasoning"] = reasoning
    entity["metadata"] = metadata
    if error is not None:
        entity["error"] = leaf_error(error)
    return entity


def _tool_name(record: SpanRecord) -> str:
    name = record.name or ""
    for prefix in ("execute_tool ", "running tool "):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
    return name or "tool"


def tool_call_entity(record: SpanRecord, where: Where, options: MappingOptions) -> dict[str, Any]:
    entity = _base(record, TOOL_CALL, where)
    info = read_tool(record)
    error = error_info(record)
    entity["name"] = info.name or _tool_name(record)
    # Maxim requires both; an unknown description is empty, unknown arguments are an empty JSON object.
    entity["description"] = info.description or ""
    entity["args"] = info.arguments if info.arguments is not None else "{}"
    if info.result is not None:
        entity["result"] = info.result
    if error is not None:
        entity["error"] = leaf_error(error)
    entity["metadata"] = _metadata(record, TOOL_CALL, where, error)
    return entity


def retrieval_entity(record: SpanRecord, where: Where, options: MappingOptions) -> dict[str, Any]:
    entity = _base(record, RETRIEVAL, where)
    info = read_retrieval(record)
    error = error_info(record)
    if info.query is not None:
        entity["input"] = info.query
    if info.documents is not None:
        entity["output"] = list(info.documents)
    metadata = _metadata(record, RETRIEVAL, where, error)
    if error is not None:
        # Maxim's retrieval has no error field: keep the error visible in metadata.
        metadata["error"] = span_error(record, error)
    entity["metadata"] = metadata
    return entity


BUILDERS = {
    SPAN: span_entity,
    GENERATION: generation_entity,
    TOOL_CALL: tool_call_entity,
    RETRIEVAL: retrieval_entity,
}


def placeholder_span_entity(span_id: str, trace_id: str) -> dict[str, Any]:
    """A bare span standing for a parent not seen yet; the real span merges into it (same id)."""
    return {"id": span_id, "type": SPAN, "traceId": trace_id}


def _entity_text(entity: Mapping[str, Any], field: str) -> str | None:
    """The input or output an entity already holds, as one string."""
    kind = entity.get("type")
    if kind == GENERATION:
        if field == "input_text":
            messages = entity.get("messages") or []
            return text_of_messages(messages, "user") or text_of_messages(messages)
        choices = (entity.get("result") or {}).get("choices") or []
        if not choices:
            return None
        return choices[0].get("text") if "text" in choices[0] else choices[0]["message"].get("content")
    if kind == TOOL_CALL:
        return entity.get("args") if field == "input_text" else entity.get("result")
    if kind == RETRIEVAL:
        if field == "input_text":
            return entity.get("input")
        output = entity.get("output")
        return "\n".join(output) if isinstance(output, list) else output
    return None


def _root_text(record: SpanRecord, entity: Mapping[str, Any] | None, field: str) -> str | None:
    # A model call at the root says best what the user asked and got (`input.value` there is often the
    # whole request body); any other root is described by its explicit input/output attributes first.
    if entity is not None and entity.get("type") == GENERATION:
        return _entity_text(entity, field) or first(field, record)
    text = first(field, record)
    if text is None and entity is not None:
        text = _entity_text(entity, field)
    return text


def trace_entity(
    trace_id: str,
    root: SpanRecord | None,
    root_entity: Mapping[str, Any] | None,
    session_id: str | None,
) -> dict[str, Any]:
    """The trace: name, input, output, tags and times from the root span; only what is known otherwise."""
    entity: dict[str, Any] = {"id": trace_id, "type": "trace"}
    if session_id is not None:
        entity["sessionId"] = session_id
    if root is None:
        return entity
    entity["name"] = root.name or "trace"
    for field, key in (("input_text", "input"), ("output_text", "output")):
        text = _root_text(root, root_entity, field)
        if text is not None:
            entity[key] = text
    tags = user_tags(root.attributes)
    user_id = read_user_id(root)
    if user_id is not None:
        tags.setdefault("user.id", user_id)
    if tags:
        entity["tags"] = tags
    start, end = iso_timestamp(root.start_ns), iso_timestamp(root.end_ns)
    if start is not None:
        entity["startTimestamp"] = start
    if end is not None:
        entity["endTimestamp"] = end
    if root.resource:
        entity["metadata"] = {"otel.resource": dict(sorted(root.resource.items()))}
    return trace_fields(entity, root.attributes)


def session_entity(session_id: str, original: str) -> dict[str, Any]:
    """The session; when its id had to be made safe, the name shows the id the application used."""
    entity: dict[str, Any] = {"id": session_id, "type": "session"}
    if original != session_id:
        entity["name"] = original
    return entity
