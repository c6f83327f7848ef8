"""OpenTelemetry GenAI semantic conventions (v1.37+ attributes on the span, plus deprecated usage keys)."""

from __future__ import annotations

from typing import Any

from maxim_otel_bridge.mapping.candidates import (
    Choice,
    Convention,
    Inputs,
    RetrievalInfo,
    ToolInfo,
    Usage,
    reads,
    retrieval_info,
    tool_info,
)
from maxim_otel_bridge.mapping.coerce import coerce_float, coerce_list, coerce_str, coerce_str_list
from maxim_otel_bridge.mapping.messages import (
    genai_choices,
    genai_messages,
    genai_system_instructions,
    normalize_finish_reason,
    text_of_messages,
)
from maxim_otel_bridge.mapping.params import PARAM_PREFIXES, genai_params
from maxim_otel_bridge.mapping.usage import usage_from
from maxim_otel_bridge.mapping.values import to_json_text, to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["GENAI", "read_genai_messages"]

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"

_USAGE_DETAILS = {
    "gen_ai.usage.cache_read.input_tokens": "cache_read_input_tokens",
    "gen_ai.usage.cache_creation.input_tokens": "cache_creation_input_tokens",
    "gen_ai.usage.reasoning.output_tokens": "reasoning_output_tokens",
    # Traceloop's spellings of the same counts.
    "gen_ai.usage.cache_read_input_tokens": "cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens": "cache_creation_input_tokens",
    "gen_ai.usage.reasoning_tokens": "reasoning_output_tokens",
}

# The deprecated prompt/completion keys are still emitted by older instrumentations: never drop them.
_INPUT_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT_TOKEN_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_TOTAL_TOKEN_KEYS = ("gen_ai.usage.total_tokens",)
_TOOL_KEYS = (
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.description",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)
_RETRIEVAL_KEYS = ("gen_ai.retrieval.query.text", "gen_ai.retrieval.documents")

_CONSUMED = {
    "generation": frozenset({INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS}),
    "toolCall": frozenset({"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}),
    "retrieval": frozenset({"gen_ai.retrieval.query.text", "gen_ai.retrieval.documents"}),
}


def read_genai_messages(attributes: Any, span_id: str) -> list[dict] | None:
    """System instructions followed by input messages; None when neither is present."""
    system = genai_system_instructions(attributes.get(SYSTEM_INSTRUCTIONS))
    messages = genai_messages(attributes.get(INPUT_MESSAGES), span_id)
    if system is None and messages is None:
        return None
    return (system or []) + (messages or [])


def _model(record: SpanRecord) -> str | None:
    a = record.attributes
    return coerce_str(a.get("gen_ai.response.model")) or coerce_str(a.get("gen_ai.request.model"))


def _provider(record: SpanRecord) -> str | None:
    a = record.attributes
    return coerce_str(a.get("gen_ai.provider.name")) or coerce_str(a.get("gen_ai.system"))


def _input_messages(record: SpanRecord) -> list[dict] | None:
    return read_genai_messages(record.attributes, record.span_id)


def _output_choices(record: SpanRecord) -> list[Choice] | None:
    return genai_choices(record.attributes.get(OUTPUT_MESSAGES), record.span_id)


def _finish_reasons(record: SpanRecord) -> list[str] | None:
    value = record.attributes.get("gen_ai.response.finish_reasons")
    reasons = coerce_str_list(coerce_list(value) if isinstance(value, str) and value.startswith("[") else value)
    if not reasons:
        return None
    normalized = []
    for raw in reasons:
        reason = normalize_finish_reason(raw)
        if reason is not None:
            normalized.append(reason)
    return normalized


def _response_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("gen_ai.response.id"))


def _params(record: SpanRecord) -> dict[str, Any] | None:
    return genai_params(record.attributes)


def _usage(record: SpanRecord) -> Usage | None:
    return usage_from(
        record.attributes,
        input_keys=_INPUT_TOKEN_KEYS,
        output_keys=_OUTPUT_TOKEN_KEYS,
        total_keys=_TOTAL_TOKEN_KEYS,
        detail_keys=_USAGE_DETAILS,
    )


def _first_chunk_seconds(record: SpanRecord) -> float | None:
    return coerce_float(record.attributes.get("gen_ai.response.time_to_first_chunk"))


def _tool(record: SpanRecord) -> ToolInfo | None:
    a = record.attributes
    name, call_id, description, arguments, result = _TOOL_KEYS
    return tool_info(
        name=coerce_str(a.get(name)),
        call_id=coerce_str(a.get(call_id)),
        description=coerce_str(a.get(description)),
        arguments=to_text(a.get(arguments)),
        result=to_text(a.get(result)),
    )


def _documents(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = coerce_list(value)
    if items is None:
        # Not a JSON array (often cut by a length limit): keep the raw text as the one document.
        text = to_text(value)
        return (text,) if text else None
    return tuple(item if isinstance(item, str) else to_json_text(item) for item in items)


def _retrieval(record: SpanRecord) -> RetrievalInfo | None:
    a = record.attributes
    query, documents = _RETRIEVAL_KEYS
    return retrieval_info(query=to_text(a.get(query)), documents=_documents(a.get(documents)))


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("gen_ai.conversation.id"))


def _input_text(record: SpanRecord) -> str | None:
    messages = _input_messages(record)
    if not messages:
        return None
    return text_of_messages(messages, "user") or text_of_messages(messages)


def _output_text(record: SpanRecord) -> str | None:
    choices = _output_choices(record)
    if not choices:
        return None
    return choices[0].content


def _consumes(entity_type: str, key: str) -> bool:
    return key in _CONSUMED.get(entity_type, ())


_MESSAGES_IN = reads(SYSTEM_INSTRUCTIONS, INPUT_MESSAGES)
_MESSAGES_OUT = reads(OUTPUT_MESSAGES)
_INPUTS: dict[str, Inputs] = {
    "model": reads("gen_ai.response.model", "gen_ai.request.model"),
    "provider": reads("gen_ai.provider.name", "gen_ai.system"),
    "input_messages": _MESSAGES_IN,
    "output_choices": _MESSAGES_OUT,
    "finish_reasons": reads("gen_ai.response.finish_reasons"),
    "response_id": reads("gen_ai.response.id"),
    "params": reads(prefixes=PARAM_PREFIXES),
    "usage": reads(*_INPUT_TOKEN_KEYS, *_OUTPUT_TOKEN_KEYS, *_TOTAL_TOKEN_KEYS, *_USAGE_DETAILS),
    "first_chunk_seconds": reads("gen_ai.response.time_to_first_chunk"),
    "tool": reads(*_TOOL_KEYS),
    "retrieval": reads(*_RETRIEVAL_KEYS),
    "session_id": reads("gen_ai.conversation.id"),
    "input_text": _MESSAGES_IN,
    "output_text": _MESSAGES_OUT,
}

GENAI = Convention(
    name="gen_ai",
    model=_model,
    provider=_provider,
    input_messages=_input_messages,
    output_choices=_output_choices,
    finish_reasons=_finish_reasons,
    response_id=_response_id,
    params=_params,
    usage=_usage,
    first_chunk_seconds=_first_chunk_seconds,
    tool=_tool,
    retrieval=_retrieval,
    session_id=_session_id,
    input_text=_input_text,
    output_text=_output_text,
    consumes=_consumes,
    inputs=_INPUTS,
)
