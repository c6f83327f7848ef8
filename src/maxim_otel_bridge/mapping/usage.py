"""Token usage: merging candidates field by field, and Maxim's `usage` object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from maxim_otel_bridge.mapping.candidates import Usage
from maxim_otel_bridge.mapping.coerce import coerce_float, coerce_int

__all__ = ["merge_usage", "usage_from", "usage_object"]


def _first_int(attributes: Mapping[str, Any], keys: Iterable[str]) -> int | None:
    for key in keys:
        if key in attributes:
            value = coerce_int(attributes[key])
            if value is not None and value >= 0:
                return value
    return None


def usage_from(
    attributes: Mapping[str, Any],
    input_keys: Iterable[str],
    output_keys: Iterable[str],
    total_keys: Iterable[str] = (),
    detail_keys: Mapping[str, str] | None = None,
) -> Usage | None:
    """Read usage from attributes: the first valid key of each list wins; None when nothing is present."""
    # Every convention's reader runs on every model call, and most find none of their keys: absent keys are
    # skipped before any coercion, and no Usage is made unless a count was found.
    details: dict[str, float] = {}
    if detail_keys:
        for key, name in detail_keys.items():
            if key in attributes:
                value = coerce_float(attributes[key])
                if value is not None and name not in details:
                    details[name] = value
    input_tokens = _first_int(attributes, input_keys)
    output_tokens = _first_int(attributes, output_keys)
    total_tokens = _first_int(attributes, total_keys)
    if input_tokens is None and output_tokens is None and total_tokens is None and not details:
        return None
    return Usage(input_tokens, output_tokens, total_tokens, details)  # positional: a third cheaper per span


def merge_usage(candidates: Iterable[Usage | None]) -> Usage | None:
    """Field by field, the first candidate that knows a count wins (candidates in precedence order)."""
    found = [usage for usage in candidates if usage is not None]
    if len(found) == 1 and not found[0].is_empty():
        return found[0]  # the usual case, one convention: nothing to merge
    input_tokens = output_tokens = total_tokens = None
    details: dict[str, float] = {}
    for usage in found:
        input_tokens = usage.input_tokens if input_tokens is None else input_tokens
        output_tokens = usage.output_tokens if output_tokens is None else output_tokens
        total_tokens = usage.total_tokens if total_tokens is None else total_tokens
        for name, value in usage.details.items():
            details.setdefault(name, value)
    merged = Usage(input_tokens, output_tokens, total_tokens, details)
    return None if merged.is_empty() else merged


def usage_object(usage: Usage | None) -> dict[str, int]:
    """Maxim's `{prompt_tokens, completion_tokens, total_tokens}`; unknown counts are 0, total = in + out."""
    prompt = usage.input_tokens if usage is not None and usage.input_tokens is not None else 0
    completion = usage.output_tokens if usage is not None and usage.output_tokens is not None else 0
    total = usage.total_tokens if usage is not None and usage.total_tokens is not None else prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
