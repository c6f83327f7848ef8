"""`MaximLogExporter`: the span exporter's companion for GenAI content that arrives as OpenTelemetry log events.

Instrumentations in their event modes (openai-v2 with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=
EVENT_ONLY` or `SPAN_AND_EVENT`, Traceloop's OpenLLMetry with `use_attributes=False`) put prompts and
completions on log records tied to the call's span, not on the span:

    logger_provider.add_log_record_processor(BatchLogRecordProcessor(MaximLogExporter()))

or, with zero code, `OTEL_TRACES_EXPORTER=maxim OTEL_LOGS_EXPORTER=maxim opentelemetry-instrument python app.py`.

The exporter feeds the same pipeline as the `MaximSpanExporter` of the same destination, where each GenAI
event waits for its span and is joined to it before the span is mapped (`trace_buffer`). Records that are
not GenAI events (application logs) are not sent anywhere: they are only counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .exporter import PipelineFeeder
from .log_events import LogEvent, from_readable_log_record

__all__ = ["MaximLogExporter"]

logger = logging.getLogger(__name__)


class MaximLogExporter(PipelineFeeder, LogRecordExporter):
    """Sends GenAI event log records to Maxim, joined to the entities of their spans.

    Takes the same arguments, environment variables and defaults as `MaximSpanExporter`.
    """

    _for_log_events = True

    def __repr__(self) -> str:
        return f"MaximLogExporter(base_url={self._destination.base_url!r}, repo_id={self._destination.repo_id!r})"

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Buffer the GenAI events of `batch` and count the other records. Never raises, never waits."""
        if self._shutdown:
            logger.warning("export of %d log records after shutdown: not sent", len(batch))
            return LogRecordExportResult.FAILURE
        events: list[LogEvent] = []
        ignored = 0
        unreadable = 0
        for data in batch:
            try:
                event = from_readable_log_record(data)
            except Exception as exc:  # one bad record must not cost the others
                unreadable += 1
                logger.error("skipping a log record that could not be read (%s: %s)", type(exc).__name__, exc)
                continue
            if event is None:
                ignored += 1
            else:
                events.append(event)
        try:
            self._pipeline.count("ignored", ignored)
            if events:
                self._pipeline.add_log_events(events)
        except Exception:  # the SDK's thread must never see an exception from an exporter
            logger.exception("could not buffer %d log events for Maxim", len(events))
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.FAILURE if unreadable else LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        """Release the pipeline; the last exporter of the destination out sends what is left and stops it."""
        self._release()
