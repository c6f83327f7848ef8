"""OTLP/HTTP receiver: `POST /v1/traces` (and `POST /v1/logs` when given a log sink) with protobuf or JSON
bodies, optionally gzip/deflate compressed.

Built on the standard library's `ThreadingHTTPServer` (one thread per connection, HTTP/1.1 keep-alive),
hardened for untrusted clients: a per-read timeout and a whole-body deadline, a cap on connections,
a cap on requests being worked on at once, a size limit checked before reading and again while
decompressing (so a gzip bomb stops at the limit; `http_body.py`), and a catch-all at the connection
boundary so no request can take the server down.

Answers follow OTLP/HTTP: the response uses the request's encoding; errors carry a `google.rpc.Status`
body; backpressure is 503 with `Retry-After`. Routes are a table: one entry per signal.
"""

from __future__ import annotations

import logging
import math
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.sidecar.http_body import (
    CONTENT_ENCODINGS,
    BadFraming,
    BodyTimeout,
    BodyTooLarge,
    decompress,
    read_chunked_body,
    read_sized_body,
)
from maxim_otel_bridge.sidecar.ingest import (
    DEFAULT_HTTP_ENDPOINT,
    DEFAULT_RETRY_AFTER_S,
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
from maxim_otel_bridge.sidecar.otlp_decode import (
    DecodedSpans,
    MalformedRequest,
    decode_trace_request_json,
    split_trace_request_protobuf,
)
from maxim_otel_bridge.sidecar.otlp_logs import DecodedLogs, decode_logs_request_json, decode_logs_request_protobuf

__all__ = ["LOGS_PATH", "TRACES_PATH", "HttpReceiver", "parse_endpoint"]

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_RECEIVER = "http"
_READ_CHUNK = 64 * 1024
# How often the accept loop checks for stop(): stop() waits up to this long before it takes effect.
_POLL_INTERVAL_S = 0.05
# A refused request's unread body is read and thrown away, up to this much, before the connection is
# closed: closing with unread data makes the kernel reset the connection, and the client would see a
# connection error instead of the 4xx that explains the refusal.
_MAX_DRAIN_BYTES = 64 * 1024 * 1024


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """`host:port` or `[v6addr]:port` -> (host, port); raises ValueError with the expected form."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"endpoint must be host:port (e.g. 127.0.0.1:4318), got {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    """Close the connection after answering (the request body may be unread, or the client misbehaved)."""
    outcome: str = "ok"


class _Refused(Exception):
    """A request refused before it reached the decoder; carries the reply to send."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class _Route:
    decode_protobuf: Callable[[bytes], DecodedSpans | DecodedLogs]
    decode_json: Callable[[bytes], DecodedSpans | DecodedLogs]
    response: Callable[[Delivery], Message]
    signal: str = "traces"
    """The `signal` label of the request metric."""
    items: str = "spans"
    """What the requests carry, for messages."""
    logs: bool = False
    """Handed to the log sink (and served only when the receiver has one)."""


def _trace_response(delivery: Delivery) -> Message:
    response = ExportTraceServiceResponse()
    if delivery.rejected or delivery.error_message:
        response.partial_success.rejected_spans = delivery.rejected
        response.partial_success.error_message = delivery.error_message
    return response


def _logs_response(delivery: Delivery) -> Message:
    response = ExportLogsServiceResponse()
    if delivery.rejected or delivery.error_message:
        response.partial_success.rejected_log_records = delivery.rejected
        response.partial_success.error_message = delivery.error_message
    return response


_ROUTES = {
    TRACES_PATH: _Route(split_trace_request_protobuf, decode_trace_request_json, _trace_response),
    LOGS_PATH: _Route(
        decode_logs_request_protobuf,
        decode_logs_request_json,
        _logs_response,
        signal="logs",
        items="log records",
        logs=True,
    ),
}


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def _status_reply(
    http_status: int,
    code: int,
    message: str,
    content_type: str,
    outcome: str,
    *,
    close: bool = False,
    headers: tuple[tuple[str, str], ...] = (),
    retry_after_s: float | None = None,
) -> _Reply:
    status = status_pb2.Status(code=code, message=message)
    if retry_after_s is not None:
        seconds = math.floor(retry_after_s)
        detail = AnyProto()
        detail.Pack(
            error_details_pb2.RetryInfo(
                retry_delay=Duration(seconds=seconds, nanos=round((retry_after_s - seconds) * 1e9))
            )
        )
        status.details.append(detail)
        # Retry-After takes whole seconds: round up so the client never comes back too early.
        headers = (*headers, ("Retry-After", str(max(1, math.ceil(retry_after_s)))))
    return _Reply(http_status, _encode(status, content_type), content_type, headers, close, outcome)


class HttpReceiver:
    """Serves OTLP/HTTP on `endpoint` (host:port; port 0 picks a free one) and hands spans to `sink`."""

    def __init__(
        self,
        endpoint: str = DEFAULT_HTTP_ENDPOINT,
        sink: SpanSink | None = None,
        limits: ReceiverLimits | None = None,
        auth_token: Secret | None = None,
        tls: TlsFiles | None = None,
        metrics: BridgeMetrics | None = None,
        *,
        log_sink: LogSink | None = None,
    ) -> None:
        if sink is None:
            raise ValueError("HttpReceiver needs a span sink")
        self.endpoint = endpoint
        self._host, self._port = parse_endpoint(endpoint)
        self._sink = sink
        self._log_sink = log_sink
        self.limits = limits or ReceiverLimits.http_default()
        self._auth = BearerAuth(auth_token)
        self._tls = tls
        self.metrics = metrics or BridgeMetrics()
        self.throttle = LogThrottle(logger)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._workers = threading.BoundedSemaphore(self.limits.max_workers)
        self._in_flight = 0
        self._idle = threading.Condition()
        self.stopping = False
        self._lock = threading.Lock()

    @property
    def bound_port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTP receiver is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the HTTP receiver is already started")
            context = self._tls_context()
            try:
                server = _Server(self, (self._host, self._port), context)
            except OSError as exc:
                raise ReceiverStartError(
                    f"OTLP/HTTP receiver cannot listen on {self.endpoint}: {exc.strerror or exc}"
                ) from None
            self.stopping = False
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name="otlp-http",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        logger.info(
            "OTLP/HTTP receiver listening on %s (port %d, tls=%s, bearer token=%s, max request %d bytes)",
            self.endpoint,
            self.bound_port,
            "on" if self._tls else "off",
            "required" if self._auth.required else "off",
            self.limits.max_request_bytes,
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ReceiverStartError(
                f"OTLP/HTTP receiver: cannot load TLS certificate or key: {exc}"
            ) from None
        return context

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting connections, let in-flight requests finish for up to `grace_s`, then close the rest."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        self.stopping = True
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        deadline = time.monotonic() + max(grace_s, 0.0)
        with self._idle:
            while self._in_flight and (remaining := deadline - time.monotonic()) > 0:
                self._idle.wait(remaining)
            unfinished = self._in_flight
        server.close_connections()
        if unfinished:
            logger.warning(
                "OTLP/HTTP receiver stopped with %d requests unfinished after %.1fs", unfinished, grace_s
            )
        logger.info("OTLP/HTTP receiver on %s stopped", self.endpoint)

    # Request handling (called on the connection's thread).

    def handle_post(self, handler: _Handler) -> _Reply:
        route, content_type = self._admit(handler)
        if not self._workers.acquire(timeout=self.limits.read_timeout_s):
            return _status_reply(
                503,
                code_pb2.UNAVAILABLE,
                "too many requests in progress; retry later",
                content_type,
                "unavailable",
                close=True,
                retry_after_s=DEFAULT_RETRY_AFTER_S,
            )
        try:
            body = self._read_body(handler, content_type)
            try:
                decoded = route.decode_protobuf(body) if content_type == PROTOBUF else route.decode_json(body)
            except MalformedRequest as exc:
                self.throttle.warning(
                    "malformed",
                    "OTLP/HTTP: refused a malformed request from %s: %s",
                    handler.client_address[0],
                    exc,
                )
                return _status_reply(400, code_pb2.INVALID_ARGUMENT, str(exc), content_type, "malformed")
            if route.logs:
                assert self._log_sink is not None  # `route` refuses log requests without a log sink
                delivery = deliver_logs(decoded, self._log_sink, self.metrics, _RECEIVER)  # type: ignore[arg-type]
            else:
                delivery = deliver(decoded, self._sink, self.metrics, _RECEIVER)  # type: ignore[arg-type]
        finally:
            self._workers.release()
        if not delivery.acknowledged:
            return _status_reply(
                503,
                code_pb2.UNAVAILABLE,
                f"the bridge cannot take {route.items} now ({delivery.error_message or 'unavailable'}); retry later",
                content_type,
                delivery.outcome,
                retry_after_s=delivery.retry_after_s,
            )
        return _Reply(
            200, _encode(route.response(delivery), content_type), content_type, outcome=delivery.outcome
        )

    def refusal_before_body(self, handler: _Handler) -> _Reply | None:
        """For `Expect: 100-continue`: the answer that makes sending the body pointless, if there is one."""
        if handler.command != "POST":
            return None
        try:
            _, content_type = self._admit(handler)
        except _Refused as refused:
            return refused.reply
        try:
            length = int(handler.headers.get("content-length") or 0)
        except ValueError:
            return None  # the body reader answers this one
        return self._too_large(content_type) if length > self.limits.max_request_bytes else None

    def _admit(self, handler: _Handler) -> tuple[_Route, str]:
        """Checks everything that can be checked before the body is read; raises _Refused."""
        headers = handler.headers
        content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        reply_type = content_type if content_type in (PROTOBUF, JSON) else JSON
        route = self.route(handler.path)
        if route is None:
            raise _Refused(
                _status_reply(
                    404,
                    code_pb2.NOT_FOUND,
                    self.no_such_path_message,
                    reply_type,
                    "unsupported",
                    close=True,
                )
            )
        if not self._auth.allows(headers.get("authorization")):
            self.throttle.warning(
                "auth",
                "OTLP/HTTP: refused a request without a valid bearer token from %s",
                handler.client_address[0],
            )
            raise _Refused(
                _status_reply(
                    401,
                    code_pb2.UNAUTHENTICATED,
                    "missing or invalid bearer token",
                    reply_type,
                    "unauthenticated",
                    close=True,
                    headers=(("WWW-Authenticate", "Bearer"),),
                )
            )
        if reply_type != content_type:
            raise _Refused(
                _status_reply(
                    415,
                    code_pb2.INVALID_ARGUMENT,
                    f"unsupported content type {content_type!r}; use {PROTOBUF} or {JSON}",
                    reply_type,
                    "unsupported",
                    close=True,
                )
            )
        return route, content_type

    def route(self, path: str) -> _Route | None:
        """The route serving `path` (query ignored), or None."""
        route = _ROUTES.get(path.split("?", 1)[0])
        if route is None or (route.logs and self._log_sink is None):
            return None
        return route

    @property
    def no_such_path_message(self) -> str:
        if self._log_sink is None:
            return f"no such path; OTLP traces go to {TRACES_PATH}"
        return f"no such path; OTLP traces go to {TRACES_PATH}, logs to {LOGS_PATH}"

    def _read_body(self, handler: _Handler, content_type: str) -> bytes:
        """The request body, decompressed, at most `max_request_bytes`; raises _Refused."""
        limit = self.limits.max_request_bytes
        encoding = (handler.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in CONTENT_ENCODINGS:
            raise _Refused(
                _status_reply(
                    415,
                    code_pb2.INVALID_ARGUMENT,
                    f"unsupported content encoding {encoding!r}; use gzip, deflate or none",
                    content_type,
                    "unsupported",
                    close=True,
                )
            )
        deadline = time.monotonic() + self.limits.body_timeout_s
        handler.body_consumed = True
        try:
            if "chunked" in (handler.headers.get("transfer-encoding") or "").lower():
                raw = read_chunked_body(handler.rfile, limit, deadline)
            else:
                raw = read_sized_body(handler.rfile, handler.headers.get("content-length"), limit, deadline)
            return decompress(encoding, raw, limit)
        except BodyTooLarge:
            raise _Refused(self._too_large(content_type)) from None
        except BadFraming as exc:
            raise _Refused(
                _status_reply(
                    exc.status, code_pb2.INVALID_ARGUMENT, str(exc), content_type, "malformed", close=True
                )
            ) from None
        except (TimeoutError, BodyTimeout):
            raise _Refused(
                _status_reply(
                    408,
                    code_pb2.DEADLINE_EXCEEDED,
                    "request body not received in time",
                    content_type,
                    "timeout",
                    close=True,
                )
            ) from None
        except zlib.error as exc:
            raise _Refused(
                _status_reply(
                    400,
                    code_pb2.INVALID_ARGUMENT,
                    f"body is not valid {encoding} data: {exc}",
                    content_type,
                    "malformed",
                )
            ) from None

    def _too_large(self, content_type: str) -> _Reply:
        self.throttle.warning(
            "too_large", "OTLP/HTTP: refused a request over %d bytes", self.limits.max_request_bytes
        )
        return _status_reply(
            413,
            code_pb2.RESOURCE_EXHAUSTED,
            f"request is larger than {self.limits.max_request_bytes} bytes (after decompression)",
            content_type,
            "too_large",
            close=True,
        )

    def request_started(self) -> None:
        with self._idle:
            self._in_flight += 1

    def request_finished(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()


# The server and its handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Connection threads are tracked by the receiver's stop(), not joined here.
    block_on_close = False
    request_queue_size = 128

    def __init__(self, receiver: HttpReceiver, address: tuple[str, int], tls: ssl.SSLContext | None) -> None:
        self.receiver = receiver
        self._tls = tls
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self._tls is not None:
            # The handshake runs on the connection's thread (in _Handler.setup), never on the accept loop,
            # so a client that stalls mid-handshake cannot block new connections.
            sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            if len(self._connections) >= self.receiver.limits.max_connections:
                full = True
            else:
                full = False
                self._connections.add(request)
        if full:
            self.receiver.throttle.warning(
                "connections", "OTLP/HTTP: %d connections open; closing a new one", len(self._connections)
            )
            self.receiver.metrics.request_handled(_RECEIVER, "other", "unavailable")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open connection (idle keep-alives, and requests that outlived the grace period)."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Disconnects, timeouts and TLS handshake failures from clients are routine, not tracebacks on stderr.
        # socketserver calls this from inside its except block, so exc_info names the error.
        logger.debug(
            "OTLP/HTTP: connection from %s ended with an error",
            client_address,
            exc_info=True,  # noqa: LOG014
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "maxim-otel-bridge"
    sys_version = ""
    server: _Server

    body_consumed = False

    def setup(self) -> None:
        super().setup()
        # Every read on the connection (request line, headers, body, TLS handshake) gives up after this.
        self.connection.settimeout(self.server.receiver.limits.read_timeout_s)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def parse_request(self) -> bool:
        self.body_consumed = False  # per request: one connection carries many
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        # Clients that ask before sending a large body (curl does above 1 MiB) get a refusal before
        # uploading it when the request cannot succeed anyway.
        reply = self.server.receiver.refusal_before_body(self)
        if reply is not None:
            self.body_consumed = True  # no body follows a final answer to Expect
            self._send(reply)
            return False
        return super().handle_expect_100()

    def do_POST(self) -> None:
        receiver = self.server.receiver
        receiver.request_started()
        try:
            try:
                reply = receiver.handle_post(self)
            except _Refused as refused:
                reply = refused.reply
            except Exception:  # the connection boundary: one bad request must not kill the server
                logger.exception(
                    "OTLP/HTTP: unexpected error handling a request from %s", self.client_address[0]
                )
                reply = _status_reply(500, code_pb2.INTERNAL, "internal error", JSON, "error", close=True)
            self._send(reply)
        finally:
            receiver.request_finished()

    def _method_not_allowed(self) -> None:
        receiver = self.server.receiver
        if receiver.route(self.path) is None:
            reply = _status_reply(
                404,
                code_pb2.NOT_FOUND,
                receiver.no_such_path_message,
                JSON,
                "unsupported",
                close=True,
            )
        else:
            reply = _status_reply(
                405,
                code_pb2.INVALID_ARGUMENT,
                f"{self.command} is not allowed; OTLP uses POST",
                JSON,
                "unsupported",
                close=True,
                headers=(("Allow", "POST"),),
            )
        self._send(reply)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _method_not_allowed

    def _send(self, reply: _Reply) -> None:
        receiver = self.server.receiver
        route = receiver.route(getattr(self, "path", ""))
        receiver.metrics.request_handled(_RECEIVER, route.signal if route is not None else "other", reply.outcome)
        close = reply.close or receiver.stopping
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if close:
            self._drain_unread_body()
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _drain_unread_body(self) -> None:
        if self.body_consumed or self.command not in ("POST", "PUT", "PATCH"):
            return
        self.body_consumed = True
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            return
        if 0 < length <= _MAX_DRAIN_BYTES:
            deadline = time.monotonic() + self.server.receiver.limits.read_timeout_s
            try:
                while length > 0 and time.monotonic() < deadline:
                    chunk = self.rfile.read1(min(length, _READ_CHUNK))
                    if not chunk:
                        return
                    length -= len(chunk)
            except OSError:
                return  # the client went away or stalled: nothing more to protect

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("OTLP/HTTP %s: " + format, self.client_address[0], *args)
