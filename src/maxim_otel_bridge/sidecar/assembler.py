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
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import orjson

from maxim_otel_bridge.deadletter import DeadLetter, DeadLetterFile
from maxim_otel_bridge.mapping import Placement
from maxim_otel_bridge.sidecar.mapper import InlineMapper, Mapper, TraceInput, TraceOutput, decode_records
from maxim_otel_bridge.sidecar.spool import Spool

__all__ = ["AssembledTrace", "Assembler"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AssembledTrace:
    """One trace (or part of one) taken from the spool and mapped, ready to send."""

    trace_id: str
    seqs: tuple[int, ...]
    """The spool rows it came from: deleted once its entities are delivered."""
    encoded: list[bytes]
    """Each entity as one JSON object, parents before children: sent as they are (`MaximClient.send_encoded`)."""
    placements: dict[str, Placement]
    mapping_failed: bool = False
    """The mapping raised: the raw spans went to the dead-letter file and `encoded` is empty."""

    @property
    def span_count(self) -> int:
        return len(self.seqs)

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
    ) -> None:
        self.spool = spool
        self.wait_s = wait_s
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

        A trace larger than `max_spans` is taken in parts of `max_spans` spans in arrival order.
        """
        with self._lock:
            trace_ids = self.spool.ready_traces(
                self.max_spans, wait_s=self.wait_s, exclude=self._in_flight, flush=flush
            )
            inputs: list[TraceInput] = []
            seqs: list[tuple[int, ...]] = []
            for waiting in self.spool.read_waiting(trace_ids, self.max_spans):
                known = {span_id: (p.entity_type, p.parent) for span_id, p in waiting.known.items()}
                inputs.append(TraceInput(waiting.trace_id, [body for _, body in waiting.rows], known))
                seqs.append(tuple(seq for seq, _ in waiting.rows))
                self._in_flight.add(waiting.trace_id)
        if not inputs:
            return []
        try:
            outputs = self.mapper.map(inputs)
        except BaseException:
            self.release([item.trace_id for item in inputs])
            raise
        return [self._assembled(item, rows, out) for item, rows, out in zip(inputs, seqs, outputs)]

    def release(self, trace_ids: list[str]) -> None:
        """The shipper is done with these traces (delivered or not): they may be claimed again."""
        with self._lock:
            self._in_flight.difference_update(trace_ids)

    def close(self) -> None:
        self.mapper.close()

    def _assembled(self, item: TraceInput, seqs: tuple[int, ...], out: TraceOutput) -> AssembledTrace:
        if out.error is not None:
            # A mapping bug must not stall the spool on one poison trace: keep its raw spans, move on.
            logger.error(
                "mapping trace %s failed: %s (%d spans kept as dead letters)", out.trace_id, out.error, len(seqs)
            )
            if self._dead_letters is not None:
                self._dead_letters.write(
                    DeadLetter(
                        {"type": "otel_span", "id": r.span_id, **r.to_json_obj()}, f"mapping failed: {out.error}"
                    )
                    for r in decode_records(item.blobs)
                )
            return AssembledTrace(out.trace_id, seqs, [], {}, mapping_failed=True)
        for line in out.skipped:
            logger.warning("trace %s: span skipped: %s", out.trace_id, line)
        return AssembledTrace(out.trace_id, seqs, out.entities, out.placements)
