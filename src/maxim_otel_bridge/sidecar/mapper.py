"""Mapping spooled traces to Maxim entities, in this process or in worker processes.

Mapping is the most CPU-hungry step of the sidecar (tens of microseconds per span), and Python threads share
one core for it. `ProcessMapper` runs it in worker processes so receiving, spooling and sending keep the main
process's core while the mapping uses the others. Work crosses the process boundary as bytes: the spool's
span bodies go in, each entity's JSON comes out, so no Python objects are pickled span by span, and the
entities are serialized once, where they are made: the client puts those bytes in its requests as they are.

`map_traces` is the one pure function both mappers run; a trace whose mapping raises is reported with its
error (the caller keeps its raw spans as dead letters) and does not affect the others. GenAI log records
travel with their trace as orjson blobs too: joined to their span's record before mapping, or shipped as
event entities when the assembler gave up waiting for their span (`mapping.orphans`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from maxim_otel_bridge.log_events import LogEvent, attach_log_events
from maxim_otel_bridge.mapping import MappingOptions, Placement, map_trace_part
from maxim_otel_bridge.mapping.orphans import orphan_event_entities
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.sidecar.memory import tune_malloc
from maxim_otel_bridge.sidecar.otlp_decode import decode_bodies

__all__ = ["InlineMapper", "Mapper", "ProcessMapper", "TraceInput", "TraceOutput", "map_traces"]

logger = logging.getLogger(__name__)

_DEFAULT_OPTIONS = MappingOptions()


@dataclass(frozen=True, slots=True)
class TraceInput:
    trace_id: str
    blobs: Sequence[bytes]
    """The spool's span bodies (`otlp_decode.decode_bodies`), in arrival order."""
    known: Mapping[str, tuple[str, str | None]]
    """Placements of spans shipped earlier, as (entity type, parent) pairs."""
    events: Sequence[bytes] = ()
    """GenAI log records (orjson `LogEvent`s): joined to their span among `blobs`, the rest shipped as events."""
    retain: bool = False
    """Say which generations to remember for late log records (`TraceOutput.retained`)."""


@dataclass(frozen=True, slots=True)
class TraceOutput:
    trace_id: str
    entities: list[bytes]
    """Each entity as one JSON object (orjson), parents first."""
    placements: dict[str, Placement]
    skipped: tuple[str, ...] = ()
    error: str | None = None
    """Set when the mapping raised; then there are no entities."""
    retained: dict[str, bytes] = field(default_factory=dict)
    """With `TraceInput.retain`, per generation span id: its record (log records joined) when it shipped without
    messages or output, for log records that may still bring them; b"" when it shipped whole."""


def decode_records(blobs: Sequence[bytes]) -> list[SpanRecord]:
    return decode_bodies(blobs)


def map_traces(inputs: Sequence[TraceInput], options: MappingOptions) -> list[TraceOutput]:
    """Map each trace on its own. Never raises for a bad trace: its output carries the error instead."""
    outputs: list[TraceOutput] = []
    for item in inputs:
        known = {span_id: Placement(kind, parent) for span_id, (kind, parent) in item.known.items()}
        try:
            outputs.append(_map_one(item, options, known))
        except Exception as exc:  # noqa: BLE001 - one trace's mapping bug must not stop the others (nor the spool)
            outputs.append(TraceOutput(item.trace_id, [], {}, error=repr(exc)))
    return outputs


def _map_one(item: TraceInput, options: MappingOptions, known: Mapping[str, Placement]) -> TraceOutput:
    records = decode_records(item.blobs)
    if not item.events and not item.retain:
        part = map_trace_part(records, options, known)
        return TraceOutput(item.trace_id, _encoded(part.entities), part.placements, tuple(part.skipped))
    unmatched: list[LogEvent] = []
    if item.events:
        events = [LogEvent.from_json_obj(orjson.loads(blob)) for blob in item.events]
        records, unmatched = attach_log_events(records, events)
    part = map_trace_part(records, options, known)
    entities = part.entities
    if unmatched:
        entities = [*entities, *orphan_event_entities(unmatched, options, {**known, **part.placements})]
    retained = _generations_to_remember(records, entities) if item.retain else {}
    return TraceOutput(item.trace_id, _encoded(entities), part.placements, tuple(part.skipped), retained=retained)


