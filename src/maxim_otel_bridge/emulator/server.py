"""The local Maxim-compatible HTTP API, embeddable in any process.

    with EmulatorServer("maxim-local.db") as server:   # port 0: the OS picks a free port
        ...  # POST f"{server.url}/v1/logs/batch", GET f"{server.url}/v1/log-repositories/logs/traces?id=..."

Endpoints (every one needs a non-empty `x-maxim-api-key`, or exactly `api_key` when one is pinned):

- `POST /v1/logs/batch`: the body is validated strictly with `schema.validate_batch`; any problem answers
  400 naming each entity's index, id and the problem, and stores nothing of the batch. 200 `{"success": true}`.
- `GET /v1/log-repositories/logs/traces?id=ID`: `{"data": ...}` in Maxim's read shape (`assemble.py`);
  400 without `id`, 404 for an unknown trace.
- `GET /local/v1/traces?limit=N`: the most recently written traces. Local only: Maxim's listing endpoints are
  not part of this API.

Error answers are JSON: `{"success": false, "error": {"message": ..., "problems": [...]}}`.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from ..config import Secret
from ..schema import validate_batch
from .assemble import assemble_trace
from .store import EntityStore

__all__ = [
    "BATCH_PATH",
    "DEFAULT_LIST_LIMIT",
    "LIST_PATH",
    "MAX_BODY_BYTES",
    "MAX_LIST_LIMIT",
    "TRACE_PATH",
    "EmulatorServer",
]

logger = logging.getLogger(__name__)

BATCH_PATH = "/v1/logs/batch"
TRACE_PATH = "/v1/log-repositories/logs/traces"
LIST_PATH = "/local/v1/traces"
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000
MAX_BODY_BYTES = 64 * 1024 * 1024
"""Larger bodies are refused with 413 before they are read (the bridge's own batches are at most a few MB)."""

_API_KEY_HEADER = "x-maxim-api-key"


class _Refusal(Exception):
    """An answer other than success, with its status and JSON error body."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and the read endpoint must answer valid JSON.
    raise ValueError(f"{name} is not a JSON value")


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    server_version = "maxim-otel-bridge-emulator"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    _body_read = False
    timeout = 30.0
    """Seconds a client may stay silent mid-request before its connection is dropped (frees the thread)."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    def do_POST(self) -> None:
        self._dispatch({BATCH_PATH: self._post_batch})

    def do_GET(self) -> None:
        self._dispatch({TRACE_PATH: self._get_trace, LIST_PATH: self._list_traces})

    def _dispatch(self, routes: Mapping[str, Any]) -> None:
        self._body_read = False
        url = urlsplit(self.path)
        route = routes.get(url.path.rstrip("/") or "/")
        try:
            if route is None:
                known = (BATCH_PATH, TRACE_PATH, LIST_PATH)
                if url.path.rstrip("/") in known:
                    raise _Refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed on {url.path}")
                raise _Refusal(HTTPStatus.NOT_FOUND, f"no such endpoint: {self.command} {url.path}")
            self._authorize()
            status, body = route(parse_qs(url.query))
        except _Refusal as refusal:
            error: dict[str, Any] = {"message": refusal.message}
            if refusal.problems is not None:
                error["problems"] = refusal.problems
            status, body = refusal.status, {"success": False, "error": error}
        except Exception:  # one bad request must not take the server down; the client gets a 500
            logger.exception("local store failed on %s %s", self.command, url.path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"success": False, "error": {"message": "internal error"}}
        if not self._body_read and self._has_body():
            # The unread body would be parsed as the next request on this connection: end the connection instead.
            self.close_connection = True
        self._answer(status, body)

    def _has_body(self) -> bool:
        length = self.headers.get("content-length", "0").strip()
        return length not in ("", "0") or "transfer-encoding" in self.headers

    def _authorize(self) -> None:
        given = self.headers.get(_API_KEY_HEADER, "")
        if not given:
            raise _Refusal(HTTPStatus.UNAUTHORIZED, f"missing {_API_KEY_HEADER} header")
        pinned = self.server.api_key
        if pinned and not hmac.compare_digest(given.encode(), pinned.reveal().encode()):
            raise _Refusal(HTTPStatus.UNAUTHORIZED, "invalid API key")

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            raise _Refusal(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not supported: send Content-Length")
        length_text = self.headers.get("content-length")
        if length_text is None:
            raise _Refusal(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(length_text)
        except ValueError:
            raise _Refusal(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {length_text!r}") from None
        if length < 0:
            raise _Refusal(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {length_text!r}")
        if length > MAX_BODY_BYTES:
            raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise _Refusal(HTTPStatus.REQUEST_TIMEOUT, f"body not received within {self.timeout:g}s") from None
        if len(body) < length:
            self.close_connection = True
            raise _Refusal(HTTPStatus.BAD_REQUEST, f"body ended after {len(body)} of {length} bytes")
        self._body_read = True
        return body

    def _post_batch(self, _query: Mapping[str, list[str]]) -> tuple[int, Any]:
        raw = self._read_body()
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {encoding!r}")
        try:
            body = json.loads(raw, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise _Refusal(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "body is not valid JSON: nested too deeply") from None
        problems = validate_batch(body)
        if problems:
            summary = "; ".join(str(p) for p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise _Refusal(HTTPStatus.BAD_REQUEST, f"invalid batch: {summary}{more}", [p.to_json_obj() for p in problems])
        self.server.store.write_batch(body["repoId"], body["logs"])
        logger.debug("stored %d entities for repository %s", len(body["logs"]), body["repoId"])
        return HTTPStatus.OK, {"success": True}

    def _get_trace(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        trace_id = (query.get("id") or [""])[0]
        if not trace_id:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "query parameter `id` is required")
        store = self.server.store
        trace = store.get(trace_id)
        if trace is None or trace.data.get("type") != "trace":
            raise _Refusal(HTTPStatus.NOT_FOUND, f"trace {trace_id!r} not found")
        members = [member.data for member in store.trace_members(trace_id)]
        return HTTPStatus.OK, {"data": assemble_trace(trace.data, members, version=trace.version)}

    def _list_traces(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        text = (query.get("limit") or [str(DEFAULT_LIST_LIMIT)])[0]
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise _Refusal(HTTPStatus.BAD_REQUEST, f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {text!r}")
        traces = self.server.store.recent_traces(limit)
        return HTTPStatus.OK, {"data": [summary.to_json_obj() for summary in traces]}

    def _answer(self, status: int, body: Any) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(int(status))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: EntityStore, api_key: Secret | None) -> None:
        self.store = store
        self.api_key = api_key
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class EmulatorServer:
    """The local Maxim-compatible API on `host:port` (port 0: any free port), storing into `db_path`.

    `start()` binds (raising `OSError` when the address is taken) and serves from a background thread;
    `stop()` stops serving and closes the database. Usable as a context manager. `api_key` pins the one
    accepted key; without it any non-empty key is accepted.
    """

    def __init__(
        self, db_path: str | Path, host: str = "127.0.0.1", port: int = 0, api_key: str | Secret | None = None
    ) -> None:
        self.db_path = Path(db_path)
        self.host = host
        self.port = port
        if isinstance(api_key, str):
            api_key = Secret(api_key)
        self._api_key = api_key if api_key else None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._store: EntityStore | None = None

    def __repr__(self) -> str:
        state = self.url if self._httpd is not None else "stopped"
        return f"EmulatorServer({str(self.db_path)!r}, {state}, api_key={self._api_key!r})"

    @property
    def url(self) -> str:
        """`http://host:port` with the bound port (call after `start()`)."""
        if self._httpd is None:
            raise RuntimeError("EmulatorServer is not started")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def store(self) -> EntityStore:
        if self._store is None:
            raise RuntimeError("EmulatorServer is not started")
        return self._store

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        store = EntityStore(self.db_path)
        try:
            httpd = _HttpServer((self.host, self.port), store, self._api_key)
        except OSError:
            store.close()
            raise
        self._store, self._httpd = store, httpd
        self.port = httpd.server_address[1]
        # A short poll interval: `stop()` waits for the serving loop to notice, and callers stop often in tests.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="maxim-local-store", daemon=True
        )
        self._thread.start()
        logger.info("local Maxim-compatible store listening on %s (database %s)", self.url, self.db_path)
        return self

    def stop(self) -> None:
        httpd, thread, store = self._httpd, self._thread, self._store
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join()
        if store is not None:
            store.close()
        self._httpd = self._thread = self._store = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
