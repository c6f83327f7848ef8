"""Reading traces back: `GET /v1/log-repositories/logs/traces` and the `trace get` / `trace list` commands.

`fetch_trace` is the project's one implementation of the read endpoint; it works against Maxim and the local
store alike and returns a `FetchResult` value instead of raising. `list_traces` uses the local store's own
listing endpoint (Maxim's listing endpoints are not part of this bridge).

Exit codes of `trace get` / `trace list`: 0 found, 2 bad settings or arguments, 3 unknown trace, 4 key refused,
5 server unreachable (or timed out), 6 any other failure (server error, unexpected answer).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .config import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_REPO_ID,
    LOCAL_REPO_ID,
    ConfigError,
    Destination,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNAUTHORIZED",
    "EXIT_UNREACHABLE",
    "LIST_PATH",
    "TRACE_PATH",
    "FetchResult",
    "add_arguments",
    "fetch_trace",
    "format_trace_list",
    "format_trace_tree",
    "list_traces",
    "run",
]

logger = logging.getLogger(__name__)

TRACE_PATH = "/v1/log-repositories/logs/traces"
LIST_PATH = "/local/v1/traces"
DEFAULT_TIMEOUT = 10.0
_MAX_ERROR_CHARS = 300

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
EXIT_UNAUTHORIZED = 4
EXIT_UNREACHABLE = 5
EXIT_FAILED = 6


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one read: `status` None when no answer came; `data` the response's `data` on success."""

    status: int | None
    data: Any = None
    error: str | None = None
    body: Any = None
    """The whole parsed JSON answer (`{"data": ...}` on success), when the answer was JSON."""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def exit_code(self) -> int:
        if self.ok:
            return EXIT_OK
        if self.status is None:
            return EXIT_UNREACHABLE
        if self.status == 404:
            return EXIT_NOT_FOUND
        if self.status in (401, 403):
            return EXIT_UNAUTHORIZED
        return EXIT_FAILED


def _server_message(response: httpx.Response) -> str:
    """The error message a server gave, short and on one line."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        elif isinstance(body, Mapping) and isinstance(body.get("message"), str):
            text = body["message"]
        else:
            text = response.text
    text = " ".join(text.split())
    return text[:_MAX_ERROR_CHARS] + ("..." if len(text) > _MAX_ERROR_CHARS else "")


def _get(
    destination: Destination,
    path: str,
    params: Mapping[str, Any],
    what: str,
    timeout: float,
    transport: httpx.BaseTransport | None,
) -> FetchResult:
    headers = {"x-maxim-api-key": destination.api_key.reveal(), "accept": "application/json"}
    try:
        with httpx.Client(base_url=destination.base_url, timeout=timeout, transport=transport) as http:
            response = http.get(path, params=params, headers=headers)
    except httpx.TimeoutException:
        return FetchResult(None, error=f"{destination.base_url} did not answer within {timeout:g}s")
    except httpx.TransportError as exc:
        return FetchResult(None, error=f"cannot reach {destination.base_url}: {exc or type(exc).__name__}")
    status = response.status_code
    if status == 404:
        return FetchResult(status, error=f"{what} not found ({_server_message(response)})")
    if status in (401, 403):
        return FetchResult(status, error=f"the server refused the API key (HTTP {status}): check {ENV_API_KEY}")
    if status != 200:
        return FetchResult(status, error=f"HTTP {status} reading {what}: {_server_message(response)}")
    try:
        body = response.json()
    except ValueError:
        return FetchResult(status, error=f"the answer for {what} is not JSON")
    if not isinstance(body, Mapping) or "data" not in body:
        return FetchResult(status, error=f"the answer for {what} has no `data`", body=body)
    return FetchResult(status, data=body["data"], body=body)


def fetch_trace(
    destination: Destination,
    trace_id: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> FetchResult:
    """`GET {base}/v1/log-repositories/logs/traces?id=trace_id`; never raises for HTTP or network failures."""
    result = _get(destination, TRACE_PATH, {"id": trace_id}, f"trace {trace_id}", timeout, transport)
    if result.ok and not isinstance(result.data, Mapping):
        return FetchResult(result.status, error=f"the answer for trace {trace_id} is not an object", body=result.body)
    return result


def list_traces(
    destination: Destination,
    limit: int = 20,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> FetchResult:
    """The local store's most recently written traces (`GET /local/v1/traces?limit=N`), newest first."""
    result = _get(destination, LIST_PATH, {"limit": limit}, "the trace listing", timeout, transport)
    if result.status == 404:
        return FetchResult(
            404, error=f"{destination.base_url} has no trace listing: only the local store (`emulate`) lists traces"
        )
    if result.ok and not isinstance(result.data, list):
        return FetchResult(result.status, error="the trace listing is not a list", body=result.body)
    return result


# -- text output -----------------------------------------------------------------------------------------


def _duration(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:g}ms"


