"""GenAI content that arrives as OpenTelemetry log events, joined to its spans in process.

Real instrumentation (the official openai-v2 in each content mode, and Traceloop's OpenLLMetry in its events
mode) drives the real `openai` client against a local OpenAI-compatible server; real SDK providers and batch
processors hand spans to `MaximSpanExporter` and log records to `MaximLogExporter`; the batch sink checks
every payload against Maxim's schema. Only OpenAI's and Maxim's servers are faked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import openai.resources.chat.completions as chat_completions
import pytest
from fakes.batch_sink import BatchSink
from fakes.openai_server import OpenAIServer, tool_call_reply
from opentelemetry import trace
from opentelemetry._logs import LogRecord
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopInstrumentor
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from maxim_otel_bridge import MaximLogExporter, MaximSpanExporter

API_KEY = "sk-log-exporter-secret-24680"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SYSTEM = {"role": "system", "content": "Answer with the weather."}
USER = {"role": "user", "content": "Weather in Paris?"}
CALL = ("call_0001", "get_weather", {"city": "Paris"})
ANSWER = "It is 18°C and sunny in Paris."

# What every mode must give, generation by generation: (role, content, tool calls, tool_call_id) per message,
# and (index, finish reason, content, tool calls) per choice.
ASKED = (
    [("system", SYSTEM["content"], [], None), ("user", USER["content"], [], None)],
    [(0, "tool_calls", None, [CALL])],
)
ANSWERED = (
    [*ASKED[0], ("assistant", None, [CALL], None), ("tool", "18C, sunny", [], "call_0001")],
    [(0, "stop", ANSWER, [])],
)

MODES = ["SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT", "traceloop-events"]


def calls_of(items: Any) -> list[tuple[str, str, Any]]:
    return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in items or ()]


def conversation(generation: dict) -> tuple[list, list]:
    """A generation's messages and choices, in a form where the sources' spelling differences do not count."""
    messages = [
        (m["role"], m.get("content"), calls_of(m.get("tool_calls")), m.get("tool_call_id"))
        for m in generation.get("messages") or ()
    ]
    choices = [
        (c["index"], c["finish_reason"], c["message"].get("content"), calls_of(c["message"].get("tool_calls")))
        for c in (generation.get("result") or {}).get("choices") or ()
    ]
    return messages, choices


def make_exporters(sink: BatchSink, tmp_path: Path, **options: Any) -> tuple[MaximSpanExporter, MaximLogExporter]:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "repo_id": "repo-logs",
        "base_url": sink.url,
        "dead_letter_path": tmp_path / "dead.jsonl",
        "environ": {},
        **options,
    }
    return MaximSpanExporter(**settings), MaximLogExporter(**settings)


@dataclass
class Instrumented:
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider

    def run_agent(self) -> list[Any]:
        """An agent turn: a call that asks for a tool, a call with the tool's result, the same streamed."""
        tracer = self.tracer_provider.get_tracer("weather.agent")
        messages: list[dict] = [SYSTEM, USER]
        with OpenAIServer() as server:
            client = openai.OpenAI(api_key="sk-openai-test", base_url=server.base_url, max_retries=0)
            agent_attributes = {"gen_ai.operation.name": "invoke_agent"}
            with tracer.start_as_current_span("invoke_agent weather", attributes=agent_attributes):
                first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
                call = first.choices[0].message.tool_calls[0]
                messages += tool_call_reply(call, "18C, sunny")
                second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
                chunks = list(
                    client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=messages,
                        tools=[WEATHER_TOOL],
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                )
        return [first.id, second.id, chunks[0].id]


