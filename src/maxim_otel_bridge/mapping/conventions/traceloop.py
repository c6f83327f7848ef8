"""OpenLLMetry / Traceloop attributes: `traceloop.*`, `llm.*`, and the indexed `gen_ai.prompt.{i}.*` /
`gen_ai.completion.{i}.*` messages that Cohere, Mistral, Ollama, Together and Watsonx instrumentations
still emit."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.mapping.candidates import (
    Choice,
    Convention,
    RetrievalInfo,
    ToolInfo,
    Usage,
    reads,
    tool_info,
)
from maxim_otel_bridge.mapping.coerce import coerce_str
from maxim_otel_bridge.mapping.ids import tool_call_id
from maxim_otel_bridge.mapping.indexed import sub_items, unflatten
from maxim_otel_bridge.mapping.messages import (
    make_tool_call,
    normalize_finish_reason,
    normalize_role,
)
from maxim_otel_bridge.mapping.usage import usage_from
from maxim_otel_bridge.mapping.values import to_json_text, to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["TRACELOOP"]

_ASSOCIATION = "traceloop.association.properties."
PROMPT = "gen_ai.prompt."
COMPLETION = "gen_ai.completion."
_PARAMS = {
    "llm.frequency_penalty": "frequencyPenalty",
    "llm.presence_penalty": "presencePenalty",
    "llm.top_k": "top_k",
    "llm.chat.stop_sequences": "stop_sequences",
    "llm.is_streaming": "stream",
}
_RESULT_FIELDS = ("id", "score", "distance", "metadata", "document")


def _tool_calls(item: Mapping[str, Any], span_id: str, message_index: int) -> list[dict[str, Any]]:
    return [
        make_tool_call(
            coerce_str(call.get("id")) or tool_call_id(span_id, message_index, index),
            call.get("name"),
            call.get("arguments"),
        )
        for index, call in enumerate(sub_items(item, "tool_calls."))
    ]


def _message(item: Mapping[str, Any], span_id: str, index: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": normalize_role(item.get("role")), "content": to_text(item.get("content"))}
    calls = _tool_calls(item, span_id, index)
    if calls:
        message["tool_calls"] = calls
    call_id = coerce_str(item.get("tool_call_id"))
    if call_id is not None and message["role"] == "tool":
        message["tool_call_id"] = call_id
    return message


def _input_messages(record: SpanRecord) -> list[dict] | None:
    items = unflatten(record.attributes, PROMPT)
    return [_message(item, record.span_id, index) for index, item in enumerate(items)] or None


def _output_choices(record: SpanRecord) -> list[Choice] | None:
    choices = []
    for index, item in enumerate(unflatten(record.attributes, COMPLETION)):
        content = to_text(item.get("content"))
        refusal = to_text(item.get("refusal"))
        choices.append(
            Choice(
                index=index,
                content=content if content is not None else refusal,
                tool_calls=tuple(_tool_calls(item, record.span_id, 1000 + index)),
                finish_reason=normalize_finish_reason(item.get("finish_reason")),
            )
        )
    return choices or None


def _params(record: SpanRecord) -> dict[str, Any] | None:
    a = record.attributes
    params = {name: a[key] for key, name in _PARAMS.items() if key in a}
    return params or None


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get(_ASSOCIATION + "session_id"))


def _user_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get(_ASSOCIATION + "user_id"))


def _usage(record: SpanRecord) -> Usage | None:
    return usage_from(record.attributes, input_keys=(), output_keys=(), total_keys=("llm.usage.total_tokens",))


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _call_of(value: Any) -> tuple[list[Any], dict[str, Any]] | None:
    """The decorators record a call's input as `{"args": [...], "kwargs": {...}}`; None for anything else."""
    decoded = _decoded(value)
    if isinstance(decoded, Mapping) and set(decoded) == {"args", "kwargs"}:
        args, kwargs = decoded["args"], decoded["kwargs"]
        if isinstance(args, list) and isinstance(kwargs, Mapping):
            return args, dict(kwargs)
    return None


def _readable(value: Any) -> str | None:
    """A tool's output as a person reads it: a lone value or a string result without its JSON wrapping."""
    call = _call_of(value)
    if call is not None and len(call[0]) + len(call[1]) == 1:
        return to_text(call[0][0] if call[0] else next(iter(call[1].values())))
    decoded = _decoded(value)
    if isinstance(decoded, str):
        return decoded
    return to_text(value)


def _input_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("traceloop.entity.input")) or None


def _output_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("traceloop.entity.output")) or None


def _tool_arguments(value: Any) -> str | None:
    # A tool called with keyword arguments has them as its JSON arguments, like a model's tool call.
    call = _call_of(value)
    if call is not None and not call[0]:
        return to_json_text(call[1])
    return to_text(value)


def _tool(record: SpanRecord) -> ToolInfo | None:
    if record.attributes.get("traceloop.span.kind") != "tool":
        return None
    return tool_info(
        name=coerce_str(record.attributes.get("traceloop.entity.name")),
        arguments=_tool_arguments(record.attributes.get("traceloop.entity.input")),
        result=_readable(record.attributes.get("traceloop.entity.output")),
    )


def _retrieval(record: SpanRecord) -> RetrievalInfo | None:
    documents = []
    for event in record.events:
        if event.name != "db.query.result":
            continue
        fields = {name: event.attributes.get(f"db.query.result.{name}") for name in _RESULT_FIELDS}
        documents.append(to_json_text({name: value for name, value in fields.items() if value is not None}))
    return RetrievalInfo(documents=tuple(documents)) if documents else None


_INDEXED_CONTENT = re.compile(r"^gen_ai\.(?:prompt|completion)\.\d+\.")


def _consumes(entity_type: str, key: str) -> bool:
    # Only the indexed messages: `gen_ai.prompt.name` and friends are not content.
    return entity_type == "generation" and _INDEXED_CONTENT.match(key) is not None


TRACELOOP = Convention(
    name="traceloop",
    input_messages=_input_messages,
    output_choices=_output_choices,
    params=_params,
    session_id=_session_id,
    user_id=_user_id,
    usage=_usage,
    tool=_tool,
    retrieval=_retrieval,
    input_text=_input_text,
    output_text=_output_text,
    consumes=_consumes,
    # Streamed calls carry one empty chunk event per chunk: hundreds of event entities saying nothing.
    consumed_events={
        "retrieval": frozenset({"db.query.result"}),
        "generation": frozenset({"gen_ai.content.completion.chunk"}),
    },
    inputs={
        "input_messages": reads(prefixes=(PROMPT,)),
        "output_choices": reads(prefixes=(COMPLETION,)),
        "params": reads(*_PARAMS),
        "session_id": reads(_ASSOCIATION + "session_id"),
        "user_id": reads(_ASSOCIATION + "user_id"),
        "usage": reads("llm.usage.total_tokens"),
        "tool": reads(
            "traceloop.span.kind", "traceloop.entity.name", "traceloop.entity.input", "traceloop.entity.output"
        ),
        "retrieval": reads(events=("db.query.result",)),
        "input_text": reads("traceloop.entity.input"),
        "output_text": reads("traceloop.entity.output"),
    },
)
