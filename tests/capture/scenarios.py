"""Real instrumentation packages run against the local OpenAI-compatible server, their spans recorded.

Each `capture_*` function instruments the real OpenAI client (or a real Pydantic AI agent) with one package, runs
the same scenarios — a plain chat, a tool round trip under an application span, a streamed answer with usage, an
embeddings call — and returns `{scenario: [SpanRecord, ...]}`. Every scenario is its own trace; `multimodal` sends an image URL and an
inline PNG, `error` asks for a model the server does not know; the plain OpenAI client also streams a tool call
(`streaming_tool_call`). Nothing here writes
attributes: what the records hold is what the package emitted.

Used twice: by `tests/capture/capture_python.py` to write the fixtures, and by the convention tests to run the same
instrumentation live and compare with those fixtures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import openai
from fakes.openai_server import OpenAIServer
from fakes.sdk_spans import SpanRecorder

from maxim_otel_bridge.record import SpanRecord

SCENARIOS = ("chat", "tool_round_trip", "streaming", "embeddings", "multimodal", "error")
IMAGE_URL = "https://example.com/cat.png"
# A 1x1 PNG: a real blob an instrumentation may inline, shorten or drop.
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_RESULT = "18C, sunny"

Captured = dict[str, list[SpanRecord]]


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _by_trace(records: list[SpanRecord], order: list[str]) -> Captured:
    """Records grouped per scenario, in the order the scenarios ran (one trace each)."""
    trace_ids: list[str] = []
    for record in sorted(records, key=lambda r: r.start_ns):
        if record.trace_id not in trace_ids:
            trace_ids.append(record.trace_id)
    assert len(trace_ids) == len(order), f"expected one trace per scenario, got {len(trace_ids)}"
    return {name: [r for r in records if r.trace_id == tid] for name, tid in zip(order, trace_ids)}


def openai_workload(client: openai.OpenAI, rec: SpanRecorder) -> list[str]:
    """The four scenarios with the plain OpenAI client; returns their names in the order they ran."""
    client.chat.completions.create(
        model="gpt-4o-mini",
        temperature=0.2,
        max_tokens=64,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello."},
        ],
    )
    # The application's own span around the round trip: the tree must keep both calls under it.
    with rec.tracer.start_as_current_span("weather_agent"):
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
        asked = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        call = asked.choices[0].message.tool_calls[0]
        messages.append(asked.choices[0].message.model_dump(exclude_none=True, exclude={"refusal"}))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT})
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    for _ in stream:
        pass
    client.embeddings.create(model="text-embedding-3-small", input=["Paris", "weather"])
    data_url = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures?"},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    try:
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "Say hello."}])
    except openai.NotFoundError:
        pass  # the failed call is the scenario: its span must arrive as a failed generation
    streamed_call = client.chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    for _ in streamed_call:
        pass
    return [*SCENARIOS, "streaming_tool_call"]


def _capture_openai(instrumentor: Any, env: dict[str, str]) -> Captured:
    with _env(**env), OpenAIServer() as server:
        rec = SpanRecorder(resource={"service.name": "weather-app"})
        instrumentor.instrument(tracer_provider=rec.provider)
        try:
            order = openai_workload(
                openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0),
                rec,
            )
        finally:
            instrumentor.uninstrument()
        rec.shutdown()
        return _by_trace(rec.records(), order)


def capture_openai_v2() -> Captured:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    # Content on the span: `true` is no longer a valid value for this package (it captures nothing).
    env = {
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    }
    return _capture_openai(OpenAIInstrumentor(), env)


def capture_openinference() -> Captured:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    return _capture_openai(OpenAIInstrumentor(), {})


def capture_traceloop() -> Captured:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    return _capture_openai(OpenAIInstrumentor(), {"TRACELOOP_TRACE_CONTENT": "true"})


def capture_pydantic_ai(instrumentation_version: int | None = None) -> Captured:
    """A real Pydantic AI agent on the OpenAI chat model, talking to the local server."""
    from pydantic_ai import Agent, BinaryContent, Embedder, ImageUrl
    from pydantic_ai.embeddings.openai import OpenAIEmbeddingModel
    from pydantic_ai.exceptions import ModelHTTPError
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    with OpenAIServer() as server:
        rec = SpanRecorder(resource={"service.name": "weather-app"})
        extra = {} if instrumentation_version is None else {"version": instrumentation_version}
        settings = InstrumentationSettings(tracer_provider=rec.provider, include_content=True, **extra)
        provider = OpenAIProvider(base_url=server.base_url, api_key="sk-test")
        model = OpenAIChatModel("gpt-4o-mini", provider=provider)

        chat = Agent(model, name="greeter", system_prompt="Be terse.")
        # `Agent(instrument=...)` is gone in pydantic-ai 2.x: the attribute is the way in.
        chat.instrument = settings
        weather = Agent(model, name="weather_agent")
        weather.instrument = settings

        @weather.tool_plain
        def get_weather(city: str) -> str:
            """Current weather for a city."""
            return TOOL_RESULT

        broken = Agent(OpenAIChatModel("broken", provider=provider), name="broken_agent")
        broken.instrument = settings
        embedder = Embedder(
            OpenAIEmbeddingModel("text-embedding-3-small", provider=provider),
            instrument=settings,
        )

        # One event loop for all: the provider's async HTTP client is bound to the loop that first used it.
        async def run() -> None:
            await chat.run("Say hello.")
            await weather.run("Weather in Paris?")
            async with chat.run_stream("Weather in Paris?") as result:
                async for _ in result.stream_text():
                    pass
            await embedder.embed_documents(["Paris", "weather"])
            picture = [
                ImageUrl(url=IMAGE_URL),
                BinaryContent(data=PNG_BYTES, media_type="image/png"),
            ]
            await chat.run(["What is in these pictures?", *picture])
            try:
                await broken.run("Say hello.")
            except ModelHTTPError:
                pass  # the failed run is the scenario

        asyncio.run(run())
        rec.shutdown()
        return _by_trace(rec.records(), list(SCENARIOS))


GUIDES = [
    {
        "id": "guide-1",
        "content": "Paris in spring: mild, often sunny.",
        "score": 0.92,
        "metadata": {"source": "guides"},
    },
    {"id": "guide-2", "content": "Packing for rain in Paris.", "score": 0.41, "metadata": {"source": "guides"}},
]


def capture_openinference_agent() -> Captured:
    """OpenInference's own tracer: an agent with a retriever, a reranker, a tool and two instrumented OpenAI calls,
    under `using_attributes` (session, user, metadata, tags). Attributes come from the package's helpers."""
    from openinference.instrumentation import (
        OITracer,
        TraceConfig,
        get_input_attributes,
        get_output_attributes,
        get_reranker_attributes,
        get_retriever_attributes,
        using_attributes,
    )
    from openinference.instrumentation.openai import OpenAIInstrumentor

    with OpenAIServer() as server:
        rec = SpanRecorder(resource={"service.name": "weather-app"})
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=rec.provider)
        tracer = OITracer(rec.provider.get_tracer("weather-app"), config=TraceConfig())
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)

        @tracer.tool(name="get_weather", description="Current weather for a city.")
        def get_weather(city: str) -> str:
            return TOOL_RESULT

        @tracer.agent(name="weather_agent")
        def weather_agent(question: str) -> str:
            with tracer.start_as_current_span("find_guides", openinference_span_kind="retriever") as span:
                span.set_attributes(get_input_attributes(question))
                span.set_attributes(get_retriever_attributes(documents=GUIDES))  # type: ignore[arg-type]
            with tracer.start_as_current_span("rerank_guides", openinference_span_kind="reranker") as span:
                span.set_attributes(
                    get_reranker_attributes(
                        query=question,
                        model_name="rerank-lite",
                        top_k=1,
                        input_documents=GUIDES,  # type: ignore[arg-type]
                        output_documents=GUIDES[:1],  # type: ignore[arg-type]
                    )
                )
            messages: list[Any] = [{"role": "user", "content": question}]
            asked = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[list-item]
            call = (asked.choices[0].message.tool_calls or [])[0]
            messages.append(asked.choices[0].message.model_dump(exclude_none=True, exclude={"refusal"}))
            arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": get_weather(**arguments)})
            answered = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[list-item]
            return answered.choices[0].message.content or ""

        try:
            context = using_attributes(
                session_id="session-42", user_id="user-7", metadata={"plan": "pro"}, tags=["beta", "weather"]
            )
            with context, tracer.start_as_current_span("plan_trip", openinference_span_kind="chain") as chain:
                chain.set_attributes(get_input_attributes("Weather in Paris?"))
                answer = weather_agent("Weather in Paris?")
                chain.set_attributes(get_output_attributes(answer))
        finally:
            instrumentor.uninstrument()
        rec.shutdown()
        return _by_trace(rec.records(), ["agent"])


CAPTURES: dict[str, tuple[str, Callable[[], Captured]]] = {
    # fixture name: (distribution whose version is recorded, capture function)
    "openai_v2": ("opentelemetry-instrumentation-openai-v2", capture_openai_v2),
    "openinference": ("openinference-instrumentation-openai", capture_openinference),
    "openinference_agent": ("openinference-instrumentation", capture_openinference_agent),
    "traceloop": ("opentelemetry-instrumentation-openai", capture_traceloop),
    "pydantic_ai": ("pydantic-ai-slim", capture_pydantic_ai),
    "pydantic_ai_v2": ("pydantic-ai-slim", lambda: capture_pydantic_ai(2)),
    "pydantic_ai_v3": ("pydantic-ai-slim", lambda: capture_pydantic_ai(3)),
}


def capture(name: str) -> Captured:
    return CAPTURES[name][1]()


def package_version(name: str) -> str:
    return version(CAPTURES[name][0])


def dumps(name: str, captured: Captured) -> str:
    """The fixture file's text: package and version, then each scenario's records as JSON objects."""
    doc = {
        "package": CAPTURES[name][0],
        "version": package_version(name),
        "scenarios": {scenario: [r.to_json_obj() for r in records] for scenario, records in captured.items()},
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
