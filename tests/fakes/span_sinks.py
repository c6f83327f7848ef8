"""In-memory `SpanSink`s for the receiver tests: record what arrives, answer a scripted verdict, or block.

The sidecar's real sink is the SQLite spool; the receivers only depend on the `SpanSink` protocol, so
their tests use these and stay fast. Spans the protobuf receivers hand over still encoded (`EncodedSpan`)
are kept decoded, as the spool reads them back, so tests compare records whatever the encoding.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

from maxim_otel_bridge.log_events import LogEvent
from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.sidecar.ingest import ACCEPTED, AcceptResult
from maxim_otel_bridge.sidecar.otlp_decode import EncodedSpan, decode_encoded_spans


def as_records(spans: Sequence[SpanRecord | EncodedSpan]) -> list[SpanRecord]:
    return [decode_encoded_spans(s.data)[0] if isinstance(s, EncodedSpan) else s for s in spans]


class MemorySink:
    """Keeps accepted spans in order. `verdicts` are answered first, one per call, then ACCEPTED."""

    def __init__(self, verdicts: Iterable[AcceptResult] = ()) -> None:
        self.records: list[SpanRecord] = []
        self.calls = 0
        self.refused_batches: list[tuple[SpanRecord, ...]] = []
        self._script = deque(verdicts)
        self._lock = threading.Lock()
        self.arrived = threading.Event()

    def accept_spans(self, spans: Sequence[SpanRecord | EncodedSpan]) -> AcceptResult:
        assert spans, "the sink contract: never called with no spans"
        records = as_records(spans)
        with self._lock:
            self.calls += 1
            result = self._script.popleft() if self._script else ACCEPTED
            if result.accepted:
                self.records.extend(records)
            else:
                self.refused_batches.append(tuple(records))
        self.arrived.set()
        return result

    def by_name(self) -> dict[str, SpanRecord]:
        with self._lock:
            return {r.name: r for r in self.records}


class GatedSink(MemorySink):
    """Blocks every call until `release()`: a request that is in flight for as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self._gate = threading.Event()

    def release(self) -> None:
        self._gate.set()

    def accept_spans(self, records: Sequence[SpanRecord | EncodedSpan]) -> AcceptResult:
        self.entered.set()
        self._gate.wait(30)
        return super().accept_spans(records)


class FailingSink:
    """A sink with a bug: it raises. The receivers must answer retryable, not crash or drop silently."""

    def __init__(self) -> None:
        self.calls = 0

    def accept_spans(self, records: Sequence[SpanRecord | EncodedSpan]) -> AcceptResult:
        self.calls += 1
        raise OSError("disk I/O error")


class MemoryLogSink:
    """Keeps accepted GenAI log events in order; `verdicts` are answered first, one per call, then ACCEPTED."""

    def __init__(self, verdicts: Iterable[AcceptResult] = ()) -> None:
        self.events: list[LogEvent] = []
        self.calls = 0
        self._script = deque(verdicts)
        self._lock = threading.Lock()

    def accept_log_events(self, events: Sequence[LogEvent]) -> AcceptResult:
        assert events, "the sink contract: never called with no records"
        with self._lock:
            self.calls += 1
            result = self._script.popleft() if self._script else ACCEPTED
            if result.accepted:
                self.events.extend(events)
        return result
