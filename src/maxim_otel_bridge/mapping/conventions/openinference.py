"""OpenInference (Arize) attributes: `llm.*`, `openinference.span.kind`, flattened messages and documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.mapping.candidates import (
    Choice,
    Convention,
    RetrievalInfo,
    ToolInfo,
    Usage,
    reads,
    retrieval_info,
    tool_info,
)
from maxim_otel_bridge.mapping.coerce import coerce_mapping, coerce_str
from maxim_otel_bridge.mapping.ids import tool_call_id
from maxim_otel_bridge.mapping.indexed import sub_items, unflatten
from maxim_otel_bridge.mapping.messages import (
    make_tool_call,
    normalize_finish_reason,
    normalize_role,
)
from maxim_otel_bridge.mapping.params import PARAM_NAMES
from maxim_otel_bridge.mapping.usage import usage_from
from maxim_otel_bridge.mapping.values import to_json_text, to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["OPENINFERENCE"]

INPUT = "llm.input_messages."
OUTPUT = "llm.output_messages."
DOCUMENTS = "retrieval.documents."
RERANKED = "reranker.output_documents."

_USAGE_DETAILS = {
    "llm.token_count.prompt_details.cache_read": "cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_write": "cache_creation_input_tokens",
    "llm.token_count.completion_details.reasoning": "reasoning_output_tokens",
}


def _tool_calls(item: Mapping[str, Any], span_id: str, message_index: int) -> list[dict[str, Any]]:
    calls = []
    for index, call in enumerate(sub_items(item, "message.tool_calls.")):
        call_id = coerce_str(call.get("tool_call.id")) or tool_call_id(span_id, message_index, index)
        calls.append(
            make_tool_call(call_id, call.get("tool_call.function.name"), call.get("tool_call.function.arguments"))
        )
    return calls


def _content(item: Mapping[str, Any]) -> str | list[dict[str, Any]] | None:
    text = to_text(item.get("message.content"))
    if text is not None:
        return text
    parts: list[dict[str, Any]] = []
    for part in sub_items(item, "message.contents."):
        kind = part.get("message_content.type")
        url = part.get("message_content.image.image.url")
        if kind == "image" and isinstance(url, str):
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif part.get("message_content.text") is not None:
            parts.append({"type": "text", "text": to_text(part.get("message_content.text")) or ""})
    if not parts:
        return None
    return parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts


def _message(item: Mapping[str, Any], span_id: str, index: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": normalize_role(item.get("message.role")), "content": _content(item)}
    calls = _tool_calls(item, span_id, index)
    if calls:
        message["tool_calls"] = calls
    call_id = coerce_str(item.get("message.tool_call_id"))
    if call_id is not None and message["role"] == "tool":
        message["tool_call_id"] = call_id
    return message


def _input_messages(record: SpanRecord) -> list[dict] | None:
    items = unflatten(record.attributes, INPUT)
    return [_message(item, record.span_id, index) for index, item in enumerate(items)] or None


def _output_choices(record: SpanRecord) -> list[Choice] | None:
    choices = []
    for index, item in enumerate(unflatten(record.attributes, OUTPUT)):
        message = _message(item, record.span_id, 1000 + index)
        content = message["content"]
        if isinstance(content, list):
            content = "\n".join(p["text"] if p["type"] == "text" else to_json_text(p) for p in content)
        choices.append(Choice(index=index, content=content, tool_calls=tuple(message.get("tool_calls", ()))))
    return choices or None


def _model(record: SpanRecord) -> str | None:
    a = record.attributes
    return (
        coerce_str(a.get("llm.response.model_name"))
        or coerce_str(a.get("llm.model_name"))
        or coerce_str(a.get("llm.request.model_name"))
        # A failed call has no model name attribute, but the requested model is in the invocation parameters.
        or coerce_str((coerce_mapping(a.get("llm.invocation_parameters")) or {}).get("model"))
    )


def _provider(record: SpanRecord) -> str | None:
    a = record.attributes
    return coerce_str(a.get("llm.provider")) or coerce_str(a.get("llm.system"))


def _finish_reasons(record: SpanRecord) -> list[str] | None:
    reason = normalize_finish_reason(record.attributes.get("llm.finish_reason"))
    return [reason] if reason is not None else None


def _params(record: SpanRecord) -> dict[str, Any] | None:
    invocation = coerce_mapping(record.attributes.get("llm.invocation_parameters"))
    if not invocation:
        return None
    # The model is the generation's own field; request plumbing (stream options) is still a parameter.
    params = {PARAM_NAMES.get(key, key): value for key, value in invocation.items() if key != "model"}
    return params or None


def _usage(record: SpanRecord) -> Usage | None:
    return usage_from(
        record.attributes,
        input_keys=("llm.token_count.prompt",),
        output_keys=("llm.token_count.completion",),
        total_keys=("llm.token_count.total",),
        detail_keys=_USAGE_DETAILS,
    )


FIRST_TOKEN_EVENT = "First Token Stream Event"


def _first_chunk_seconds(record: SpanRecord) -> float | None:
    # Streamed calls mark the first token with an attribute-less event; its offset is the latency.
    for event in record.events:
        if event.name == FIRST_TOKEN_EVENT and event.time_ns >= record.start_ns > 0:
            return (event.time_ns - record.start_ns) / 1e9
    return None


def _tool(record: SpanRecord) -> ToolInfo | None:
    a = record.attributes
    return tool_info(
        name=coerce_str(a.get("tool.name")),
        call_id=coerce_str(a.get("tool.id")) or coerce_str(a.get("tool_call.id")),
        description=coerce_str(a.get("tool.description")),
    )


def _document_text(item: Mapping[str, Any]) -> str:
    document = {key[len("document.") :]: value for key, value in sorted(item.items()) if key.startswith("document.")}
    metadata = document.get("metadata")
    if isinstance(metadata, str):
        parsed = coerce_mapping(metadata)
        if parsed is not None:
            document["metadata"] = dict(parsed)
    return to_json_text(document)


def _retrieval(record: SpanRecord) -> RetrievalInfo | None:
    a = record.attributes
    items = unflatten(a, DOCUMENTS) or unflatten(a, RERANKED)
    return retrieval_info(
        query=to_text(a.get("reranker.query")),
        documents=tuple(_document_text(item) for item in items) if items else None,
    )


def _consumes(entity_type: str, key: str) -> bool:
    if entity_type == "generation":
        return key.startswith((INPUT, OUTPUT))
    if entity_type == "retrieval":
        return key.startswith((DOCUMENTS, RERANKED))
    return False


OPENINFERENCE = Convention(
    name="openinference",
    model=_model,
    provider=_provider,
    input_messages=_input_messages,
    output_choices=_output_choices,
    finish_reasons=_finish_reasons,
    params=_params,
    usage=_usage,
    first_chunk_seconds=_first_chunk_seconds,
    tool=_tool,
    retrieval=_retrieval,
    consumes=_consumes,
    consumed_events={"generation": frozenset({FIRST_TOKEN_EVENT})},
    inputs={
        "model": reads(
            "llm.response.model_name", "llm.model_name", "llm.request.model_name", "llm.invocation_parameters"
        ),
        "provider": reads("llm.provider", "llm.system"),
        "input_messages": reads(prefixes=(INPUT,)),
        "output_choices": reads(prefixes=(OUTPUT,)),
        "finish_reasons": reads("llm.finish_reason"),
        "params": reads("llm.invocation_parameters"),
        "usage": reads(
            "llm.token_count.prompt", "llm.token_count.completion", "llm.token_count.total", *_USAGE_DETAILS
        ),
        "first_chunk_seconds": reads(events=(FIRST_TOKEN_EVENT,)),
        "tool": reads("tool.name", "tool.id", "tool_call.id", "tool.description"),
        "retrieval": reads("reranker.query", prefixes=(DOCUMENTS, RERANKED)),
    },
)
