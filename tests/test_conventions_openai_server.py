"""The local OpenAI-compatible server the convention tests drive real instrumentation against."""

from __future__ import annotations

import openai
import pytest
from fakes.openai_server import OpenAIServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
            },
        },
    }
]


def _client(server: OpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def test_tool_round_trip_and_text_answer() -> None:
    with OpenAIServer() as server:
        client = _client(server)
        messages: list = [{"role": "user", "content": "Weather in Paris?"}]
        asked = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        call = asked.choices[0].message.tool_calls[0]
        assert asked.choices[0].finish_reason == "tool_calls"
        assert (call.function.name, call.function.arguments) == (
            "get_weather",
            '{"city": "Paris"}',
        )
        assert asked.model == "gpt-4o-mini-2024-07-18"
        messages += [
            asked.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18C"},
        ]
        answered = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        assert answered.choices[0].finish_reason == "stop"
        assert answered.choices[0].message.content == "It is 18°C and sunny in Paris."
        assert answered.usage.total_tokens == answered.usage.prompt_tokens + answered.usage.completion_tokens
        assert asked.id != answered.id
        assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 2
        assert server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_streaming_with_and_without_usage() -> None:
    with OpenAIServer() as server:
        client = _client(server)
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "It is 18°C and sunny in Paris."
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
        bare = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
        )
        assert all(c.usage is None for c in bare)
        streamed_call = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                tools=TOOLS,
                stream=True,
            )
        )
        arguments = "".join(
            c.choices[0].delta.tool_calls[0].function.arguments or ""
            for c in streamed_call
            if c.choices and c.choices[0].delta.tool_calls
        )
        assert arguments == '{"city": "Paris"}'


def test_embeddings_and_errors() -> None:
    with OpenAIServer() as server:
        client = _client(server)
        result = client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"])
        assert [len(d.embedding) for d in result.data] == [
            8,
            8,
        ] and result.usage.prompt_tokens == 2
        with pytest.raises(openai.NotFoundError, match="broken"):
            client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
