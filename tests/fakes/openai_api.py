"""A fake of OpenAI's chat completions endpoint, as an httpx transport for the real `openai` client.

Answers a tool call for ordinary requests, a two-chunk streamed answer with usage for `stream=True`,
and a 400 error for the model named `broken`.
"""

from __future__ import annotations

import json

import httpx
import openai

TOOL_CALL = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def _respond(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("model") == "broken":
        return httpx.Response(400, json={"error": {"message": "model not found", "type": "invalid_request_error"}})
    if body.get("stream"):
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "18°C "}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "and sunny."}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 6, "total_tokens": 37}},
        ]
        common = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
        text = "".join(f"data: {json.dumps({**common, **chunk})}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                    "finish_reason": "tool_calls",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
        },
    )


def fake_openai_client() -> openai.OpenAI:
    """The real OpenAI client, talking to the fake above instead of the network."""
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://openai.invalid/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(_respond)),
    )


def ask_then_stream(client: openai.OpenAI) -> None:
    """A tool-calling request, then the streamed final answer after the tool result."""
    client.chat.completions.create(
        model="gpt-4o-mini",
        temperature=0.3,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in Paris?"}],
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        stream_options={"include_usage": True},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "call_9", "content": "18C, sunny"},
        ],
    )
    for _ in stream:
        pass
