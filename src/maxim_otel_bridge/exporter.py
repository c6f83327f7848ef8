"""`MaximSpanExporter`: a drop-in OpenTelemetry SDK span exporter that sends traces to Maxim.

    provider.add_span_processor(BatchSpanProcessor(MaximSpanExporter()))

or, with zero code, `OTEL_TRACES_EXPORTER=maxim opentelemetry-instrument python app.py`.

The data path: `export()` (called on the BatchSpanProcessor's thread) turns spans into records and buffers
them per trace (`trace_buffer`); a background thread maps each ready trace (`mapping.map_trace_part`) and
sends the entities with the `MaximClient`, the one owner of retries. `export()` therefore never waits for the
network and never raises.

Memory is bounded and nothing is dropped: past `max_buffered_spans` the oldest traces are mapped early;
entities Maxim could not take yet wait in a pending queue (`max_pending_entities`), and what overflows it,
or is still undelivered at shutdown, goes to the dead-letter file with the reason.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .client import ClientOptions, MaximClient
from .config import ConfigError, Destination, parse_pattern_list, parse_switch
from .deadletter import DeadLetter, DeadLetterFile
from .mapping import MappingOptions, map_trace_part
from .record import SpanRecord, from_readable_span
from .retry import BackoffPolicy
from .trace_buffer import BufferOptions, TraceBuffer, TracePart

__all__ = [
    "MaximSpanExporter",
    "ENV_TRACE_WAIT",
    "ENV_MAX_BUFFERED_SPANS",
    "ENV_MAX_PENDING_ENTITIES",
    "ENV_MAX_BATCH_ENTITIES",
    "ENV_MAX_BATCH_BYTES",
    "ENV_TIMEOUT",
    "ENV_RETRY_DEADLINE",
    "ENV_DEAD_LETTER_PATH",
    "ENV_MAX_VALUE_CHARS",
    "ENV_UNKNOWN_PROVIDER",
    "ENV_CAPTURE_CONTENT",
    "ENV_REDACT",
    "default_dead_letter_path",
    "ExporterStats",
]

logger = logging.getLogger(__name__)

ENV_TRACE_WAIT = "MAXIM_BRIDGE_TRACE_WAIT"
"""Seconds a trace waits for its root span before it is sent anyway (default 5)."""
ENV_MAX_BUFFERED_SPANS = "MAXIM_BRIDGE_MAX_BUFFERED_SPANS"
"""Spans held while waiting for their traces to complete (default 10000); past it the oldest traces go early."""
ENV_MAX_PENDING_ENTITIES = "MAXIM_BRIDGE_MAX_PENDING_ENTITIES"
"""Entities kept for a later retry while Maxim is unreachable (default 20000); the overflow is dead-lettered."""
ENV_MAX_BATCH_ENTITIES = "MAXIM_BRIDGE_MAX_BATCH_ENTITIES"
"""Entities per request (default 500)."""
ENV_MAX_BATCH_BYTES = "MAXIM_BRIDGE_MAX_BATCH_BYTES"
"""Bytes per request body (default 4194304)."""
ENV_TIMEOUT = "MAXIM_BRIDGE_TIMEOUT"
"""Seconds one request attempt may take (default 10)."""
ENV_RETRY_DEADLINE = "MAXIM_BRIDGE_RETRY_DEADLINE"
"""Seconds one send may spend retrying before its entities wait for the next cycle (default 60)."""
ENV_DEAD_LETTER_PATH = "MAXIM_BRIDGE_DEAD_LETTER_PATH"
"""JSONL file for entities Maxim refuses or that could not be delivered; `none` to only log them."""
ENV_MAX_VALUE_CHARS = "MAXIM_BRIDGE_MAX_VALUE_CHARS"
"""Longest string kept in an entity before it is cut with a visible marker (default 100000)."""
ENV_UNKNOWN_PROVIDER = "MAXIM_BRIDGE_UNKNOWN_PROVIDER"
"""Provider sent for generations whose provider is outside Maxim's enum (default openai)."""
ENV_CAPTURE_CONTENT = "MAXIM_BRIDGE_CAPTURE_CONTENT"
"""`false` to withhold message contents, tool arguments/results and documents (default true)."""
ENV_REDACT = "MAXIM_BRIDGE_REDACT"
"""Regular expressions whose matches are replaced by `[REDACTED]` in every string sent: a JSON array of
strings, or one pattern per line."""

