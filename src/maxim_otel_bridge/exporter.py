"""`MaximSpanExporter`: a drop-in OpenTelemetry SDK span exporter that sends traces to Maxim.

    provider.add_span_processor(BatchSpanProcessor(MaximSpanExporter()))

or, with zero code, `OTEL_TRACES_EXPORTER=maxim opentelemetry-instrument python app.py` (add
`OTEL_LOGS_EXPORTER=maxim` for GenAI content that instrumentations emit as log events: `log_exporter`).

`export()` (called on the BatchSpanProcessor's thread) turns spans into records and hands them to the
destination's shared `pipeline`, which buffers them per trace, maps each ready trace and sends it from a
background thread. `export()` therefore never waits for the network and never raises.

Memory is bounded and nothing is dropped: past `max_buffered_spans` the oldest traces are mapped early;
entities Maxim could not take yet wait in a pending queue (`max_pending_entities`), and what overflows it,
or is still undelivered at shutdown, goes to the dead-letter file with the reason.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .client import ClientOptions
from .config import ConfigError, Destination, parse_pattern_list, parse_switch
from .mapping import MappingOptions
from .pipeline import ExporterStats, Pipeline, PipelineSettings, acquire_pipeline
from .record import from_readable_span
from .retry import BackoffPolicy
from .trace_buffer import BufferOptions

__all__ = [
    "MaximSpanExporter",
    "PipelineFeeder",
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
    "resolve_settings",
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


def resolve_settings(
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
    environ: Mapping[str, str] | None = None,
) -> tuple[Destination, PipelineSettings]:
    """Explicit values, then `MAXIM_*` / `MAXIM_BRIDGE_*` environment variables, then defaults.

    Raises `ConfigError` when the API key or log repository is missing (a loopback `base_url`, i.e. a
    local store, needs neither) or `MAXIM_BRIDGE_CAPTURE_CONTENT` / `MAXIM_BRIDGE_REDACT` is invalid, and
    `ValueError` for an invalid explicit option. An explicit `mapping_options` replaces every mapping
    variable, the content settings included.
    """
    env = os.environ if environ is None else environ
    destination = Destination.resolve(api_key, repo_id, base_url, environ=env)

    def pick(value: Any, name: str, default: Any, kind: type) -> Any:
        return value if value is not None else _env_number(env, name, default, kind, allow_zero=name == ENV_TRACE_WAIT)

    buffer_options = BufferOptions(
        trace_wait=pick(trace_wait, ENV_TRACE_WAIT, 5.0, float),
        max_spans=pick(max_buffered_spans, ENV_MAX_BUFFERED_SPANS, 10_000, int),
    )
    max_pending = pick(max_pending_entities, ENV_MAX_PENDING_ENTITIES, 20_000, int)
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        raise ValueError(f"max_pending_entities must be a positive int, got {max_pending!r}")
    dead_path = _dead_letter_path(dead_letter_path, env)
    client_options = ClientOptions(
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
    settings = PipelineSettings(
        buffer=buffer_options,
        max_pending=max_pending,
        client=client_options,
        mapping=mapping_options,
        dead_letter_path=dead_path,
    )
    return destination, settings


def _dead_letter_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        text = os.fspath(explicit)
        return None if text.strip().lower() in DISABLED_VALUES else Path(text)
    raw = env.get(ENV_DEAD_LETTER_PATH, "").strip()
    if raw.lower() in DISABLED_VALUES:
        return None
    return Path(raw) if raw else default_dead_letter_path(env)


class PipelineFeeder:
    """What the span and the log exporter share: their settings, the running pipeline of their destination
    (one per destination and process, `pipeline.acquire_pipeline`), its counters, flushing, and releasing it."""

    _for_log_events = False
    """The log exporter sets it: the pipeline then keeps shipped spans for log events that come late."""

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
        local store, needs neither), and `ValueError` for an invalid explicit option. A span exporter and a log
        exporter of the same destination (and transport) share one pipeline; the settings of whichever was made
        first apply.
        """
        self._destination, settings = resolve_settings(
            api_key,
            repo_id,
            base_url,
            trace_wait=trace_wait,
            max_buffered_spans=max_buffered_spans,
            max_pending_entities=max_pending_entities,
            max_batch_entities=max_batch_entities,
            max_batch_bytes=max_batch_bytes,
            timeout=timeout,
            retry_deadline=retry_deadline,
            backoff=backoff,
            dead_letter_path=dead_letter_path,
            mapping_options=mapping_options,
            environ=environ,
        )
        self._pipeline = acquire_pipeline(self._destination, settings, transport, for_log_events=self._for_log_events)
        self._shutdown = False

    @property
    def destination(self) -> Destination:
        return self._destination

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline this exporter feeds, shared with the other signal's exporter of the same destination."""
        return self._pipeline

    @property
    def stats(self) -> ExporterStats:
        return self._pipeline.stats

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Map every buffered trace (and log event) now and deliver everything pending; True when nothing is
        left undelivered."""
        return self._pipeline.force_flush(timeout_millis)

    def _release(self, timeout_millis: float = 30_000) -> None:
        """Release the pipeline once. The last exporter of the destination out stops its background thread
        (cutting any backoff wait short), sends what is left and closes the client."""
        if self._shutdown:
            return
        self._shutdown = True
        self._pipeline.release(timeout_millis)


class MaximSpanExporter(PipelineFeeder, SpanExporter):
    """Sends finished spans to Maxim as traces, spans, generations, tool calls, retrievals and events."""

    def __repr__(self) -> str:
        return (
            f"MaximSpanExporter(base_url={self._destination.base_url!r}, repo_id={self._destination.repo_id!r}, "
            f"trace_wait={self._pipeline.settings.buffer.trace_wait})"
        )

    @property
    def pending_entities(self) -> int:
        """Entities mapped but not yet delivered (waiting for Maxim)."""
        return self._pipeline.pending_entities

    @property
    def buffered_spans(self) -> int:
        return self._pipeline.buffered_spans

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
            self._pipeline.add_spans(entries)
        except Exception:  # the SDK's thread must never see an exception from an exporter
            logger.exception("could not buffer %d spans for Maxim", len(entries))
            return SpanExportResult.FAILURE
        return SpanExportResult.FAILURE if unreadable else SpanExportResult.SUCCESS

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Release the pipeline. The last exporter of the destination out stops its background thread
        (cutting any backoff wait short), sends what is left and closes the client.

        Each remaining batch gets one attempt, within `timeout_millis` (the BatchSpanProcessor passes what is
        left of its own shutdown timeout); what still cannot be delivered goes to the dead-letter file.
        """
        self._release(timeout_millis)
