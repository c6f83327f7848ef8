"""Answers that depend only on which attribute keys a span carries, remembered per key set.

Spans from one instrumentation carry the same keys in the same order, span after span. Scanning every key of
every span for a prefix (tags, model parameters) is then repeated work: `KeySetMemo` remembers the answer
per key set. It stays small whatever the input: key sets larger than `max_keys` are answered without being
remembered, and past `max_entries` sets the memo starts over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["KeySetMemo"]

T = TypeVar("T")


class KeySetMemo(Generic[T]):
    """`memo(attributes)` is `compute(tuple(attributes))`, remembered per key tuple (thread-safe)."""

    __slots__ = ("_compute", "_max_entries", "_max_keys", "_memo")

    def __init__(self, compute: Callable[[tuple[str, ...]], T], max_entries: int = 1024, max_keys: int = 64) -> None:
        self._compute = compute
        self._max_entries = max_entries
        self._max_keys = max_keys
        self._memo: dict[tuple[str, ...], T] = {}

    def __call__(self, attributes: Mapping[str, Any]) -> T:
        keys = tuple(attributes)
        if len(keys) > self._max_keys:
            return self._compute(keys)
        answer = self._memo.get(keys, _MISSING)
        if answer is _MISSING:
            answer = self._compute(keys)
            if len(self._memo) >= self._max_entries:
                self._memo.clear()
            self._memo[keys] = answer
        return answer  # type: ignore[return-value]


_MISSING: Any = object()
