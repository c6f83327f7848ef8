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
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import orjson

from maxim_otel_bridge.log_events import LogEvent, attach_log_events
from maxim_otel_bridge.mapping import MappingOptions, Placement, map_trace_part
from maxim_otel_bridge.mapping.orphans import orphan_event_entities
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.sidecar.memory import tune_malloc
from maxim_otel_bridge.sidecar.otlp_decode import decode_bodies

__all__ = [
    "InlineMapper",
    "Mapper",
    "MappingWorkerError",
    "ProcessMapper",
    "TraceInput",
    "TraceOutput",
    "map_traces",
    "serve_worker",
]

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
    records = decode_bodies(item.blobs)
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


class MappingWorkerError(RuntimeError):
    """A mapping worker process could not be started or answered nothing."""


# A frame: the pickle's length (8 bytes, little-endian), then the pickle.
_FRAME = struct.Struct("<Q")

_WORKER_MAIN = "from maxim_otel_bridge.sidecar.mapper import serve_worker; serve_worker()"

WORKER_STOP_S = 5.0
"""How long a closing worker gets to finish its batch and leave before it is killed."""
RESTART_BACKOFF_MAX_S = 60.0
"""Longest wait before starting a worker again after failures in a row (the first restart is immediate)."""


def _write_frame(stream: BinaryIO, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: BinaryIO) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise EOFError("the pipe closed")
    (size,) = _FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-frame")
    return pickle.loads(data)  # noqa: S301 - frames come from the sidecar's own process, over its own pipe


def serve_worker() -> None:
    """A mapping worker's life: read the options, then map each batch read from stdin and write the outputs to
    stdout, until stdin closes. It closes when the sidecar closes the worker or exits in any way (SIGKILL
    included, since the kernel closes a dead process's pipes), so no worker outlives its sidecar."""
    # The sidecar decides when its workers stop: SIGINT from a terminal or SIGTERM from a container runtime
    # may reach every process of the group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_malloc()
    # Frames own the pipe: whatever else would be printed to stdout (by Python or a library) goes to stderr.
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    frames_in = sys.stdin.buffer
    try:
        options = _read_frame(frames_in)
        while True:
            inputs = _read_frame(frames_in)
            _write_frame(frames_out, _map_packed(inputs, options))
    except (EOFError, BrokenPipeError):
        return  # the sidecar is gone or closed the worker


class _Worker:
    """One worker process, started when first needed and again after it died."""

    def __init__(self, options: MappingOptions) -> None:
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self.failures = 0
        """Failures in a row (reset by a batch mapped)."""
        self.retry_at = 0.0
        """Clock time before which no new process is started (after a failure)."""

    def call(self, inputs: list[TraceInput]) -> list[_Packed]:
        """Map `inputs` in the process. Raises MappingWorkerError when the process died or cannot start."""
        try:
            process = self.process if self.process is not None else self._start()
            assert process.stdin is not None and process.stdout is not None
            _write_frame(process.stdin, inputs)
            return _read_frame(process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.kill()
            raise MappingWorkerError(f"the mapping worker process failed: {exc!r}") from None

    def _start(self) -> subprocess.Popen[bytes]:
        # The worker finds the package where this process found it (an earlier tree on PYTHONPATH included).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own session: a terminal's Ctrl-C goes to the sidecar, which stops its workers itself.
            start_new_session=True,
        )
        self.process = process
        assert process.stdin is not None
        _write_frame(process.stdin, self.options)
        return process

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def close(self) -> None:
        """Close the worker's input (it leaves after its batch); kill it if it does not within WORKER_STOP_S."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(WORKER_STOP_S)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass  # a pipe to a dead process may fail to flush: nothing to keep


class ProcessMapper:
    """Maps in `workers` processes, each fed batches over a pipe by one shipping thread at a time.

    The workers are plain child processes running `serve_worker`, started with the interpreter and path of the
    sidecar, not multiprocessing's: a pool would add a forkserver and a resource tracker process (about 25 MB
    together) and a thread to feed its queues. A worker that dies is restarted, and the batch it was given is
    mapped in the calling thread instead. A worker failing again and again (one that cannot start, or is killed
    for memory each time) is restarted after a backoff that doubles up to `RESTART_BACKOFF_MAX_S`, its batches
    mapped in the calling thread meanwhile, so that a broken worker costs neither a process start per batch nor
    an error line per batch."""

    def __init__(
        self,
        options: MappingOptions = _DEFAULT_OPTIONS,
        workers: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.options = options
        self.workers = workers
        self._clock = clock
        self._all = [_Worker(options) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for worker in self._all:
            self._idle.put(worker)

    def warm_up(self) -> None:
        """Start the workers now (importing the mapping takes a moment) instead of at the first trace.
        Raises MappingWorkerError when one does not start."""
        for worker in self._all:
            worker.call([])

    def worker_pids(self) -> list[int]:
        """The running workers' process ids."""
        return [pid for pid in (worker.pid for worker in self._all) if pid is not None]

    def map(self, inputs: Sequence[TraceInput]) -> list[TraceOutput]:
        worker = self._idle.get()
        try:
            if worker.process is None and self._clock() < worker.retry_at:
                return map_traces(inputs, self.options)  # backing off after failures: mapped here
            try:
                packed = worker.call(list(inputs))
            except MappingWorkerError as exc:
                # Killed, out of memory, or not startable: map this batch here and start a new worker later.
                worker.failures += 1
                pause = 0.0 if worker.failures == 1 else min(2.0 ** (worker.failures - 2), RESTART_BACKOFF_MAX_S)
                worker.retry_at = self._clock() + pause
                logger.error(
                    "%s (%d in a row); mapping its batches here, a new worker starts in %.0fs",
                    exc,
                    worker.failures,
                    pause,
                )
                return map_traces(inputs, self.options)
            worker.failures = 0
            return _unpack(packed)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._all:
            worker.close()
