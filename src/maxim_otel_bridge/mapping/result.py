"""A generation's `result`: Maxim's (OpenAI-shaped) chat or text completion result."""

from __future__ import annotations

from collections.abc import Sequence

from maxim_otel_bridge.mapping.candidates import Choice, Usage
from maxim_otel_bridge.mapping.errors import ErrorInfo, result_error
from maxim_otel_bridge.mapping.usage import usage_object

__all__ = ["UNKNOWN_FINISH_REASON", "completion_result", "finish_reason_for"]

UNKNOWN_FINISH_REASON = "unknown"
"""Sent when no source states why the model stopped (Maxim requires a value; guessing `stop` would lie)."""


def finish_reason_for(choice: Choice, position: int, reasons: Sequence[str], failed: bool) -> str:
    """The choice's own reason, else the span-level reason at its position, else what the output implies."""
    if choice.finish_reason:
        return choice.finish_reason
    if position < len(reasons):
        return reasons[position]
    if len(reasons) == 1:
        return reasons[0]
    if choice.tool_calls:
        return "tool_calls"
    return "error" if failed else UNKNOWN_FINISH_REASON


def completion_result(
    *,
    response_id: str,
    created: int,
    model: str,
    choices: Sequence[Choice],
    finish_reasons: Sequence[str],
    usage: Usage | None,
    error: ErrorInfo | None,
    text_completion: bool,
) -> dict | None:
    """The result object, or None when the span says nothing about the outcome (no output, usage, error)."""
    if not choices and usage is None and error is None:
        return None
    failed = error is not None
    shaped: list[dict] = []
    for position, choice in enumerate(choices):
        reason = finish_reason_for(choice, position, finish_reasons, failed)
        if text_completion:
            shaped.append(
                {"index": choice.index, "text": choice.content or "", "logprobs": None, "finish_reason": reason}
            )
            continue
        message: dict = {"role": "assistant", "content": choice.content}
        if choice.tool_calls:
            message["tool_calls"] = [dict(call) for call in choice.tool_calls]
        shaped.append({"index": choice.index, "message": message, "logprobs": None, "finish_reason": reason})
    result: dict = {
        "id": response_id,
        "object": "text_completion" if text_completion else "chat.completion",
        "created": created,
        "model": model,
        "choices": shaped,
        "usage": usage_object(usage),
    }
    if error is not None:
        result["error"] = result_error(error)
    return result
