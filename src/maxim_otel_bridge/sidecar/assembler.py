"""Trace assembly: take the traces that are ready out of the spool, whole, and map each to Maxim entities.

A trace is ready when its local root has arrived (no parent, or a server/consumer span whose parent ran in
another service: see `spool.is_local_root`), when it shipped a part before (late spans go at once), or when
its oldest span has waited `wait_s` (a long-running agent's root ends late: what has arrived ships as a part,
the rest follows in later parts). Each trace is
mapped on its own with the placements of its spans shipped before (`known`, persisted in the spool), so a
late child hangs under the parent sent minutes ago, even across a restart.

Claimed traces are "in flight" until the shipper releases them: two shipper threads never ship the same
trace at once, so parts of one trace go out in order. RAM holds only that set of ids (bounded by
concurrency x `max_spans`); the waiting spans stay on disk. The mapping itself runs through a `Mapper`: in
the calling thread, or in worker processes (`mapper.py`).

GenAI log records (`log_events`) ship with the part holding their span, joined to its record before mapping.
A record whose span shipped earlier re-maps that span's retained record (same entity id: Maxim merges the
content in), or is dropped when that generation already shipped with its messages and output. A record whose
span is nowhere waits `wait_s` from its arrival, then ships as an `event` entity on its trace (under its span
when that span's placement is known), so nothing is lost. While log records come in (within `log_window_s`),
every shipped generation is remembered for them (`TraceOutput.retained`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from maxim_otel_bridge.deadletter import DeadLetter, DeadLetterFile
from maxim_otel_bridge.mapping import Placement
from maxim_otel_bridge.sidecar.mapper import InlineMapper, Mapper, TraceInput, TraceOutput
from maxim_otel_bridge.sidecar.otlp_decode import decode_bodies
from maxim_otel_bridge.sidecar.spool import Spool, StoredLogEvent

__all__ = ["AssembledTrace", "Assembler"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AssembledTrace:
    """One trace (or part of one) taken from the spool and mapped, ready to send."""

    trace_id: str
    seqs: tuple[int, ...]
    """The spool's span groups it came from: deleted once its entities are delivered."""
    span_count: int
    """The spans those groups hold."""
    encoded: list[bytes]
    """Each entity as one JSON object, parents before children: sent as they are (`MaximClient.send_encoded`)."""
    placements: dict[str, Placement]
    mapping_failed: bool = False
    """The mapping raised: the raw spans went to the dead-letter file and `encoded` is empty."""
    log_event_seqs: tuple[int, ...] = ()
    """The spooled log records it shipped (or found redundant): deleted with the spans."""
    retained: tuple[tuple[str, bytes], ...] = ()
    """(span id, record blob or b"") of generations to remember for late log records (see `Spool.complete`)."""

    @property
    def entities(self) -> list[dict]:
        """The entities parsed back, for inspection (shipping sends `encoded`)."""
        return [orjson.loads(data) for data in self.encoded]


