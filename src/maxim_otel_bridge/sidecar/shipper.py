"""Shipping: assembled traces go to Maxim through the client; spool rows are deleted only once delivered.

Who retries what (one owner per layer, never two layers retrying the same failure):

- The client owns the retries of one send: within `send_deadline` it retries 429/502/503/504 and connection
  errors with jittered backoff (or the server's Retry-After), bisects 400/413/422 and dead-letters the entities
  Maxim refuses. What it could not deliver by the deadline it hands back as `failed`.
- The shipper never re-sends on its own. It only schedules: after a failed send the destination is paused
  (`DestinationGate`: exponential from 1 s to `backoff_max`, or the server's Retry-After); when the pause ends
  ONE worker probes with the next send while the others wait; a success reopens the gate for all (at start too,
  only one worker sends until a send succeeds). So a long outage costs about one send (a few requests) per
  pause, whatever the concurrency: no retry storm.

Undelivered traces stay in the spool and are claimed again after the pause. Delivery is at-least-once: a crash
between Maxim's answer and the spool's delete sends those entities again, which Maxim merges by id.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from maxim_otel_bridge.client import MaximClient, SendResult
from maxim_otel_bridge.mapping import Placement
from maxim_otel_bridge.retry import RETRYABLE_STATUSES, BackoffPolicy
from maxim_otel_bridge.sidecar.assembler import AssembledTrace, Assembler
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
from maxim_otel_bridge.sidecar.spool import Spool

__all__ = ["DestinationGate", "DestinationStatus", "Shipper", "TimedTransport"]

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
"""How often an idle worker looks for ready traces (one indexed query)."""

_DEFAULT_BACKOFF = BackoffPolicy()

PURGE_EVERY_S = 60.0
"""How often placements older than the retention are deleted (busy or idle)."""


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    """What `/readyz` shows about the destination."""

    state: str
    """`unknown` (nothing sent yet), `ok`, `backing_off` or `auth_failed`."""
    consecutive_failures: int = 0
    retry_in_s: float = 0.0
    last_error: str | None = None


class DestinationGate:
    """Per-destination backoff shared by every shipper thread: open, paused until a time, or probing."""

    def __init__(
        self,
        policy: BackoffPolicy = _DEFAULT_BACKOFF,
        *,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] | None = None,
    ) -> None:
        import random as _random

        self.policy = policy
        self._clock = clock
        self._random = random if random is not None else _random.random
        self._cond = threading.Condition()
        self._failures = 0
        self._paused_until = 0.0
        self._probing = False
        self._auth_failed = False
        self._last_error: str | None = None
        self._succeeded_once = False
        # Until a send succeeds, one sender at a time: an outage at start costs one sender's retries, not N.
        self._healthy = False
        self._closed = False

    def wait_turn(self, deadline: float | None = None) -> bool:
        """Block until this thread may send. False when the gate was closed or `deadline` (clock time) passed."""
        with self._cond:
            while not self._closed:
                now = self._clock()
                if deadline is not None and now >= deadline:
                    return False
                if self._healthy:
                    return True
                if not self._probing and now >= self._paused_until:
                    self._probing = True
                    return True
                wake = self._paused_until if not self._probing else now + 1.0
                if deadline is not None:
                    wake = min(wake, deadline)
                self._cond.wait(max(0.01, wake - now))
            return False

    def succeeded(self) -> None:
        with self._cond:
            if self._failures:
                logger.info("Maxim accepts requests again after %d failed sends", self._failures)
            self._failures = 0
            self._healthy = True
            self._probing = False
            self._auth_failed = False
            self._last_error = None
            self._succeeded_once = True
            self._cond.notify_all()

    def failed(self, *, retry_after: float | None, auth_failed: bool, error: str | None) -> float:
        """A send left entities undelivered: pause the destination. Returns the pause in seconds."""
        with self._cond:
            delay = self.policy.delay(self._failures, self._random)
            if retry_after is not None:
                delay = max(delay, retry_after)
            delay = min(delay, self.policy.maximum)
            self._failures += 1
            self._healthy = False
            self._probing = False
            self._auth_failed = auth_failed
            self._last_error = error
            self._paused_until = self._clock() + delay
            self._cond.notify_all()
            return delay

    def release_turn(self) -> None:
        """A thread that got a probing turn had nothing to send: let another probe."""
        with self._cond:
            self._probing = False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def status(self) -> DestinationStatus:
        with self._cond:
            if self._auth_failed:
                state = "auth_failed"
            elif self._failures:
                state = "backing_off"
            else:
                state = "ok" if self._succeeded_once else "unknown"
            retry_in = max(0.0, self._paused_until - self._clock()) if self._failures else 0.0
            return DestinationStatus(state, self._failures, retry_in, self._last_error)


class TimedTransport(httpx.BaseTransport):
    """Wraps the client's HTTP transport to time every request to Maxim into the latency histogram."""

    def __init__(self, metrics: BridgeMetrics, inner: httpx.BaseTransport | None = None) -> None:
        self._metrics = metrics
        self._inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError:
            self._metrics.maxim_request_finished("network", time.perf_counter() - started)
            raise
        status = response.status_code
        outcome = "success" if 200 <= status < 300 else "retryable" if status in RETRYABLE_STATUSES else "permanent"
        self._metrics.maxim_request_finished(outcome, time.perf_counter() - started)
        return response

    def close(self) -> None:
        self._inner.close()


