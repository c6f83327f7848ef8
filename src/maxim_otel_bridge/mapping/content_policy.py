"""What of the mapped entities may leave the machine: content capture off, and redaction patterns.

Both are passes over finished entities (plain dicts), so every convention and every entity type is
covered by the same few rules, whatever attribute the content came from:

- `without_content`: message contents, tool arguments and results, retrieval queries and documents,
  and trace input/output become `CONTENT_PLACEHOLDER`; roles, the number of messages and parts, tool
  call ids and names, finish reasons, usage, model, parameters, times, tags and errors stay. Metadata
  attributes that carry content under any known convention (`is_content_key`) are replaced too.
- `redact`: every match of every pattern in every string value becomes `REDACTION_MARKER`, except the
  values that are references or enum members (ids, `type`, `role`, `provider`, ...), which Maxim needs
  intact to accept and link the entity. Keys (attribute names, tag names) are not rewritten.

`apply_content_policy` runs both as configured and costs nothing when neither is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from maxim_otel_bridge.mapping.options import MappingOptions
from maxim_otel_bridge.mapping.values import ID_KEYS

__all__ = [
    "CONTENT_PLACEHOLDER",
    "REDACTION_MARKER",
    "apply_content_policy",
    "is_content_key",
    "redact",
    "without_content",
]

CONTENT_PLACEHOLDER = "[content not captured]"
"""Stands where content was, so a reader sees that something was said and that the bridge withheld it."""

REDACTION_MARKER = "[REDACTED]"
"""Replaces each match of a redaction pattern."""

_KEPT_KEYS = ID_KEYS | {"type", "role", "provider", "object", "detail"}
"""Outside metadata and tags, values under these keys are references or members of Maxim's enums:
a pattern that happened to match one would make the entity invalid or unlinked."""

_FREE_FORM = frozenset({"metadata", "tags"})
"""Entity fields whose values are the application's own: redacted whatever their key."""

# -- content capture off ----------------------------------------------------------------------------------------

_CONTENT_KEYS = frozenset(
    {
        # OTel GenAI
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
        "gen_ai.prompt",
        "gen_ai.completion",
        # OpenInference and hand-set input/output
        "input.value",
        "output.value",
        "llm.prompts",
        "reranker.query",
        # Traceloop
        "traceloop.entity.input",
        "traceloop.entity.output",
        # Pydantic AI
        "pydantic_ai.all_messages",
        "final_result",
        "tool_arguments",
        "tool_response",
        "inputs",  # an embedder's inputs
        "embeddings",  # and its vectors
        # Vercel AI SDK
        "ai.prompt",
        "ai.prompt.messages",
        "ai.response.text",
        "ai.response.toolCalls",
        "ai.response.object",
        "ai.response.reasoning",
        "ai.result.text",
        "ai.result.toolCalls",
        "ai.result.object",
        "ai.toolCall.args",
        "ai.toolCall.result",
        "ai.value",
        "ai.values",
        "ai.embedding",
        "ai.embeddings",
        # Event attributes and log-record bodies (message events, query results)
        "body",
        "event.body",
        "content",
        "message",
        "tool_calls",
        "document",
        # The mapping's own: reasoning texts of a generation
        "reasoning",
    }
)

_INDEXED_CONTENT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompt_template.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
)
"""Flattened message and document lists: content unless the key names a structural part (below)."""

_STRUCTURAL_LAST_PARTS = frozenset(
    {"role", "name", "id", "finish_reason", "type", "index", "score", "tool_call_id", "mime_type", "model_name"}
)


def is_content_key(key: str) -> bool:
    """Whether an attribute (or event attribute) with this name carries prompts, answers or documents."""
    if key in _CONTENT_KEYS:
        return True
    if key.startswith(_INDEXED_CONTENT_PREFIXES):
        return key.rpartition(".")[2] not in _STRUCTURAL_LAST_PARTS
    return False


def _hidden(value: Any) -> Any:
    """The placeholder in place of a value, keeping its shape: None stays None, a list keeps its length."""
    if value is None or value == "":
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        return [CONTENT_PLACEHOLDER for _ in value]
    return CONTENT_PLACEHOLDER


def _content_without_text(content: Any) -> Any:
    # Message content is a string, a list of parts, or null: the parts keep their number, not their kind.
    if isinstance(content, list):
        return [{"type": "text", "text": CONTENT_PLACEHOLDER} for _ in content]
    return _hidden(content)


