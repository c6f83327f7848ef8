"""`maxim-otel-bridge serve`: parse settings, run the sidecar until SIGTERM/SIGINT, stop gracefully.

Exit codes: 0 after a graceful stop (spans not shipped within the grace period stay in the spool), 2 for an
invalid setting (the message names it), 1 when the sidecar cannot start (a port taken, the spool unusable).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading

from maxim_otel_bridge.config import ConfigError
from maxim_otel_bridge.sidecar.settings import add_setting_arguments, load_settings

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from maxim_otel_bridge.sidecar.app import Sidecar
    from maxim_otel_bridge.sidecar.memory import tune_malloc

    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"maxim-otel-bridge serve: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    tune_malloc()  # before the sidecar starts its threads
    sidecar = Sidecar(settings)
    try:
        try:
            sidecar.start()
        except ConfigError as exc:
            print(f"maxim-otel-bridge serve: {exc}", file=sys.stderr)
            sidecar.stop()
            return 2
        except (OSError, RuntimeError, sqlite3.Error) as exc:
            logger.error("cannot start: %s", exc)
            sidecar.stop()
            return 1
        # Event.wait with a timeout keeps the main thread responsive to signals.
        while not stop.wait(1.0):
            pass
        logger.info("%s received: refusing new spans, shipping for up to %.1fs", received[0], settings.grace_period)
        sidecar.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
