"""Chat messages and output choices in Maxim's (OpenAI-shaped) form, from the shapes instrumentations emit.

Two source shapes exist: OTel GenAI's `{role, parts: [...]}` messages (current) and OpenAI-style
`{role, content, tool_calls, tool_call_id}` messages (deprecated GenAI events, `gen_ai.prompt`).
Nothing here raises: unexpected shapes become text, malformed JSON keeps its raw text as a message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maxim_otel_bridge.mapping.candidates import Choice
from maxim_otel_bridge.mapping.coerce import coerce_int, coerce_str, parse_json
from maxim_otel_bridge.mapping.ids import tool_call_id
from maxim_otel_bridge.mapping.values import to_json_text, to_text

__all__ = [
    "genai_choices",
    "genai_messages",
    "genai_system_instructions",
    "make_tool_call",
    "normalize_finish_reason",
    "normalize_role",
    "openai_choice",
    "openai_message",
    "openai_messages",
    "text_of_messages",
]

_ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
    "model": "model",
    "chatbot": "chatbot",
}

# GenAI finish reasons are singular (`tool_call`), the Vercel AI SDK's hyphenated (`tool-calls`); Maxim's result is
# OpenAI-shaped (`tool_calls`).
_FINISH_REASONS = {
    "tool_call": "tool_calls",
    "tool-calls": "tool_calls",
    "function_call": "tool_calls",
    "content-filter": "content_filter",
    "end_turn": "stop",
    "max_tokens": "length",
}


def normalize_role(raw: Any) -> str:
    """Any role name into Maxim's role enum; unrecognised roles are treated as the user speaking."""
    if isinstance(raw, str):
        role = _ROLE_ALIASES.get(raw)  # nearly always spelled as the enum already
        return role if role is not None else _ROLE_ALIASES.get(raw.strip().lower(), "user")
    return "user"


def normalize_finish_reason(raw: Any) -> str | None:
    text = coerce_str(raw)
    if text is None:
        return None
    key = text.strip().lower()
    return _FINISH_REASONS.get(key, key)


def _arguments_text(arguments: Any) -> str:
    # openai-v2 emits tool_call arguments as a JSON object; Maxim wants the JSON text.
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return to_json_text(arguments)


def make_tool_call(call_id: str, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {
            "name": name if type(name) is str else coerce_str(name) or "",
            "arguments": arguments if type(arguments) is str else _arguments_text(arguments),
        },
    }


def _part_tool_call(part: Mapping[str, Any], span_id: str, message_index: int, position: int) -> dict[str, Any]:
    """A `tool_call` part as a tool call; without an id of its own, it gets a stable derived one."""
    call_id = part.get("id")
    if type(call_id) is not str or not call_id:  # nearly always the call's own id, as text
        call_id = coerce_str(call_id) or tool_call_id(span_id, message_index, position)
    return make_tool_call(call_id, part.get("name"), part.get("arguments"))


def _part_tool_result(part: Mapping[str, Any]) -> dict[str, Any]:
    """A `tool_call_response` part as a `role: tool` message."""
    # The spec names the payload `response`; Pydantic AI emits `result`.
    payload = part.get("response", part.get("result"))
    result: dict[str, Any] = {"role": "tool", "content": to_text(payload) or ""}
    answered_id = coerce_str(part.get("id"))
    if answered_id is not None:
        result["tool_call_id"] = answered_id
    return result


def _with_answered_id(entry: dict[str, Any], message: Mapping[str, Any]) -> None:
    """A `role: tool` message keeps the id of the call it answers, given on the message itself."""
    answered = coerce_str(message.get("tool_call_id") or message.get("id"))
    if answered is not None:
        entry["tool_call_id"] = answered


def _parse_list(value: Any) -> tuple[list[Any] | None, str | None]:
    """A list from a list or JSON text; otherwise (None, raw text) so the caller can keep the text."""
    if isinstance(value, (list, tuple)):
        return list(value), None
    if isinstance(value, str):
        if not value.strip():
            return None, None
        parsed = parse_json(value)
        if parsed.ok and isinstance(parsed.value, list):
            return parsed.value, None
        if parsed.ok and isinstance(parsed.value, Mapping):
            return [parsed.value], None
        return None, value
    if isinstance(value, Mapping):
        return [value], None
    return None, None


# --- OTel GenAI parts -------------------------------------------------------------------------------


