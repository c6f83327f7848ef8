"""`maxim-otel-bridge emulate`: run the local Maxim-compatible API until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from urllib.parse import urlsplit

from ..config import ENV_BASE_URL, LOCAL_STORE_URL
from .server import LIST_PATH, EmulatorServer

__all__ = ["DEFAULT_DB", "DEFAULT_LISTEN", "add_arguments", "parse_listen", "run"]

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = urlsplit(LOCAL_STORE_URL).netloc
DEFAULT_DB = "maxim-local.db"

EXIT_BAD_ARGUMENT = 2
EXIT_CANNOT_LISTEN = 3


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[IPv6]:PORT`) -> (host, port); ValueError with a readable message otherwise."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT (for example {DEFAULT_LISTEN}), got {text!r}")
    return host, int(port_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"address to listen on (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"SQLite database file (default ./{DEFAULT_DB})"
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="accept only this x-maxim-api-key (default: any non-empty key)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGUMENT
    server = EmulatorServer(args.db, host=host, port=port, api_key=args.api_key)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"local Maxim-compatible store on {server.url} (database {server.db_path})", flush=True)
        print(f"  point the bridge at it: {ENV_BASE_URL}={server.url}", flush=True)
        print(f"  recent traces: GET {server.url}{LIST_PATH} or `maxim-otel-bridge trace list`", flush=True)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    return 0
