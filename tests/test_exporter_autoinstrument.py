"""Zero-code use: `OTEL_TRACES_EXPORTER=maxim [OTEL_LOGS_EXPORTER=maxim] opentelemetry-instrument python app.py`
sends to Maxim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakes.batch_sink import BatchSink
from fakes.openai_server import OpenAIServer

APP = """
from opentelemetry import trace

tracer = trace.get_tracer("demo.app")
with tracer.start_as_current_span("invoke_agent demo", attributes={"gen_ai.operation.name": "invoke_agent"}) as agent:
    with tracer.start_as_current_span(
        "execute_tool lookup",
        attributes={"gen_ai.tool.name": "lookup", "gen_ai.tool.call.arguments": '{"q": "x"}'},
    ) as tool:
        pass
ctx = agent.get_span_context()
print(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), format(tool.get_span_context().span_id, "016x"))
"""


def test_opentelemetry_instrument_with_the_maxim_exporter(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    assert instrument.exists(), "opentelemetry-distro's opentelemetry-instrument is a test dependency"
    with BatchSink(api_key="key-for-the-subprocess") as sink:
        env = {
            **os.environ,
            "OTEL_TRACES_EXPORTER": "maxim",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "demo-service",
            "MAXIM_BASE_URL": sink.url,
            "MAXIM_API_KEY": "key-for-the-subprocess",
            "MAXIM_LOG_REPO_ID": "repo-auto",
            "MAXIM_BRIDGE_DEAD_LETTER_PATH": str(tmp_path / "dead.jsonl"),
        }
        done = subprocess.run(
            [str(instrument), sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        trace_id, agent_id, tool_id = done.stdout.split()
        got = sink.entities_by_id()
        assert sink.problems() == []
        assert sink.requests[0].body["repoId"] == "repo-auto"
    assert got[trace_id]["type"] == "trace"
    assert got[agent_id]["type"] == "span"
    assert got[agent_id]["traceId"] == trace_id
    tool = got[tool_id]
    assert (tool["type"], tool["name"], tool["spanId"], tool["args"]) == ("toolCall", "lookup", agent_id, '{"q": "x"}')
    assert "key-for-the-subprocess" not in done.stderr + done.stdout
    assert not (tmp_path / "dead.jsonl").exists()


def test_a_missing_key_is_reported_clearly_and_the_app_still_runs(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAXIM_")}
    env.update(OTEL_TRACES_EXPORTER="maxim", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    done = subprocess.run(
        [str(instrument), sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert len(done.stdout.split()) == 3  # the application ran to the end
    assert "ConfigError: no Maxim API key: set MAXIM_API_KEY" in done.stderr


GENAI_APP = """
import os

import openai
from opentelemetry import trace
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

# Three installed packages register the auto-instrumentation name `openai`; this one is chosen explicitly.
OpenAIInstrumentor().instrument()
client = openai.OpenAI(api_key="sk-openai-test", base_url=os.environ["OPENAI_TEST_URL"], max_retries=0)
with trace.get_tracer("demo.app").start_as_current_span("invoke_agent demo") as agent:
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
print(format(agent.get_span_context().trace_id, "032x"), answer.id)
"""


def test_opentelemetry_instrument_with_both_maxim_exporters_joins_event_content(tmp_path: Path) -> None:
    script = tmp_path / "genai_app.py"
    script.write_text(GENAI_APP)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    with BatchSink(api_key="key-for-the-subprocess") as sink, OpenAIServer() as openai_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAXIM_", "OTEL_"))}
        env.update(
            OTEL_TRACES_EXPORTER="maxim",
            OTEL_LOGS_EXPORTER="maxim",
            OTEL_METRICS_EXPORTER="none",
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
            OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="EVENT_ONLY",
            OPENAI_TEST_URL=openai_server.base_url,
            MAXIM_BASE_URL=sink.url,
            MAXIM_API_KEY="key-for-the-subprocess",
            MAXIM_LOG_REPO_ID="repo-auto",
            MAXIM_BRIDGE_DEAD_LETTER_PATH=str(tmp_path / "dead.jsonl"),
        )
        done = subprocess.run(
            [str(instrument), sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        trace_id, response_id = done.stdout.split()
        assert sink.problems() == []
        got = sink.entities_by_id()
    (generation,) = [e for e in got.values() if e["type"] == "generation"]
    assert generation["traceId"] == trace_id
    assert generation["result"]["id"] == response_id
    # The prompt and the answer came only as log records: joined to the generation before it was sent.
    assert generation["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert generation["result"]["choices"][0]["message"]["content"] == "It is 18°C and sunny in Paris."
    assert [e for e in got.values() if e["type"] == "event"] == []
    assert "other settings" not in done.stderr  # both exporters share one pipeline, as configured
    assert "key-for-the-subprocess" not in done.stderr + done.stdout
    assert not (tmp_path / "dead.jsonl").exists()
