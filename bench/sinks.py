"""Counting sinks, each in its own process so they cost the measured process nothing.

- `http`: a minimal asyncio HTTP/1.1 server answering `POST /v1/logs/batch` with `{"success": true}` (and an
  OTLP/HTTP `POST /v1/traces`, counted unparsed, for the official OTLP/HTTP exporter). It
  counts requests, bytes and entities (by type) and records, per trace id, when the last entity of that
  trace arrived (`time.monotonic()`, the system-wide CLOCK_MONOTONIC, comparable across processes). Control:
  `GET /stats`, `GET /arrivals`, `POST /outage?on=1|0` (answer 503 to batches: a destination outage),
  `POST /reset`.
- `grpc`: an OTLP/gRPC trace service that accepts raw requests without parsing them and counts them: the
  other end of the official `OTLPSpanExporter`.

    python bench/sinks.py http|grpc      # prints "PORT <n>" once listening on 127.0.0.1

`SinkProcess` starts one and talks to it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent import futures
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SinkProcess", "serve_grpc", "serve_http"]

BATCH_PATH = "/v1/logs/batch"
OTLP_HTTP_PATH = "/v1/traces"
OTLP_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MAX_BODY = 64 * 1024 * 1024


class _Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.refused = 0
        self.bytes = 0
        self.entities = 0
        self.by_type: dict[str, int] = {}
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.arrivals: dict[str, float] = {}

    def take(self, body: bytes, now: float) -> None:
        logs = orjson.loads(body).get("logs") or []
        self.requests += 1
        self.bytes += len(body)
        self.entities += len(logs)
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        by_type, arrivals = self.by_type, self.arrivals
        for entity in logs:
            kind = entity.get("type", "")
            by_type[kind] = by_type.get(kind, 0) + 1
            trace_id = entity.get("id") if kind == "trace" else entity.get("traceId")
            if trace_id:
                arrivals[trace_id] = now

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "refused": self.refused,
            "bytes": self.bytes,
            "entities": self.entities,
            "by_type": self.by_type,
            "traces": len(self.arrivals),
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Too Large", 503: "Service Unavailable"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: _Counts, state: dict) -> None:
    ok = b'{"success":true}'
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length > MAX_BODY:
                writer.write(_response(413, b'{"success":false}'))
                await writer.drain()
                return
            body = await reader.readexactly(length) if length else b""
            path, _, query = target.partition("?")
            if method == "POST" and path == BATCH_PATH:
                if state["outage"]:
                    counts.refused += 1
                    reply = _response(503, b'{"success":false}')
                else:
                    try:
                        counts.take(body, time.monotonic())
                        reply = _response(200, ok)
                    except (ValueError, AttributeError) as exc:  # not JSON, or not an object with "logs"
                        reply = _response(400, orjson.dumps({"success": False, "error": {"message": str(exc)}}))
            elif method == "POST" and path == OTLP_HTTP_PATH:
                # The official OTLP/HTTP exporter's request, counted unparsed; empty protobuf = full success.
                counts.requests += 1
                counts.bytes += len(body)
                reply = _response(200, b"", "application/x-protobuf")
            elif path == "/stats":
                reply = _response(200, orjson.dumps(counts.stats()))
            elif path == "/arrivals":
                reply = _response(200, orjson.dumps(counts.arrivals))
            elif path == "/outage":
                state["outage"] = query.endswith("1")
                reply = _response(200, ok)
            elif path == "/reset":
                counts.reset()
                reply = _response(200, ok)
            else:
                reply = _response(404, b'{"success":false}')
            writer.write(reply)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        writer.close()


def serve_http() -> None:
    counts = _Counts()
    state = {"outage": False}

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _connection(r, w, counts, state), "127.0.0.1", 0, limit=1024 * 1024
        )
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_grpc() -> None:
    import grpc

    lock = threading.Lock()
    counts = {"requests": 0, "bytes": 0}

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        with lock:
            counts["requests"] += 1
            counts["bytes"] += len(request)
        return b""  # an empty ExportTraceServiceResponse: full success

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", MAX_BODY)],
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


class SinkProcess:
    """A sink running in a child process. Use as a context manager."""

    def __init__(self, kind: str) -> None:
        if kind not in ("http", "grpc"):
            raise ValueError(f"unknown sink kind {kind!r}")
        self.kind = kind
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SinkProcess:  # noqa: PYI034 - not subclassed
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), self.kind], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"{self.kind} sink did not start (said {line!r})")
        self.port = int(line[1])

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def arrivals(self) -> dict[str, float]:
        return self._call("GET", "/arrivals")

    def set_outage(self, on: bool) -> None:
        self._call("POST", f"/outage?on={1 if on else 0}")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def wait_for_entities(self, count: int, timeout: float, poll: float = 0.1) -> dict[str, Any]:
        """Poll until at least `count` entities arrived or `timeout` passed; the last stats."""
        end = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["entities"] >= count or time.monotonic() >= end:
                return stats
            time.sleep(poll)


if __name__ == "__main__":
    {"http": serve_http, "grpc": serve_grpc}[sys.argv[1]]()
