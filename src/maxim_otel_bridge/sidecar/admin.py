"""The admin endpoint: `/healthz` (alive), `/readyz` (ready to take and deliver spans, JSON), `/metrics`.

`/readyz` answers 503 when a receiver is down, the spool cannot be written, or Maxim refuses the API key
(a configuration error no retry fixes). A destination that is merely unreachable keeps the sidecar ready: the
spool absorbs the outage, and taking the sidecar out of service would lose traffic instead. The body says which
check failed, and whether spans go to the embedded local store.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AdminServer", "Readiness"]

logger = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
"""Returns (ready, the JSON body of /readyz)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], admin: AdminServer) -> None:
        super().__init__(address, _Handler)
        self.admin = admin


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("admin %s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        admin = self.server.admin
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b'{"status":"alive"}', "application/json")
        elif path == "/readyz":
            ready, body = admin.readiness()
            self._send(200 if ready else 503, json.dumps({"ready": ready, **body}).encode(), "application/json")
        elif path == "/metrics":
            admin.before_metrics()
            data, content_type = admin.render_metrics()
            self._send(200, data, content_type)
        else:
            self._send(404, b'{"error":"not found: try /healthz, /readyz or /metrics"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class AdminServer:
    """A small threaded HTTP server; `start()` binds (port 0 picks a free one), `bound_port` tells which."""

    def __init__(
        self,
        endpoint: str,
        *,
        readiness: Readiness,
        render_metrics: Callable[[], tuple[bytes, str]],
        before_metrics: Callable[[], None] = lambda: None,
    ) -> None:
        host, _, port = endpoint.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.readiness = readiness
        self.render_metrics = render_metrics
        self.before_metrics = before_metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def bound_port(self) -> int:
        if self._server is None:
            raise RuntimeError("the admin server is not started")
        return self._server.server_address[1]

    def start(self) -> None:
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="admin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
