"""The contract between the OTLP receivers and the rest of the sidecar.

Receivers decode requests into `SpanRecord`s and hand them to a `SpanSink`. They know nothing of
storage: the sink decides whether the spans are taken (durably) or refused, and the receiver turns
that verdict into the protocol's answer (OK, or UNAVAILABLE / 503 with a retry delay). A request is
acknowledged only after the sink said ACCEPTED, so an acknowledged span is never lost.

The settings a receiver is built with (`ReceiverLimits`, `TlsFiles`) live here too, so the code that
reads configuration and the receivers agree on one shape, and so do the steps both receivers share:
`deliver` (decoded spans -> sink -> what to answer, counted in the metrics), `BearerAuth` and `LogThrottle`.
"""

from __future__ import annotations

import enum
import functools
import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.record import SpanRecord

if TYPE_CHECKING:
    from maxim_otel_bridge.log_events import LogEvent
    from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
    from maxim_otel_bridge.sidecar.otlp_decode import DecodedSpans, EncodedSpan
    from maxim_otel_bridge.sidecar.otlp_logs import DecodedLogs

__all__ = [
    "ACCEPTED",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_GRPC_MAX_REQUEST_BYTES",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_HTTP_MAX_REQUEST_BYTES",
    "DEFAULT_RETRY_AFTER_S",
    "AcceptResult",
    "BearerAuth",
    "Delivery",
    "LogSink",
    "LogThrottle",
    "ReceiverLimits",
    "ReceiverStartError",
    "SpanSink",
    "TlsFiles",
    "Verdict",
    "deliver",
    "deliver_logs",
]

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"

# The OpenTelemetry Collector's defaults: 4 MiB for gRPC, 20 MiB for HTTP (after decompression).
DEFAULT_GRPC_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_HTTP_MAX_REQUEST_BYTES = 20 * 1024 * 1024

DEFAULT_RETRY_AFTER_S = 1.0
"""Retry delay advertised when the sink refuses without saying how long to wait."""


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    """The spans are durably stored; the request may be acknowledged."""
    OVERLOADED = "overloaded"
    """The sink cannot take more now (spool full, disk slow); the client should retry later."""
    SHUTTING_DOWN = "shutting_down"
    """The sidecar is stopping; the client should retry (against this or another instance)."""


@dataclass(frozen=True, slots=True)
class AcceptResult:
    verdict: Verdict
    retry_after_s: float = 0.0
    """For a refusal: how long the client should wait before retrying (0 means the receiver's default)."""

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPTED


ACCEPTED = AcceptResult(Verdict.ACCEPTED)


class SpanSink(Protocol):
    def accept_spans(self, records: Sequence[SpanRecord | EncodedSpan]) -> AcceptResult:
        """Take decoded spans (records, or spans checked and kept as protobuf).

        Called from a receiver worker thread (several may call at once); returns ACCEPTED only after
        the spans are durably in the spool. Never called with an empty sequence.
        """
        ...


class LogSink(Protocol):
    def accept_log_events(self, events: Sequence[LogEvent]) -> AcceptResult:
        """Take decoded GenAI event records, under the same contract as `SpanSink.accept_spans`."""
        ...


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate chain and its private key; the receivers serve TLS when given one."""

    cert_file: Path
    key_file: Path

    def read(self) -> tuple[bytes, bytes]:
        """(certificate chain, private key) bytes; raises OSError naming the file that cannot be read."""
        return self.cert_file.read_bytes(), self.key_file.read_bytes()


@dataclass(frozen=True, slots=True)
class ReceiverLimits:
    """Bounds that keep one client from exhausting the sidecar."""

    max_request_bytes: int
    """Largest request body accepted, measured after decompression."""
    max_workers: int = 8
    """Requests decoded and handed to the sink at once (gRPC thread pool size, HTTP handler cap)."""
    read_timeout_s: float = 30.0
    """HTTP: a client that sends nothing for this long is disconnected (slow-client guard)."""
    body_timeout_s: float = 120.0
    """HTTP: the whole request body must arrive within this time, however steadily it trickles in."""
    max_connections: int = 256
    """HTTP: open client connections at most; more are closed at once (each holds a thread)."""

    def __post_init__(self) -> None:
        if self.max_request_bytes <= 0:
            raise ValueError("max_request_bytes must be positive")
        if self.max_workers <= 0:
            raise ValueError("max_workers must be positive")
        if self.read_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("read_timeout_s and body_timeout_s must be positive")
        if self.max_connections <= 0:
            raise ValueError("max_connections must be positive")

    @classmethod
    def grpc_default(cls) -> ReceiverLimits:
        return cls(max_request_bytes=DEFAULT_GRPC_MAX_REQUEST_BYTES)

    @classmethod
    def http_default(cls) -> ReceiverLimits:
        return cls(max_request_bytes=DEFAULT_HTTP_MAX_REQUEST_BYTES)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one decoded request: the receivers turn this into their protocol's answer."""

    acknowledged: bool
    """True: answer success (with partial success when `rejected`); False: answer unavailable, retry later."""
    accepted: int
    rejected: int
    error_message: str
    retry_after_s: float = 0.0
    outcome: str = "ok"
    """The request outcome label for metrics (see `metrics.REQUEST_OUTCOMES`)."""


