"""Vercel AI SDK telemetry (`ai.*`), which reaches the bridge through the sidecar from Node services.

Model calls are the `ai.*.doGenerate` / `ai.*.doStream` spans; their messages are the SDK's own
shape (`content` parts `text`, `tool-call`, `tool-result`), converted here to Maxim's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.mapping.candidates import Choice, Convention, ToolInfo, Usage, reads, tool_info
from maxim_otel_bridge.mapping.coerce import coerce_float, coerce_list, coerce_str
from maxim_otel_bridge.mapping.ids import tool_call_id
from maxim_otel_bridge.mapping.messages import (
    make_tool_call,
    normalize_finish_reason,
    normalize_role,
)
from maxim_otel_bridge.mapping.usage import usage_from
from maxim_otel_bridge.mapping.values import to_json_text, to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["VERCEL"]

_SETTINGS = "ai.settings."
# The SDK's setting names are already camelCase like Maxim's; these are the ones that are not model parameters.
_NOT_PARAMS = frozenset({"maxRetries", "headers", "abortSignal"})


def _call(part: Mapping[str, Any], span_id: str, message_index: int, index: int) -> dict[str, Any]:
    call_id = coerce_str(part.get("toolCallId")) or tool_call_id(span_id, message_index, index)
    # SDK v4 says `args`, v5 says `input`.
    return make_tool_call(call_id, part.get("toolName"), part.get("args", part.get("input")))


def _messages(value: Any, span_id: str) -> list[dict[str, Any]] | None:
    items = coerce_list(value)
    if items is None:
        text = to_text(value)
        return [{"role": "user", "content": text}] if text else None
    out: list[dict[str, Any]] = []
    for message_index, message in enumerate(items):
        if not isinstance(message, Mapping):
            out.append({"role": "user", "content": to_text(message)})
            continue
        role = normalize_role(message.get("role"))
        content = message.get("content")
        if not isinstance(content, list):
            out.append({"role": role, "content": to_text(content)})
            continue
        texts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text":
                texts.append({"type": "text", "text": to_text(part.get("text")) or ""})
            elif kind in ("image", "file") and _image_url(part) is not None:
                texts.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
            elif kind == "tool-call":
                calls.append(_call(part, span_id, message_index, len(calls)))
            elif kind == "tool-result":
                result: dict[str, Any] = {
                    "role": "tool",
                    "content": to_text(_tool_output(part.get("result", part.get("output")))) or "",
                }
                call_id = coerce_str(part.get("toolCallId"))
                if call_id is not None:
                    result["tool_call_id"] = call_id
                results.append(result)
            else:
                texts.append({"type": "text", "text": to_json_text(part)})
        if texts or calls or not results:
            entry: dict[str, Any] = {"role": role}
            entry["content"] = texts[0]["text"] if len(texts) == 1 and texts[0]["type"] == "text" else (texts or None)
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        out.extend(results)
    return out


def _input_messages(record: SpanRecord) -> list[dict] | None:
    value = record.attributes.get("ai.prompt.messages")
    return _messages(value, record.span_id) if value is not None else None


def _output_choices(record: SpanRecord) -> list[Choice] | None:
    a = record.attributes
    text = to_text(a.get("ai.response.text"))
    calls = [
        _call(call, record.span_id, 1000, index)
        for index, call in enumerate(coerce_list(a.get("ai.response.toolCalls")) or ())
        if isinstance(call, Mapping)
    ]
    if text is None and not calls:
        return None
    return [Choice(index=0, content=text, tool_calls=tuple(calls))]


def _finish_reasons(record: SpanRecord) -> list[str] | None:
    reason = normalize_finish_reason(record.attributes.get("ai.response.finishReason"))
    return [reason] if reason is not None else None


def _params(record: SpanRecord) -> dict[str, Any] | None:
    params = {
        key[len(_SETTINGS) :]: value
        for key, value in sorted(record.attributes.items())
        if key.startswith(_SETTINGS) and key[len(_SETTINGS) :] not in _NOT_PARAMS
    }
    return params or None


def _model(record: SpanRecord) -> str | None:
    a = record.attributes
    return coerce_str(a.get("ai.response.model")) or coerce_str(a.get("ai.model.id"))


def _provider(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.model.provider"))


def _response_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.response.id"))


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.telemetry.metadata.sessionId"))


def _user_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.telemetry.metadata.userId"))


_INPUT_TOKEN_KEYS = ("ai.usage.promptTokens", "ai.usage.inputTokens")
_OUTPUT_TOKEN_KEYS = ("ai.usage.completionTokens", "ai.usage.outputTokens")
_TOTAL_TOKEN_KEYS = ("ai.usage.tokens", "ai.usage.totalTokens")
_TOOL_KEYS = (
    "ai.toolCall.name",
    "ai.toolCall.id",
    "ai.toolCall.args",
    "ai.toolCall.input",
    "ai.toolCall.result",
    "ai.toolCall.output",
)


def _usage(record: SpanRecord) -> Usage | None:
    return usage_from(
        record.attributes,
        input_keys=_INPUT_TOKEN_KEYS,
        output_keys=_OUTPUT_TOKEN_KEYS,
        total_keys=_TOTAL_TOKEN_KEYS,
    )


def _first_chunk_seconds(record: SpanRecord) -> float | None:
    milliseconds = coerce_float(record.attributes.get("ai.response.msToFirstChunk"))
    return milliseconds / 1000 if milliseconds is not None else None


def _tool(record: SpanRecord) -> ToolInfo | None:
    a = record.attributes
    return tool_info(
        name=coerce_str(a.get("ai.toolCall.name")),
        call_id=coerce_str(a.get("ai.toolCall.id")),
        arguments=to_text(a.get("ai.toolCall.args", a.get("ai.toolCall.input"))),
        result=_unquoted(to_text(a.get("ai.toolCall.result", a.get("ai.toolCall.output")))),
    )


def _tool_output(output: Any) -> Any:
    # Since AI SDK 5 a tool result is typed, `{type: "text" | "json" | "error-text" | ..., value}`: the value is the result.
    if isinstance(output, Mapping) and "value" in output and isinstance(output.get("type"), str):
        return output["value"]
    return output


def _unquoted(text: str | None) -> str | None:
    # `ai.toolCall.result` is the result JSON-encoded, so a string result arrives quoted; show the string itself.
    if text is not None and len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        if isinstance(decoded, str):
            return decoded
    return text


def _image_url(part: Mapping[str, Any]) -> str | None:
    """An image part (`image`, or `file` with an image media type) as a URL: links as they are, base64 as a data URL."""
    data = part.get("image") if part.get("type") == "image" else part.get("data")
    media_type = coerce_str(part.get("mediaType", part.get("mimeType"))) or ""
    if not isinstance(data, str) or (part.get("type") == "file" and not media_type.startswith("image/")):
        return None
    if data.startswith(("http://", "https://", "data:")):
        return data
    return f"data:{media_type or 'image/*'};base64,{data}"


def _input_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("ai.prompt")) or None


def _output_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("ai.response.text")) or None


_CONSUMED = {
    "generation": frozenset({"ai.prompt.messages", "ai.response.text", "ai.response.toolCalls"}),
    "toolCall": frozenset({"ai.toolCall.args", "ai.toolCall.input", "ai.toolCall.result", "ai.toolCall.output"}),
}


def _consumes(entity_type: str, key: str) -> bool:
    return key in _CONSUMED.get(entity_type, ())


VERCEL = Convention(
    name="vercel_ai",
    model=_model,
    provider=_provider,
    input_messages=_input_messages,
    output_choices=_output_choices,
    finish_reasons=_finish_reasons,
    response_id=_response_id,
    params=_params,
    session_id=_session_id,
    user_id=_user_id,
    usage=_usage,
    first_chunk_seconds=_first_chunk_seconds,
    tool=_tool,
    input_text=_input_text,
    output_text=_output_text,
    consumes=_consumes,
    inputs={
        "model": reads("ai.response.model", "ai.model.id"),
        "provider": reads("ai.model.provider"),
        "input_messages": reads("ai.prompt.messages"),
        "output_choices": reads("ai.response.text", "ai.response.toolCalls"),
        "finish_reasons": reads("ai.response.finishReason"),
        "response_id": reads("ai.response.id"),
        "params": reads(prefixes=(_SETTINGS,)),
        "session_id": reads("ai.telemetry.metadata.sessionId"),
        "user_id": reads("ai.telemetry.metadata.userId"),
        "usage": reads(*_INPUT_TOKEN_KEYS, *_OUTPUT_TOKEN_KEYS, *_TOTAL_TOKEN_KEYS),
        "first_chunk_seconds": reads("ai.response.msToFirstChunk"),
        "tool": reads(*_TOOL_KEYS),
        "input_text": reads("ai.prompt"),
        "output_text": reads("ai.response.text"),
    },
)
