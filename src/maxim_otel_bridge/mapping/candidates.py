"""The values a convention reader can contribute for each target field, and the reader shape itself.

A convention (OTel GenAI, its deprecated events, OpenInference, Traceloop, Vercel AI SDK, ...) is a
`Convention`: a name plus one optional function per target field. Each function looks at a span and
returns its candidate value, or None when the span does not carry that field in this convention.
Which convention wins for a field is declared once, in `precedence.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maxim_otel_bridge.record import SpanRecord

__all__ = [
    "Choice",
    "Convention",
    "Inputs",
    "Reader",
    "RetrievalInfo",
    "ToolInfo",
    "Usage",
    "reads",
    "retrieval_info",
    "tool_info",
]


@dataclass(frozen=True, slots=True)
class Choice:
    """One output choice of a model call, before it is shaped into Maxim's completion result."""

    index: int
    content: str | None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    finish_reason: str | None = None
    reasoning: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts; any field may be unknown. `details` holds cache/reasoning counts by name."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    details: Mapping[str, float] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return (
            self.input_tokens is None and self.output_tokens is None and self.total_tokens is None and not self.details
        )


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """What a tool-call span says about the tool and the call (any field may be unknown)."""

    name: str | None = None
    call_id: str | None = None
    description: str | None = None
    arguments: str | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class RetrievalInfo:
    """A retrieval's query and the documents it returned (each document as text)."""

    query: str | None = None
    documents: tuple[str, ...] | None = None


def tool_info(
    name: str | None = None,
    call_id: str | None = None,
    description: str | None = None,
    arguments: str | None = None,
    result: str | None = None,
) -> ToolInfo | None:
    """A `ToolInfo`, or None when it would know nothing (readers run on every tool span: no empty object)."""
    if name is None and call_id is None and description is None and arguments is None and result is None:
        return None
    return ToolInfo(name, call_id, description, arguments, result)


def retrieval_info(query: str | None = None, documents: tuple[str, ...] | None = None) -> RetrievalInfo | None:
    """A `RetrievalInfo`, or None when it would know nothing."""
    if query is None and documents is None:
        return None
    return RetrievalInfo(query, documents)


Reader = Callable[[SpanRecord], Any]


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a reader answers from: on a span with none of these attributes and events, it returns None.

    Declared next to the reader, so that a span's readers can be narrowed, once per attribute key set, to the
    ones that can answer (`precedence.py`). Anything else the reader looks at (the span's name, kind, times)
    only matters once one of these is present.
    """

    keys: frozenset[str] = frozenset()
    """Attribute keys, exactly."""
    prefixes: tuple[str, ...] = ()
    """Attribute key prefixes (indexed keys such as `llm.input_messages.0.message.role`)."""
    events: frozenset[str] = frozenset()
    """Span event names."""

    def present(self, keys: tuple[str, ...], event_names: tuple[str, ...]) -> bool:
        """Whether a span with these attribute keys and event names carries any of the inputs."""
        own = self.keys
        prefixes = self.prefixes
        for key in keys:
            if key in own or (prefixes and key.startswith(prefixes)):
                return True
        events = self.events
        return bool(events) and any(name in events for name in event_names)


def reads(*keys: str, prefixes: tuple[str, ...] = (), events: tuple[str, ...] = ()) -> Inputs:
    """`Inputs` from attribute keys (positional), key prefixes and event names."""
    return Inputs(frozenset(keys), tuple(prefixes), frozenset(events))


@dataclass(frozen=True, slots=True, eq=False)  # identity: a convention is one module-level object
class Convention:
    """One instrumentation convention: a reader per target field it can supply (None: it cannot)."""

    name: str
    model: Callable[[SpanRecord], str | None] | None = None
    provider: Callable[[SpanRecord], str | None] | None = None
    input_messages: Callable[[SpanRecord], list[dict] | None] | None = None
    output_choices: Callable[[SpanRecord], list[Choice] | None] | None = None
    finish_reasons: Callable[[SpanRecord], list[str] | None] | None = None
    response_id: Callable[[SpanRecord], str | None] | None = None
    params: Callable[[SpanRecord], dict[str, Any] | None] | None = None
    usage: Callable[[SpanRecord], Usage | None] | None = None
    first_chunk_seconds: Callable[[SpanRecord], float | None] | None = None
    tool: Callable[[SpanRecord], ToolInfo | None] | None = None
    retrieval: Callable[[SpanRecord], RetrievalInfo | None] | None = None
    session_id: Callable[[SpanRecord], str | None] | None = None
    user_id: Callable[[SpanRecord], str | None] | None = None
    input_text: Callable[[SpanRecord], str | None] | None = None
    output_text: Callable[[SpanRecord], str | None] | None = None
    consumes: Callable[[str, str], bool] | None = None
    """`consumes(entity_type, key)`: the entity already carries this attribute's content, so it is left
    out of the entity's metadata instead of being sent twice."""
    consumed_events: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Entity type -> span event names whose content that entity carries (messages on a generation,
    documents on a retrieval): not repeated as event entities."""
    inputs: Mapping[str, Inputs] = field(default_factory=dict)
    """Field -> what its reader answers from (`Inputs`); a field left out is read on every span."""
