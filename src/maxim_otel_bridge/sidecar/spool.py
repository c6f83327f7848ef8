"""The durable spool: every accepted span waits here, on disk, until Maxim has it.

One SQLite file (`spool.sqlite3`) in WAL mode inside a 0700 directory. Tables:

- `span_groups`: one row per trace per request: the spans of one trace that came in one request (at most
  `MAX_GROUP_SPANS`), with their ids and count, rowid = arrival order. The body holds the spans as they came:
  OTLP protobuf (`otlp_decode.EncodedSpan`s as one request holding them all, `join_encoded_spans`) from the
  protobuf receivers, or the records as one orjson array (from OTLP/JSON); `decode_bodies` reads both. Writing,
  claiming and deleting cost one row per trace and request instead of one per span. A group is unique by
  (trace_id, span ids): a request sent again (a client retrying after a lost answer) is stored once; a span
  that comes again in another group is mapped once, its last copy kept (`mapping.map_trace_part`). (A spool
  written by an earlier version, with one `spans` row per span, is converted when opened.)
- `traces`: per waiting trace, when its first span arrived and whether it is ready (its local root has
  arrived, or it shipped a part before): the assembler asks "which traces are ready" with one indexed
  query, so RAM holds no per-trace state.
- `trace_placements`: per shipped trace, where each of its shipped spans went (entity type and parent), as one
  JSON object, kept `placement_retention` seconds after the trace last shipped so a late span hangs under the
  right parent even after a restart. One row per trace, merged in SQL (`json_patch`) when a later part ships:
  remembering a part costs one write, not one per span. (A spool written by an earlier version, with one
  `placements` row per span, is converted when opened.)
- `log_events`: GenAI event log records (`log_events.LogEvent`) waiting to be joined to their span, unique by
  (trace_id, record key) so a record sent twice is stored once. They go through the same group commit, byte
  cap and `traces` bookkeeping as spans, and are deleted in the transaction that deletes the spans they joined.
- `shipped_spans`: the records of shipped generation spans that still lacked messages or output (the mapping
  says which), with the events already joined to them, kept as long as placements: a record arriving after
  its span shipped re-maps that span, and Maxim merges the re-sent entity by id.

Writes use group commit: receiver threads hand their records to one writer thread, which writes every
request waiting at that moment in ONE transaction and commits once, then answers them all. A request is
ACCEPTED only after that commit. With `synchronous=FULL` (the default) the commit is on disk before the
answer, so an acknowledged span survives a power cut; `NORMAL` in WAL mode survives a process crash
(`kill -9`) but not power loss. Above the byte cap the spool refuses (OVERLOADED with a retry delay):
nothing is ever dropped silently. Rows are deleted only when the shipper reports them delivered.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from maxim_otel_bridge.log_events import LogEvent
from maxim_otel_bridge.mapping import Placement
from maxim_otel_bridge.record import SpanKind, SpanRecord
from maxim_otel_bridge.sidecar.ingest import ACCEPTED, AcceptResult, Verdict
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
from maxim_otel_bridge.sidecar.otlp_decode import EncodedSpan, decode_bodies, join_encoded_spans

__all__ = [
    "PAGE_SIZE",
    "SPOOL_FILE",
    "Spool",
    "SpoolStats",
    "StoredLogEvent",
    "StoredSpan",
    "WaitingTrace",
    "is_local_root",
]

logger = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite3"

_IN_CHUNK = 500
"""Trace ids per `IN (...)` query (SQLite allows 32,766 parameters; smaller statements cache better)."""

PAGE_SIZE = 16384
"""Bytes per SQLite page of a new spool file. A span's body is 1 to 2 KB: with 4 KB pages (SQLite's default)
a page holds two of them, so every insert and delete touches pages and b-tree cells in proportion; 16 KB pages
cut the CPU of spool intake and of deleting delivered spans by about a quarter each (`bench/sidecar_breakdown.py`).
A file created with another page size keeps it (WAL mode cannot change it)."""

_COUNT_CHUNK = 64
"""Trace ids per query when counting the waiting spans of the traces a claim may take."""

MAX_GROUP_SPANS = 128
"""Spans of one trace per `span_groups` row at most. A claim takes whole groups, so it may pass its span budget
by less than one group; a request carrying thousands of spans of one trace is stored as several groups."""

_SPAN_ID_SEPARATOR = ","
"""Between the span ids of a group in its `span_ids` column (hex ids never hold one)."""

OVERLOADED_RETRY_AFTER_S = 5.0
"""Retry delay advertised when the spool is over its cap: long enough for a few sends to Maxim to drain it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS span_groups (
    seq INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_ids TEXT NOT NULL,
    spans INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    local_root INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (trace_id, span_ids)
);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    first_ns INTEGER NOT NULL,
    root_seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_by_age ON traces (first_ns);