def _error_text(entry: Mapping[str, Any]) -> str | None:
    candidates = [entry.get("error")]
    result = entry.get("completionResult")
    if isinstance(result, Mapping):
        candidates.append(result.get("error"))
    for error in candidates:
        if isinstance(error, Mapping):
            message = error.get("errorMessage") or error.get("message")
            if message:
                kind = error.get("errorType") or error.get("type")
                return f"{kind}: {message}" if kind else str(message)
        elif isinstance(error, str) and error:
            return error
    return None


def _usage_text(entry: Mapping[str, Any]) -> str | None:
    result = entry.get("completionResult")
    usage = result.get("usage") if isinstance(result, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    parts = [
        f"{usage[key]} {label}"
        for key, label in (("prompt_tokens", "in"), ("completion_tokens", "out"), ("total_tokens", "total"))
        if isinstance(usage.get(key), int)
    ]
    return f"tokens {' / '.join(parts)}" if parts else None


def _line(entry: Mapping[str, Any]) -> str:
    kind = entry.get("type") or "?"
    name = entry.get("name")
    pieces = [f"{kind} {name}" if name else str(kind)]
    duration = _duration(entry.get("duration"))
    if duration:
        pieces.append(duration)
    if kind == "generation":
        model, provider = entry.get("model"), entry.get("provider")
        if model:
            pieces.append(f"model {model}" + (f" ({provider})" if provider else ""))
        usage = _usage_text(entry)
        if usage:
            pieces.append(usage)
    elif kind == "retrieval" and isinstance(entry.get("docs"), list):
        pieces.append(f"{len(entry['docs'])} docs")
    error = _error_text(entry)
    if error:
        pieces.append(f"ERROR {error}")
    pieces.append(f"[{entry.get('id')}]")
    return "  ".join(pieces)


def format_trace_tree(data: Mapping[str, Any]) -> str:
    """The read response's `data` as an indented tree, one entry per line."""
    lines = [_line({**data, "type": "trace"})]

    def walk(timeline: Any, prefix: str) -> None:
        entries = [e for e in timeline if isinstance(e, Mapping)] if isinstance(timeline, list) else []
        for position, entry in enumerate(entries):
            last = position == len(entries) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_line(entry)}")
            walk(entry.get("timeline"), prefix + ("   " if last else "│  "))

    walk(data.get("timeline"), "")
    return "\n".join(lines)


def format_trace_list(traces: list[Any]) -> str:
    if not traces:
        return "no traces stored yet"
    lines = []
    for trace in traces:
        if not isinstance(trace, Mapping):
            continue
        lines.append(
            f"{trace.get('id')}  {trace.get('startTimestamp') or '-'}  {trace.get('entities')} entities  "
            f"{trace.get('name') or ''}".rstrip()
        )
    return "\n".join(lines)


# -- the `trace` command ---------------------------------------------------------------------------------


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"API to read from (default ${ENV_BASE_URL}; with neither it nor ${ENV_API_KEY} set, the local store)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for the answer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="trace_action", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="print one trace as a tree", description="Print one trace as a tree.")
    get.add_argument("trace_id", metavar="ID")
    get.add_argument("--json", action="store_true", help="print the raw JSON response instead of the tree")
    _add_source_arguments(get)
    listing = actions.add_parser(
        "list", help="recent traces in the local store", description="Recent traces in the local store (local only)."
    )
    listing.add_argument("--limit", type=int, default=20, help="how many traces (default 20)")
    listing.add_argument("--json", action="store_true", help="print the raw JSON response")
    _add_source_arguments(listing)


def _resolve(args: argparse.Namespace) -> Destination:
    # The read endpoints take no repository, so a missing MAXIM_LOG_REPO_ID must not stop a read.
    repo_id = os.environ.get(ENV_REPO_ID) or LOCAL_REPO_ID
    return Destination.resolve(base_url=args.base_url, repo_id=repo_id, allow_local_default=True)


def run(args: argparse.Namespace) -> int:
    # httpx logs every request at INFO; on a command whose output is the answer that is noise (kept under DEBUG).
    httpx_logger = logging.getLogger("httpx")
    if not logging.getLogger().isEnabledFor(logging.DEBUG) and httpx_logger.level < logging.WARNING:
        httpx_logger.setLevel(logging.WARNING)
    try:
        destination = _resolve(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.trace_action == "get":
        result = fetch_trace(destination, args.trace_id, timeout=args.timeout)
    else:
        result = list_traces(destination, args.limit, timeout=args.timeout)
    if not result.ok:
        print(f"error: {result.error}", file=sys.stderr)
        return result.exit_code
    if args.json:
        print(json.dumps(result.body, indent=2, ensure_ascii=False))
    elif args.trace_action == "get":
        print(format_trace_tree(result.data))
    else:
        print(format_trace_list(result.data))
    return EXIT_OK
