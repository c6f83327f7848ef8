"""A local stand-in for Maxim's log API: `POST /v1/logs/batch` into SQLite, traces read back in Maxim's shape.

Run it with `maxim-otel-bridge emulate`, or embed it: `EmulatorServer(db_path, host, port, api_key)`.
"""

from __future__ import annotations

from .server import EmulatorServer
from .store import EntityStore

__all__ = ["EmulatorServer", "EntityStore"]
