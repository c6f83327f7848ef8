"""A real HTTP server that speaks Maxim's `POST /v1/logs/batch`, for tests and benchmarks.

It listens on 127.0.0.1 (port 0 unless told), records every request, validates every body with
`schema.validate_batch` and answers 400 with the problems when the body is invalid, like Maxim. It can be
scripted: a queue of canned responses (status, headers such as Retry-After, body, an optional delay), or a
callable that decides per request; and it can refuse connections (stop listening) and resume on the same port.

    with BatchSink() as sink:
        sink.enqueue(CannedResponse(503, {"Retry-After": "1"}))
        ...  # point a client at sink.url
        assert sink.entities_by_id()["abc"]["name"] == "chat"

Only requests answered 2xx count as stored (`entities()`), the way Maxim only stores what it accepted.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from maxim_otel_bridge.schema import Problem, validate_batch

__all__ = ["BATCH_PATH", "BatchSink", "CannedResponse", "ReceivedRequest", "reject_entity_ids"]

BATCH_PATH = "/v1/logs/batch"


@dataclass(frozen=True)
class CannedResponse:
    """A scripted answer. `body` may be bytes, text, or a JSON-able object (sent as JSON)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    """Seconds to hold the answer back (to exercise client timeouts); cut short when the sink stops."""

    def encoded_body(self) -> bytes:
        if self.body is None:
            return json.dumps({"success": 200 <= self.status < 300}).encode()
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the sink saw it, and what it answered."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    raw_body: bytes
    body: Any
    """The parsed JSON body, or None when it did not parse."""
    problems: tuple[Problem, ...]
    """Schema problems of the body (empty when valid)."""
    status: int
    """The status the sink answered."""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def logs(self) -> list[dict]:
        if isinstance(self.body, dict) and isinstance(self.body.get("logs"), list):
            return self.body["logs"]
        return []

    @property
    def entity_ids(self) -> list[str]:
        return [e.get("id") for e in self.logs if isinstance(e, dict)]


Decider = Callable[[ReceivedRequest], "CannedResponse | None"]
"""Called with the request (its `status` is 0: not answered yet); returns an answer, or None for the default."""


def reject_entity_ids(ids: Iterable[str], reason: str = "invalid entity") -> Decider:
    """A decider that answers 400 to any batch containing one of `ids` (a server that rejects some entities)."""
    bad = frozenset(ids)

    def decide(request: ReceivedRequest) -> CannedResponse | None:
        hit = [i for i in request.entity_ids if i in bad]
        if hit:
            return CannedResponse(400, body={"success": False, "error": {"message": f"{reason}: {hit[0]}"}})
        return None

    return decide


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sink: BatchSink) -> None:
        self.sink = sink
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API behind a load balancer
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sink._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean; every request is recorded instead

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            # The client died mid-request (a test kills the sidecar while it sends): a real server never
            # sees an incomplete body as a request, so neither does the sink.
            return
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            raw = gzip.decompress(raw)
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.sink._handle("POST", self.path, headers, raw)
        self._reply(reply)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._reply(self.server.sink._handle("GET", self.path, headers, b""))

    def _reply(self, reply: CannedResponse) -> None:
        if reply.delay:
            self.server.sink._stopping.wait(reply.delay)
        payload = reply.encoded_body()
        try:
            self.send_response(reply.status)
            names = {k.lower() for k in reply.headers}
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if "content-type" not in names:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client went away (timed out): nothing to answer