DISABLED_VALUES = frozenset({"none", "off", "false", "0", "-"})

FAILED_SEND_COOLDOWN = 5.0
"""Seconds before pending entities are tried again after a send gave up (unless Maxim said longer)."""
MAX_COOLDOWN = 300.0
"""A Retry-After longer than this is not taken at its word: pending entities must not wait for hours."""
AUTH_FAILED_COOLDOWN = 60.0
"""A rejected key will not fix itself quickly: try again rarely (the client logs it once)."""
IDLE_WAKE = 1.0
"""The background thread re-checks at least this often (a bound, in case a wake-up is missed)."""


def default_dead_letter_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/maxim-otel-bridge/dead-letter.jsonl` (`~/.local/state/...` when unset)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "maxim-otel-bridge" / "dead-letter.jsonl"


def _env_number(env: Mapping[str, str], name: str, default: Any, kind: type, *, allow_zero: bool = False) -> Any:
    """A numeric setting from the environment; a bad value warns and falls back (it is optional)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: not a number; using %s", name, raw, default)
        return default
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        logger.warning("ignoring %s=%r: out of range; using %s", name, raw, default)
        return default
    return value


def _with_content_policy(options: MappingOptions, env: Mapping[str, str]) -> MappingOptions:
    """The content settings from the environment; unlike the others, a bad one is an error, not a warning.

    Falling back to the default would ship the very content or secrets the setting was meant to keep out.
    """
    capture_raw = env.get(ENV_CAPTURE_CONTENT, "").strip()
    redact_raw = env.get(ENV_REDACT, "").strip()
    if not capture_raw and not redact_raw:
        return options
    try:
        capture = parse_switch(capture_raw) if capture_raw else options.capture_content
    except ValueError as exc:
        raise ConfigError(f"invalid {ENV_CAPTURE_CONTENT}: {exc}") from None
    try:
        patterns = parse_pattern_list(redact_raw) if redact_raw else ()
        return replace(options, capture_content=capture, redact=patterns)
    except ValueError as exc:
        # The message names the pattern by position only: patterns often spell out a secret.
        raise ConfigError(f"invalid {ENV_REDACT}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """Counters since the exporter was made, for health checks and tests."""

    spans_received: int
    spans_buffered: int
    entities_pending: int
    entities_delivered: int
    entities_dead_lettered: int
    """Refused by Maxim, or given up on (pending overflow, shutdown, mapping failure)."""
    failed_sends: int
    """Sends that left entities undelivered (retried on a later cycle)."""


class MaximSpanExporter(SpanExporter):
    """Sends finished spans to Maxim as traces, spans, generations, tool calls, retrievals and events."""

    def __init__(
        self,
        api_key: str | None = None,
        repo_id: str | None = None,
        base_url: str | None = None,
        *,
        trace_wait: float | None = None,
        max_buffered_spans: int | None = None,
        max_pending_entities: int | None = None,
        max_batch_entities: int | None = None,
        max_batch_bytes: int | None = None,
        timeout: float | None = None,
        retry_deadline: float | None = None,
        backoff: BackoffPolicy | None = None,
        dead_letter_path: str | os.PathLike[str] | None = None,
        mapping_options: MappingOptions | None = None,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Unset values come from `MAXIM_*` / `MAXIM_BRIDGE_*` environment variables, then defaults.

        Raises `ConfigError` when the API key or log repository is missing (a loopback `base_url`, i.e. a
        local store, needs neither) or `MAXIM_BRIDGE_CAPTURE_CONTENT` / `MAXIM_BRIDGE_REDACT` is invalid, and
        `ValueError` for an invalid explicit option. An explicit `mapping_options` replaces every mapping
        variable, the content settings included.
        """
        env = os.environ if environ is None else environ
        self._destination = Destination.resolve(api_key, repo_id, base_url, environ=env)

        def pick(value: Any, name: str, default: Any, kind: type) -> Any:
            return (
                value if value is not None else _env_number(env, name, default, kind, allow_zero=name == ENV_TRACE_WAIT)
            )

        self._buffer_options = BufferOptions(
            trace_wait=pick(trace_wait, ENV_TRACE_WAIT, 5.0, float),
            max_spans=pick(max_buffered_spans, ENV_MAX_BUFFERED_SPANS, 10_000, int),
        )
        self._max_pending = pick(max_pending_entities, ENV_MAX_PENDING_ENTITIES, 20_000, int)
        if isinstance(self._max_pending, bool) or not isinstance(self._max_pending, int) or self._max_pending < 1:
            raise ValueError(f"max_pending_entities must be a positive int, got {self._max_pending!r}")
        dead_path = self._dead_letter_path(dead_letter_path, env)
        self._client_options = ClientOptions(
            max_batch_entities=pick(max_batch_entities, ENV_MAX_BATCH_ENTITIES, 500, int),
            max_batch_bytes=pick(max_batch_bytes, ENV_MAX_BATCH_BYTES, 4 * 1024 * 1024, int),
            timeout=pick(timeout, ENV_TIMEOUT, 10.0, float),
            retry_deadline=pick(retry_deadline, ENV_RETRY_DEADLINE, 60.0, float),
            backoff=backoff if backoff is not None else BackoffPolicy(),
            dead_letter_path=str(dead_path) if dead_path is not None else None,
        )
        if mapping_options is None:
            try:
                mapping_options = MappingOptions(
                    max_value_chars=_env_number(env, ENV_MAX_VALUE_CHARS, MappingOptions().max_value_chars, int),
                    unknown_provider=env.get(ENV_UNKNOWN_PROVIDER, "").strip() or MappingOptions().unknown_provider,
                )
            except ValueError as exc:
                logger.warning("ignoring mapping settings from the environment (%s); using defaults", exc)
                mapping_options = MappingOptions()
            mapping_options = _with_content_policy(mapping_options, env)
        self._mapping_options = mapping_options

        self._client = MaximClient(self._destination, self._client_options, transport=transport)
        self._buffer = TraceBuffer(self._buffer_options)
        self._dead_letters = DeadLetterFile(dead_path) if dead_path is not None else None

        self._stage_lock = threading.Lock()  # mapping + `known` bookkeeping, one trace part at a time
        self._send_lock = threading.Lock()  # one sender at a time: the worker, force_flush or shutdown
        self._pending: list[Mapping[str, Any]] = []
        self._pending_lock = threading.Lock()
        self._retry_not_before = 0.0
        self._next_wake = 0.0
        self._last_error: str | None = None
        self._counts = {"received": 0, "delivered": 0, "dead": 0, "failed_sends": 0}
        self._counts_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._shutdown = False
        self._worker = threading.Thread(target=self._run, name="maxim-exporter", daemon=True)
        self._worker.start()

    def __repr__(self) -> str:
        return (
            f"MaximSpanExporter(base_url={self._destination.base_url!r}, repo_id={self._destination.repo_id!r}, "
            f"trace_wait={self._buffer_options.trace_wait})"
        )

    @staticmethod
    def _dead_letter_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
        if explicit is not None:
            text = os.fspath(explicit)
            return None if text.strip().lower() in DISABLED_VALUES else Path(text)
        raw = env.get(ENV_DEAD_LETTER_PATH, "").strip()
        if raw.lower() in DISABLED_VALUES:
            return None
        return Path(raw) if raw else default_dead_letter_path(env)

    @property
    def destination(self) -> Destination:
        return self._destination

    @property
    def pending_entities(self) -> int:
        """Entities mapped but not yet delivered (waiting for Maxim)."""
        with self._pending_lock:
            return len(self._pending)

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
        )

    def _count(self, name: str, amount: int) -> None:
        if amount:
            with self._counts_lock:
                self._counts[name] += amount

    @property
    def buffered_spans(self) -> int:
        return self._buffer.span_count

    # -- SpanExporter ------------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Buffer the spans; the background thread ships them. Never raises, never waits for the network."""
        if self._shutdown:
            logger.warning("export of %d spans after shutdown: not sent", len(spans))
            return SpanExportResult.FAILURE
        entries = []
        unreadable = 0
        for span in spans:
            try:
                parent = span.parent
                is_local_root = parent is None or not parent.span_id or bool(parent.is_remote)
                entries.append((from_readable_span(span), is_local_root))
            except Exception as exc:  # one bad span must not cost the others
                unreadable += 1
                logger.error("skipping a span that could not be read (%s: %s)", type(exc).__name__, exc)
        try:
            self._count("received", len(entries))
            if self._buffer.add(entries):
                if self._buffer.span_count > self._buffer_options.max_spans:
                    # Bounded memory without blocking this thread on the network: map the oldest traces now.
                    self._stage(self._buffer.take_ready())
                self._wake.set()
            else:
                due = self._buffer.next_due()
                if due is not None and due < self._next_wake:
                    self._wake.set()  # a new trace is due before the worker planned to look
        except Exception:  # the SDK's thread must never see an exception from an exporter
            logger.exception("could not buffer %d spans for Maxim", len(entries))
            return SpanExportResult.FAILURE
        return SpanExportResult.FAILURE if unreadable else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Map every buffered trace now and deliver everything pending; True when nothing is left undelivered."""
        try:
            deadline = time.monotonic() + max(timeout_millis, 0) / 1000
            self._stage(self._buffer.take_ready(flush=True))
            return self._send_pending(deadline)
        except Exception:
            logger.exception("flush to Maxim failed")
            return False

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Stop the background thread (cutting any backoff wait short), send what is left, close the client.

        Each remaining batch gets one attempt, within `timeout_millis` (the BatchSpanProcessor passes what is
        left of its own shutdown timeout); what still cannot be delivered goes to the dead-letter file.
        """
        if self._shutdown:
            return
        self._shutdown = True
        end = time.monotonic() + max(timeout_millis, 0) / 1000
        self._stopping.set()
        self._client.interrupt()
        self._wake.set()
        # Interrupted, the thread ends within one request attempt at most; waiting for it means no batch is
        # in flight, so everything undelivered is in the pending queue below.
        self._worker.join()
        try:
            self._stage(self._buffer.take_ready(flush=True))
            self._send_pending(min(end, time.monotonic() + self._client_options.timeout))
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
        staged: list[Mapping[str, Any]] = []
        with self._stage_lock:
            for part in parts:
                staged.extend(self._map(part))
        if not staged:
            return
        with self._pending_lock:
            self._pending.extend(staged)
            overflow = len(self._pending) - self._max_pending
            dropped = self._pending[:overflow] if overflow > 0 else []
            if dropped:
                del self._pending[:overflow]
        if dropped:
            self._bury(dropped, f"pending queue full ({self._max_pending}): {self._last_error or 'Maxim unreachable'}")

    def _map(self, part: TracePart) -> list[dict]:
        try:
            mapped = map_trace_part(part.records, self._mapping_options, self._buffer.known(part.trace_id))
        except Exception as exc:
            logger.exception("could not map trace %s (%d spans)", part.trace_id, len(part.records))
            self._bury([_record_letter(r) for r in part.records], f"mapping failed: {type(exc).__name__}: {exc}")
            return []
        for line in mapped.skipped:
            logger.warning("span of trace %s skipped: %s", part.trace_id, line)
        self._buffer.remember(part.trace_id, mapped.placements)
        return mapped.entities

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
            result = self._client.send(batch, deadline=deadline)
            self._count("delivered", result.delivered)
            self._count("dead", len(result.dead_lettered))
            self._count("failed_sends", 1 if result.failed else 0)
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

    def _bury(self, entities: Sequence[Mapping[str, Any]], reason: str) -> None:
        """Entities that will not be sent: to the dead-letter file (or the log), never silently lost."""
        self._count("dead", len(entities))
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
