"""OpenLLMetry / Traceloop attributes (`traceloop.*`, `llm.*`)."""

from __future__ import annotations

from maxim_otel_bridge.mapping.candidates import Convention, Usage
from maxim_otel_bridge.mapping.coerce import coerce_str
from maxim_otel_bridge.mapping.usage import usage_from
from maxim_otel_bridge.mapping.values import to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["TRACELOOP"]

_ASSOCIATION = "traceloop.association.properties."


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get(_ASSOCIATION + "session_id"))


def _user_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get(_ASSOCIATION + "user_id"))


def _usage(record: SpanRecord) -> Usage | None:
    return usage_from(record.attributes, input_keys=(), output_keys=(), total_keys=("llm.usage.total_tokens",))


def _input_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("traceloop.entity.input")) or None


def _output_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("traceloop.entity.output")) or None


TRACELOOP = Convention(
    name="traceloop",
    session_id=_session_id,
    user_id=_user_id,
    usage=_usage,
    input_text=_input_text,
    output_text=_output_text,
)
