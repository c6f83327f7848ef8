"""The local store's SQLite database: entities merged by id, looked up by trace.

One row per entity id. A later write of the same id merges into the stored entity field by field (top-level
fields the later write carries replace the stored ones, fields it leaves out are kept), the way Maxim's own
SDK relies on partial updates of one id being merged.

Ids form one namespace per database file: the read endpoint has no repository parameter, so the store keeps
the `repoId` each entity was last written with (shown by the listing) but does not key by it.

One connection guarded by a lock, in WAL mode, so the HTTP server's request threads (and a sidecar sharing
the process) can use one store safely; a batch is written in one transaction, so it is stored whole or not at all.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

__all__ = ["EntityStore", "StoredEntity", "TraceSummary"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    trace_id TEXT,
    parent_id TEXT,
    repo_id TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    write_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entities_trace ON entities (trace_id);
CREATE INDEX IF NOT EXISTS entities_parent ON entities (parent_id);
CREATE INDEX IF NOT EXISTS entities_traces_recent ON entities (type, write_seq);
"""


@dataclass(frozen=True, slots=True)
class StoredEntity:
    """An entity as stored: the merged fields, and how many writes made it."""

    data: Mapping[str, Any]
    version: int
    repo_id: str


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One row of the trace listing."""

    id: str
    name: str | None
    repo_id: str
    start_timestamp: str | None
    end_timestamp: str | None
    entities: int
    """Stored entities that belong to the trace (the trace itself included)."""
    updated_at: float
    """Unix time of the last write to any of the trace's entities."""

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "repoId": self.repo_id,
            "startTimestamp": self.start_timestamp,
            "endTimestamp": self.end_timestamp,
            "entities": self.entities,
            "updatedAt": self.updated_at,
        }


def _trace_of(entity: Mapping[str, Any]) -> str | None:
    if entity.get("type") == "trace":
        return str(entity["id"])
    trace_id = entity.get("traceId")
    return trace_id if isinstance(trace_id, str) and trace_id else None


def _parent_of(entity: Mapping[str, Any]) -> str | None:
    parent = entity.get("spanId")
    return parent if isinstance(parent, str) and parent else None


class EntityStore:
    """Entities in one SQLite file. Thread-safe; `close()` when done."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: request threads share this connection; `_lock` serializes every use.
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entities)")}
        if columns and "write_seq" not in columns:  # a database from before write order was kept
            self._db.execute("ALTER TABLE entities ADD COLUMN write_seq INTEGER NOT NULL DEFAULT 0")
        self._db.executescript(_SCHEMA)
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_batch(self, repo_id: str, entities: Sequence[Mapping[str, Any]]) -> None:
        """Merge every entity into the store, in order, in one transaction (all or nothing)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # "Most recent" is by write order, not wall time, which can step back.
                seq = self._db.execute("SELECT COALESCE(MAX(write_seq), 0) + 1 FROM entities").fetchone()[0]
                for entity in entities:
                    self._merge_one(repo_id, entity, now, seq)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _merge_one(self, repo_id: str, entity: Mapping[str, Any], now: float, seq: int) -> None:
        entity_id = str(entity["id"])
        row = self._db.execute("SELECT data, version, created_at FROM entities WHERE id = ?", (entity_id,)).fetchone()
        if row is None:
            merged, version, created = dict(entity), 1, now
        else:
            merged = {**json.loads(row[0]), **entity}
            version, created = row[1] + 1, row[2]
        self._db.execute(
            "INSERT OR REPLACE INTO entities (id, type, trace_id, parent_id, repo_id, data, version, created_at, "
            "updated_at, write_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entity_id,
                str(merged["type"]),
                _trace_of(merged),
                _parent_of(merged),
                repo_id,
                json.dumps(merged, separators=(",", ":")),
                version,
                created,
                now,
                seq,
            ),
        )

    def get(self, entity_id: str) -> StoredEntity | None:
        with self._lock:
            row = self._db.execute("SELECT data, version, repo_id FROM entities WHERE id = ?", (entity_id,)).fetchone()
        return None if row is None else StoredEntity(json.loads(row[0]), row[1], row[2])

    def trace_members(self, trace_id: str) -> list[StoredEntity]:
        """Every entity of a trace except the trace itself.

        Members name their trace with `traceId`, or only hang under a span of it with `spanId`: those are
        found by following parent links down from the trace's spans (bounded: each id is visited once).
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, data, version, repo_id FROM entities WHERE trace_id = ? AND id != ?", (trace_id, trace_id)
            ).fetchall()
            found = {row[0]: row for row in rows}
            frontier = list(found)
            while frontier:
                batch, frontier = frontier[:500], frontier[500:]
                marks = ",".join("?" * len(batch))
                for row in self._db.execute(
                    f"SELECT id, data, version, repo_id FROM entities WHERE trace_id IS NULL AND parent_id IN ({marks})",
                    batch,
                ):
                    if row[0] not in found:
                        found[row[0]] = row
                        frontier.append(row[0])
        return [StoredEntity(json.loads(data), version, repo) for _, data, version, repo in found.values()]

    def recent_traces(self, limit: int) -> list[TraceSummary]:
        """The traces written to most recently (by any of their entities), newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t.id, t.data, t.repo_id, COUNT(m.id), "
                "MAX(t.updated_at, COALESCE(MAX(m.updated_at), 0)), "
                "MAX(t.write_seq, COALESCE(MAX(m.write_seq), 0)) AS latest "
                "FROM entities t LEFT JOIN entities m ON m.trace_id = t.id AND m.id != t.id "
                "WHERE t.type = 'trace' GROUP BY t.id ORDER BY latest DESC, t.id LIMIT ?",
                (limit,),
            ).fetchall()
        summaries = []
        for trace_id, data, repo_id, members, updated, _latest in rows:
            fields = json.loads(data)
            summaries.append(
                TraceSummary(
                    id=trace_id,
                    name=_text_or_none(fields.get("name")),
                    repo_id=repo_id,
                    start_timestamp=_text_or_none(fields.get("startTimestamp")),
                    end_timestamp=_text_or_none(fields.get("endTimestamp")),
                    entities=members + 1,
                    updated_at=updated,
                )
            )
        return summaries

    def count(self, types: Iterable[str] | None = None) -> int:
        with self._lock:
            if types is None:
                return self._db.execute("SELECT COUNT(*) FROM entities").fetchone()[0]
            kinds = list(types)
            marks = ",".join("?" * len(kinds))
            return self._db.execute(f"SELECT COUNT(*) FROM entities WHERE type IN ({marks})", kinds).fetchone()[0]


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
