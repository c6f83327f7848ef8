"""Traceloop's SDK (OpenLLMetry): workflow / agent / tool / task decorators and association properties around
real OpenAI calls to the local server, captured to `tests/fixtures/captured/traceloop_sdk.json`.

traceloop-sdk pins OpenTelemetry packages older than the project's and installs some forty instrumentations
(which `opentelemetry-instrument` would then load everywhere), so it runs in a virtualenv of its own:

    python3.11 -m venv /tmp/venv-traceloop-sdk
    /tmp/venv-traceloop-sdk/bin/pip install traceloop-sdk==0.62.4 openai==3.54.0 opentelemetry-sdk==1.45.1 \
        opentelemetry-instrumentation==0.66b1 opentelemetry-instrumentation-logging==0.66b1 \
        opentelemetry-instrumentation-redis==0.66b1 opentelemetry-instrumentation-requests==0.66b1 \
        opentelemetry-instrumentation-urllib3==0.66b1 opentelemetry-instrumentation-sqlalchemy==0.66b1 \
        opentelemetry-instrumentation-threading==0.66b1 opentelemetry-semantic-conventions==0.66b1 \
        orjson jsonschema httpx typing_extensions "mistralai<2" chromadb
    cd /work/main && PYTHONPATH=src:tests /tmp/venv-traceloop-sdk/bin/python tests/capture/traceloop_sdk.py

One process per variant, because `Traceloop.init` holds for the life of a process:

- `content_in_events`: `use_legacy_attributes=False`, message content leaves the spans for log events;
- `content_on_spans`: `use_legacy_attributes=True`, content on the spans as `gen_ai.input.messages` JSON;
- `mistralai_indexed`: OpenLLMetry's Mistral instrumentation, still the indexed `gen_ai.prompt.{i}.*` /
  `gen_ai.completion.{i}.*` form;
- `chromadb_retrieval`: its Chroma instrumentation, query results as `db.query.result` span events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "captured" / "traceloop_sdk.json"
VARIANTS = ("content_in_events", "content_on_spans", "mistralai_indexed", "chromadb_retrieval")


def _run_mistralai() -> list[dict[str, Any]]:
    """OpenLLMetry's Mistral instrumentation: still the indexed `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*`."""
    from fakes.openai_server import OpenAIServer
    from mistralai import Mistral
    from mistralai.models import (
        AssistantMessage,
        SystemMessage,
        ToolMessage,
        UserMessage,
    )
    from opentelemetry.instrumentation.mistralai import MistralAiInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from capture.scenarios import TOOL_RESULT, WEATHER_TOOL
    from maxim_otel_bridge.record import from_readable_span

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    MistralAiInstrumentor().instrument(tracer_provider=provider)
    with OpenAIServer() as server:
        # Mistral's chat API has OpenAI's shape, so the same local server answers it.
        client = Mistral(api_key="mistral-test", server_url=server.base_url.removesuffix("/v1"))
        messages: list[Any] = [
            SystemMessage(content="Be terse."),
            UserMessage(content="Weather in Paris?"),
        ]
        asked = client.chat.complete(model="mistral-small-latest", messages=messages, tools=[WEATHER_TOOL])
        call = (asked.choices[0].message.tool_calls or [])[0]
        messages.append(AssistantMessage(content="", tool_calls=[call]))
        messages.append(ToolMessage(content=TOOL_RESULT, tool_call_id=call.id, name="get_weather"))
        client.chat.complete(model="mistral-small-latest", messages=messages, tools=[WEATHER_TOOL])
    return [from_readable_span(span).to_json_obj() for span in exporter.get_finished_spans()]


def _run_chromadb() -> list[dict[str, Any]]:
    """OpenLLMetry's Chroma instrumentation: query results as `db.query.result` span events (an in-memory Chroma)."""
    import chromadb
    from opentelemetry.instrumentation.chromadb import ChromaInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from maxim_otel_bridge.record import from_readable_span

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ChromaInstrumentor().instrument(tracer_provider=provider)
    # Embeddings are given, so no embedding model is loaded.
    guides = chromadb.EphemeralClient().get_or_create_collection("guides", embedding_function=None)
    with provider.get_tracer("weather-app").start_as_current_span("find_guides"):
        guides.add(
            ids=["guide-1", "guide-2"],
            documents=["Paris in spring: mild, often sunny.", "Packing for rain in Paris."],
            embeddings=[[0.1, 0.2, 0.3], [0.3, 0.1, 0.0]],
            metadatas=[{"source": "guides"}, {"source": "guides"}],
        )
        guides.query(query_embeddings=[[0.1, 0.2, 0.3]], n_results=2)
    return [from_readable_span(span).to_json_obj() for span in exporter.get_finished_spans()]


def _run_variant(variant: str) -> list[dict[str, Any]]:
    """In this process: init Traceloop, run the workflow, return the span records as JSON objects."""
    if variant == "mistralai_indexed":
        return _run_mistralai()
    if variant == "chromadb_retrieval":
        return _run_chromadb()
    import openai
    from fakes.openai_server import OpenAIServer
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, task, tool, workflow
    from traceloop.sdk.instruments import Instruments

    from capture.scenarios import TOOL_RESULT, WEATHER_TOOL
    from maxim_otel_bridge.record import from_readable_span

    exporter = InMemorySpanExporter()
    Traceloop.init(
        app_name="weather-app",
        processor=SimpleSpanProcessor(exporter),
        telemetry_enabled=False,
        instruments={Instruments.OPENAI},
        use_legacy_attributes=variant == "content_on_spans",
    )
    Traceloop.set_association_properties({"session_id": "session-42", "user_id": "user-7"})

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)

        @tool(name="get_weather")
        def get_weather(city: str) -> str:
            return TOOL_RESULT

        @task(name="find_guides")
        def find_guides(city: str) -> list[str]:
            return [f"{city} in the rain", f"{city} on a sunny day"]

        @agent(name="weather_agent")
        def weather_agent(question: str) -> str:
            messages: list[Any] = [{"role": "user", "content": question}]
            asked = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
            call = (asked.choices[0].message.tool_calls or [])[0]
            messages.append(asked.choices[0].message.model_dump(exclude_none=True, exclude={"refusal"}))
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": get_weather(**json.loads(call.function.arguments)),
                }
            )
            answered = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
            return answered.choices[0].message.content or ""

        @workflow(name="plan_trip")
        def plan_trip(city: str) -> dict[str, Any]:
            return {
                "weather": weather_agent(f"Weather in {city}?"),
                "guides": find_guides(city),
            }

        plan_trip("Paris")
    return [from_readable_span(span).to_json_obj() for span in exporter.get_finished_spans()]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--variant":
        print(json.dumps(_run_variant(sys.argv[2])))
        return 0
    scenarios = {}
    for variant in VARIANTS:
        done = subprocess.run(
            [sys.executable, __file__, "--variant", variant],
            check=False,  # the return code is checked below, with the child's output in the error
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "TRACELOOP_TRACE_CONTENT": "true",
                "TRACELOOP_TELEMETRY": "false",
            },
        )
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            return 1
        scenarios[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    doc = {
        "package": "traceloop-sdk",
        "version": version("traceloop-sdk"),
        "scenarios": scenarios,
    }
    FIXTURE.write_text(
        json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