class Shipper:
    """`concurrency` threads: claim ready traces, send their entities, delete what was delivered."""

    def __init__(
        self,
        spool: Spool,
        assembler: Assembler,
        client: MaximClient,
        gate: DestinationGate,
        *,
        concurrency: int = 2,
        send_deadline: float = 5.0,
        placement_retention: float = 3600.0,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.spool = spool
        self.assembler = assembler
        self.client = client
        self.gate = gate
        self.concurrency = concurrency
        self.send_deadline = send_deadline
        self.placement_retention = placement_retention
        self.metrics = metrics
        self._stop = threading.Event()
        self._flush_deadline: float | None = None
        self._threads: list[threading.Thread] = []
        self._last_purge = time.monotonic()
        self._purge_lock = threading.Lock()

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._work, name=f"shipper-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def drain(self, grace_s: float) -> bool:
        """Ship everything spooled (complete or not) for up to `grace_s`, then stop. True when the spool is empty."""
        clock = self.client.clock
        self._flush_deadline = clock() + grace_s
        while clock() < self._flush_deadline:
            if self.spool.next_due_s(0.0) is None and self.assembler.in_flight == 0:
                break
            if self.gate.status().state == "auth_failed":
                break  # Maxim refuses the key: waiting out the grace period cannot deliver anything
            time.sleep(0.05)
        self.stop()
        return self.spool.next_due_s(0.0) is None

    def stop(self) -> None:
        """Stop the workers now: a send in progress gets one last attempt, what is undelivered stays spooled."""
        self._stop.set()
        self.client.interrupt()
        self.gate.close()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    # -- one worker ------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            self._purge_placements()
            flushing = self._flush_deadline is not None
            batch = self.assembler.claim(flush=flushing)
            if not batch:
                self._stop.wait(IDLE_POLL_S)
                continue
            try:
                if self.gate.wait_turn(self._flush_deadline):
                    self._ship(batch)
            finally:
                self.assembler.release([trace.trace_id for trace in batch])

    def _ship(self, batch: list[AssembledTrace]) -> None:
        entities = [entity for trace in batch for entity in trace.encoded]
        deadline = self.client.clock() + self.send_deadline
        if self._flush_deadline is not None:
            deadline = min(deadline, self._flush_deadline)
        result = self.client.send_encoded(entities, deadline=deadline) if entities else SendResult()
        # `failed` holds the very bytes objects sent: identity says which trace each belongs to.
        failed = {id(entity) for entity in result.failed}
        done: dict[str, tuple[tuple[int, ...], dict[str, Placement]]] = {}
        sent = undelivered = 0
        for trace in batch:
            if any(id(entity) in failed for entity in trace.encoded):
                undelivered += trace.span_count
            else:
                done[trace.trace_id] = (trace.seqs, trace.placements)
                if not trace.mapping_failed:
                    sent += trace.span_count
        # Counted, and the gate told, before the rows go: whoever sees the spool empty also sees the counts and
        # the destination's state.
        self._count(batch, sent, undelivered, result)
        if result.failed or result.auth_failed:
            pause = self.gate.failed(
                retry_after=result.retry_after, auth_failed=result.auth_failed, error=result.last_error
            )
            logger.warning(
                "%d spans not delivered (%s); kept in the spool, next attempt in %.1fs",
                undelivered,
                result.last_error,
                pause,
            )
        elif entities:
            self.gate.succeeded()
        else:
            self.gate.release_turn()
        delivered = [trace for trace in batch if trace.trace_id in done]
        try:
            self.spool.complete(
                done,
                log_event_seqs=[seq for trace in delivered for seq in trace.log_event_seqs],
                retained=[(trace.trace_id, span_id, blob) for trace in delivered for span_id, blob in trace.retained],
            )
        except sqlite3.Error as exc:
            # Delivered but still spooled: they will be sent again (Maxim merges by id), never lost.
            logger.error("could not remove %d delivered traces from the spool: %s", len(done), exc)
        logger.debug("shipped %d traces: %d spans delivered, %d kept", len(batch), sent, undelivered)

    def _count(self, batch: list[AssembledTrace], sent: int, undelivered: int, result: SendResult) -> None:
        if self.metrics is None:
            return
        self.metrics.exporter_sent_spans.inc(sent)
        self.metrics.exporter_send_failed_spans.inc(undelivered)
        dead = len(result.dead_lettered) + sum(t.span_count for t in batch if t.mapping_failed)
        self.metrics.exporter_dead_lettered_spans.inc(dead)

    def _purge_placements(self) -> None:
        now = time.monotonic()
        with self._purge_lock:
            if now - self._last_purge < PURGE_EVERY_S:
                return
            self._last_purge = now
        try:
            forgotten = self.spool.purge_placements(self.placement_retention)
        except sqlite3.Error as exc:
            logger.warning("could not purge old placements: %s", exc)
            return
        if forgotten:
            logger.debug(
                "forgot the placements of %d traces shipped over %.0fs ago", forgotten, self.placement_retention
            )