def _image_item(part: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    # Pydantic AI before instrumentation version 4 names its parts `image-url` {url} and `binary` {media_type, content}.
    if kind == "image-url" and isinstance(part.get("url"), str):
        return {"type": "image_url", "image_url": {"url": part["url"]}}
    modality = str(part.get("modality") or "").lower()
    mime = str(part.get("mime_type") or part.get("media_type") or "").lower()
    if modality != "image" and not mime.startswith("image/"):
        return None
    if kind == "uri" and isinstance(part.get("uri"), str):
        return {"type": "image_url", "image_url": {"url": part["uri"]}}
    if kind in ("blob", "binary") and isinstance(part.get("content"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{mime or 'image/*'};base64,{part['content']}"}}
    return None


class _PartsReader:
    """Sorts the parts of one GenAI message into content items, tool calls, tool results, reasoning."""

    __slots__ = ("items", "message_index", "reasoning", "span_id", "tool_calls", "tool_results")

    def __init__(self, span_id: str, message_index: int) -> None:
        self.span_id = span_id
        self.message_index = message_index
        self.items: list[dict[str, Any]] = []
        # Most messages have none of these: an empty tuple until the first one, not three lists per message.
        self.tool_calls: list[dict[str, Any]] | tuple[()] = ()
        self.tool_results: list[dict[str, Any]] | tuple[()] = ()
        self.reasoning: list[str] | tuple[()] = ()

    def add(self, part: Any) -> None:
        if type(part) is not dict:  # parsed JSON gives dicts: the ABC checks below are for everything else
            if isinstance(part, str):
                self.items.append({"type": "text", "text": part})
                return
            if not isinstance(part, Mapping):
                if part is not None:
                    self.items.append({"type": "text", "text": to_json_text(part)})
                return
        kind = part.get("type")
        if kind == "text":
            content = part.get("content")
            self.items.append({"type": "text", "text": (content if type(content) is str else to_text(content)) or ""})
        elif kind == "reasoning":
            text = to_text(part.get("content"))
            if text:
                reasoning = self.reasoning or []
                reasoning.append(text)
                self.reasoning = reasoning
        elif kind == "tool_call":
            calls = self.tool_calls or []
            calls.append(_part_tool_call(part, self.span_id, self.message_index, len(calls)))
            self.tool_calls = calls
        elif kind == "tool_call_response":
            results = self.tool_results or []
            results.append(_part_tool_result(part))
            self.tool_results = results
        else:
            image = _image_item(part)
            # Parts Maxim has no slot for (files, audio, server-side tools) stay visible as their JSON.
            self.items.append(image if image is not None else {"type": "text", "text": to_json_text(part)})

    def content(self) -> str | list[dict[str, Any]] | None:
        if not self.items:
            return None
        if len(self.items) == 1 and self.items[0]["type"] == "text":
            return self.items[0]["text"]
        return list(self.items)

    def text(self) -> str | None:
        texts = [item["text"] if item["type"] == "text" else to_json_text(item) for item in self.items]
        return "\n".join(texts) if texts else None


def _read_parts(message: Mapping[str, Any], span_id: str, message_index: int) -> _PartsReader:
    reader = _PartsReader(span_id, message_index)
    parts = message.get("parts")
    if isinstance(parts, (list, tuple)):
        for part in parts:
            reader.add(part)
    elif "content" in message:
        # Some emitters put OpenAI-style `content` on a GenAI message.
        content = message.get("content")
        for part in content if isinstance(content, (list, tuple)) else [content]:
            reader.add({"type": "text", "content": part} if isinstance(part, str) else part)
    return reader


def _common_parts(
    parts: list[Any], span_id: str, message_index: int
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """Texts, tool calls and tool results, when those are all the parts hold (nearly every message), read as the
    parts reader reads them but without it; None for any other part, which only the reader handles."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in parts:
        if type(part) is not dict:
            return None
        kind = part.get("type")
        if kind == "text":
            content = part.get("content")
            if type(content) is not str:
                return None
            texts.append(content)
        elif kind == "tool_call":
            calls.append(_part_tool_call(part, span_id, message_index, len(calls)))
        elif kind == "tool_call_response":
            results.append(_part_tool_result(part))
        else:
            return None
    return texts, calls, results


def _common_message(
    message: Mapping[str, Any], role: str, parts: list[Any], span_id: str, message_index: int
) -> list[dict[str, Any]] | None:
    """What `_genai_message` makes of a message of texts, tool calls and tool results; None for other parts."""
    common = _common_parts(parts, span_id, message_index)
    if common is None:
        return None
    texts, calls, results = common
    if not (texts or calls) and results:
        return results
    if not texts:
        content: str | list[dict[str, Any]] | None = None
    elif len(texts) == 1:
        content = texts[0]
    else:
        content = [{"type": "text", "text": text} for text in texts]
    entry: dict[str, Any] = {"role": role, "content": content}
    if calls:
        entry["tool_calls"] = calls
    if role == "tool":
        _with_answered_id(entry, message)
    return [entry, *results] if results else [entry]


def _genai_message(message: Any, span_id: str, message_index: int) -> list[dict[str, Any]]:
    if type(message) is not dict and not isinstance(message, Mapping):
        return [{"role": "user", "content": to_text(message) or ""}]
    role = normalize_role(message.get("role"))
    parts = message.get("parts")
    if type(parts) is list:
        if len(parts) == 1:
            single = _single_part_message(message, role, parts[0], span_id, message_index)
            if single is not None:
                return [single]
        common = _common_message(message, role, parts, span_id, message_index)
        if common is not None:
            return common
    reader = _read_parts(message, span_id, message_index)
    out: list[dict[str, Any]] = []
    if reader.items or reader.tool_calls or not reader.tool_results:
        entry: dict[str, Any] = {"role": role, "content": reader.content()}
        if reader.tool_calls:
            entry["tool_calls"] = reader.tool_calls
        if role == "tool":
            _with_answered_id(entry, message)
        out.append(entry)
    # Tool results belong in `role: tool` messages paired by id, whichever role carried them.
    out.extend(reader.tool_results)
    return out


def genai_messages(value: Any, span_id: str, fallback_role: str = "user") -> list[dict[str, Any]] | None:
    """Maxim messages from `gen_ai.input.messages` (JSON text or structured); raw text kept if malformed."""
    items, raw = _parse_list(value)
    if items is None:
        return [{"role": fallback_role, "content": raw}] if raw is not None else None
    out: list[dict[str, Any]] = []
    for index, message in enumerate(items):
        out += _genai_message(message, span_id, index)
    return out


def _single_part_message(
    message: Mapping[str, Any], role: str, part: Any, span_id: str, message_index: int
) -> dict[str, Any] | None:
    """What `_common_message` makes of a message of one text, tool call or tool result part (nearly every
    message has one part): its one entry, built without the lists; None for anything else."""
    if type(part) is not dict:
        return None
    kind = part.get("type")
    if kind == "text":
        content = part.get("content")
        if type(content) is not str:
            return None
        entry: dict[str, Any] = {"role": role, "content": content}
    elif kind == "tool_call":
        entry = {"role": role, "content": None, "tool_calls": [_part_tool_call(part, span_id, message_index, 0)]}
    elif kind == "tool_call_response":
        return _part_tool_result(part)  # a message of tool results alone is its results (whatever its role)
    else:
        return None
    if role == "tool":
        _with_answered_id(entry, message)
    return entry


def genai_system_instructions(value: Any) -> list[dict[str, Any]] | None:
    """One system message from `gen_ai.system_instructions` (a list of parts, JSON text or plain text)."""
    if value is None:
        return None
    items, raw = _parse_list(value)
    if items is None:
        return [{"role": "system", "content": raw}] if raw is not None else None
    reader = _PartsReader("", 0)
    for part in items:
        reader.add(part)
    content = reader.content()
    return [{"role": "system", "content": content}] if content is not None else None


def genai_choices(value: Any, span_id: str) -> list[Choice] | None:
    """Output choices from `gen_ai.output.messages` (one message per choice); raw text kept if malformed."""
    items, raw = _parse_list(value)
    if items is None:
        return [Choice(index=0, content=raw)] if raw is not None else None
    choices: list[Choice] = []
    for index, message in enumerate(items):
        if type(message) is not dict and not isinstance(message, Mapping):
            choices.append(Choice(index=index, content=to_text(message)))
            continue
        parts = message.get("parts")
        common = _common_parts(parts, span_id, 1000 + index) if type(parts) is list else None
        if common is not None:
            texts, calls, results = common
            content = "\n".join(texts) if texts else None
            reasoning: tuple[str, ...] = ()
        else:
            reader = _read_parts(message, span_id, 1000 + index)
            content = reader.text()
            calls, results, reasoning = list(reader.tool_calls), list(reader.tool_results), tuple(reader.reasoning)
        if results:
            # A model does not answer with tool results; keep them visible rather than lose them.
            extra = "\n".join(str(result.get("content") or "") for result in results)
            content = f"{content}\n{extra}" if content else extra
        # Positional: keyword arguments cost a third of building the frozen Choice.
        choices.append(
            Choice(index, content, tuple(calls), normalize_finish_reason(message.get("finish_reason")), reasoning)
        )
    return choices


# --- OpenAI-shaped messages (deprecated GenAI events, gen_ai.prompt / gen_ai.completion) ------------


def _openai_tool_calls(value: Any, span_id: str, message_index: int) -> list[dict[str, Any]]:
    items, _ = _parse_list(value)
    calls: list[dict[str, Any]] = []
    for index, call in enumerate(items or ()):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        name = function.get("name", call.get("name"))
        arguments = function.get("arguments", call.get("arguments"))
        call_id = coerce_str(call.get("id")) or tool_call_id(span_id, message_index, index)
        calls.append(make_tool_call(call_id, name, arguments))
    return calls


def _openai_content(content: Any) -> str | list[dict[str, Any]] | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        items: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, str):
                items.append({"type": "text", "text": part})
            elif isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                items.append({"type": "text", "text": part["text"]})
            elif (
                isinstance(part, Mapping)
                and part.get("type") == "image_url"
                and isinstance(part.get("image_url"), Mapping)
            ):
                url = part["image_url"].get("url")
                if isinstance(url, str):
                    items.append({"type": "image_url", "image_url": {"url": url}})
                    continue
                items.append({"type": "text", "text": to_json_text(part)})
            else:
                items.append({"type": "text", "text": to_json_text(part)})
        return items
    return to_text(content)


def openai_message(message: Any, span_id: str, message_index: int, role: str | None = None) -> dict[str, Any]:
    """A Maxim message from an OpenAI-shaped message (role taken from `role` when the source implies it)."""
    if not isinstance(message, Mapping):
        return {"role": role or "user", "content": to_text(message)}
    out: dict[str, Any] = {
        "role": normalize_role(role or message.get("role")),
        "content": _openai_content(message.get("content")),
    }
    calls = _openai_tool_calls(message.get("tool_calls"), span_id, message_index)
    if calls:
        out["tool_calls"] = calls
    call_id = coerce_str(message.get("tool_call_id") or (message.get("id") if out["role"] == "tool" else None))
    if call_id is not None and out["role"] == "tool":
        out["tool_call_id"] = call_id
    return out


def openai_messages(value: Any, span_id: str) -> list[dict[str, Any]] | None:
    items, raw = _parse_list(value)
    if items is None:
        return [{"role": "user", "content": raw}] if raw is not None else None
    return [openai_message(message, span_id, index) for index, message in enumerate(items)]


def openai_choice(choice: Any, span_id: str, default_index: int) -> Choice:
    """A choice from `{index, finish_reason, message{content, tool_calls}}` (the `gen_ai.choice` shape)."""
    if not isinstance(choice, Mapping):
        return Choice(index=default_index, content=to_text(choice))
    message = choice.get("message")
    if isinstance(message, str):
        parsed = parse_json(message)
        message = parsed.value if parsed.ok and isinstance(parsed.value, Mapping) else {"content": message}
    if not isinstance(message, Mapping):
        # A flat message (`gen_ai.completion` items) or a text-completion choice (`text`).
        message = choice if "text" not in choice else {"content": choice.get("text")}
    index = coerce_int(choice.get("index"))
    content = _openai_content(message.get("content"))
    if isinstance(content, list):
        content = "\n".join(item.get("text", "") if item["type"] == "text" else to_json_text(item) for item in content)
    return Choice(
        index=index if index is not None and index >= 0 else default_index,
        content=content,
        # Traceloop's `gen_ai.choice` body puts the tool calls beside the message, not inside it.
        tool_calls=tuple(
            _openai_tool_calls(message.get("tool_calls") or choice.get("tool_calls"), span_id, 1000 + default_index)
        ),
        finish_reason=normalize_finish_reason(choice.get("finish_reason")),
    )


def text_of_messages(messages: Sequence[Mapping[str, Any]], role: str | None = None) -> str | None:
    """The text of the last message (of `role`, if given): a trace's input or output in one string."""
    for message in reversed(messages):
        if role is not None and message.get("role") != role:
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                item.get("text", "") for item in content if isinstance(item, Mapping) and item.get("type") == "text"
            ]
            if texts:
                return "\n".join(texts)
    return None
