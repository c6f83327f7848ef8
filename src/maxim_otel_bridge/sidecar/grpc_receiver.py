"""OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, and
`opentelemetry.proto.collector.logs.v1.LogsService/Export` on the same port when given a log sink.

The method is registered with raw-bytes (de)serializers instead of the generated servicer, so that a
body that is not protobuf gets INVALID_ARGUMENT with a reason (the generated path would answer
INTERNAL) and decoding stays in `otlp_decode`. gRPC itself enforces the size limit, after
decompression, with RESOURCE_EXHAUSTED.

Backpressure: when the sink refuses, the answer is UNAVAILABLE carrying the retry delay twice, as a
`google.rpc.Status` with `RetryInfo` in `grpc-status-details-bin` (what the Collector's exporters read)
and as a bare `RetryInfo` in `google.rpc.retryinfo-bin` (what the OTel Python exporter reads).

Logs follow the same rules (auth, size limit, partial success for invalid records, UNAVAILABLE with a retry
delay when the sink refuses); records that are not GenAI events are accepted and ignored (`otlp_logs`).
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.sidecar.ingest import (
    DEFAULT_GRPC_ENDPOINT,
    BearerAuth,
    Delivery,
    LogSink,
    LogThrottle,
    ReceiverLimits,
    ReceiverStartError,
    SpanSink,
    TlsFiles,
    deliver,
    deliver_logs,
)
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
from maxim_otel_bridge.sidecar.otlp_decode import MalformedRequest, split_trace_request_protobuf
from maxim_otel_bridge.sidecar.otlp_logs import decode_logs_request_protobuf

__all__ = ["LOGS_SERVICE", "TRACE_SERVICE", "GrpcReceiver", "retry_trailers"]

logger = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
_RECEIVER = "grpc"

# Long-lived HTTP/2 connections balance badly behind L4 load balancers: make clients reconnect now and
# then (with time to finish what is in flight), as the Collector recommends for gateway deployments.
_MAX_CONNECTION_AGE_MS = 5 * 60 * 1000
_MAX_CONNECTION_AGE_GRACE_MS = 30 * 1000

# Requests queued beyond the worker threads, per worker. Past this gRPC refuses new calls rather than
# buffering without bound (each queued call may hold a full-size request in memory).
_QUEUED_CALLS_PER_WORKER = 8


def retry_trailers(message: str, retry_after_s: float) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata that tells OTLP clients to retry after `retry_after_s` seconds."""
    seconds = math.floor(retry_after_s)
    delay = Duration(seconds=seconds, nanos=round((retry_after_s - seconds) * 1e9))
    retry_info = error_details_pb2.RetryInfo(retry_delay=delay)
    detail = AnyProto()
    detail.Pack(retry_info)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", retry_info.SerializeToString()),
    )


