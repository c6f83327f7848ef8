"""Pydantic AI (Logfire) attributes not covered by the GenAI conventions: tool arguments and
responses on `running tool` spans (before instrumentation version 3), and an agent run's conversation
(`pydantic_ai.all_messages`) and final result."""

from __future__ import annotations

from maxim_otel_bridge.mapping.candidates import Convention, ToolInfo, reads, tool_info
from maxim_otel_bridge.mapping.messages import genai_messages, text_of_messages
from maxim_otel_bridge.mapping.values import to_text
from maxim_otel_bridge.record import SpanRecord

__all__ = ["PYDANTIC_AI"]


def _tool(record: SpanRecord) -> ToolInfo | None:
    a = record.attributes
    return tool_info(arguments=to_text(a.get("tool_arguments")), result=to_text(a.get("tool_response")))


def _input_text(record: SpanRecord) -> str | None:
    # An agent run records its whole conversation; what was asked is the last user message in it.
    messages = genai_messages(record.attributes.get("pydantic_ai.all_messages"), record.span_id)
    return text_of_messages(messages, "user") if messages else None


def _output_text(record: SpanRecord) -> str | None:
    return to_text(record.attributes.get("final_result")) or None


def _consumes(entity_type: str, key: str) -> bool:
    return entity_type == "toolCall" and key in ("tool_arguments", "tool_response")


PYDANTIC_AI = Convention(
    name="pydantic_ai",
    tool=_tool,
    input_text=_input_text,
    output_text=_output_text,
    consumes=_consumes,
    inputs={
        "tool": reads("tool_arguments", "tool_response"),
        "input_text": reads("pydantic_ai.all_messages"),
        "output_text": reads("final_result"),
    },
)
