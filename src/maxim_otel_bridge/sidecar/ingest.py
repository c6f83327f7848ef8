"""The contract between the OTLP receivers and the rest of the sidecar.

Receivers decode requests into `SpanRecord`s and hand them to a `SpanSink`. They know nothing of
storage: the sink decides whether the spans are taken (durably) or refused, and the receiver turns
that verdict into the protocol's answer (OK, or UNAVAILABLE / 503 with a retry delay). A request is
acknowledged only after the sink said ACCEPTED, so an acknowledged span is never lost.

The settings a receiver is built with (`ReceiverLimits`, `TlsFiles`) live here too, so the code that
reads configuration and the receivers agree on one shape.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from maxim_otel_bridge.record import SpanRecord

__all__ = [
    "ACCEPTED",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_GRPC_MAX_REQUEST_BYTES",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_HTTP_MAX_REQUEST_BYTES",
    "DEFAULT_RETRY_AFTER_S",
    "AcceptResult",
    "ReceiverLimits",
    "SpanSink",
    "TlsFiles",
    "Verdict",
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
    def accept_spans(self, records: Sequence[SpanRecord]) -> AcceptResult:
        """Take decoded spans.

        Called from a receiver worker thread (several may call at once); returns ACCEPTED only after
        the spans are durably in the spool. Never called with an empty sequence.
        """
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

    def __post_init__(self) -> None:
        if self.max_request_bytes <= 0:
            raise ValueError("max_request_bytes must be positive")
        if self.max_workers <= 0:
            raise ValueError("max_workers must be positive")
        if self.read_timeout_s <= 0:
            raise ValueError("read_timeout_s must be positive")

    @classmethod
    def grpc_default(cls) -> ReceiverLimits:
        return cls(max_request_bytes=DEFAULT_GRPC_MAX_REQUEST_BYTES)

    @classmethod
    def http_default(cls) -> ReceiverLimits:
        return cls(max_request_bytes=DEFAULT_HTTP_MAX_REQUEST_BYTES)
