"""Attributes that are not tied to one instrumentation: session and user ids, `input.value` / `output.value`.

`input.value` / `output.value` come from OpenInference but are set by hand in many applications, so
they serve as the last resort for any entity's input and output.
"""

from __future__ import annotations

from maxim_otel_bridge.mapping.candidates import (
    Choice,
    Convention,
    RetrievalInfo,
    ToolInfo,
    reads,
    tool_info,
)
from maxim_otel_bridge.mapping.coerce import coerce_str
from maxim_otel_bridge.mapping.values import to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["GENERIC"]


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("session.id"))


def _user_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("user.id"))


def _input_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("input.value")) or None


def _output_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("output.value")) or None


def _input_messages(record: SpanRecord) -> list[dict] | None:
    text = _input_text(record)
    return [{"role": "user", "content": text}] if text is not None else None


def _output_choices(record: SpanRecord) -> list[Choice] | None:
    text = _output_text(record)
    return [Choice(index=0, content=text)] if text is not None else None


def _tool(record: SpanRecord) -> ToolInfo | None:
    # A tool span's input is its arguments and its output the result (OpenInference TOOL spans).
    return tool_info(arguments=_input_text(record), result=_output_text(record))


def _retrieval(record: SpanRecord) -> RetrievalInfo | None:
    query = _input_text(record)
    return RetrievalInfo(query=query) if query is not None else None


GENERIC = Convention(
    name="generic",
    session_id=_session_id,
    user_id=_user_id,
    input_text=_input_text,
    output_text=_output_text,
    input_messages=_input_messages,
    output_choices=_output_choices,
    tool=_tool,
    retrieval=_retrieval,
    inputs={
        "session_id": reads("session.id"),
        "user_id": reads("user.id"),
        "input_text": reads("input.value"),
        "output_text": reads("output.value"),
        "input_messages": reads("input.value"),
        "output_choices": reads("output.value"),
        "tool": reads("input.value", "output.value"),
        "retrieval": reads("input.value"),
    },
)