@pytest.fixture
def instrument(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Instrument openai with real providers in one content mode; uninstrument afterwards."""
    undo: list[Any] = []

    def start(mode: str, span_processor: Any, log_processor: Any) -> Instrumented:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(span_processor)
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(log_processor)
        if mode == "traceloop-events":
            monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
            # use_attributes=False: OpenLLMetry's events path (prompts and choices as log records only).
            instrumentor: Any = TraceloopInstrumentor(use_attributes=False)
        else:
            # util-genai reads these when the instrumented call runs: set before instrumenting, kept until the end.
            monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
            monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
            instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
        undo.append(instrumentor)
        return Instrumented(tracer_provider, logger_provider)

    yield start
    for instrumentor in undo:
        instrumentor.uninstrument()
        if isinstance(instrumentor, TraceloopInstrumentor):
            # OpenLLMetry 0.62 unwraps with dotted "module", "Class.method" paths, which this version of
            # opentelemetry-instrumentation's `unwrap` cannot resolve: its wrappers stay, and the next
            # instrumentation in the process would wrap on top (every call emitted twice).
            for owner in (chat_completions.Completions, chat_completions.AsyncCompletions):
                for method in ("create", "parse"):
                    unwrap(owner, method)


@pytest.mark.parametrize("mode", MODES)
def test_every_content_mode_gives_the_same_generations(instrument: Any, mode: str, tmp_path: Path) -> None:
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path)
        assert span_exporter.pipeline is log_exporter.pipeline
        app = instrument(
            mode,
            BatchSpanProcessor(span_exporter, schedule_delay_millis=50),
            BatchLogRecordProcessor(log_exporter, schedule_delay_millis=50),
        )
        response_ids = app.run_agent()
        # The order of `atexit`: the logger provider (made last) shuts down first.
        app.logger_provider.shutdown()
        app.tracer_provider.shutdown()

        assert sink.problems() == []
        entities = sink.entities_by_id()
        stats = span_exporter.stats
    generations = {e["result"]["id"]: e for e in entities.values() if e["type"] == "generation"}
    assert set(generations) == set(response_ids)
    asked, answered, streamed = (conversation(generations[i]) for i in response_ids)
    assert asked == ASKED
    assert answered == ANSWERED
    assert streamed == ANSWERED
    # Nothing shipped aside: no event entity carries content the generations already have.
    assert [e for e in entities.values() if e["type"] == "event"] == []
    assert stats.log_events_orphaned == 0 and stats.entities_dead_lettered == 0
    if mode == "SPAN_ONLY":
        assert stats.log_events_received == 0
    else:
        assert stats.log_events_received > 0


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "traceloop-events"])
def test_events_that_come_after_their_span_shipped_update_the_same_entity(
    instrument: Any, mode: str, tmp_path: Path
) -> None:
    held = InMemoryLogRecordExporter()
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path)
        app = instrument(mode, SimpleSpanProcessor(span_exporter), SimpleLogRecordProcessor(held))
        first_id, second_id, streamed_id = app.run_agent()
        assert span_exporter.force_flush() is True  # the spans ship with no content
        shipped = {e["result"]["id"]: e for e in sink.entities() if e["type"] == "generation"}
        assert set(shipped) == {first_id, second_id, streamed_id}
        assert all(not conversation(g)[0] for g in shipped.values())
        sent_before = len(sink.entities())

        records = held.get_finished_logs()
        assert log_exporter.export(records) is LogRecordExportResult.SUCCESS
        assert log_exporter.export(records) is LogRecordExportResult.SUCCESS  # sent twice: nothing doubles
        assert log_exporter.force_flush() is True
        resent = [e for e in sink.entities()[sent_before:] if e["type"] == "generation"]
        merged = sink.entities_by_id()
        stats = log_exporter.stats
        log_exporter.shutdown()
        span_exporter.shutdown()
        assert sink.problems() == []

    # The same entity ids, re-sent with the content (Maxim merges by id), in the same place.
    assert {g["id"] for g in resent} == {g["id"] for g in shipped.values()}
    placed = {g["id"]: (g["traceId"], g.get("spanId")) for g in shipped.values()}
    assert all((g["traceId"], g.get("spanId")) == placed[g["id"]] for g in resent)
    by_response = {g["id"]: g["result"]["id"] for g in shipped.values()}
    final = {by_response[i]: merged[i] for i in by_response}
    assert conversation(final[first_id]) == ASKED
    assert conversation(final[second_id]) == ANSWERED
    assert conversation(final[streamed_id]) == ANSWERED
    assert [e for e in merged.values() if e["type"] == "event"] == []
    assert (stats.log_events_late, stats.log_events_orphaned) == (len(records) * 2, 0)


def test_events_whose_span_never_comes_ship_as_events_on_their_trace(instrument: Any, tmp_path: Path) -> None:
    held = InMemoryLogRecordExporter()
    spans = InMemorySpanExporter()  # the spans go elsewhere: Maxim never sees them
    with BatchSink(api_key=API_KEY) as sink:
        log_exporter = MaximLogExporter(
            api_key=API_KEY,
            repo_id="repo-logs",
            base_url=sink.url,
            dead_letter_path=tmp_path / "dead.jsonl",
            environ={},
            trace_wait=0.2,
        )
        app = instrument("EVENT_ONLY", SimpleSpanProcessor(spans), SimpleLogRecordProcessor(held))
        first_id, second_id, _ = app.run_agent()
        records = held.get_finished_logs()
        assert log_exporter.export(records) is LogRecordExportResult.SUCCESS
        # Not flushed: they wait `trace_wait` for their spans, then go as they are.
        assert sink.wait_for(lambda s: sum(e["type"] == "event" for e in s.entities()) == len(records))
        log_exporter.shutdown()
        assert sink.problems() == []
        entities = sink.entities_by_id()
        stats = log_exporter.stats

    (agent,) = [s for s in spans.get_finished_spans() if s.name == "invoke_agent weather"]
    trace_id = format(agent.context.trace_id, "032x")
    chat_spans = {format(s.context.span_id, "016x") for s in spans.get_finished_spans() if s.name.startswith("chat")}
    events = [e for e in entities.values() if e["type"] == "event"]
    assert entities[trace_id]["type"] == "trace"
    assert {e["traceId"] for e in events} == {trace_id}
    assert {e["metadata"]["otel.span_id"] for e in events} == chat_spans
    assert {e["name"] for e in events} == {"gen_ai.client.inference.operation.details"}
    # The content is all there, on the events.
    inputs = [json.dumps(e["metadata"]["gen_ai.input.messages"]) for e in events]
    assert any("18C, sunny" in text for text in inputs)
    assert [e for e in entities.values() if e["type"] == "generation"] == []
    assert (stats.log_events_orphaned, stats.log_events_late) == (len(records), 0)
    assert {first_id, second_id} <= {
        e["metadata"].get("gen_ai.response.id") for e in events
    }


def test_log_records_that_are_not_genai_events_are_counted_not_sent(tmp_path: Path) -> None:
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path)
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        app_logger = logger_provider.get_logger("app")
        app_logger.emit(LogRecord(body="user 42 logged in", attributes={"user.id": "42"}))
        app_logger.emit(LogRecord(body={"k": "v"}, event_name="app.checkout"))
        assert log_exporter.force_flush() is True
        stats = log_exporter.stats
        logger_provider.shutdown()
        span_exporter.shutdown()
        assert sink.entities() == []
    assert (stats.log_records_ignored, stats.log_events_received) == (2, 0)


def test_shutting_down_the_span_exporter_first_loses_no_event(instrument: Any, tmp_path: Path) -> None:
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path)
        app = instrument(
            "EVENT_ONLY",
            BatchSpanProcessor(span_exporter, schedule_delay_millis=50),
            BatchLogRecordProcessor(log_exporter, schedule_delay_millis=60_000),  # events held until shutdown
        )
        response_ids = app.run_agent()
        app.tracer_provider.shutdown()  # not the last: the pipeline keeps running for the log exporter
        assert not span_exporter.pipeline.closed
        app.logger_provider.shutdown()  # the last: events joined late, then everything sent
        assert span_exporter.pipeline.closed
        assert sink.problems() == []
        entities = sink.entities_by_id()
    generations = {e["result"]["id"]: e for e in entities.values() if e["type"] == "generation"}
    assert [conversation(generations[i]) for i in response_ids] == [ASKED, ANSWERED, ANSWERED]


@pytest.mark.parametrize("flushed", ["span", "log"])
def test_force_flush_of_either_exporter_flushes_both_signals(instrument: Any, flushed: str, tmp_path: Path) -> None:
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path, trace_wait=3600)
        app = instrument("EVENT_ONLY", SimpleSpanProcessor(span_exporter), SimpleLogRecordProcessor(log_exporter))
        # The agent span stays open: nothing would be ready by itself for an hour.
        agent = app.tracer_provider.get_tracer("t").start_span("invoke_agent unfinished")
        with trace.use_span(agent, end_on_exit=False):
            response_ids = app.run_agent()
        assert sink.entities() == []
        assert (span_exporter if flushed == "span" else log_exporter).force_flush() is True
        entities = sink.entities_by_id()
        agent.end()
        log_exporter.shutdown()
        span_exporter.shutdown()
    generations = {e["result"]["id"]: e for e in entities.values() if e["type"] == "generation"}
    assert [conversation(generations[i]) for i in response_ids] == [ASKED, ANSWERED, ANSWERED]


def test_exporters_of_other_destinations_do_not_share(tmp_path: Path) -> None:
    with BatchSink(api_key=API_KEY) as one, BatchSink(api_key=API_KEY) as two:
        exporters = [*make_exporters(one, tmp_path), *make_exporters(two, tmp_path)]
        pipelines = [exporter.pipeline for exporter in exporters]
        for exporter in exporters:
            exporter.shutdown()
    assert pipelines[0] is pipelines[1] and pipelines[2] is pipelines[3]
    assert pipelines[0] is not pipelines[2]
    assert all(pipeline.closed for pipeline in pipelines)


def test_the_api_key_never_shows_in_the_log_exporter(tmp_path: Path) -> None:
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path)
        shown = repr(log_exporter) + repr(log_exporter.destination) + repr(log_exporter.stats)
        log_exporter.shutdown()
        span_exporter.shutdown()
    assert API_KEY not in shown


def test_export_after_shutdown_fails_and_a_bad_record_costs_no_other(tmp_path: Path) -> None:
    held = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(held))
    logger_provider.get_logger("g").emit(
        LogRecord(event_name="gen_ai.user.message", body={"content": "hi"}, trace_id=1, span_id=2)
    )
    (good,) = held.get_finished_logs()
    with BatchSink(api_key=API_KEY) as sink:
        _, log_exporter = make_exporters(sink, tmp_path)
        _.shutdown()
        bad: Any = ReadableLogRecord.__new__(ReadableLogRecord)  # no fields at all
        assert log_exporter.export([bad, good]) is LogRecordExportResult.FAILURE
        assert log_exporter.stats.log_events_received == 1
        log_exporter.shutdown()
        assert log_exporter.export([good]) is LogRecordExportResult.FAILURE


def test_a_choice_emitted_outside_any_span_ships_in_a_trace_of_its_own(instrument: Any, tmp_path: Path) -> None:
    # OpenLLMetry emits a stream's choice when the stream is drained, outside the call's span; with no
    # enclosing span the record has no trace at all. It cannot be joined, and it is not lost either.
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path)
        instrument("traceloop-events", SimpleSpanProcessor(span_exporter), SimpleLogRecordProcessor(log_exporter))
        with OpenAIServer() as server:
            client = openai.OpenAI(api_key="sk-openai-test", base_url=server.base_url, max_retries=0)
            chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True))
        assert log_exporter.force_flush() is True
        entities = list(sink.entities_by_id().values())
        stats = log_exporter.stats
        log_exporter.shutdown()
        span_exporter.shutdown()
        assert sink.problems() == []
    (generation,) = [e for e in entities if e["type"] == "generation"]
    assert conversation(generation)[0] == [("user", USER["content"], [], None)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    (choice,) = [e for e in entities if e["type"] == "event"]
    assert choice["name"] == "gen_ai.choice"
    assert choice["metadata"]["body"]["message"]["content"] == ANSWER
    own_trace = next(e for e in entities if e["id"] == choice["traceId"])
    assert (own_trace["type"], own_trace["name"]) == ("trace", "gen_ai.choice")
    assert stats.log_events_orphaned == 1


def test_content_withheld_by_the_policy_stays_withheld_when_it_comes_as_events(
    instrument: Any, tmp_path: Path
) -> None:
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter, log_exporter = make_exporters(sink, tmp_path, environ={"MAXIM_BRIDGE_CAPTURE_CONTENT": "false"})
        app = instrument("EVENT_ONLY", SimpleSpanProcessor(span_exporter), SimpleLogRecordProcessor(log_exporter))
        app.run_agent()  # events joined to their generations
        app.logger_provider.get_logger("g").emit(  # an event whose span never comes: an orphan
            LogRecord(event_name="gen_ai.user.message", body={"content": USER["content"]}, trace_id=7, span_id=9)
        )
        assert log_exporter.force_flush() is True
        log_exporter.shutdown()
        span_exporter.shutdown()
        assert sink.problems() == []
        sent = json.dumps(sink.entities())
        generations = [e for e in sink.entities() if e["type"] == "generation"]
        events = [e for e in sink.entities() if e["type"] == "event"]
    assert len(generations) == 3 and len(events) == 1
    assert all(m["role"] for g in generations for m in g["messages"])  # the roles stay, the words do not
    for words in ("Weather in Paris", "18C, sunny", "sunny in Paris", "Answer with the weather"):
        assert words not in sent


def test_a_span_exporter_alone_keeps_no_shipped_spans_so_later_events_go_as_orphans(tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "dead_letter_path": tmp_path / "dead.jsonl",
        "environ": {},
        "repo_id": "repo-logs",
    }
    with BatchSink(api_key=API_KEY) as sink:
        span_exporter = MaximSpanExporter(base_url=sink.url, **settings)
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        tracer = tracer_provider.get_tracer("t")
        with tracer.start_as_current_span("chat", attributes={"gen_ai.request.model": "m"}) as chat:
            pass
        assert span_exporter.force_flush() is True
        # A log exporter that comes only now: the chat span was not kept, its event cannot be joined late.
        log_exporter = MaximLogExporter(base_url=sink.url, **settings)
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        context = chat.get_span_context()
        logger_provider.get_logger("g").emit(
            LogRecord(
                event_name="gen_ai.user.message",
                body={"content": USER["content"]},
                trace_id=context.trace_id,
                span_id=context.span_id,
            )
        )
        assert log_exporter.force_flush() is True
        stats = log_exporter.stats
        log_exporter.shutdown()
        span_exporter.shutdown()
        entities = sink.entities_by_id()
    (event_entity,) = [e for e in entities.values() if e["type"] == "event"]
    assert event_entity["metadata"]["body"] == {"content": USER["content"]}
    assert event_entity["traceId"] == format(context.trace_id, "032x")
    assert (stats.log_events_late, stats.log_events_orphaned) == (0, 1)
