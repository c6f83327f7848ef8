"""Small builders of valid Maxim batch entities (each checked against the published schema when built)."""

from __future__ import annotations

from typing import Any

from maxim_otel_bridge.schema import validate_batch, validate_entity

__all__ = ["batch", "event", "generation", "retrieval", "span", "tool_call", "trace"]


def _checked(entity: dict[str, Any]) -> dict[str, Any]:
    problems = validate_entity(entity)
    assert not problems, [str(p) for p in problems]
    return entity


def _at(seconds: float) -> str:
    whole, millis = divmod(round(seconds * 1000), 1000)
    return f"2026-01-01T00:00:{whole:02d}.{millis:03d}Z"


def trace(trace_id: str, name: str = "request", start: float = 0.0, end: float | None = 2.0, **fields: Any) -> dict:
    entity = {"id": trace_id, "type": "trace", "name": name, "startTimestamp": _at(start)}
    if end is not None:
        entity["endTimestamp"] = _at(end)
    return _checked({**entity, **fields})


def _child(kind: str, entity_id: str, trace_id: str | None, parent: str | None, start: float, end: float | None) -> dict:
    entity: dict[str, Any] = {"id": entity_id, "type": kind, "startTimestamp": _at(start)}
    if end is not None:
        entity["endTimestamp"] = _at(end)
    if trace_id is not None:
        entity["traceId"] = trace_id
    if parent is not None:
        entity["spanId"] = parent
    return entity


def span(entity_id: str, trace_id: str | None, parent: str | None = None, name: str = "step",
         start: float = 0.0, end: float | None = 1.0, **fields: Any) -> dict:
    return _checked({**_child("span", entity_id, trace_id, parent, start, end), "name": name, **fields})


def generation(entity_id: str, trace_id: str | None, parent: str | None = None, model: str = "gpt-4o-mini",
               start: float = 0.1, end: float | None = 0.5, usage: tuple[int, int] = (12, 5), **fields: Any) -> dict:
    prompt, completion = usage
    entity = {
        **_child("generation", entity_id, trace_id, parent, start, end),
        "name": f"chat {model}",
        "model": model,
        "provider": "openai",
        "messages": [{"role": "user", "content": "hello"}],
        "modelParameters": {"temperature": 0.2},
        "result": {
            "id": f"chatcmpl-{entity_id}",
            "object": "chat.completion",
            "created": 1767225600,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        },
    }
    return _checked({**entity, **fields})


def tool_call(entity_id: str, trace_id: str | None, parent: str | None = None, name: str = "search",
              start: float = 0.6, end: float | None = 0.7, **fields: Any) -> dict:
    entity = {**_child("toolCall", entity_id, trace_id, parent, start, end), "name": name, "description": "",
              "args": '{"q": "flights"}', "result": "3 flights"}
    return _checked({**entity, **fields})


def retrieval(entity_id: str, trace_id: str | None, parent: str | None = None, start: float = 0.05,
              end: float | None = 0.08, **fields: Any) -> dict:
    entity = {**_child("retrieval", entity_id, trace_id, parent, start, end), "name": "vector search",
              "input": "flights to Oslo", "output": ["doc one", "doc two"]}
    return _checked({**entity, **fields})


def event(entity_id: str, trace_id: str | None, parent: str | None = None, name: str = "checkpoint",
          at: float = 0.3, **fields: Any) -> dict:
    return _checked({**_child("event", entity_id, trace_id, parent, at, None), "name": name, **fields})


def batch(*entities: dict, repo_id: str = "repo-1") -> dict:
    body = {"repoId": repo_id, "logs": list(entities)}
    problems = validate_batch(body)
    assert not problems, [str(p) for p in problems]
    return body