class BatchSink:
    """A scriptable Maxim batch endpoint on a real socket. Use as a context manager."""

    def __init__(
        self,
        *,
        decide: Decider | None = None,
        api_key: str | None = None,
        port: int = 0,
        validate: bool = True,
    ) -> None:
        """`api_key`: when set, any other `x-maxim-api-key` gets 401 (as Maxim does).
        `validate=False` skips the schema check: only for throughput benchmarks, where it would dominate."""
        self.decide = decide
        self.api_key = api_key
        self.validate = validate
        self._port = port
        self._queue: deque[CannedResponse] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> BatchSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stopping.clear()
        self._listen()

    def stop(self) -> None:
        self._stopping.set()
        self._close_listener()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL to configure a client with (no path)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def refuse_connections(self) -> None:
        """Stop listening and drop open connections: clients now get 'connection refused'."""
        self._close_listener()

    def resume(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._listen()

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self._port), self)
        self._port = server.server_address[1]
        self._server = server
        # A short poll interval so stop()/refuse_connections() return promptly.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"batch-sink-{self._port}", daemon=True
        )
        self._thread.start()

    def _close_listener(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- scripting ---------------------------------------------------------------------------------

    def enqueue(self, *responses: CannedResponse | int) -> None:
        """Answer the next requests with these, in order (an int is a bare status)."""
        with self._lock:
            for response in responses:
                self._queue.append(CannedResponse(response) if isinstance(response, int) else response)

    @property
    def pending_responses(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- what was received -------------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def accepted_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.accepted]

    def entities(self, *, include_rejected: bool = False) -> list[dict]:
        """Every entity received in an accepted (2xx) request, in arrival order."""
        return [e for r in self.requests if include_rejected or r.accepted for e in r.logs]

    def entities_by_id(self) -> dict[str, dict]:
        """Accepted entities merged by id (later fields win), as Maxim merges partial updates."""
        merged: dict[str, dict] = {}
        for entity in self.entities():
            merged.setdefault(entity.get("id"), {}).update(entity)
        return merged

    def problems(self) -> list[Problem]:
        """Schema problems of every body received (empty when every payload was valid)."""
        return [p for r in self.requests for p in r.problems]

    def wait_for(self, predicate: Callable[[BatchSink], bool], timeout: float = 10.0) -> bool:
        """Block until `predicate(sink)` holds (re-checked on each request) or `timeout` passes."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = len(self._requests)
            if predicate(self):
                return True
            with self._changed:
                # Wait only if nothing arrived since the predicate looked.
                while len(self._requests) == seen:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)

    def wait_for_entities(self, ids: Iterable[str], timeout: float = 10.0) -> bool:
        wanted = set(ids)
        return self.wait_for(lambda sink: wanted <= set(sink.entities_by_id()), timeout)

    # -- request handling --------------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> CannedResponse:
        body: Any = None
        parse_error = ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            parse_error = f"body is not JSON: {exc}"
        problems: tuple[Problem, ...] = ()
        if method == "POST" and not parse_error and self.validate:
            problems = tuple(validate_batch(body))
        pending = ReceivedRequest(method, path, headers, raw, body, problems, 0)

        reply = self._decide(pending, method, path, headers, parse_error)
        with self._changed:
            self._requests.append(ReceivedRequest(method, path, headers, raw, body, problems, reply.status))
            self._changed.notify_all()
        return reply

    def _decide(
        self, request: ReceivedRequest, method: str, path: str, headers: Mapping[str, str], parse_error: str
    ) -> CannedResponse:
        if method != "POST" or path.split("?", 1)[0] != BATCH_PATH:
            return CannedResponse(404, body={"success": False, "error": {"message": f"no route {method} {path}"}})
        if self.api_key is not None and headers.get("x-maxim-api-key") != self.api_key:
            return CannedResponse(401, body={"success": False, "error": {"message": "Invalid API key"}})
        scripted = self.decide(request) if self.decide is not None else None
        if scripted is None:
            with self._lock:
                scripted = self._queue.popleft() if self._queue else None
        if scripted is not None and not 200 <= scripted.status < 300:
            return scripted
        # A scripted success never hides an invalid body: Maxim would refuse it.
        if parse_error:
            return CannedResponse(400, body={"success": False, "error": {"message": parse_error}})
        if request.problems:
            return CannedResponse(
                400,
                body={
                    "success": False,
                    "error": {
                        "message": "; ".join(str(p) for p in request.problems[:20]),
                        "problems": [p.to_json_obj() for p in request.problems],
                    },
                },
            )
        return scripted or CannedResponse(200)
