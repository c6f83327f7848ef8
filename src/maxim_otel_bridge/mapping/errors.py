"""A failed span's error, from its status, `error.type` and `exception` events, in each entity's shape."""

from __future__ import annotations

import re
from dataclasses import dataclass

from maxim_otel_bridge.mapping.coerce import coerce_str
from maxim_otel_bridge.mapping.ids import error_id
from maxim_otel_bridge.record import EventRecord, SpanRecord, StatusCode

__all__ = ["EXCEPTION_EVENT", "ErrorInfo", "error_info", "leaf_error", "result_error", "span_error"]

EXCEPTION_EVENT = "exception"

# Some instrumentations set `error.type` to the exception class itself, which the SDK renders with str().
_CLASS_REPR = re.compile(r"^<class '([^']+)'>$")


def _clean_type(value: str | None) -> str | None:
    if value is None:
        return None
    match = _CLASS_REPR.match(value)
    return match.group(1) if match else value


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    message: str
    type: str | None = None
    stacktrace: str | None = None


def _last_exception(events: tuple[EventRecord, ...]) -> EventRecord | None:
    # The last exception recorded is the one that ended the span.
    for event in reversed(events):
        if event.name == EXCEPTION_EVENT:
            return event
    return None


def error_info(record: SpanRecord) -> ErrorInfo | None:
    """The span's error, or None when it did not fail.

    A span failed when its status is ERROR, or it carries `error.type` or an `exception` event without
    an explicit OK status (OK means the exception was handled).
    """
    exception = _last_exception(record.events)
    error_type = _clean_type(coerce_str(record.attributes.get("error.type")))
    failed = record.status_code == StatusCode.ERROR or (
        record.status_code != StatusCode.OK and (error_type is not None or exception is not None)
    )
    if not failed:
        return None
    exception_attributes = exception.attributes if exception is not None else {}
    exception_type = coerce_str(exception_attributes.get("exception.type"))
    exception_message = coerce_str(exception_attributes.get("exception.message"))
    message = coerce_str(record.status_message) or exception_message or error_type or exception_type or "error"
    return ErrorInfo(
        message=message,
        type=error_type or exception_type,
        stacktrace=coerce_str(exception_attributes.get("exception.stacktrace")),
    )


def span_error(record: SpanRecord, info: ErrorInfo) -> dict[str, str]:
    """A span's `error`: Maxim requires an `errorId`, derived from the span id so re-sends merge."""
    error = {"errorId": error_id(record.span_id), "errorMessage": info.message}
    if info.type is not None:
        error["errorType"] = info.type
    return error


def leaf_error(info: ErrorInfo) -> dict[str, str]:
    """A generation's or tool call's `error`."""
    error = {"errorMessage": info.message}
    if info.type is not None:
        error["errorType"] = info.type
    return error


def result_error(info: ErrorInfo) -> dict[str, str]:
    """The `error` inside a completion result."""
    error = {"message": info.message}
    if info.type is not None:
        error["type"] = info.type
    return error
