"""GenAI messages and choices made of texts, tool calls and tool results convert exactly as the general parts
reader converts them."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from maxim_otel_bridge.mapping import messages

PARTS: list[Any] = [
    {"type": "text", "content": "hello"},
    {"type": "text", "content": ""},
    {"type": "text", "content": None},
    {"type": "text", "content": ["a", 1]},
    {"type": "tool_call", "id": "call_1", "name": "search", "arguments": {"q": "x", "n": 2}},
    {"type": "tool_call", "name": "lookup", "arguments": '{"k": 1}'},
    {"type": "tool_call", "id": 7, "name": None, "arguments": None},
    {"type": "tool_call_response", "id": "call_1", "response": {"hits": [1, 2]}},
    {"type": "tool_call_response", "result": "done"},
    {"type": "tool_call_response", "id": "", "response": None},
    {"type": "reasoning", "content": "thinking"},
    {"type": "uri", "modality": "image", "uri": "https://example.com/a.png"},
    {"type": "file", "name": "x.pdf"},
    "plain text part",
    None,
    7,
]

ROLES: list[Any] = ["system", "user", "assistant", "tool", " Tool ", "bot", None]


def messages_to_try() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{"role": "user", "parts": []}]
    for size in (1, 2, 3):
        for combo in itertools.combinations(range(len(PARTS)), size):
            for role in ROLES[:: 1 if size == 1 else 3]:
                message: dict[str, Any] = {"role": role, "parts": [PARTS[i] for i in combo]}
                if role == "tool" and size == 1:
                    message["tool_call_id"] = "call_9"
                found.append(message)
    return found


def general_reader_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "_common_parts", lambda *args: None)


@pytest.mark.parametrize("as_text", [False, True])
def test_every_mix_of_parts_converts_as_the_general_reader_does(monkeypatch: pytest.MonkeyPatch, as_text: bool) -> None:
    cases = messages_to_try()
    values = [orjson.dumps(cases).decode() if as_text else cases]
    fast = [messages.genai_messages(value, "00f067aa0ba902b7") for value in values]
    general_reader_only(monkeypatch)
    general = [messages.genai_messages(value, "00f067aa0ba902b7") for value in values]
    assert fast == general
    assert len(fast[0] or []) >= len(cases)


@pytest.mark.parametrize("as_text", [False, True])
def test_every_mix_of_parts_gives_the_choices_the_general_reader_gives(
    monkeypatch: pytest.MonkeyPatch, as_text: bool
) -> None:
    cases = [{**message, "finish_reason": reason} for message in messages_to_try() for reason in ("tool_call", None)]
    value: Any = orjson.dumps(cases).decode() if as_text else cases
    fast = messages.genai_choices(value, "00f067aa0ba902b7")
    general_reader_only(monkeypatch)
    assert fast == messages.genai_choices(value, "00f067aa0ba902b7")
    assert fast is not None and len(fast) == len(cases)