def _encoded(entities: Sequence[dict]) -> list[bytes]:
    return [orjson.dumps(entity) for entity in entities]


def _generations_to_remember(records: Sequence[SpanRecord], entities: Sequence[dict]) -> dict[str, bytes]:
    """Per generation: its record when it lacks messages or output (a late log record may bring them), else b""."""
    lacking: dict[str, bool] = {
        entity["id"]: not entity.get("messages") or not (entity.get("result") or {}).get("choices")
        for entity in entities
        if entity.get("type") == "generation"
    }
    return {
        r.span_id: orjson.dumps(r.to_json_obj()) if lacking[r.span_id] else b""
        for r in records
        if r.span_id in lacking
    }


_Packed = tuple[str, list[bytes], dict[str, tuple[str, "str | None"]], tuple[str, ...], "str | None", dict[str, bytes]]


def _map_packed(inputs: Sequence[TraceInput], options: MappingOptions) -> list[_Packed]:
    """`map_traces` in a worker: placements cross the process boundary as plain tuples, entities as bytes."""
    return [
        (
            out.trace_id,
            out.entities,
            {span_id: (p.entity_type, p.parent) for span_id, p in out.placements.items()},
            out.skipped,
            out.error,
            out.retained,
        )
        for out in map_traces(inputs, options)
    ]


def _unpack(packed: list[_Packed]) -> list[TraceOutput]:
    return [
        TraceOutput(
            trace_id,
            entities,
            {span_id: Placement(kind, parent) for span_id, (kind, parent) in placements.items()},
            skipped,
            error,
            retained,
        )
        for trace_id, entities, placements, skipped, error, retained in packed
    ]


class Mapper(Protocol):
    def map(self, inputs: Sequence[TraceInput]) -> list[TraceOutput]: ...

    def close(self) -> None: ...


class InlineMapper:
    """Maps in the calling thread (`map_workers: 0`)."""

    def __init__(self, options: MappingOptions = _DEFAULT_OPTIONS) -> None:
        self.options = options

    def map(self, inputs: Sequence[TraceInput]) -> list[TraceOutput]:
        return map_traces(inputs, self.options)

    def close(self) -> None:
        pass


PARENT_CHECK_S = 1.0


def _init_worker(sidecar_pid: int) -> None:
    # SIGINT from a terminal reaches the whole process group, and SIGTERM may too (a container runtime):
    # the sidecar decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_malloc()
    # A worker's parent is the forkserver, not the sidecar, and a sidecar killed with SIGKILL closes no pipe
    # the worker waits on: watch the sidecar itself and leave with it, so no orphan outlives a crash.
    threading.Thread(target=_exit_with, args=(sidecar_pid,), name="parent-watch", daemon=True).start()


def _exit_with(sidecar_pid: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_S)
        try:
            os.kill(sidecar_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass  # alive, owned by another user (cannot happen for our own parent, but harmless)


class ProcessMapper:
    """Maps in `workers` processes (started with `forkserver`: forking a process that runs threads is unsafe)."""

    def __init__(self, options: MappingOptions = _DEFAULT_OPTIONS, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.options = options
        self.workers = workers
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )

    def warm_up(self) -> None:
        """Start the workers now (importing the mapping takes a moment) instead of at the first trace."""
        for future in [self._pool.submit(_map_packed, [], self.options) for _ in range(self.workers)]:
            future.result()

    def map(self, inputs: Sequence[TraceInput]) -> list[TraceOutput]:
        pool = self._pool
        try:
            return _unpack(pool.submit(_map_packed, list(inputs), self.options).result())
        except BrokenProcessPool:
            # A worker died (killed, out of memory): map this batch here and start fresh workers.
            with self._lock:
                if self._pool is pool:
                    logger.error("a mapping worker process died; starting new ones")
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
            return map_traces(inputs, self.options)

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
