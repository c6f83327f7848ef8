"""Holds finished spans per trace until the trace is ready to map and send.

Children usually end (and are exported) before their parents, and a child mapped without its parent
would hang under a placeholder. So spans wait here, grouped by trace, until one of:

- the trace's *local root* has ended (a span whose parent is absent, or remote: the part of a distributed
  trace that runs in this process);
- the trace was shipped before (its root went out earlier) and every waiting span's parent is either waiting
  too or already shipped: nothing more is needed to place them;
- its oldest span has waited `trace_wait` seconds (a root that never ends must not hold the rest forever);
- the buffer holds more than `max_spans`: the oldest traces go early. Nothing is ever dropped here.

Placements of shipped spans are remembered (bounded, least recently used traces forgotten first) and handed
to the mapping as `known`, so late parts of a trace link to the right parents.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .mapping import Placement
from .record import SpanRecord

__all__ = ["BufferOptions", "TracePart", "TraceBuffer"]


@dataclass(frozen=True, slots=True)
class BufferOptions:
    trace_wait: float = 5.0
    """Seconds a trace's oldest span may wait for the trace's root before the trace goes anyway."""
    max_spans: int = 10_000
    """Spans held at most; past it the oldest traces go early."""
    max_remembered_spans: int = 100_000
    """Placements of shipped spans remembered for late children (whole traces are forgotten, oldest first)."""

    def __post_init__(self) -> None:
        if isinstance(self.trace_wait, bool) or not isinstance(self.trace_wait, (int, float)) or self.trace_wait < 0:
            raise ValueError(f"trace_wait must be a number of seconds >= 0, got {self.trace_wait!r}")
        for name in ("max_spans", "max_remembered_spans"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True, slots=True)
class TracePart:
    """Spans of one trace taken out of the buffer together, in arrival order."""

    trace_id: str
    records: tuple[SpanRecord, ...]
    reason: str
    """Why it left: `root`, `complete`, `waited`, `overflow` or `flush`."""


@dataclass(slots=True)
class _Group:
    first_seen: float
    records: dict[str, SpanRecord] = field(default_factory=dict)
    has_local_root: bool = False


class TraceBuffer:
    """Thread-safe. `add` from the exporting thread; `take_ready` from whoever ships."""

    def __init__(
        self, options: BufferOptions = BufferOptions(), *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: OrderedDict[str, _Group] = OrderedDict()  # insertion order = oldest first
        self._span_count = 0
        self._remembered: OrderedDict[str, dict[str, Placement]] = OrderedDict()
        self._remembered_count = 0

    @property
    def span_count(self) -> int:
        with self._lock:
            return self._span_count

    @property
    def trace_count(self) -> int:
        with self._lock:
            return len(self._groups)

    def add(self, records: Iterable[tuple[SpanRecord, bool]]) -> bool:
        """Buffer `(record, is_local_root)` pairs. Returns True when something became ready (wake the shipper)."""
        now = self._clock()
        touched: set[str] = set()
        with self._lock:
            for record, is_local_root in records:
                group = self._groups.get(record.trace_id)
                if group is None:
                    group = self._groups[record.trace_id] = _Group(first_seen=now)
                if record.span_id not in group.records:
                    self._span_count += 1
                # A span exported twice keeps its last version (as the mapping does for duplicates).
                group.records[record.span_id] = record
                group.has_local_root = group.has_local_root or is_local_root
                touched.add(record.trace_id)
            if self._span_count > self.options.max_spans:
                return True
            return any(self._ready_reason(t, self._groups[t], now) for t in touched)

    def take_ready(self, *, flush: bool = False) -> list[TracePart]:
        """Remove and return the traces ready now (all of them with `flush`), oldest first."""
        now = self._clock()
        taken: list[TracePart] = []
        with self._lock:
            for trace_id in list(self._groups):
                group = self._groups[trace_id]
                reason = "flush" if flush else self._ready_reason(trace_id, group, now)
                if reason:
                    taken.append(self._pop(trace_id, reason))
            while self._span_count > self.options.max_spans and self._groups:
                taken.append(self._pop(next(iter(self._groups)), "overflow"))
        return taken

    def next_due(self) -> float | None:
        """Clock time when the oldest waiting trace will have waited `trace_wait` (None when empty)."""
        with self._lock:
            if not self._groups:
                return None
            return min(g.first_seen for g in self._groups.values()) + self.options.trace_wait

    def known(self, trace_id: str) -> Mapping[str, Placement]:
        """Placements remembered for spans of `trace_id` already shipped."""
        with self._lock:
            placements = self._remembered.get(trace_id)
            if placements is None:
                return {}
            self._remembered.move_to_end(trace_id)
            return dict(placements)

    def remember(self, trace_id: str, placements: Mapping[str, Placement]) -> None:
        if not placements:
            return
        with self._lock:
            stored = self._remembered.setdefault(trace_id, {})
            before = len(stored)
            stored.update(placements)
            self._remembered_count += len(stored) - before
            self._remembered.move_to_end(trace_id)
            # Forget whole traces, least recently used first; the newest is kept even if alone over the cap.
            while self._remembered_count > self.options.max_remembered_spans and len(self._remembered) > 1:
                _, forgotten = self._remembered.popitem(last=False)
                self._remembered_count -= len(forgotten)

    def _ready_reason(self, trace_id: str, group: _Group, now: float) -> str:
        if group.has_local_root:
            return "root"
        shipped = self._remembered.get(trace_id)
        if shipped is not None and all(
            r.parent_span_id is None or r.parent_span_id in group.records or r.parent_span_id in shipped
            for r in group.records.values()
        ):
            return "complete"
        if now - group.first_seen >= self.options.trace_wait:
            return "waited"
        return ""

    def _pop(self, trace_id: str, reason: str) -> TracePart:
        group = self._groups.pop(trace_id)
        self._span_count -= len(group.records)
        return TracePart(trace_id, tuple(group.records.values()), reason)
