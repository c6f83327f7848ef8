"""A real OTLP/HTTP trace receiver on 127.0.0.1 and an OS-chosen port, keeping the decoded span records.

For capturing what a non-Python SDK exports. It accepts what OTLP/HTTP exporters send — protobuf or JSON bodies,
`content-length` or chunked, optionally gzip — and decodes them with the sidecar's own OTLP decoders, so the
records are exactly those the bridge would map. A body that does not decode is kept as an error and answered 400.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self

from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.sidecar.otlp_decode import (
    decode_trace_request_json,
    decode_trace_request_protobuf,
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
        else:
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def do_POST(self) -> None:
        data = self._body()
        if self.path != "/v1/traces":
            self._answer(404, b"")
            return
        try:
            if "json" in self.headers.get("content-type", ""):
                decoded = decode_trace_request_json(data)
            else:
                decoded = decode_trace_request_protobuf(data)
        except ValueError as exc:
            self.server.add([], f"{type(exc).__name__}: {exc}")
            self._answer(400, b"")
            return
        self.server.add(list(decoded.records), decoded.error_message or None)
        self._answer(200, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.records: list[SpanRecord] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def add(self, records: list[SpanRecord], error: str | None) -> None:
        with self._lock:
            self.records.extend(records)
            if error is not None:
                self.errors.append(error)


class OtlpHttpSink:
    """`with OtlpHttpSink() as sink:` point an exporter at `sink.traces_url`, then read `sink.records`."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http-sink", daemon=True)

    @property
    def traces_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1/traces"

    @property
    def records(self) -> list[SpanRecord]:
        return list(self._server.records)

    @property
    def errors(self) -> list[str]:
        return list(self._server.errors)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
