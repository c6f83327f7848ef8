"""What a mapped trace must say whichever instrumentation emitted it: tree shape and each generation's content.

Used to compare packages with each other and a live run with its captured fixture.
"""

from __future__ import annotations

import json
from typing import Any


def tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    # Argument strings differ in whitespace between packages; their JSON is what must agree.
    return [
        {
            "name": c["function"]["name"],
            "arguments": json.loads(c["function"]["arguments"]),
        }
        for c in message.get("tool_calls") or []
    ]


def generation_summary(entity: dict[str, Any]) -> dict[str, Any]:
    # One choice per call here; a failed call has none.
    choices = entity["result"]["choices"]
    assert len(choices) <= 1, choices
    choice = choices[0] if choices else {"message": {}, "finish_reason": None}
    return {
        "model": entity["model"],
        "provider": entity["provider"],
        "messages": [
            {k: v for k, v in m.items() if k != "tool_calls"}
            | ({"tool_calls": tool_calls(m)} if m.get("tool_calls") else {})
            for m in entity["messages"]
        ],
        "answer": choice["message"].get("content"),
        "tool_calls": tool_calls(choice["message"]),
        "finish_reason": choice["finish_reason"],
        "usage": entity["result"]["usage"],
    } | ({"error": entity["error"]} if "error" in entity else {})


def summary(entities: list[dict[str, Any]]) -> dict[str, Any]:
    """What must hold whichever package emitted the spans: the tree shape and each generation's content."""
    by_id = {e["id"]: e for e in entities}
    (trace,) = [e for e in entities if e["type"] == "trace"]
    shape = []
    for e in entities:
        if e["type"] in ("trace", "session"):
            continue
        parent = by_id.get(e.get("spanId", ""), trace)
        shape.append((e["type"], parent["type"]))
    return {
        "shape": shape,
        "trace_io": (trace.get("input"), trace.get("output")),
        "generations": [generation_summary(e) for e in entities if e["type"] == "generation"],
        "tools": [(e["name"], json.loads(e["args"]), e["result"]) for e in entities if e["type"] == "toolCall"],
    }
