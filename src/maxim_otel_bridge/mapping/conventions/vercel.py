"""Vercel AI SDK telemetry (`ai.*`), which reaches the bridge through the sidecar from Node services."""

from __future__ import annotations

from maxim_otel_bridge.mapping.candidates import Convention, Usage
from maxim_otel_bridge.mapping.coerce import coerce_str
from maxim_otel_bridge.mapping.usage import usage_from
from maxim_otel_bridge.mapping.values import to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["VERCEL"]


def _model(record: SpanRecord) -> str | None:
    a = record.attributes
    return coerce_str(a.get("ai.response.model")) or coerce_str(a.get("ai.model.id"))


def _provider(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.model.provider"))


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.telemetry.metadata.sessionId"))


def _user_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get("ai.telemetry.metadata.userId"))


def _usage(record: SpanRecord) -> Usage | None:
    return usage_from(
        record.attributes,
        input_keys=("ai.usage.promptTokens", "ai.usage.inputTokens"),
        output_keys=("ai.usage.completionTokens", "ai.usage.outputTokens"),
        total_keys=("ai.usage.tokens", "ai.usage.totalTokens"),
    )


def _input_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("ai.prompt")) or None


def _output_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("ai.response.text")) or None


VERCEL = Convention(
    name="vercel_ai",
    model=_model,
    provider=_provider,
    session_id=_session_id,
    user_id=_user_id,
    usage=_usage,
    input_text=_input_text,
    output_text=_output_text,
)
