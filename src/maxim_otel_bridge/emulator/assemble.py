"""Stored entities -> the read shape of `GET /v1/log-repositories/logs/traces` (pure, no I/O).

The shape follows Maxim's documented response: the trace's fields, its `duration`, and a nested `timeline`.
Each timeline entry is an entity as it was sent (merged), plus:

- `duration` in milliseconds, from `startTimestamp` / `endTimestamp` (null when either is missing);
- `timestamp`: when the entry happened (its `startTimestamp`);
- generations: `completionResult` from the entity's `result`, with `provider` and `model_params` filled
  from the generation and `error` from the result or the generation;
- retrievals: `docs` (the output as a list of strings);
- spans: their own `timeline` of the entities whose `spanId` names them.

An entity whose `spanId` names no stored span of the trace (its parent has not arrived yet, or never will)
is shown directly under the trace rather than lost; parent links that would form a cycle are cut the same way.
Entries are ordered by `startTimestamp`, then id; entries without a time come last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

__all__ = ["assemble_trace", "duration_ms", "parse_timestamp"]

# The trace-level fields of the documented response, always present (null when never sent).
_TRACE_FIELDS = ("id", "name", "tags", "startTimestamp", "sessionId", "type", "input", "output", "feedback",
                 "endTimestamp")
_ENTRY_FIELDS = ("id", "type", "name", "traceId", "spanId", "tags", "startTimestamp", "endTimestamp")
_GENERATION_FIELDS = ("model", "provider", "messages", "modelParameters")
_RESULT_FIELDS = ("id", "object", "created", "model", "choices", "usage", "cost", "error")
_TIMELESS = "\uffff"  # sorts after every ISO 8601 string


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (with `Z` or an offset), or None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def duration_ms(start: Any, end: Any) -> float | None:
    """Milliseconds from `start` to `end` (ISO 8601), or None when either is missing or unreadable."""
    begin, finish = parse_timestamp(start), parse_timestamp(end)
    if begin is None or finish is None:
        return None
    try:
        return round((finish - begin).total_seconds() * 1000, 3)
    except TypeError:  # one naive, one aware: no meaningful difference
        return None


def _sort_key(entry: Mapping[str, Any]) -> tuple[str, str]:
    begin = parse_timestamp(entry.get("startTimestamp"))
    return (begin.isoformat() if begin is not None else _TIMELESS, str(entry.get("id")))


def _completion_result(generation: Mapping[str, Any]) -> dict[str, Any] | None:
    result = generation.get("result")
    if not isinstance(result, Mapping):
        return None
    shaped = {name: result.get(name) for name in _RESULT_FIELDS}
    shaped.update({key: value for key, value in result.items() if key not in shaped})
    shaped["provider"] = generation.get("provider")
    shaped["model_params"] = generation.get("modelParameters")
    if shaped["error"] is None and isinstance(generation.get("error"), Mapping):
        shaped["error"] = generation["error"]
    return shaped


def _docs(retrieval: Mapping[str, Any]) -> list[str]:
    output = retrieval.get("output")
    if isinstance(output, list):
        return [str(item) for item in output]
    return [] if output is None else [str(output)]


def _entry(entity: Mapping[str, Any]) -> dict[str, Any]:
    entry = {name: entity.get(name) for name in _ENTRY_FIELDS}
    entry.update(entity)
    entry["duration"] = duration_ms(entity.get("startTimestamp"), entity.get("endTimestamp"))
    entry["timestamp"] = entity.get("startTimestamp")
    kind = entity.get("type")
    if kind == "generation":
        for name in _GENERATION_FIELDS:
            entry.setdefault(name, None)
        entry["completionResult"] = _completion_result(entity)
    elif kind == "retrieval":
        entry.setdefault("input", None)
        entry["docs"] = _docs(entity)
    elif kind == "span":
        entry["timeline"] = []
    return entry


def assemble_trace(trace: Mapping[str, Any], members: Iterable[Mapping[str, Any]], *, version: int = 1) -> dict[str, Any]:
    """The `data` object of the read response for `trace` and the entities that belong to it."""
    entries = {}
    for entity in members:
        if entity.get("type") in ("trace", "session") or entity.get("id") == trace.get("id"):
            continue
        entries[str(entity.get("id"))] = _entry(entity)

    parent_of = {}
    for entry_id, entry in entries.items():
        parent = entry.get("spanId")
        if isinstance(parent, str) and parent != entry_id and entries.get(parent, {}).get("type") == "span":
            parent_of[entry_id] = parent
    # Cut cycles: walk up from each entry; a walk that comes back to a visited id loses its last link.
    for start in list(parent_of):
        seen = {start}
        node = start
        while node in parent_of:
            up = parent_of[node]
            if up in seen:
                del parent_of[node]
                break
            seen.add(up)
            node = up

    top: list[dict[str, Any]] = []
    for entry_id, entry in entries.items():
        parent = parent_of.get(entry_id)
        (entries[parent]["timeline"] if parent is not None else top).append(entry)
    for entry in entries.values():
        if "timeline" in entry:
            entry["timeline"].sort(key=_sort_key)
    top.sort(key=_sort_key)

    data = {name: trace.get(name) for name in _TRACE_FIELDS}
    data.update(trace)
    data["duration"] = duration_ms(trace.get("startTimestamp"), trace.get("endTimestamp"))
    data["version"] = version
    data["timeline"] = top
    return data