class GrpcReceiver:
    """Serves OTLP/gRPC on `endpoint` (host:port; port 0 picks a free one) and hands spans to `sink`."""

    def __init__(
        self,
        endpoint: str = DEFAULT_GRPC_ENDPOINT,
        sink: SpanSink | None = None,
        limits: ReceiverLimits | None = None,
        auth_token: Secret | None = None,
        tls: TlsFiles | None = None,
        metrics: BridgeMetrics | None = None,
        *,
        log_sink: LogSink | None = None,
    ) -> None:
        if sink is None:
            raise ValueError("GrpcReceiver needs a span sink")
        self.endpoint = endpoint
        self._sink = sink
        self._log_sink = log_sink
        self._limits = limits or ReceiverLimits.grpc_default()
        self._auth = BearerAuth(auth_token)
        self._tls = tls
        self.metrics = metrics or BridgeMetrics()
        self._throttle = LogThrottle(logger)
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._bound_port: int | None = None
        self._lock = threading.Lock()

    @property
    def bound_port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the gRPC receiver is not started")
        return self._bound_port

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the gRPC receiver is already started")
            limits = self._limits
            executor = ThreadPoolExecutor(max_workers=limits.max_workers, thread_name_prefix="otlp-grpc")
            server = grpc.server(
                executor,
                handlers=self._service_handlers(),
                options=[
                    ("grpc.max_receive_message_length", limits.max_request_bytes),
                    # Without this a second server could bind the same port and silently share its traffic.
                    ("grpc.so_reuseport", 0),
                    ("grpc.max_connection_age_ms", _MAX_CONNECTION_AGE_MS),
                    ("grpc.max_connection_age_grace_ms", _MAX_CONNECTION_AGE_GRACE_MS),
                ],
                maximum_concurrent_rpcs=limits.max_workers * _QUEUED_CALLS_PER_WORKER,
            )
            try:
                port = self._add_port(server)
            except ReceiverStartError:
                server.stop(None)
                executor.shutdown(wait=False)
                raise
            server.start()
            self._server, self._executor, self._bound_port = server, executor, port
        logger.info(
            "OTLP/gRPC receiver listening on %s (port %d, tls=%s, bearer token=%s, max request %d bytes)",
            self.endpoint,
            port,
            "on" if self._tls else "off",
            "required" if self._auth.required else "off",
            limits.max_request_bytes,
        )

    def _add_port(self, server: grpc.Server) -> int:
        try:
            if self._tls is None:
                return server.add_insecure_port(self.endpoint)
            try:
                cert, key = self._tls.read()
            except OSError as exc:
                raise ReceiverStartError(f"OTLP/gRPC receiver: cannot read TLS file: {exc}") from None
            credentials = grpc.ssl_server_credentials([(key, cert)])
            return server.add_secure_port(self.endpoint, credentials)
        except RuntimeError as exc:
            raise ReceiverStartError(
                f"OTLP/gRPC receiver cannot listen on {self.endpoint}: the address is in use or not available "
                f"({exc})"
            ) from None

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting calls, let in-flight ones finish for up to `grace_s`, then cancel the rest."""
        with self._lock:
            server, executor = self._server, self._executor
            self._server = self._executor = None
        if server is None:
            return
        server.stop(grace_s).wait()
        if executor is not None:
            # Calls past the grace period are already cancelled for their clients (who retry); a worker still
            # inside the sink finishes on its own rather than holding up the sidecar's shutdown.
            executor.shutdown(wait=False, cancel_futures=True)
        logger.info("OTLP/gRPC receiver on %s stopped", self.endpoint)

    def _service_handlers(self) -> list[grpc.GenericRpcHandler]:
        # No (de)serializers: the handler receives and returns raw bytes.
        traces = grpc.method_handlers_generic_handler(
            TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_traces)}
        )
        if self._log_sink is None:
            return [traces]
        logs = grpc.method_handlers_generic_handler(
            LOGS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_logs)}
        )
        return [traces, logs]

    def _export_traces(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._check_call(request, context, "traces")
        try:
            decoded = split_trace_request_protobuf(request)
        except MalformedRequest as exc:
            self._malformed(context, exc, "traces")
        delivery = deliver(decoded, self._sink, self.metrics, _RECEIVER)
        self._answer_refusal(delivery, context, "traces", "spans")
        return _response(delivery)

    def _export_logs(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        assert self._log_sink is not None  # the service is registered only with a log sink
        self._check_call(request, context, "logs")
        try:
            decoded = decode_logs_request_protobuf(request)
        except MalformedRequest as exc:
            self._malformed(context, exc, "logs")
        delivery = deliver_logs(decoded, self._log_sink, self.metrics, _RECEIVER)
        self._answer_refusal(delivery, context, "logs", "log records")
        response = ExportLogsServiceResponse()
        if delivery.rejected or delivery.error_message:
            response.partial_success.rejected_log_records = delivery.rejected
            response.partial_success.error_message = delivery.error_message
        return response.SerializeToString()

    def _check_call(self, request: bytes, context: grpc.ServicerContext, signal: str) -> None:
        """Aborts the call when the token is wrong or the request too large."""
        if not self._auth.allows(_metadata_value(context, "authorization")):
            self.metrics.request_handled(_RECEIVER, signal, "unauthenticated")
            self._throttle.warning(
                "auth", "OTLP/gRPC: refused a call without a valid bearer token from %s", context.peer()
            )
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        if len(request) > self._limits.max_request_bytes:  # gRPC checks this already; cheap to be sure
            self.metrics.request_handled(_RECEIVER, signal, "too_large")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "request is larger than the receiver's limit")

    def _malformed(self, context: grpc.ServicerContext, exc: MalformedRequest, signal: str) -> NoReturn:
        self.metrics.request_handled(_RECEIVER, signal, "malformed")
        self._throttle.warning("malformed", "OTLP/gRPC: refused a malformed request from %s: %s", context.peer(), exc)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("context.abort returns only by raising")

    def _answer_refusal(self, delivery: Delivery, context: grpc.ServicerContext, signal: str, what: str) -> None:
        """Counts the call; aborts it with UNAVAILABLE and a retry delay when the sink refused."""
        self.metrics.request_handled(_RECEIVER, signal, delivery.outcome)
        if not delivery.acknowledged:
            message = f"the bridge cannot take {what} now ({delivery.error_message or 'unavailable'}); retry later"
            context.set_trailing_metadata(retry_trailers(message, delivery.retry_after_s))
            context.abort(grpc.StatusCode.UNAVAILABLE, message)


def _response(delivery: Delivery) -> bytes:
    response = ExportTraceServiceResponse()
    if delivery.rejected or delivery.error_message:
        response.partial_success.rejected_spans = delivery.rejected
        response.partial_success.error_message = delivery.error_message
    return response.SerializeToString()


def _metadata_value(context: grpc.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            value = item.value
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None
