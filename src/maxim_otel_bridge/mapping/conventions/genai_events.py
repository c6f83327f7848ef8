"""OpenTelemetry GenAI content carried by span events (or log records joined to the span as events).

Three generations of the conventions, consulted in this order (see `mapping.precedence`):
`gen_ai.client.inference.operation.details` (structured, current), the per-message events deprecated
in v1.37 (`gen_ai.{system,user,assistant,tool}.message`, `gen_ai.choice`), and the older
`gen_ai.content.prompt` / `gen_ai.content.completion` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.mapping.candidates import Choice, Convention, reads
from maxim_otel_bridge.mapping.coerce import coerce_list, coerce_mapping
from maxim_otel_bridge.mapping.conventions.genai import (
    OUTPUT_MESSAGES,
    read_genai_messages,
)
from maxim_otel_bridge.mapping.messages import (
    genai_choices,
    openai_choice,
    openai_message,
    openai_messages,
)
from maxim_otel_bridge.record import EventRecord, SpanRecord

__all__ = ["DETAILS_EVENT", "LEGACY_CONTENT_EVENTS", "MESSAGE_EVENTS", "event_payload"]

DETAILS = "gen_ai.client.inference.operation.details"
MESSAGE_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE = "gen_ai.choice"
PROMPT = "gen_ai.content.prompt"
COMPLETION = "gen_ai.content.completion"


def event_payload(event: EventRecord) -> Mapping[str, Any]:
    """An event's fields: its attributes, overlaid with a log record's body when one was joined in."""
    attributes = event.attributes if isinstance(event.attributes, Mapping) else {}
    body = coerce_mapping(attributes.get("body")) or coerce_mapping(attributes.get("event.body"))
    if body is None:
        return attributes
    merged = dict(attributes)
    merged.update(body)
    return merged


def _details(record: SpanRecord) -> Mapping[str, Any] | None:
    for event in record.events:
        if event.name == DETAILS:
            return event_payload(event)
    return None


def _details_input(record: SpanRecord) -> list[dict] | None:
    payload = _details(record)
    return read_genai_messages(payload, record.span_id) if payload is not None else None


def _details_output(record: SpanRecord) -> list[Choice] | None:
    payload = _details(record)
    return genai_choices(payload.get(OUTPUT_MESSAGES), record.span_id) if payload is not None else None


def _message_events_input(record: SpanRecord) -> list[dict] | None:
    messages = [
        openai_message(event_payload(event), record.span_id, index, role=MESSAGE_ROLES[event.name])
        for index, event in enumerate(record.events)
        if event.name in MESSAGE_ROLES
    ]
    return _answer_tool_calls(messages) or None


def _answer_tool_calls(messages: list[dict]) -> list[dict]:
    """Give tool messages without an id the id of the call they answer.

    OpenLLMetry's `gen_ai.tool.message` bodies carry only the content. The tool messages after an assistant
    message answer its tool calls, one each, in the order the calls were made (the order every agent loop
    appends them in); a message that names its call keeps it.
    """
    unanswered: list[str] = []
    for message in messages:
        if message["role"] == "assistant":
            unanswered = [call["id"] for call in message.get("tool_calls", ()) if call.get("id")]
        elif message["role"] == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None and unanswered:
                message["tool_call_id"] = unanswered.pop(0)
            elif call_id in unanswered:
                unanswered.remove(call_id)
    return messages


def _choice_events_output(record: SpanRecord) -> list[Choice] | None:
    choices = [
        openai_choice(event_payload(event), record.span_id, position)
        for position, event in enumerate(e for e in record.events if e.name == CHOICE)
    ]
    return sorted(choices, key=lambda choice: choice.index) or None


def _legacy_input(record: SpanRecord) -> list[dict] | None:
    for event in record.events:
        if event.name == PROMPT:
            return openai_messages(event_payload(event).get("gen_ai.prompt"), record.span_id)
    return None


def _legacy_output(record: SpanRecord) -> list[Choice] | None:
    for event in record.events:
        if event.name == COMPLETION:
            value = event_payload(event).get("gen_ai.completion")
            items = coerce_list(value)
            if items is None:
                return [Choice(index=0, content=value)] if isinstance(value, str) and value else None
            return [openai_choice(item, record.span_id, index) for index, item in enumerate(items)]
    return None


DETAILS_EVENT = Convention(
    name="gen_ai.operation_details_event",
    input_messages=_details_input,
    output_choices=_details_output,
    consumed_events={"generation": frozenset({DETAILS})},
    inputs={"input_messages": reads(events=(DETAILS,)), "output_choices": reads(events=(DETAILS,))},
)

MESSAGE_EVENTS = Convention(
    name="gen_ai.message_events",
    input_messages=_message_events_input,
    output_choices=_choice_events_output,
    consumed_events={"generation": frozenset({*MESSAGE_ROLES, CHOICE})},
    inputs={"input_messages": reads(events=tuple(MESSAGE_ROLES)), "output_choices": reads(events=(CHOICE,))},
)

LEGACY_CONTENT_EVENTS = Convention(
    name="gen_ai.content_events",
    input_messages=_legacy_input,
    output_choices=_legacy_output,
    consumed_events={"generation": frozenset({PROMPT, COMPLETION})},
    inputs={"input_messages": reads(events=(PROMPT,)), "output_choices": reads(events=(COMPLETION,))},
)
