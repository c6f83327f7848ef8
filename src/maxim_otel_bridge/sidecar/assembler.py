"""Trace assembly: take the traces that are ready out of the spool, whole, and map each to Maxim entities.

A trace is ready when its local root has arrived (no parent, or a server/consumer span whose parent ran in
another service: see `spool.is_local_root`), or when its oldest span has waited `wait_s` (a long-running
agent's root ends late: what has arrived ships as a part, the rest follows in later parts). Each trace is
mapped on its own with the placements of its spans shipped before (`known`, persisted in the spool), so a
late child hangs under the parent sent minutes ago, even across a restart.

Claimed traces are "in flight" until the shipper releases them: two shipper threads never ship the same
trace at once, so parts of one trace go out in order. RAM holds only that set of ids (bounded by
concurrency x `max_spans`); the waiting spans stay on disk.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from maxim_otel_bridge.deadletter import DeadLetter, DeadLetterFile
from maxim_otel_bridge.mapping import MappingOptions, Placement, map_trace_part
from maxim_otel_bridge.sidecar.spool import Spool

__all__ = ["AssembledTrace", "Assembler"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AssembledTrace:
    """One trace (or part of one) taken from the spool and mapped, ready to send."""

    trace_id: str
    seqs: tuple[int, ...]
    """The spool rows it came from: deleted once its entities are delivered."""
    entities: list[dict]
    """Parents before children."""
    placements: dict[str, Placement]
    mapping_failed: bool = False
    """The mapping raised: the raw spans went to the dead-letter file and `entities` is empty."""

    @property
    def span_count(self) -> int:
        return len(self.seqs)


class Assembler:
    """Claims ready traces from the spool and maps them. Thread-safe."""

    def __init__(
        self,
        spool: Spool,
        *,
        wait_s: float,
        max_spans: int,
        mapping_options: MappingOptions = MappingOptions(),
        dead_letters: DeadLetterFile | None = None,
    ) -> None:
        self.spool = spool
        self.wait_s = wait_s
        self.max_spans = max_spans
        self.mapping_options = mapping_options
        self._dead_letters = dead_letters
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def claim(self, *, flush: bool = False) -> list[AssembledTrace]:
        """Ready traces (every waiting trace with `flush`) up to about `max_spans` spans, mapped, oldest first.

        A trace larger than `max_spans` is taken in parts of `max_spans` spans in arrival order.
        """
        with self._lock:
            trace_ids = self.spool.ready_traces(
                self.max_spans, wait_s=self.wait_s, exclude=self._in_flight, flush=flush
            )
            taken: list[tuple[str, list]] = []
            budget = self.max_spans
            for trace_id in trace_ids:
                if budget <= 0:
                    break
                stored = self.spool.read_trace(trace_id, budget)
                if not stored:
                    continue
                budget -= len(stored)
                taken.append((trace_id, stored))
                self._in_flight.add(trace_id)
        return [self._assemble(trace_id, stored) for trace_id, stored in taken]

    def release(self, trace_ids: list[str]) -> None:
        """The shipper is done with these traces (delivered or not): they may be claimed again."""
        with self._lock:
            self._in_flight.difference_update(trace_ids)

    def _assemble(self, trace_id: str, stored: list) -> AssembledTrace:
        records = [span.record for span in stored]
        seqs = tuple(span.seq for span in stored)
        known = self.spool.known(trace_id)
        try:
            part = map_trace_part(records, self.mapping_options, known)
        except Exception as exc:  # noqa: BLE001 - a mapping bug must not stall the spool on one poison trace
            logger.exception("mapping trace %s failed (%d spans kept as dead letters)", trace_id, len(records))
            if self._dead_letters is not None:
                self._dead_letters.write(
                    DeadLetter({"type": "otel_span", "id": r.span_id, **r.to_json_obj()}, f"mapping failed: {exc!r}")
                    for r in records
                )
            return AssembledTrace(trace_id, seqs, [], {}, mapping_failed=True)
        for line in part.skipped:
            logger.warning("trace %s: span skipped: %s", trace_id, line)
        return AssembledTrace(trace_id, seqs, part.entities, part.placements)
