"""A small GenAI app, run as its own process: a weather agent making two OpenAI calls (a tool call, then the
answer) through a real instrumentation, exporting spans AND log records with the official OTLP exporters.

    python -m fakes.genai_app MODE PROTOCOL OTLP_ENDPOINT OPENAI_BASE_URL

MODE is `SPAN_ONLY`, `EVENT_ONLY` or `SPAN_AND_EVENT` (the official openai-v2 instrumentation, with
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` set to it), or `traceloop_events` (Traceloop's OpenAI
instrumentation with its content in log events). PROTOCOL is `grpc` or `http`. A process per run, because
instrumentations read their settings once and keep global state. Prints one JSON line: the trace id, the
agent span id, the two response ids and the tool call id.

Log records are flushed before spans, as a BatchLogRecordProcessor (1 s) usually beats a BatchSpanProcessor
(5 s) in a running app.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

from fakes.openai_server import tool_call_reply

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_RESULT = "18C, sunny"
MODES = ("SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT", "traceloop_events")


def _instrumentor(mode: str) -> Any:
    if mode == "traceloop_events":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopInstrumentor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # Events mode: content leaves the span for gen_ai.*.message / gen_ai.choice log records.
            return TraceloopInstrumentor(use_legacy_attributes=False)
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = mode
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    return OpenAIInstrumentor()


def _exporters(protocol: str, endpoint: str) -> tuple[Any, Any]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True), OTLPLogExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(endpoint=f"{endpoint}/v1/traces"), HttpLogExporter(endpoint=f"{endpoint}/v1/logs")


def run(mode: str, protocol: str, endpoint: str, base_url: str) -> dict[str, str]:
    import openai
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": f"weather-{mode.lower()}"})
    span_exporter, log_exporter = _exporters(protocol, endpoint)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    instrumentor = _instrumentor(mode)
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)

    client = openai.OpenAI(api_key="sk-app-test", base_url=base_url, max_retries=0)
    tracer = tracer_provider.get_tracer("weather.agent")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer with the weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    with tracer.start_as_current_span(
        "invoke_agent weather", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather"}
    ) as agent:
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        call = (first.choices[0].message.tool_calls or [])[0]
        messages += tool_call_reply(call, TOOL_RESULT)
        second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    instrumentor.uninstrument()
    logger_provider.shutdown()
    tracer_provider.shutdown()
    context = agent.get_span_context()
    return {
        "trace_id": format(context.trace_id, "032x"),
        "agent_span_id": format(context.span_id, "016x"),
        "first_response_id": first.id,
        "second_response_id": second.id,
        "tool_call_id": call.id,
    }


def main() -> int:
    mode, protocol, endpoint, base_url = sys.argv[1:5]
    if mode not in MODES or protocol not in ("grpc", "http"):
        print(f"usage: MODE in {MODES}, PROTOCOL in grpc/http", file=sys.stderr)
        return 2
    print(json.dumps(run(mode, protocol, endpoint, base_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
