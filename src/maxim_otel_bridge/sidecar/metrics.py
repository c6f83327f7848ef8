"""The sidecar's own metrics, in the Prometheus exposition format served on `/metrics`.

Names follow the OpenTelemetry Collector's (`otelcol_receiver_accepted_spans` ...) with a
`maxim_bridge_` prefix, so dashboards built for the Collector translate directly.

Every `BridgeMetrics` owns its registry instead of using prometheus_client's global one: a process
(or a test) can run several sidecars without their counters colliding. Label values come only from the
fixed sets below, checked on use, so nothing user-supplied (least of all the API key) becomes a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from maxim_otel_bridge import __version__
from maxim_otel_bridge.mapping import COMPILED

__all__ = [
    "RECEIVERS",
    "REFUSAL_REASONS",
    "REQUEST_OUTCOMES",
    "SEND_OUTCOMES",
    "SIGNALS",
    "BridgeMetrics",
]

RECEIVERS = frozenset({"grpc", "http"})

SIGNALS = frozenset(
    {
        "traces",
        "logs",
        "other",  # a request that names no signal: an unknown path, or refused before its path was read
    }
)

REFUSAL_REASONS = frozenset(
    {
        "invalid",  # the span itself is unusable (bad ids); reported through partial success
        "overloaded",  # the sink refused: spool full or slow
        "shutting_down",  # the sink refused: the sidecar is stopping
    }
)

REQUEST_OUTCOMES = frozenset(
    {
        "ok",  # every span accepted (or an empty request)
        "partial",  # accepted with some spans rejected as invalid
        "malformed",  # the body could not be decoded
        "too_large",  # over the size limit (after decompression)
        "unsupported",  # wrong content type, encoding, method or path
        "unauthenticated",  # missing or wrong bearer token
        "unavailable",  # the sink refused (overloaded or shutting down), or no worker was free
        "timeout",  # the client was too slow sending its request
        "error",  # an unexpected failure inside the receiver
    }
)

SEND_OUTCOMES = frozenset({"success", "retryable", "permanent", "network"})

# Maxim batch requests take tens to hundreds of milliseconds; the buckets cover 5 ms to a 30 s timeout.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _checked(value: str, allowed: frozenset[str], what: str) -> str:
    if value not in allowed:
        # The value itself stays out of the message: a mistaken caller might have passed a secret.
        raise ValueError(f"unknown {what} label value; expected one of {sorted(allowed)}")
    return value


class BridgeMetrics:
    """Counters, gauges and histograms of one sidecar, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.receiver_accepted_spans = Counter(
            "maxim_bridge_receiver_accepted_spans",
            "Spans received over OTLP and accepted into the spool.",
            ["receiver"],
            registry=r,
        )
        self.receiver_refused_spans = Counter(
            "maxim_bridge_receiver_refused_spans",
            "Spans received over OTLP and not accepted, by reason.",
            ["receiver", "reason"],
            registry=r,
        )
        self.receiver_requests = Counter(
            "maxim_bridge_receiver_requests",
            "OTLP export requests handled, by receiver, signal and outcome.",
            ["receiver", "signal", "outcome"],
            registry=r,
        )
        self.receiver_accepted_log_records = Counter(
            "maxim_bridge_receiver_accepted_log_records",
            "GenAI event log records received over OTLP and accepted into the spool.",
            ["receiver"],
            registry=r,
        )
        self.receiver_refused_log_records = Counter(
            "maxim_bridge_receiver_refused_log_records",
            "GenAI event log records received over OTLP and not accepted, by reason.",
            ["receiver", "reason"],
            registry=r,
        )
        self.receiver_ignored_log_records = Counter(
            "maxim_bridge_receiver_ignored_log_records",
            "Log records received over OTLP and dropped by design: not GenAI events, or without a trace id.",
            ["receiver"],
            registry=r,
        )
        self.spool_spooled_log_records = Counter(
            "maxim_bridge_spool_spooled_log_records",
            "GenAI event log records written durably to the spool.",
            registry=r,
        )
        self.spool_spooled_spans = Counter(
            "maxim_bridge_spool_spooled_spans",
            "Spans written durably to the spool.",
            registry=r,
        )
        self.exporter_sent_spans = Counter(
            "maxim_bridge_exporter_sent_spans",
            "Spans whose entities Maxim accepted.",
            registry=r,
        )
        self.exporter_send_failed_spans = Counter(
            "maxim_bridge_exporter_send_failed_spans",
            "Spans whose send to Maxim failed (they stay spooled and are retried unless dead-lettered).",
            registry=r,
        )
        self.exporter_dead_lettered_spans = Counter(
            "maxim_bridge_exporter_dead_lettered_spans",
            "Spans given up on and written to the dead-letter file.",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "maxim_bridge_spool_bytes",
            "Bytes the spool currently holds on disk.",
            registry=r,
        )
        self.spool_oldest_span_age_seconds = Gauge(
            "maxim_bridge_spool_oldest_span_age_seconds",
            "Age of the oldest span still waiting in the spool (0 when empty).",
            registry=r,
        )
        self.exporter_request_duration_seconds = Histogram(
            "maxim_bridge_exporter_request_duration_seconds",
            "Latency of batch requests to Maxim, by outcome.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # The usual Prometheus build-info gauge: always 1, the labels say which build is running.
        self.build_info = Gauge(
            "maxim_bridge_build_info",
            "Always 1: the package version, and whether the mapping is the compiled build or pure Python.",
            ["version", "mapping"],
            registry=r,
        )
        self.build_info.labels(__version__, "compiled" if COMPILED else "python").set(1)

    # Receiver side: the receivers call these, never the raw metrics, so label values stay in the fixed sets.

    def request_handled(self, receiver: str, signal: str, outcome: str) -> None:
        self.receiver_requests.labels(
            _checked(receiver, RECEIVERS, "receiver"),
            _checked(signal, SIGNALS, "signal"),
            _checked(outcome, REQUEST_OUTCOMES, "outcome"),
        ).inc()

    def spans_accepted(self, receiver: str, count: int) -> None:
        if count:
            self.receiver_accepted_spans.labels(_checked(receiver, RECEIVERS, "receiver")).inc(count)

    def spans_refused(self, receiver: str, reason: str, count: int) -> None:
        if count:
            self.receiver_refused_spans.labels(
                _checked(receiver, RECEIVERS, "receiver"),
                _checked(reason, REFUSAL_REASONS, "reason"),
            ).inc(count)

    def log_records_accepted(self, receiver: str, count: int) -> None:
        if count:
            self.receiver_accepted_log_records.labels(_checked(receiver, RECEIVERS, "receiver")).inc(count)

    def log_records_refused(self, receiver: str, reason: str, count: int) -> None:
        if count:
            self.receiver_refused_log_records.labels(
                _checked(receiver, RECEIVERS, "receiver"),
                _checked(reason, REFUSAL_REASONS, "reason"),
            ).inc(count)

    def log_records_ignored(self, receiver: str, count: int) -> None:
        if count:
            self.receiver_ignored_log_records.labels(_checked(receiver, RECEIVERS, "receiver")).inc(count)

    # Spool and shipping side.

    def maxim_request_finished(self, outcome: str, seconds: float) -> None:
        self.exporter_request_duration_seconds.labels(_checked(outcome, SEND_OUTCOMES, "outcome")).observe(
            seconds
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for an HTTP `/metrics` answer."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