CREATE INDEX IF NOT EXISTS traces_rooted_by_age ON traces (first_ns) WHERE root_seen = 1;
CREATE TABLE IF NOT EXISTS trace_placements (
    trace_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    shipped_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_placements_by_age ON trace_placements (shipped_ns);
CREATE TABLE IF NOT EXISTS log_events (
    seq INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT,
    event_key TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (trace_id, event_key)
);
CREATE TABLE IF NOT EXISTS shipped_spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    body BLOB NOT NULL,
    shipped_ns INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shipped_spans_by_age ON shipped_spans (shipped_ns);
"""

# The per-span placements table of earlier versions, folded into one row per trace.
_MIGRATE_PLACEMENTS = """
INSERT OR REPLACE INTO trace_placements (trace_id, body, shipped_ns)
    SELECT trace_id, json_group_object(span_id, json_array(entity_type, parent)), max(shipped_ns)
    FROM placements GROUP BY trace_id;
DROP TABLE placements;
"""

# The per-span rows of earlier versions: each becomes a group of one (its body, one record, still reads).
_MIGRATE_SPANS = """
INSERT INTO span_groups (seq, trace_id, span_ids, spans, received_ns, local_root, body)
    SELECT seq, trace_id, span_id, 1, received_ns, local_root, body FROM spans ORDER BY seq;
DROP TABLE spans;
"""

# body: {span id: [entity type, parent or null]}. json_patch adds a later part's spans to those kept.
_MERGE_PLACEMENTS = (
    "INSERT INTO trace_placements (trace_id, body, shipped_ns) VALUES (?, ?, ?) "
    "ON CONFLICT (trace_id) DO UPDATE SET body = json_patch(body, excluded.body), shipped_ns = excluded.shipped_ns"
)

_INSERT_GROUP = (
    "INSERT INTO span_groups (trace_id, span_ids, spans, received_ns, local_root, body) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (trace_id, span_ids) DO NOTHING"
)
# A trace that already shipped a part is ready as soon as more of its spans arrive: their parents were
# either shipped (the mapping links to them through the stored placements) or come with them.
_UPSERT_TRACE = (
    "INSERT INTO traces (trace_id, first_ns, root_seen) "
    "VALUES (?1, ?2, ?3 OR EXISTS (SELECT 1 FROM trace_placements WHERE trace_id = ?1)) "
    "ON CONFLICT (trace_id) DO UPDATE SET root_seen = max(root_seen, excluded.root_seen)"
)
_INSERT_LOG_EVENT = (
    "INSERT INTO log_events (trace_id, span_id, event_key, received_ns, body) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (trace_id, event_key) DO NOTHING"
)
# A record joins its span when both are here. Its trace is ready at once only when the record belongs to a
# span that shipped without content (it re-maps that span); otherwise it waits like a span without its root:
# for the root, or for `assembly_wait`, so that a record arriving just before its span still meets it.
_UPSERT_TRACE_FOR_EVENT = (
    "INSERT INTO traces (trace_id, first_ns, root_seen) "
    "VALUES (?1, ?2, EXISTS (SELECT 1 FROM shipped_spans WHERE trace_id = ?1 AND span_id = ?3)) "
    "ON CONFLICT (trace_id) DO UPDATE SET root_seen = max(root_seen, excluded.root_seen)"
)

# Kinds that start the part of a trace running in one service: a span of these kinds with a parent the
# sidecar has not seen came from another process (a remote parent), so it is that service's local root.
_ENTRY_KINDS = frozenset({SpanKind.SERVER, SpanKind.CONSUMER})


def is_local_root(record: SpanRecord | EncodedSpan) -> bool:
    """No parent, or an entry span (server/consumer) whose parent ran in another service."""
    parent = record.parent_span_id
    return parent is None or not parent.strip("0") or record.kind in _ENTRY_KINDS


def _group_rows(records: Sequence[SpanRecord | EncodedSpan], now: int) -> tuple[list[tuple], dict[str, bool], int]:
    """`records` as `span_groups` rows (one per trace, in order of first appearance, split at `MAX_GROUP_SPANS`),
    whether each trace's local root is among them, and the bytes of the bodies."""
    by_trace: dict[tuple[str, bool], list[SpanRecord | EncodedSpan]] = {}
    for record in records:
        # Protobuf and orjson bodies do not mix in one group (receivers hand over one kind per request).
        key = (record.trace_id, isinstance(record, EncodedSpan))
        group = by_trace.get(key)
        if group is None:
            by_trace[key] = [record]
        else:
            group.append(record)
    rows: list[tuple] = []
    roots: dict[str, bool] = {}
    size = 0
    for (trace_id, encoded), members in by_trace.items():
        for start in range(0, len(members), MAX_GROUP_SPANS):
            chunk = members[start : start + MAX_GROUP_SPANS]
            if encoded:
                body = join_encoded_spans(chunk)
            else:
                body = orjson.dumps([record.to_json_obj() for record in chunk])
            root = any(is_local_root(record) for record in chunk)
            span_ids = _SPAN_ID_SEPARATOR.join([record.span_id for record in chunk])
            rows.append((trace_id, span_ids, len(chunk), now, int(root), body))
            roots[trace_id] = roots.get(trace_id, False) or root
            size += len(body)
    return rows, roots, size


def _placements(body: str | None) -> dict[str, Placement]:
    if body is None:
        return {}
    return {span_id: Placement(entity_type, parent) for span_id, (entity_type, parent) in orjson.loads(body).items()}


@dataclass(frozen=True, slots=True)
class StoredSpan:
    seq: int
    """Its group's row: arrival order, and the handle `complete()` deletes by (with the group's other spans)."""
    record: SpanRecord


@dataclass(frozen=True, slots=True)
class WaitingTrace:
    """The first span groups of a waiting trace, as stored, with the placements of its spans shipped before."""

    trace_id: str
    rows: list[tuple[int, bytes]]
    """(seq, body) per group, in arrival order (`decode_bodies` reads the bodies)."""
    known: dict[str, Placement]
    spans: int = 0
    """How many spans `rows` hold."""


@dataclass(frozen=True, slots=True)
class StoredLogEvent:
    seq: int
    span_id: str | None
    received_ns: int
    body: bytes
    """The `LogEvent` as one orjson object (`LogEvent.to_json_obj`)."""


@dataclass(frozen=True, slots=True)
class SpoolStats:
    spans: int
    traces: int
    bytes: int
    oldest_age_s: float
    """Age of the oldest waiting span (0 when empty)."""
    log_events: int = 0
    """GenAI event log records waiting (for their span, or to be shipped)."""


class _Pending:
    """One `accept_spans` call waiting for the writer's commit."""

    __slots__ = ("done", "event_rows", "event_traces", "ok", "rows", "size", "traces")

    def __init__(
        self,
        rows: list[tuple],
        traces: list[tuple],
        size: int,
        event_rows: list[tuple] | None = None,
        event_traces: list[tuple] | None = None,
    ) -> None:
        self.rows = rows
        self.traces = traces
        self.size = size
        self.event_rows = event_rows
        self.event_traces = event_traces
        self.done = threading.Event()
        self.ok = False


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), nothing implicit.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    # Takes effect only while the file is still empty, before WAL mode is set; a no-op on an existing spool.
    connection.execute(f"PRAGMA page_size={PAGE_SIZE}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


class Spool:
    """Implements `SpanSink` for the receivers, and the queries the assembler and shipper need. Thread-safe."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 1024**3,
        synchronous: str = "full",
        metrics: BridgeMetrics | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.metrics = metrics
        self._now_ns = wall_clock_ns
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The spool holds prompts and outputs: only the owner may read it, even if the directory pre-existed.
        os.chmod(self.directory, 0o700)
        self.path = self.directory / SPOOL_FILE
        self._writer = _connect(self.path, synchronous)
        self._writer.executescript(_SCHEMA)
        self._migrate(self._writer)
        self._page_size = self._writer.execute("PRAGMA page_size").fetchone()[0]
        # Deletes and placements need no fsync of their own: losing the last of them to a power cut only
        # means spans are sent again (Maxim merges by id). The next intake commit (FULL) syncs them anyway.
        self._reader = _connect(self.path, "normal")
        self._reader_lock = threading.Lock()
        self._used_bytes = self._measure_bytes(self._writer)
        # When GenAI log records last came in. Across a restart: now if some still wait, else when the last
        # generation was remembered for them (only done while records come in).
        waiting = self._writer.execute("SELECT 1 FROM log_events LIMIT 1").fetchone()
        remembered = self._writer.execute("SELECT max(shipped_ns) FROM shipped_spans").fetchone()[0]
        self._last_log_event_ns = self._now_ns() if waiting else remembered or 0
        self._pending_bytes = 0
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._intake_open = True
        self._full = False
        self._refused_while_full = 0
        self._closed = False
        self._write_ok = True
        self._thread = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._thread.start()
        self._refresh_gauges()

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        for table, script in (("placements", _MIGRATE_PLACEMENTS), ("spans", _MIGRATE_SPANS)):
            old = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
            if old.fetchone() is not None:
                connection.executescript(f"BEGIN IMMEDIATE; {script} COMMIT;")

    # -- intake (SpanSink) ---------------------------------------------------------------------------

    def accept_spans(self, records: Sequence[SpanRecord | EncodedSpan]) -> AcceptResult:
        """Store `records` durably in one transaction (shared with concurrent callers); ACCEPTED after commit."""
        if not self._intake_open:
            return AcceptResult(Verdict.SHUTTING_DOWN, 1.0)
        now = self._now_ns()
        rows, roots, size = _group_rows(records, now)
        pending = _Pending(rows, [(t, now, int(root)) for t, root in roots.items()], size)
        result = self._submit(pending, len(records))
        if result.accepted and self.metrics is not None:
            self.metrics.spool_spooled_spans.inc(len(records))
        return result

    def accept_log_events(self, events: Sequence[LogEvent]) -> AcceptResult:
        """Store GenAI event records (with a trace id) durably, in the same group commit as spans."""
        if not self._intake_open:
            return AcceptResult(Verdict.SHUTTING_DOWN, 1.0)
        now = self._now_ns()
        rows: list[tuple] = []
        traces: list[tuple] = []
        size = 0
        for event in events:
            if event.trace_id is None:
                continue  # nothing to hang it on; the receivers count these as ignored before they get here
            body = orjson.dumps(event.to_json_obj())
            size += len(body)
            rows.append((event.trace_id, event.span_id, event.key, now, body))
            traces.append((event.trace_id, now, event.span_id))
        if not rows:
            return ACCEPTED
        result = self._submit(_Pending([], [], size, rows, traces), len(rows))
        if result.accepted:
            self._last_log_event_ns = now
            if self.metrics is not None:
                self.metrics.spool_spooled_log_records.inc(len(rows))
        return result

    def _submit(self, pending: _Pending, count: int) -> AcceptResult:
        """Queue `pending` for the writer and wait for its commit; refuse when full or shutting down."""
        with self._cond:
            if not self._intake_open:
                return AcceptResult(Verdict.SHUTTING_DOWN, 1.0)
            if not self._thread.is_alive():
                return AcceptResult(Verdict.OVERLOADED, OVERLOADED_RETRY_AFTER_S)  # nothing would write it
            # Refuse once the cap is reached, not when this request would cross it: a request larger than the
            # room left (or than the whole cap) is still taken while there is room, never refused forever.
            if self._used_bytes + self._pending_bytes >= self.max_bytes:
                self._refused_while_full += count
                if not self._full:
                    # One line when the spool fills and one when it takes spans again, not one per request.
                    self._full = True
                    logger.warning(
                        "spool is full (%d of %d bytes): refusing spans, clients are told to retry in %.0fs",
                        self._used_bytes + self._pending_bytes,
                        self.max_bytes,
                        OVERLOADED_RETRY_AFTER_S,
                    )
                return AcceptResult(Verdict.OVERLOADED, OVERLOADED_RETRY_AFTER_S)
            if self._full:
                self._full = False
                logger.info("spool has room again: taking spans (%d refused while full)", self._refused_while_full)
                self._refused_while_full = 0
            self._pending_bytes += pending.size
            self._queue.append(pending)
            self._cond.notify()
        pending.done.wait()
        if not pending.ok:
            return AcceptResult(Verdict.OVERLOADED, OVERLOADED_RETRY_AFTER_S)
        return ACCEPTED

    def close_intake(self) -> None:
        """From now on `accept_spans` answers SHUTTING_DOWN (requests already waiting are still written)."""
        with self._cond:
            self._intake_open = False

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                group, self._queue = self._queue, []
            ok = False
            try:
                ok = self._write_group(group)
                if ok:
                    used = self._measure_bytes(self._writer)
                    with self._cond:
                        self._used_bytes = used
            except sqlite3.Error as exc:
                logger.error("spool size could not be measured: %s", exc)
            finally:
                # Whatever happened, every waiting receiver gets its answer: none may hang.
                with self._cond:
                    self._pending_bytes -= sum(p.size for p in group)
                for pending in group:
                    pending.ok = ok
                    pending.done.set()

    def _write_group(self, group: list[_Pending]) -> bool:
        connection = self._writer
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                for pending in group:
                    connection.executemany(_INSERT_GROUP, pending.rows)
                    connection.executemany(_UPSERT_TRACE, pending.traces)
                    if pending.event_rows:
                        connection.executemany(_INSERT_LOG_EVENT, pending.event_rows)
                        connection.executemany(_UPSERT_TRACE_FOR_EVENT, pending.event_traces)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            # Disk full, I/O error, a locked file: refuse (the client retries) rather than pretend.
            self._write_ok = False
            logger.error("spool write failed, refusing %d requests: %s", len(group), exc)
            return False
        self._write_ok = True
        return True

    # -- reading and completing (assembler, shipper) ----------------------------------------------------

    def ready_traces(self, limit: int, *, wait_s: float, exclude: Iterable[str] = (), flush: bool = False) -> list[str]:
        """Traces ready to ship, oldest first: local root arrived, or first span older than `wait_s` (all with
        `flush`). Traces in `exclude` (already being shipped) are skipped."""
        excluded = set(exclude)
        fetch = limit + len(excluded)
        with self._reader_lock:
            if flush:
                rows = self._reader.execute(
                    "SELECT trace_id FROM traces ORDER BY first_ns LIMIT ?", (fetch,)
                ).fetchall()
            else:
                cutoff = self._now_ns() - int(wait_s * 1e9)
                rows = self._reader.execute(
                    "SELECT trace_id FROM (SELECT trace_id, first_ns FROM traces WHERE root_seen = 1 "
                    "ORDER BY first_ns LIMIT ?) UNION SELECT trace_id FROM (SELECT trace_id, first_ns FROM traces "
                    "WHERE first_ns <= ? ORDER BY first_ns LIMIT ?)",
                    (fetch, cutoff, fetch),
                ).fetchall()
        ready = [trace_id for (trace_id,) in rows if trace_id not in excluded]
        return ready[:limit]

    def next_due_s(self, wait_s: float) -> float | None:
        """Seconds until the oldest waiting trace is due (0 if one is ready now), None when nothing waits."""
        with self._reader_lock:
            row = self._reader.execute("SELECT min(first_ns) FROM traces").fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, (row[0] + int(wait_s * 1e9) - self._now_ns()) / 1e9)

    def read_trace(self, trace_id: str) -> list[StoredSpan]:
        """The waiting spans of a trace, in arrival order (for inspection: claims use `read_waiting`)."""
        rows = self.read_trace_rows(trace_id)
        return [StoredSpan(seq, record) for seq, body in rows for record in decode_bodies([body])]

    def read_trace_rows(self, trace_id: str) -> list[tuple[int, bytes]]:
        """Like `read_trace`, as (seq, stored body) rows, one per span group (`decode_bodies` reads them)."""
        with self._reader_lock:
            return self._reader.execute(
                "SELECT seq, body FROM span_groups WHERE trace_id = ? ORDER BY seq", (trace_id,)
            ).fetchall()

    def read_waiting(self, trace_ids: Sequence[str], max_spans: int) -> list[WaitingTrace]:
        """The waiting spans of `trace_ids`, in that order, in whole span groups, about `max_spans` spans in all:
        traces are taken while the budget lasts, and the last one taken may be cut (its first groups in arrival
        order, as long as the budget lasts: it may pass it by less than one group); the ones after it are left
        out. A few queries for the whole batch instead of two per trace."""
        with self._reader_lock:
            counts: dict[str, int] = {}
            taken: dict[str, int] = {}
            budget = max_spans
            # Counted a few dozen traces at a time, until the budget is spent: the assembler asks about as many
            # traces as the budget has spans, and counting them all cost more than reading the spans taken.
            for start in range(0, len(trace_ids), _COUNT_CHUNK):
                if budget <= 0:
                    break
                chunk = trace_ids[start : start + _COUNT_CHUNK]
                counts.update(
                    self._in_chunks(
                        "SELECT trace_id, sum(spans) FROM span_groups WHERE trace_id IN ({}) GROUP BY trace_id", chunk
                    )
                )
                for trace_id in chunk:
                    if budget <= 0:
                        break
                    if counts.get(trace_id):
                        taken[trace_id] = min(counts[trace_id], budget)
                        budget -= taken[trace_id]
            groups: dict[str, list[tuple[int, int, bytes]]] = {trace_id: [] for trace_id in taken}
            whole = [trace_id for trace_id, count in taken.items() if count == counts[trace_id]]
            # Sorted here, not by SQLite: its sorter would copy every body once more.
            query = "SELECT trace_id, seq, spans, body FROM span_groups WHERE trace_id IN ({})"
            for trace_id, seq, spans, body in self._in_chunks(query, whole):
                groups[trace_id].append((seq, spans, body))
            for trace_id in whole:
                groups[trace_id].sort()
            for trace_id in taken.keys() - set(whole):
                groups[trace_id] = self._reader.execute(
                    "SELECT seq, spans, body FROM span_groups WHERE trace_id = ? AND seq <= ? ORDER BY seq",
                    (trace_id, self._last_group_within(trace_id, taken[trace_id])),
                ).fetchall()
            known = dict(
                self._in_chunks("SELECT trace_id, body FROM trace_placements WHERE trace_id IN ({})", list(taken))
            )
        # Groups that arrived between the queries wait for the next claim: each trace keeps its share of the budget.
        out: list[WaitingTrace] = []
        for trace_id, count in taken.items():
            rows: list[tuple[int, bytes]] = []
            spans = 0
            for seq, group_spans, body in groups[trace_id]:
                if spans >= count:
                    break
                rows.append((seq, body))
                spans += group_spans
            out.append(WaitingTrace(trace_id, rows, _placements(known.get(trace_id)), spans))
        return out

    def _last_group_within(self, trace_id: str, budget: int) -> int:
        """The seq of the last group a cut trace gives within `budget` spans (the first group at least): its later
        bodies are not read. The reader lock must be held."""
        spans = 0
        last = 0
        for seq, group_spans in self._reader.execute(
            "SELECT seq, spans FROM span_groups WHERE trace_id = ? ORDER BY seq", (trace_id,)
        ):
            if spans >= budget:
                break
            spans += group_spans
            last = seq
        return last

    def _in_chunks(self, query: str, values: Sequence[str]) -> list[tuple]:
        """`query` (one `IN ({})`) run over `values` in chunks; the reader lock must be held."""
        out: list[tuple] = []
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start : start + _IN_CHUNK]
            # Only "?" marks are formatted in: the values are bound parameters.
            out.extend(self._reader.execute(query.format(",".join("?" * len(chunk))), chunk).fetchall())
        return out

    def known(self, trace_id: str) -> dict[str, Placement]:
        """Placements of spans of `trace_id` shipped before (within the retention period)."""
        with self._reader_lock:
            row = self._reader.execute("SELECT body FROM trace_placements WHERE trace_id = ?", (trace_id,)).fetchone()
        return _placements(row[0] if row else None)

    def complete(
        self,
        done: Mapping[str, tuple[Sequence[int], Mapping[str, Placement]]],
        *,
        log_event_seqs: Sequence[int] = (),
        retained: Sequence[tuple[str, str, bytes]] = (),
    ) -> None:
        """Delivered: per trace id, the seqs of its span groups to delete and the placements to remember, in one
        transaction.

        With them go the log records shipped (joined to a span or as events: `log_event_seqs`) and the span
        records to keep for records that may still arrive (`retained`: trace id, span id, joined record blob).
        A trace that still has spans (they arrived while it was being shipped) stays, its age reset to its
        oldest remaining span and its root flag to whether a local root is among them. A trace left with only
        log records waiting for their span stays too, due when the oldest of them has waited the window.
        """
        if not done:
            return
        now = self._now_ns()
        trace_ids = list(done)
        placement_rows = [
            (trace_id, orjson.dumps({span_id: (p.entity_type, p.parent) for span_id, p in placements.items()}), now)
            for trace_id, (_, placements) in done.items()
            if placements
        ]
        with self._reader_lock:
            connection = self._reader
            connection.execute("BEGIN IMMEDIATE")
            try:
                # One statement for the whole claim: SQLite deletes the rows in rowid order, page after page,
                # instead of one statement per span jumping between pages trace by trace.
                connection.execute(
                    "DELETE FROM span_groups WHERE seq IN (SELECT value FROM json_each(?))",
                    (orjson.dumps([seq for seqs, _ in done.values() for seq in seqs]),),
                )
                connection.executemany(_MERGE_PLACEMENTS, placement_rows)
                if log_event_seqs:
                    connection.executemany("DELETE FROM log_events WHERE seq = ?", [(seq,) for seq in log_event_seqs])
                if retained:
                    connection.executemany(
                        "INSERT OR REPLACE INTO shipped_spans (trace_id, span_id, body, shipped_ns) "
                        "VALUES (?, ?, ?, ?)",
                        [(trace_id, span_id, body, now) for trace_id, span_id, body in retained],
                    )
                waiting_events = self._waiting_event_traces(connection, trace_ids)
                remaining: dict[str, tuple[int, int]] = {}
                for start in range(0, len(trace_ids), _IN_CHUNK):
                    chunk = trace_ids[start : start + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))  # only "?" marks are formatted into the query
                    for trace_id, first_ns, local_root in connection.execute(
                        f"SELECT trace_id, min(received_ns), max(local_root) FROM span_groups "
                        f"WHERE trace_id IN ({marks}) GROUP BY trace_id",
                        chunk,
                    ):
                        remaining[trace_id] = (first_ns, local_root)
                connection.executemany(
                    "DELETE FROM traces WHERE trace_id = ?",
                    [(t,) for t in trace_ids if t not in remaining and t not in waiting_events],
                )
                # Only records waiting for a span that has not come: due when the oldest has waited the window.
                connection.executemany(
                    "UPDATE traces SET first_ns = ?, root_seen = 0 WHERE trace_id = ?",
                    [(first_ns, t) for t, first_ns in waiting_events.items() if t not in remaining],
                )
                # Spans that arrived while a part was being shipped: ready now if the part placed anything
                # (their parents are known), else ready as their own root flags say.
                connection.executemany(
                    "UPDATE traces SET first_ns = ?, root_seen = ? WHERE trace_id = ?",
                    [(first_ns, 1 if done[t][1] else local_root, t) for t, (first_ns, local_root) in remaining.items()],
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            used = self._measure_bytes(connection)
        with self._cond:
            self._used_bytes = used
        self._refresh_gauges()

    def purge_placements(self, retention_s: float) -> int:
        """Forget the placements of traces that last shipped more than `retention_s` ago; returns how many traces."""
        cutoff = self._now_ns() - int(retention_s * 1e9)
        with self._reader_lock:
            cursor = self._reader.execute("DELETE FROM trace_placements WHERE shipped_ns < ?", (cutoff,))
            self._reader.execute("DELETE FROM shipped_spans WHERE shipped_ns < ?", (cutoff,))
            return cursor.rowcount

    # -- log records (assembler) ------------------------------------------------------------------------

    def read_log_events(self, trace_id: str) -> list[StoredLogEvent]:
        """The waiting log records of a trace, in arrival order."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT seq, span_id, received_ns, body FROM log_events WHERE trace_id = ? ORDER BY seq", (trace_id,)
            ).fetchall()
        return [StoredLogEvent(seq, span_id, received_ns, body) for seq, span_id, received_ns, body in rows]

    def spooled_span_ids(self, trace_id: str) -> dict[str, int]:
        """The spans of a trace waiting in the spool: span id -> seq of its group (the last, for a span stored
        in two groups)."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT span_ids, seq FROM span_groups WHERE trace_id = ? ORDER BY seq", (trace_id,)
            ).fetchall()
        return {span_id: seq for span_ids, seq in rows for span_id in span_ids.split(_SPAN_ID_SEPARATOR)}

    def clock_ns(self) -> int:
        """The spool's wall clock (the one arrival times are stamped with)."""
        return self._now_ns()

    def takes_log_events(self, within_s: float) -> bool:
        """Whether GenAI log records were accepted within the last `within_s` seconds (or wait in the spool)."""
        return self._last_log_event_ns > 0 and self._now_ns() - self._last_log_event_ns <= within_s * 1e9

    def retained_spans(self, trace_id: str) -> dict[str, bytes]:
        """Shipped generation spans of a trace remembered for late log records: span id -> record blob, or b""
        for a generation that shipped with its messages and output (a late record adds nothing to it)."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT span_id, body FROM shipped_spans WHERE trace_id = ?", (trace_id,)
            ).fetchall()
        return dict(rows)

    def defer_trace(self, trace_id: str) -> None:
        """Nothing of this trace can ship yet (its records wait for their span): due again after the window."""
        with self._reader_lock:
            self._reader.execute(
                "UPDATE traces SET root_seen = 0, first_ns = coalesce("
                "(SELECT min(received_ns) FROM log_events WHERE trace_id = ?1), first_ns) WHERE trace_id = ?1",
                (trace_id,),
            )

    @staticmethod
    def _waiting_event_traces(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> dict[str, int]:
        """Of `trace_ids`, those with log records still waiting: trace id -> when the oldest arrived."""
        waiting: dict[str, int] = {}
        for start in range(0, len(trace_ids), _IN_CHUNK):
            chunk = trace_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            waiting.update(
                connection.execute(
                    f"SELECT trace_id, min(received_ns) FROM log_events "  # only "?" marks are formatted in
                    f"WHERE trace_id IN ({marks}) GROUP BY trace_id",
                    chunk,
                ).fetchall()
            )
        return waiting

    # -- state ---------------------------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        with self._reader_lock:
            spans = self._reader.execute("SELECT coalesce(sum(spans), 0) FROM span_groups").fetchone()[0]
            traces = self._reader.execute("SELECT count(*) FROM traces").fetchone()[0]
            log_events = self._reader.execute("SELECT count(*) FROM log_events").fetchone()[0]
        return SpoolStats(
            spans=spans, traces=traces, bytes=self.used_bytes, oldest_age_s=self.oldest_age_s(), log_events=log_events
        )

    @property
    def used_bytes(self) -> int:
        with self._cond:
            return self._used_bytes

    @property
    def writable(self) -> bool:
        """False after a failed write until a write succeeds again, or once closed."""
        return self._write_ok and self._thread.is_alive() and not self._closed and os.access(self.directory, os.W_OK)

    def _measure_bytes(self, connection: sqlite3.Connection) -> int:
        # Live pages only: deleted rows free pages that new rows reuse, so this is what the cap should see.
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    def oldest_age_s(self) -> float:
        """Age of the oldest waiting span, 0 when empty (one indexed lookup: rowid order is arrival order)."""
        with self._reader_lock:
            oldest = self._reader.execute("SELECT received_ns FROM span_groups ORDER BY seq LIMIT 1").fetchone()
        return max(0.0, (self._now_ns() - oldest[0]) / 1e9) if oldest else 0.0

    def _refresh_gauges(self) -> None:
        if self.metrics is None:
            return
        self.metrics.spool_bytes.set(self.used_bytes)
        self.metrics.spool_oldest_span_age_seconds.set(self.oldest_age_s())

    def refresh_gauges(self) -> None:
        """Update the spool gauges (the admin endpoint calls this before rendering /metrics)."""
        self._refresh_gauges()

    def close(self) -> None:
        """Stop intake, finish the writes already queued, and close the file."""
        with self._cond:
            self._intake_open = False
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        with self._reader_lock:
            self._reader.close()
        self._writer.close()
