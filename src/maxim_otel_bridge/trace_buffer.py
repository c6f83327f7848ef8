"""Holds finished spans per trace until the trace is ready to map and send.

Children usually end (and are exported) before their parents, and a child mapped without its parent
would hang under a placeholder. So spans wait here, grouped by trace, until one of:

- the trace's *local root* has ended (a span whose parent is absent, or remote: the part of a distributed
  trace that runs in this process);
- the trace was shipped before (its root went out earlier) and every waiting span's parent is either waiting
  too or already shipped: nothing more is needed to place them;
- its oldest span has waited `trace_wait` seconds (a root that never ends must not hold the rest forever);
- the buffer holds more than `max_spans` spans and log events: the oldest traces go early. Nothing is ever
  dropped here.

Placements of shipped spans are remembered (bounded, least recently used traces forgotten first) and handed
to the mapping as `known`, so late parts of a trace link to the right parents.

GenAI log events (`log_events.LogEvent`) wait next to the spans of their trace. An event leaves with the
part that holds its span, to be joined to it before mapping. An event whose span is still to come waits
for it; one whose span was shipped already leaves at once, as a `late` part, so its span can be mapped
again with the event joined (the same entity id, re-sent with the content): for that the last shipped
version of each span is kept too (`max_shipped_records`, least recently used traces forgotten first). An
event whose span has not arrived after `trace_wait`, whose span was forgotten, or that has no span id,
leaves as an orphan (shipped as an event entity on its trace).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .log_events import LogEvent
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
    max_shipped_records: int = 10_000
    """Shipped spans kept whole, to be mapped again when a log event for them comes late (whole traces are
    forgotten, least recently used first; a late event for a forgotten span ships as an orphan event)."""

    def __post_init__(self) -> None:
        if isinstance(self.trace_wait, bool) or not isinstance(self.trace_wait, (int, float)) or self.trace_wait < 0:
            raise ValueError(f"trace_wait must be a number of seconds >= 0, got {self.trace_wait!r}")
        for name in ("max_spans", "max_remembered_spans", "max_shipped_records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True, slots=True)
class TracePart:
    """Spans of one trace taken out of the buffer together, in arrival order, with their log events."""

    trace_id: str
    records: tuple[SpanRecord, ...]
    reason: str
    """Why it left: `root`, `complete`, `waited`, `overflow`, `flush`, `late` or `orphan`."""
    events: tuple[LogEvent, ...] = ()
    """Log events to join before mapping: their span is in `records`, or was shipped before (then the
    shipper maps that span again, `TraceBuffer.shipped_records`)."""
    orphans: tuple[LogEvent, ...] = ()
    """Log events whose span did not come: to ship as event entities on the trace."""


@dataclass(slots=True)
class _Group:
    first_seen: float
    records: dict[str, SpanRecord] = field(default_factory=dict)
    has_local_root: bool = False
    events: list[tuple[float, LogEvent]] = field(default_factory=list)
    """Log events waiting for their span, with the clock time each arrived."""


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
        self._event_count = 0
        self._remembered: OrderedDict[str, dict[str, Placement]] = OrderedDict()
        self._remembered_count = 0
        self._shipped: OrderedDict[str, dict[str, SpanRecord]] = OrderedDict()
        self._shipped_count = 0
        self._ready: list[TracePart] = []
        """Parts ready as soon as they came: late events, and events that cannot wait for a span."""

    @property
    def span_count(self) -> int:
        with self._lock:
            return self._span_count

    @property
    def event_count(self) -> int:
        """Log events waiting for their span (or to go with it)."""
        with self._lock:
            return self._event_count + sum(len(p.events) + len(p.orphans) for p in self._ready)

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
            if self._over_cap():
                return True
            return any(self._ready_reason(t, self._groups[t], now) for t in touched)

    def add_events(self, events: Iterable[LogEvent]) -> bool:
        """Buffer GenAI log events. Returns True when something became ready (wake the shipper)."""
        now = self._clock()
        touched: set[str] = set()
        ready = False
        with self._lock:
            for event in events:
                if not event.trace_id or not event.span_id:
                    # Nothing to join it to: it goes as it is, under its trace when it has one.
                    self._ready.append(TracePart(event.trace_id or "", (), "orphan", orphans=(event,)))
                    ready = True
                    continue
                shipped = self._shipped.get(event.trace_id)
                if shipped is not None and event.span_id in shipped:
                    self._ready.append(TracePart(event.trace_id, (), "late", events=(event,)))
                    ready = True
                    continue
                group = self._groups.get(event.trace_id)
                if group is None:
                    group = self._groups[event.trace_id] = _Group(first_seen=now)
                group.events.append((now, event))
                self._event_count += 1
                touched.add(event.trace_id)
            if ready or self._over_cap():
                return True
            return any(self._ready_reason(t, self._groups[t], now) for t in touched)

    def take_ready(self, *, flush: bool = False, hold_events: bool = False) -> list[TracePart]:
        """Remove and return the traces ready now (all of them with `flush`), oldest first.

        With `flush`, log events whose span has not come go as orphans, unless `hold_events`: then they keep
        waiting for it (another exporter of the process may still deliver that span).
        """
        now = self._clock()
        taken: list[TracePart] = []
        with self._lock:
            taken.extend(_merge_late(self._ready))
            self._ready = []
            for trace_id in list(self._groups):
                group = self._groups[trace_id]
                late = self._take_late_events(trace_id, group)
                if late is not None:
                    taken.append(late)
                    if not group.records and not group.events:
                        del self._groups[trace_id]
                        continue
                reason = "flush" if flush else self._ready_reason(trace_id, group, now)
                if reason:
                    taken.append(self._pop(trace_id, reason, now, hold_events=hold_events and flush))
            while self._over_cap() and self._groups:
                taken.append(self._pop(next(iter(self._groups)), "overflow", now))
        return [part for part in taken if part.records or part.events or part.orphans]

    def next_due(self) -> float | None:
        """Clock time when the oldest waiting trace will have waited `trace_wait` (None when empty)."""
        with self._lock:
            if self._ready:
                return self._clock()
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

    def shipped_records(self, trace_id: str, span_ids: Iterable[str]) -> list[SpanRecord]:
        """The last shipped version of these spans of `trace_id`, those still kept (see `remember`)."""
        with self._lock:
            shipped = self._shipped.get(trace_id)
            if shipped is None:
                return []
            self._shipped.move_to_end(trace_id)
            return [shipped[s] for s in dict.fromkeys(span_ids) if s in shipped]

    def shipped_children(self, trace_id: str, parent_ids: Iterable[str]) -> list[SpanRecord]:
        """The kept shipped spans of `trace_id` whose parent is one of `parent_ids`."""
        parents = set(parent_ids)
        with self._lock:
            shipped = self._shipped.get(trace_id)
            if shipped is None or not parents:
                return []
            return [r for r in shipped.values() if r.parent_span_id in parents]

    def remember(
        self, trace_id: str, placements: Mapping[str, Placement], records: Iterable[SpanRecord] = ()
    ) -> None:
        """Remember where shipped spans went, and the shipped `records` themselves (for late log events)."""
        with self._lock:
            self._remember_records(trace_id, records)
            if not placements:
                return
            stored = self._remembered.setdefault(trace_id, {})
            before = len(stored)
            stored.update(placements)
            self._remembered_count += len(stored) - before
            self._remembered.move_to_end(trace_id)
            # Forget whole traces, least recently used first; the newest is kept even if alone over the cap.
            while self._remembered_count > self.options.max_remembered_spans and len(self._remembered) > 1:
                _, forgotten = self._remembered.popitem(last=False)
                self._remembered_count -= len(forgotten)

    def _remember_records(self, trace_id: str, records: Iterable[SpanRecord]) -> None:
        stored = self._shipped.get(trace_id)
        for record in records:
            if stored is None:
                stored = self._shipped[trace_id] = {}
            if record.span_id not in stored:
                self._shipped_count += 1
            stored[record.span_id] = record
        if stored is None:
            return
        self._shipped.move_to_end(trace_id)
        while self._shipped_count > self.options.max_shipped_records and len(self._shipped) > 1:
            _, forgotten = self._shipped.popitem(last=False)
            self._shipped_count -= len(forgotten)

    def _take_late_events(self, trace_id: str, group: _Group) -> TracePart | None:
        """Events whose span shipped while they waited here (span and event crossed): they are late now."""
        shipped = self._shipped.get(trace_id)
        if not shipped or not group.events:
            return None
        late = [e for _, e in group.events if e.span_id in shipped]
        if not late:
            return None
        group.events = [(arrived, e) for arrived, e in group.events if e.span_id not in shipped]
        self._event_count -= len(late)
        if group.events and not group.records:
            group.first_seen = min(arrived for arrived, _ in group.events)
        return TracePart(trace_id, (), "late", events=tuple(late))

    def _over_cap(self) -> bool:
        return self._span_count + self._event_count > self.options.max_spans

    def _ready_reason(self, trace_id: str, group: _Group, now: float) -> str:
        if group.has_local_root:
            return "root"
        shipped = self._remembered.get(trace_id)
        if (
            group.records
            and shipped is not None
            and all(
                r.parent_span_id is None or r.parent_span_id in group.records or r.parent_span_id in shipped
                for r in group.records.values()
            )
        ):
            return "complete"
        if now - group.first_seen >= self.options.trace_wait:
            return "waited"
        return ""

    def _pop(self, trace_id: str, reason: str, now: float, *, hold_events: bool = False) -> TracePart:
        """Take the group's spans, the events that can be joined now, and the events that waited too long.

        Events that can still wait for their span stay, as a group of their own.
        """
        group = self._groups.pop(trace_id)
        self._span_count -= len(group.records)
        shipped = self._shipped.get(trace_id, {})
        joined: list[LogEvent] = []
        orphans: list[LogEvent] = []
        waiting: list[tuple[float, LogEvent]] = []
        give_up = reason in ("overflow", "flush") and not hold_events
        for arrived, event in group.events:
            if event.span_id in group.records or event.span_id in shipped:
                joined.append(event)
            elif give_up or now - arrived >= self.options.trace_wait:
                orphans.append(event)
            else:
                waiting.append((arrived, event))
        self._event_count -= len(group.events) - len(waiting)
        if waiting:
            self._groups[trace_id] = _Group(first_seen=min(arrived for arrived, _ in waiting), events=waiting)
        return TracePart(trace_id, tuple(group.records.values()), reason, tuple(joined), tuple(orphans))


def _merge_late(parts: list[TracePart]) -> list[TracePart]:
    """One late part per trace: its spans are mapped again together, with all their late events."""
    merged: list[TracePart] = []
    late_at: dict[str, int] = {}
    for part in parts:
        at = late_at.get(part.trace_id) if part.reason == "late" else None
        if at is None:
            if part.reason == "late":
                late_at[part.trace_id] = len(merged)
            merged.append(part)
        else:
            merged[at] = TracePart(part.trace_id, (), "late", events=merged[at].events + part.events)
    return merged
