"""Flattened lists in attributes (`llm.input_messages.0.message.role`), read back into nested values.

OpenInference and OpenLLMetry flatten lists of objects into one attribute per leaf, because OTel
attribute values cannot nest. `unflatten` rebuilds `{0: {"message.role": ...}, 1: {...}}` so each
convention reads its own sub-keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["has_prefix", "sub_items", "unflatten"]


def has_prefix(attributes: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in attributes)


def unflatten(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Items under `prefix` (`prefix` ends with a dot), ordered by index, each as {sub-key: value}.

    Keys whose index is not a non-negative integer are ignored; gaps in the indexes are closed up.
    """
    items: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        index_text, _, rest = key[len(prefix) :].partition(".")
        if not index_text.isdigit() or not rest:
            continue
        items.setdefault(int(index_text), {})[rest] = value
    return [items[index] for index in sorted(items)]


def sub_items(item: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Nested flattened lists inside one item (`tool_calls.0.tool_call.id` under a message)."""
    return unflatten(item, prefix)
