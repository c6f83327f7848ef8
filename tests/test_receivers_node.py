"""The receivers with a non-Python client: the OpenTelemetry JS SDK's own OTLP exporters (OTLP/JSON over HTTP,
protobuf over gRPC), run by Node against the real receivers on port 0."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from capture.vercel_ai import PROJECT as NODE_PROJECT
from capture.vercel_ai import ensure_installed
from fakes.span_sinks import MemorySink
from fakes.tls import self_signed_cert

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.record import EventRecord, LinkRecord, SpanKind, StatusCode
from maxim_otel_bridge.sidecar.grpc_receiver import GrpcReceiver
from maxim_otel_bridge.sidecar.http_receiver import HttpReceiver

SCRIPT = Path(__file__).resolve().parent / "node" / "otlp-receivers" / "export.cjs"
TOKEN = "tkn-node-5e6f7a8b"


@pytest.fixture(scope="module", autouse=True)
def node_packages() -> None:
    ensure_installed()  # the OpenTelemetry JS packages installed for the Vercel AI capture


def run_node(mode: str, endpoint: str, token: str = "", ca_file: str = "") -> dict:
    env = dict(os.environ, NODE_PATH=str(NODE_PROJECT / "node_modules"))
    done = subprocess.run(
        ["node", str(SCRIPT), mode, endpoint, token, ca_file],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(params=["http-json", "grpc"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def serve(mode: str, sink: MemorySink, **kwargs: object) -> tuple[HttpReceiver | GrpcReceiver, str]:
    if mode == "http-json":
        rx: HttpReceiver | GrpcReceiver = HttpReceiver("127.0.0.1:0", sink, **kwargs)  # type: ignore[arg-type]
        rx.start()
        return rx, f"http://127.0.0.1:{rx.bound_port}/v1/traces"
    rx = GrpcReceiver("127.0.0.1:0", sink, **kwargs)  # type: ignore[arg-type]
    rx.start()
    return rx, f"http://127.0.0.1:{rx.bound_port}"


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    yield MemorySink()


def test_js_sdk_spans_arrive_intact(mode: str, sink: MemorySink) -> None:
    rx, endpoint = serve(mode, sink)
    try:
        ids = run_node(mode, endpoint)
    finally:
        rx.stop(1)
    assert ids["resultCode"] == 0
    spans = sink.by_name()
    assert set(spans) == {"linked", "agent", "tool"}
    agent, tool = spans["agent"], spans["tool"]
    assert (agent.trace_id, agent.span_id, agent.parent_span_id) == (ids["traceId"], ids["root"], None)
    assert (tool.trace_id, tool.span_id, tool.parent_span_id) == (ids["traceId"], ids["child"], ids["root"])
    assert agent.attributes == {
        "str": "hello",
        "int": 42,
        "negative": -7,
        "double": 0.5,
        "bool": True,
        "strs": ["a", "b"],
        "nums": [1, 2, 3],
        "bools": [True, False],
    }
    assert [(e.name, dict(e.attributes)) for e in agent.events] == [("step", {"n": 1, "note": "first"})]
    assert (
        isinstance(agent.events[0], EventRecord) and agent.start_ns <= agent.events[0].time_ns <= agent.end_ns
    )
    assert tool.links == (LinkRecord(ids["linkedTraceId"], ids["linked"], {"why": "retry"}),)
    assert (agent.kind, tool.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    assert (tool.status_code, tool.status_message) == (StatusCode.ERROR, "boom")
    assert agent.resource == {"service.name": "node-svc", "deployment.environment": "test"}
    assert (agent.scope_name, agent.scope_version) == ("node.tests", "3.1.4")
    assert agent.start_ns < agent.end_ns


def test_js_sdk_with_a_bearer_token(mode: str, sink: MemorySink) -> None:
    rx, endpoint = serve(mode, sink, auth_token=Secret(TOKEN))
    try:
        refused = run_node(mode, endpoint, token="wrong")
        accepted = run_node(mode, endpoint, token=TOKEN)
    finally:
        rx.stop(1)
    assert refused["resultCode"] != 0
    assert "UNAUTHENTICATED" in refused["error"] or "Unauthorized" in refused["error"]
    assert TOKEN not in refused["error"]
    assert (accepted["resultCode"], accepted["error"]) == (0, None)
    assert len(sink.records) == 3


def test_js_grpc_exporter_over_tls(tmp_path: Path, sink: MemorySink) -> None:
    cert = self_signed_cert(tmp_path)
    (tmp_path / "ca.pem").write_bytes(cert.cert_pem)
    rx = GrpcReceiver("127.0.0.1:0", sink, tls=cert.files)
    rx.start()
    try:
        ids = run_node("grpc", f"https://localhost:{rx.bound_port}", ca_file=str(tmp_path / "ca.pem"))
    finally:
        rx.stop(1)
    assert ids["resultCode"] == 0
    assert {r.span_id for r in sink.records} == {ids["root"], ids["child"], ids["linked"]}