def _tool_calls_without_arguments(tool_calls: Any) -> Any:
    if not isinstance(tool_calls, list):
        return tool_calls
    out = []
    for call in tool_calls:
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
            function = dict(call["function"])
            if "arguments" in function:
                function["arguments"] = CONTENT_PLACEHOLDER
            call = {**call, "function": function}
        out.append(call)
    return out


def _message_without_content(message: Any) -> Any:
    if not isinstance(message, Mapping):
        return message
    out = dict(message)
    if "content" in out:
        out["content"] = _content_without_text(out["content"])
    if "tool_calls" in out:
        out["tool_calls"] = _tool_calls_without_arguments(out["tool_calls"])
    return out


def _result_without_content(result: Any) -> Any:
    if not isinstance(result, Mapping) or not isinstance(result.get("choices"), list):
        return result
    choices = []
    for choice in result["choices"]:
        if isinstance(choice, Mapping):
            choice = dict(choice)
            if "message" in choice:
                choice["message"] = _message_without_content(choice["message"])
            if "text" in choice:
                choice["text"] = CONTENT_PLACEHOLDER if choice["text"] else choice["text"]
            if choice.get("logprobs") is not None:
                choice["logprobs"] = None  # its tokens spell out the answer
        choices.append(choice)
    return {**result, "choices": choices}


def _metadata_without_content(metadata: Any) -> Any:
    if not isinstance(metadata, Mapping):
        return metadata
    return {key: _hidden(value) if is_content_key(key) else value for key, value in metadata.items()}


def without_content(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of one entity with its content replaced by `CONTENT_PLACEHOLDER`, its structure kept."""
    out = dict(entity)
    kind = out.get("type")
    if kind == "generation":
        if isinstance(out.get("messages"), list):
            out["messages"] = [_message_without_content(message) for message in out["messages"]]
        if "result" in out:
            out["result"] = _result_without_content(out["result"])
    elif kind == "toolCall":
        for key in ("args", "result"):
            if key in out:
                out[key] = _hidden(out[key])
    elif kind in ("retrieval", "trace"):
        for key in ("input", "output"):
            if key in out:
                out[key] = _hidden(out[key])
    if "metadata" in out:
        out["metadata"] = _metadata_without_content(out["metadata"])
    return out


# -- redaction --------------------------------------------------------------------------------------------------


def _redact_text(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    for pattern in patterns:
        # Most strings match nothing, and search() finds that out faster than sub() (about 40% here).
        if pattern.search(text) is not None:
            text = pattern.sub(REDACTION_MARKER, text)
    return text


def _redact_any(value: Any, patterns: Sequence[re.Pattern[str]], keep_references: bool) -> Any:
    # Exact-type checks first: entities are plain dicts, lists and strings, and ABC checks cost more.
    kind = type(value)
    if kind is str:
        return _redact_text(value, patterns)
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is list:
        return [_redact_any(item, patterns, keep_references) for item in value]
    if isinstance(value, str):
        return _redact_text(value, patterns)
    if isinstance(value, Mapping):
        if keep_references:
            return {
                key: value_
                if key in _KEPT_KEYS and isinstance(value_, str)
                else _redact_any(value_, patterns, key not in _FREE_FORM)
                for key, value_ in value.items()
            }
        return {key: _redact_any(value_, patterns, False) for key, value_ in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_redact_any(item, patterns, keep_references) for item in value]
    return value


def redact(entity: Mapping[str, Any], patterns: Sequence[re.Pattern[str]]) -> dict[str, Any]:
    """A copy of one entity with every match of `patterns` in its string values replaced by the marker.

    Ids, parent ids and enum fields (`type`, `role`, `provider`, `object`, `detail`) are left as they are,
    except inside `metadata` and `tags`, which hold the application's own keys and are redacted whole.
    """
    return _redact_any(entity, patterns, True)


def apply_content_policy(entities: list[dict], options: MappingOptions) -> list[dict]:
    """The entities as `options` allows them to be shipped; the same list when nothing is asked."""
    if options.capture_content and not options.redact:
        return entities
    if not options.capture_content:
        entities = [without_content(entity) for entity in entities]
    if options.redact:
        entities = [redact(entity, options.redact) for entity in entities]
    return entities
