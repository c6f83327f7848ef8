"""The in-process shipping pipeline: one per destination, shared by the span and the log exporter of a process.

Spans (`MaximSpanExporter`) and GenAI log events (`MaximLogExporter`) meet in one `TraceBuffer`, so an event
is joined to its span before the span is mapped. A background thread maps each ready trace part
(`mapping.map_trace_part`) and sends the entities with the `MaximClient`, the one owner of retries.

`acquire_pipeline` hands every exporter of the same destination (base URL, repository, key, and transport
when one is given) the same running pipeline; each exporter `release`s it at shutdown. The last one out
maps and sends what is left and stops the thread; an earlier one only flushes its traces (log events still
waiting for their span keep waiting: the other exporter may yet deliver that span).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from .client import ClientOptions, MaximClient
from .config import Destination
from .deadletter import DeadLetter, DeadLetterFile
from .log_events import LogEvent, attach_log_events
from .mapping import MappingOptions, map_trace_part
from .mapping.orphans import orphan_event_entities
from .record import SpanRecord
from .trace_buffer import BufferOptions, TraceBuffer, TracePart

__all__ = ["ExporterStats", "Pipeline", "PipelineSettings", "acquire_pipeline"]

logger = logging.getLogger(__name__)

FAILED_SEND_COOLDOWN = 5.0
"""Seconds before pending entities are tried again after a send gave up (unless Maxim said longer)."""
MAX_COOLDOWN = 300.0
"""A Retry-After longer than this is not taken at its word: pending entities must not wait for hours."""
AUTH_FAILED_COOLDOWN = 60.0
"""A rejected key will not fix itself quickly: try again rarely (the client logs it once)."""
IDLE_WAKE = 1.0
"""The background thread re-checks at least this often (a bound, in case a wake-up is missed)."""


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Everything a pipeline needs besides its destination; exporters resolve it from arguments and env."""

    buffer: BufferOptions
    max_pending: int
    client: ClientOptions
    mapping: MappingOptions
    dead_letter_path: Path | None

    def __post_init__(self) -> None:
        if isinstance(self.max_pending, bool) or not isinstance(self.max_pending, int) or self.max_pending < 1:
            raise ValueError(f"max_pending_entities must be a positive int, got {self.max_pending!r}")


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """Counters since the pipeline was made (shared by the span and log exporters of one destination)."""

    spans_received: int
    spans_buffered: int
    entities_pending: int
    entities_delivered: int
    entities_dead_lettered: int
    """Refused by Maxim, or given up on (pending overflow, shutdown, mapping failure)."""
    failed_sends: int
    """Sends that left entities undelivered (retried on a later cycle)."""
    log_events_received: int = 0
    """GenAI event log records taken in."""
    log_records_ignored: int = 0
    """Log records that are not GenAI events (not the bridge's business)."""
    log_events_buffered: int = 0
    log_events_late: int = 0
    """Events that came after their span was shipped: the span was mapped and sent again with them."""
    log_events_orphaned: int = 0
    """Events shipped as event entities because their span did not come (or was forgotten)."""


_registry: dict[tuple[Destination, httpx.BaseTransport | None], Pipeline] = {}
_registry_lock = threading.Lock()


def acquire_pipeline(
    destination: Destination,
    settings: PipelineSettings,
    transport: httpx.BaseTransport | None = None,
    *,
    for_log_events: bool = False,
) -> Pipeline:
    """The running pipeline for `destination`, made on first use; pair every call with `Pipeline.release`.

    A second exporter that asks for other settings joins the running pipeline anyway (one buffer, one
    thread, one client per destination): the first exporter's settings apply, and a warning says so.
    `for_log_events` (the log exporter) makes the pipeline keep shipped spans for late events from then on.
    """
    key = (destination, transport)
    with _registry_lock:
        pipeline = _registry.get(key)
        if pipeline is None:
            pipeline = _registry[key] = Pipeline(destination, settings, transport=transport)
        elif pipeline.settings != settings:
            logger.warning(
                "another Maxim exporter of this process already ships to %s (repository %s) with other settings: "
                "both share its pipeline and its settings",
                destination.base_url,
                destination.repo_id,
            )
        pipeline._users += 1
        pipeline._keep_shipped = pipeline._keep_shipped or for_log_events
        return pipeline


