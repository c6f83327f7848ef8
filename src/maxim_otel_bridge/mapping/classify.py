"""Which Maxim entity a span becomes (conventions.md section 6: first match wins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.record import SpanRecord

__all__ = [
    "ENTITY_OVERRIDE_KEY",
    "GENERATION",
    "LEAF_TYPES",
    "RETRIEVAL",
    "SPAN",
    "TOOL_CALL",
    "classify",
    "is_embedding",
    "operation_name",
]

SPAN = "span"
GENERATION = "generation"
TOOL_CALL = "toolCall"
RETRIEVAL = "retrieval"

LEAF_TYPES = frozenset({GENERATION, TOOL_CALL, RETRIEVAL})
"""Maxim cannot hang anything under these: their OTel children are re-parented to a span ancestor."""

ENTITY_OVERRIDE_KEY = "maxim.entity.type"
"""Set this attribute to `span`, `generation`, `toolCall` or `retrieval` to choose the entity yourself."""

_OVERRIDES = {
    SPAN: SPAN,
    GENERATION: GENERATION,
    "toolcall": TOOL_CALL,
    "tool_call": TOOL_CALL,
    "tool": TOOL_CALL,
    RETRIEVAL: RETRIEVAL,
}

_GENERATION_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion", "generate"})
_EMBEDDING_OPERATIONS = frozenset({"embeddings", "embedding", "embed"})
_OPENINFERENCE_KINDS = {"LLM": GENERATION, "RETRIEVER": RETRIEVAL, "RERANKER": RETRIEVAL, "TOOL": TOOL_CALL}
_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name")


def operation_name(attributes: Mapping[str, Any]) -> str | None:
    value = attributes.get("gen_ai.operation.name")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def is_embedding(record: SpanRecord) -> bool:
    """An embeddings call (GenAI, OpenInference, Traceloop or Vercel spelling)."""
    return _is_embedding(record, operation_name(record.attributes))


def _is_embedding(record: SpanRecord, operation: str | None) -> bool:
    attributes = record.attributes
    if operation in _EMBEDDING_OPERATIONS:
        return True
    if attributes.get("openinference.span.kind") == "EMBEDDING":
        return True
    if attributes.get("llm.request.type") == "embedding":
        return True
    return record.name.startswith(("ai.embed.", "ai.embedMany.")) or record.name in ("ai.embed", "ai.embedMany")


def classify(record: SpanRecord) -> str:
    """The Maxim entity type for a span.

    Embeddings become spans: Maxim's generation requires messages and a chat or text result, and an
    embeddings call has neither; its model, usage and dimensions are kept in the span's metadata.
    """
    attributes = record.attributes
    override = attributes.get(ENTITY_OVERRIDE_KEY)
    if isinstance(override, str) and override.strip().lower() in _OVERRIDES:
        return _OVERRIDES[override.strip().lower()]
    operation = operation_name(attributes)  # read once: the embedding test and the operation test both ask
    if _is_embedding(record, operation):
        return SPAN
    openinference_kind = attributes.get("openinference.span.kind")
    if isinstance(openinference_kind, str) and openinference_kind.strip():
        return _OPENINFERENCE_KINDS.get(openinference_kind.strip().upper(), SPAN)
    if operation is not None:
        if operation in _GENERATION_OPERATIONS:
            return GENERATION
        if operation == "retrieval":
            return RETRIEVAL
        if operation == "execute_tool":
            return TOOL_CALL
        # invoke_agent, create_agent, invoke_workflow, plan and anything newer are structure.
        return SPAN
    if record.name.endswith((".doGenerate", ".doStream")) and any(
        isinstance(attributes.get(key), str) for key in ("ai.model.id", "gen_ai.request.model")
    ):
        return GENERATION
    if record.name == "ai.toolCall":
        return TOOL_CALL
    if "gen_ai.tool.name" in attributes or "gen_ai.tool.call.id" in attributes:
        return TOOL_CALL
    if attributes.get("traceloop.span.kind") == "tool":
        return TOOL_CALL
    if attributes.get("llm.request.type") in ("chat", "completion"):
        return GENERATION
    if any(key.startswith(("gen_ai.retrieval.", "retrieval.documents.")) for key in attributes):
        return RETRIEVAL
    if any(event.name == "db.query.result" for event in record.events):
        return RETRIEVAL
    if any(isinstance(attributes.get(key), str) and attributes.get(key) for key in _MODEL_KEYS):
        return GENERATION
    return SPAN