class Assembler:
    """Claims ready traces from the spool and maps them (through `mapper`). Thread-safe."""

    def __init__(
        self,
        spool: Spool,
        *,
        wait_s: float,
        max_spans: int,
        mapper: Mapper | None = None,
        dead_letters: DeadLetterFile | None = None,
        log_window_s: float = 3600.0,
    ) -> None:
        self.spool = spool
        self.wait_s = wait_s
        self.log_window_s = log_window_s
        self.max_spans = max_spans
        self.mapper = mapper if mapper is not None else InlineMapper()
        self._dead_letters = dead_letters
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def claim(self, *, flush: bool = False) -> list[AssembledTrace]:
        """Ready traces (every waiting trace with `flush`) up to about `max_spans` spans, mapped, oldest first.

        A trace larger than `max_spans` is taken in parts of about `max_spans` spans in arrival order (whole span
        groups: see `Spool.read_waiting`).
        """
        with self._lock:
            trace_ids = self.spool.ready_traces(
                self.max_spans, wait_s=self.wait_s, exclude=self._in_flight, flush=flush
            )
            inputs: list[TraceInput] = []
            groups: list[tuple[tuple[int, ...], int]] = []
            event_seqs: list[tuple[int, ...]] = []
            budget = self.max_spans
            retain = self.spool.takes_log_events(self.log_window_s)
            # The spans and placements of every trace in one go; log records are looked up per trace.
            waiting = {w.trace_id: w for w in self.spool.read_waiting(trace_ids, self.max_spans)}
            for trace_id in trace_ids:
                if budget <= 0:
                    break
                part = waiting.get(trace_id)
                rows = part.rows if part is not None else []
                stored_events = self.spool.read_log_events(trace_id)
                if not rows and not stored_events:
                    continue
                placements = part.known if part is not None else self.spool.known(trace_id)
                blobs = [blob for _, blob in rows]
                events: list[bytes] = []
                handled: tuple[int, ...] = ()
                if stored_events:
                    events, handled, resent = self._events_to_ship(trace_id, rows, stored_events, placements, flush)
                    blobs.extend(resent)
                    if not blobs and not handled:
                        # Every record waits for a span that has not come: due again after the window.
                        self.spool.defer_trace(trace_id)
                        continue
                spans = part.spans if part is not None else 0
                budget -= spans
                known = {span_id: (p.entity_type, p.parent) for span_id, p in placements.items()}
                inputs.append(TraceInput(trace_id, blobs, known, events, retain))
                groups.append((tuple(seq for seq, _ in rows), spans))
                event_seqs.append(handled)
                self._in_flight.add(trace_id)
        if not inputs:
            return []
        try:
            outputs = self.mapper.map(inputs)
        except BaseException:
            self.release([item.trace_id for item in inputs])
            raise
        return [
            self._assembled(item, part, events, out)
            for item, part, events, out in zip(inputs, groups, event_seqs, outputs)
        ]

    def _events_to_ship(
        self,
        trace_id: str,
        rows: Sequence[tuple[int, bytes]],
        stored: Sequence[StoredLogEvent],
        placements: Mapping[str, Placement],
        flush: bool,
    ) -> tuple[list[bytes], tuple[int, ...], list[bytes]]:
        """Which waiting log records go with this part: (their blobs, the seqs they free, retained span records
        to re-map). Records for a span still to come, or spooled beyond this part, stay."""
        spooled = self.spool.spooled_span_ids(trace_id)
        part_seqs = {seq for seq, _ in rows}
        in_part = {span_id for span_id, seq in spooled.items() if seq in part_seqs}
        retained = self.spool.retained_spans(trace_id)
        due_ns = self.spool.clock_ns() - int(self.wait_s * 1e9)
        events: list[bytes] = []
        handled: list[int] = []
        resent: dict[str, bytes] = {}
        for event in stored:
            span_id = event.span_id
            if span_id is not None and span_id not in in_part:
                if span_id in spooled:
                    continue  # its span is here, in a later part
                record = retained.get(span_id)
                if record is not None and not record:
                    handled.append(event.seq)  # that generation shipped whole: the record repeats what it has
                    continue
                if record is not None:
                    resent[span_id] = record
                elif span_id not in placements and event.received_ns > due_ns and not flush:
                    continue  # its span may still come
            events.append(event.body)
            handled.append(event.seq)
        return events, tuple(handled), list(resent.values())

    def release(self, trace_ids: list[str]) -> None:
        """The shipper is done with these traces (delivered or not): they may be claimed again."""
        with self._lock:
            self._in_flight.difference_update(trace_ids)

    def close(self) -> None:
        self.mapper.close()

    def _assembled(
        self, item: TraceInput, part: tuple[tuple[int, ...], int], event_seqs: tuple[int, ...], out: TraceOutput
    ) -> AssembledTrace:
        seqs, span_count = part
        if out.error is not None:
            # A mapping bug must not stall the spool on one poison trace: keep its raw spans, move on.
            logger.error(
                "mapping trace %s failed: %s (%d spans kept as dead letters)", out.trace_id, out.error, span_count
            )
            if self._dead_letters is not None:
                self._dead_letters.write(
                    DeadLetter(
                        {"type": "otel_span", "id": r.span_id, **r.to_json_obj()}, f"mapping failed: {out.error}"
                    )
                    for r in decode_bodies(item.blobs)
                )
                self._dead_letters.write(
                    DeadLetter({"type": "otel_log_record", **orjson.loads(blob)}, f"mapping failed: {out.error}")
                    for blob in item.events
                )
            return AssembledTrace(
                out.trace_id, seqs, span_count, [], {}, mapping_failed=True, log_event_seqs=event_seqs
            )
        for line in out.skipped:
            logger.warning("trace %s: span skipped: %s", out.trace_id, line)
        return AssembledTrace(
            out.trace_id,
            seqs,
            span_count,
            out.entities,
            out.placements,
            log_event_seqs=event_seqs,
            retained=tuple(out.retained.items()),
        )
