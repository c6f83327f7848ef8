"""Model parameters from `gen_ai.request.*`, in the names Maxim's read-back shape uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.mapping.keysets import KeySetMemo

__all__ = ["PARAM_NAMES", "PARAM_PREFIXES", "genai_params"]

PARAM_NAMES = {
    "temperature": "temperature",
    "top_p": "topP",
    "max_tokens": "maxTokens",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
}
"""GenAI request suffix -> Maxim's name (seed 001). Other parameters keep their own suffix as name."""

PARAM_PREFIXES = ("gen_ai.request.", "gen_ai.openai.request.")
"""Attribute key prefixes of model parameters."""
_NOT_PARAMS = frozenset({"model"})


def _plan(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(parameter name, attribute key) pairs, in the order the parameters are listed; the first key wins."""
    chosen: dict[str, str] = {}
    candidates = sorted([key for key in keys if key.startswith(PARAM_PREFIXES)])
    for prefix in PARAM_PREFIXES:  # the generic prefix first: it wins over a vendor-specific duplicate
        for key in candidates:
            suffix = key[len(prefix) :] if key.startswith(prefix) else ""
            if suffix and suffix not in _NOT_PARAMS:
                chosen.setdefault(PARAM_NAMES.get(suffix, suffix), key)
    return tuple(chosen.items())


_plans = KeySetMemo(_plan)


def genai_params(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """`gen_ai.request.*` (and OpenAI-specific request keys) except the model; None when there are none."""
    params = {name: attributes[key] for name, key in _plans(attributes)}
    return params or None