class Pipeline:
    """Buffer, mapping, pending queue, client and background thread for one destination. Thread-safe."""

    def __init__(
        self, destination: Destination, settings: PipelineSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.destination = destination
        self.settings = settings
        self._key = (destination, transport)
        self._users = 0  # guarded by _registry_lock
        self._keep_shipped = False
        """Keep shipped spans for late log events: only once a log exporter feeds this pipeline (memory)."""
        self._client = MaximClient(destination, settings.client, transport=transport)
        self._buffer = TraceBuffer(settings.buffer)
        self._dead_letters = (
            DeadLetterFile(settings.dead_letter_path) if settings.dead_letter_path is not None else None
        )
        self._stage_lock = threading.Lock()  # mapping + `known` bookkeeping, one trace part at a time
        self._send_lock = threading.Lock()  # one sender at a time: the worker, force_flush or shutdown
        self._pending: list[bytes] = []  # each entity's JSON, in the order it goes out
        self._pending_lock = threading.Lock()
        self._retry_not_before = 0.0
        self._next_wake = 0.0
        self._last_error: str | None = None
        self._counts = dict.fromkeys(
            ("received", "delivered", "dead", "failed_sends", "events", "ignored", "late", "orphaned"), 0
        )
        self._counts_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="maxim-exporter", daemon=True)
        self._worker.start()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_entities(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    @property
    def buffered_spans(self) -> int:
        return self._buffer.span_count

    @property
    def stats(self) -> ExporterStats:
        with self._counts_lock:
            counts = dict(self._counts)
        return ExporterStats(
            spans_received=counts["received"],
            spans_buffered=self._buffer.span_count,
            entities_pending=self.pending_entities,
            entities_delivered=counts["delivered"],
            entities_dead_lettered=counts["dead"],
            failed_sends=counts["failed_sends"],
            log_events_received=counts["events"],
            log_records_ignored=counts["ignored"],
            log_events_buffered=self._buffer.event_count,
            log_events_late=counts["late"],
            log_events_orphaned=counts["orphaned"],
        )

    def count(self, name: str, amount: int) -> None:
        if amount:
            with self._counts_lock:
                self._counts[name] += amount

    # -- taking data in (the SDK processors' threads) ----------------------------------------------

    def add_spans(self, entries: Sequence[tuple[SpanRecord, bool]]) -> None:
        """Buffer `(record, is_local_root)` pairs; never waits for the network."""
        self.count("received", len(entries))
        self._woken_by(self._buffer.add(entries))

    def add_log_events(self, events: Sequence[LogEvent]) -> None:
        """Buffer GenAI log events next to the spans of their traces; never waits for the network."""
        self.count("events", len(events))
        self._woken_by(self._buffer.add_events(events))

    def _woken_by(self, ready: bool) -> None:
        if ready:
            if self._buffer.span_count + self._buffer.event_count > self.settings.buffer.max_spans:
                # Bounded memory without blocking this thread on the network: map the oldest traces now.
                self._stage(self._buffer.take_ready())
            self._wake.set()
        else:
            due = self._buffer.next_due()
            if due is not None and due < self._next_wake:
                self._wake.set()  # a new trace is due before the worker planned to look

    # -- flushing and stopping ---------------------------------------------------------------------

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Map everything buffered now (spans and log events) and deliver everything pending."""
        try:
            deadline = time.monotonic() + max(timeout_millis, 0) / 1000
            self._stage(self._buffer.take_ready(flush=True))
            return self._send_pending(deadline)
        except Exception:
            logger.exception("flush to Maxim failed")
            return False

    def release(self, timeout_millis: float = 30_000) -> None:
        """One exporter is done with the pipeline; the last one stops it (see the module docstring)."""
        with _registry_lock:
            self._users -= 1
            last = self._users <= 0
            if last and _registry.get(self._key) is self:
                del _registry[self._key]
        if not last:
            try:
                deadline = time.monotonic() + max(timeout_millis, 0) / 1000
                self._stage(self._buffer.take_ready(flush=True, hold_events=True))
                self._send_pending(deadline)
            except Exception:
                logger.exception("flush to Maxim failed")
            return
        self._close(timeout_millis)

    def _close(self, timeout_millis: float) -> None:
        """Stop the background thread (cutting any backoff wait short), send what is left, close the client.

        Each remaining batch gets one attempt within `timeout_millis`; what still cannot be delivered goes to
        the dead-letter file.
        """
        if self._closed:
            return
        self._closed = True
        end = time.monotonic() + max(timeout_millis, 0) / 1000
        self._stopping.set()
        self._client.interrupt()
        self._wake.set()
        # Interrupted, the thread ends within one request attempt at most; waiting for it means no batch is
        # in flight, so everything undelivered is in the pending queue below.
        self._worker.join()
        try:
            self._stage(self._buffer.take_ready(flush=True))
            self._send_pending(min(end, time.monotonic() + self.settings.client.timeout))
            with self._pending_lock:
                leftover, self._pending = self._pending, []
            if leftover:
                self._bury(leftover, f"not delivered before shutdown: {self._last_error or 'unknown error'}")
        except Exception:
            logger.exception("final flush to Maxim failed")
        finally:
            self._client.close()

    # -- the background thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            due = self._buffer.next_due()
            wait = IDLE_WAKE if due is None else min(IDLE_WAKE, max(due - now, 0.0))
            if self.pending_entities and self._retry_not_before > now:
                wait = min(wait, self._retry_not_before - now)
            self._next_wake = now + wait
            self._wake.wait(wait)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._stage(self._buffer.take_ready())
                if time.monotonic() >= self._retry_not_before:
                    self._send_pending(None)
            except Exception:  # keep the thread alive: a bug in one cycle must not stop all delivery
                logger.exception("Maxim export cycle failed")

    def _stage(self, parts: list[TracePart]) -> None:
        """Map ready trace parts and queue their entities for sending, in order."""
        if not parts:
            return
        staged: list[bytes] = []
        unserializable: list[tuple[Mapping[str, Any], str]] = []
        with self._stage_lock:
            for part in parts:
                for entity in self._map(part):
                    # Serialized at once: entities waiting as dicts outlive a few young collections, get promoted
                    # to the oldest generation and set off full collections of the application's whole heap;
                    # bytes are invisible to the collector. The client sends them as they are.
                    try:
                        staged.append(orjson.dumps(entity))
                    except (orjson.JSONEncodeError, TypeError) as exc:
                        unserializable.append((entity, f"entity is not JSON-serializable: {exc}"))
        for entity, reason in unserializable:
            self._bury([entity], reason)
        if not staged:
            return
        with self._pending_lock:
            self._pending.extend(staged)
            overflow = len(self._pending) - self.settings.max_pending
            dropped = self._pending[:overflow] if overflow > 0 else []
            if dropped:
                del self._pending[:overflow]
        if dropped:
            self._bury(
                dropped,
                f"pending queue full ({self.settings.max_pending}): {self._last_error or 'Maxim unreachable'}",
            )

    def _map(self, part: TracePart) -> list[dict]:
        """The part's entities: its spans with their log events joined, then its orphaned events."""
        records = list(part.records)
        here = {r.span_id for r in records}
        again = [e.span_id for e in part.events if e.span_id is not None and e.span_id not in here]
        if again:
            # Events for spans shipped before: map those spans again, their last version with the events joined.
            shipped = self._buffer.shipped_records(part.trace_id, again)
            # A span that is not a model call gets GenAI events only when they were emitted outside the call's
            # own span (`log_events.attach_log_events`): its shipped children go too, so the join finds the call.
            enclosing = [r.span_id for r in shipped if "gen_ai.request.model" not in r.attributes]
            extra = {r.span_id for r in shipped} | here
            shipped += [
                r for r in self._buffer.shipped_children(part.trace_id, enclosing) if r.span_id not in extra
            ]
            records.extend(shipped)
        records, unmatched = attach_log_events(records, part.events)
        self.count("late", len(again) - len(unmatched))
        orphans = [*unmatched, *part.orphans]  # unmatched: a shipped span forgotten in between
        entities: list[dict] = []
        known = self._buffer.known(part.trace_id) if part.trace_id else {}
        if records:
            try:
                mapped = map_trace_part(records, self.settings.mapping, known)
            except Exception as exc:
                logger.exception("could not map trace %s (%d spans)", part.trace_id, len(records))
                self._bury([_record_letter(r) for r in records], f"mapping failed: {type(exc).__name__}: {exc}")
                mapped = None
            if mapped is not None:
                for line in mapped.skipped:
                    logger.warning("span of trace %s skipped: %s", part.trace_id, line)
                self._buffer.remember(part.trace_id, mapped.placements, records if self._keep_shipped else ())
                entities.extend(mapped.entities)
                known = {**known, **mapped.placements}
        if orphans:
            self.count("orphaned", len(orphans))
            entities.extend(orphan_event_entities(orphans, self.settings.mapping, known))
        return entities

    def _send_pending(self, deadline: float | None) -> bool:
        """Send everything pending; True when all of it was delivered (or dead-lettered)."""
        # A flush waits for a send in progress only until its own deadline.
        timeout = -1 if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not self._send_lock.acquire(timeout=timeout):
            return False
        try:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            if not batch:
                return True
            result = self._client.send_encoded(batch, deadline=deadline)
            self.count("delivered", result.delivered)
            self.count("dead", len(result.dead_lettered))
            self.count("failed_sends", 1 if result.failed else 0)
            if result.failed:
                with self._pending_lock:
                    # Older entities first: they were mapped first and hold the parents.
                    self._pending[:0] = result.failed
                self._last_error = result.last_error
                cooldown = AUTH_FAILED_COOLDOWN if result.auth_failed else FAILED_SEND_COOLDOWN
                cooldown = min(max(cooldown, result.retry_after or 0.0), MAX_COOLDOWN)
                self._retry_not_before = time.monotonic() + cooldown
            else:
                self._retry_not_before = 0.0
            return result.ok
        finally:
            self._send_lock.release()

    def _bury(self, entities: Sequence[Mapping[str, Any] | bytes], reason: str) -> None:
        """Entities that will not be sent: to the dead-letter file (or the log), never silently lost."""
        self.count("dead", len(entities))
        entities = [orjson.loads(e) if isinstance(e, bytes) else e for e in entities]
        if self._dead_letters is not None and self._dead_letters.write(DeadLetter(e, reason) for e in entities):
            logger.error(
                "%d entities not delivered (%s): written to %s", len(entities), reason, self._dead_letters.path
            )
            return
        logger.error(
            "%d entities not delivered (%s) and no dead-letter file took them: %s",
            len(entities),
            reason,
            ", ".join(str(e.get("id")) for e in entities[:20]),
        )


def _record_letter(record: SpanRecord) -> dict[str, Any]:
    """A span the mapping could not handle, kept whole so it can be replayed once the mapping is fixed."""
    return {"type": "spanRecord", "id": record.span_id, "record": record.to_json_obj()}