def deliver(decoded: DecodedSpans, sink: SpanSink, metrics: BridgeMetrics, receiver: str) -> Delivery:
    """Hand decoded spans to the sink and count the result; never raises.

    Rejected (invalid) spans are counted whatever the sink says: the client must not retry them.
    A sink that raises is treated like an overloaded one, so the client keeps the spans and retries
    instead of losing them on a non-retryable error.
    """
    metrics.spans_refused(receiver, "invalid", decoded.rejected)
    return _hand_over(
        decoded.records,
        sink.accept_spans,
        decoded.rejected,
        decoded.error_message,
        accepted=functools.partial(metrics.spans_accepted, receiver),
        refused=functools.partial(metrics.spans_refused, receiver),
        receiver=receiver,
        what="spans",
        sink_name="span",
    )


def deliver_logs(decoded: DecodedLogs, sink: LogSink, metrics: BridgeMetrics, receiver: str) -> Delivery:
    """`deliver` for log records: GenAI events to the sink, the others counted as ignored; never raises."""
    metrics.log_records_refused(receiver, "invalid", decoded.rejected)
    metrics.log_records_ignored(receiver, decoded.ignored)
    return _hand_over(
        decoded.events,
        sink.accept_log_events,
        decoded.rejected,
        decoded.error_message,
        accepted=functools.partial(metrics.log_records_accepted, receiver),
        refused=functools.partial(metrics.log_records_refused, receiver),
        receiver=receiver,
        what="log records",
        sink_name="log",
    )


def _hand_over(
    items: Sequence[Any],
    accept: Callable[[Sequence[Any]], AcceptResult],
    rejected: int,
    error_message: str,
    *,
    accepted: Callable[[int], None],
    refused: Callable[[str, int], None],
    receiver: str,
    what: str,
    sink_name: str,
) -> Delivery:
    """The valid items of one request to their sink, the answer to give, and the counts (both signals)."""
    if not items:
        outcome = "partial" if rejected else "ok"
        return Delivery(True, 0, rejected, error_message, outcome=outcome)
    try:
        result = accept(items)
    except Exception:  # noqa: BLE001  # another component: whatever it raises must not lose items silently
        _log.exception("%s receiver: the %s sink failed; the client is told to retry", receiver, sink_name)
        refused("overloaded", len(items))
        return Delivery(False, 0, rejected, "", DEFAULT_RETRY_AFTER_S, outcome="error")
    if result.verdict is Verdict.ACCEPTED:
        accepted(len(items))
        outcome = "partial" if rejected or error_message else "ok"
        return Delivery(True, len(items), rejected, error_message, outcome=outcome)
    reason = "overloaded" if result.verdict is Verdict.OVERLOADED else "shutting_down"
    refused(reason, len(items))
    retry_after = result.retry_after_s if result.retry_after_s > 0 else DEFAULT_RETRY_AFTER_S
    _throttled.warning(
        f"{receiver}:{what}:{reason}",
        "%s receiver: refused %d %s (%s); the client is told to retry in %.1fs",
        receiver,
        len(items),
        what,
        reason,
        retry_after,
    )
    return Delivery(False, 0, rejected, reason.replace("_", " "), retry_after, outcome="unavailable")


class BearerAuth:
    """Checks `authorization: Bearer <token>`; with no token configured every request passes.

    The comparison is constant-time so the token cannot be guessed byte by byte from response times.
    """

    __slots__ = ("_expected",)

    def __init__(self, token: Secret | None) -> None:
        self._expected = f"Bearer {token.reveal()}".encode() if token else None

    @property
    def required(self) -> bool:
        return self._expected is not None

    def allows(self, authorization: str | None) -> bool:
        if self._expected is None:
            return True
        if authorization is None:
            return False
        return hmac.compare_digest(authorization.strip().encode("utf-8", "replace"), self._expected)

    def __repr__(self) -> str:
        return f"BearerAuth(required={self.required})"


class LogThrottle:
    """Logs a warning at most once per interval per key, so a misbehaving client cannot flood the log."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            self._logger.warning(message + " (%d similar suppressed)", *args, suppressed)
        else:
            self._logger.warning(message, *args)


_log = logging.getLogger(__name__)
_throttled = LogThrottle(_log)


class ReceiverStartError(OSError):
    """A receiver could not start: its address is taken or not available, or its TLS files cannot be read."""
