"""The OTLP/HTTP receiver, on a real server on port 0, driven by the official OTLP/HTTP exporter, httpx and raw sockets."""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fakes.otlp_requests import (
    RICH_JSON,
    RICH_RECORDS,
    ROOT,
    TRACE,
    kv,
    request_pb,
    rich_request_pb,
    s,
    span_pb,
)
from fakes.span_sinks import FailingSink, GatedSink, MemorySink
from fakes.tls import self_signed_cert
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from maxim_otel_bridge.config import Secret
from maxim_otel_bridge.record import from_readable_span
from maxim_otel_bridge.sidecar.http_receiver import HttpReceiver, parse_endpoint
from maxim_otel_bridge.sidecar.ingest import (
    AcceptResult,
    ReceiverLimits,
    ReceiverStartError,
    TlsFiles,
    Verdict,
)
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics

PB = "application/x-protobuf"
JSON = "application/json"
TOKEN = "tkn-http-1a2b3c4d"
LIMIT = 256 * 1024
TID, SID = bytes.fromhex(TRACE), bytes.fromhex(ROOT)


def start(sink: object, **kwargs: object) -> HttpReceiver:
    kwargs.setdefault("limits", ReceiverLimits(max_request_bytes=LIMIT, max_workers=4, read_timeout_s=5))
    rx = HttpReceiver("127.0.0.1:0", sink, **kwargs)  # type: ignore[arg-type]
    rx.start()
    return rx


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def receiver(sink: MemorySink) -> Iterator[HttpReceiver]:
    rx = start(sink)
    yield rx
    rx.stop(1)


@pytest.fixture
def url(receiver: HttpReceiver) -> str:
    return f"http://127.0.0.1:{receiver.bound_port}/v1/traces"


def good_body() -> bytes:
    return request_pb(span_pb("good", TID, SID)).SerializeToString()


# One client for the module: building one loads the CA bundle, which would dominate these fast tests.
HTTP = httpx.Client(timeout=10)


def post(url: str, body: bytes, content_type: str = PB, **headers: str) -> httpx.Response:
    return HTTP.post(url, content=body, headers={"content-type": content_type, **headers})


def status_of(response: httpx.Response) -> status_pb2.Status:
    """The google.rpc.Status error body, in whichever encoding the response declares."""
    if response.headers["content-type"] == PB:
        return status_pb2.Status.FromString(response.content)
    doc = response.json()
    return status_pb2.Status(code=doc.get("code", 0), message=doc.get("message", ""))


def assert_still_serving(url: str, sink: MemorySink) -> None:
    before = len(sink.records)
    response = post(url, good_body())
    assert response.status_code == 200
    assert len(sink.records) == before + 1


def sdk_spans() -> tuple[list, TracerProvider]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "http-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bridge.http", "2.0")
    with tracer.start_as_current_span("linked") as linked:
        context = linked.get_span_context()
    with tracer.start_as_current_span(
        "agent", kind=SpanKind.SERVER, attributes={"a": [1.5, 2.5], "b": "x"}
    ) as root:
        root.add_event("step", {"n": 1})
        with tracer.start_as_current_span("tool", links=[Link(context)]) as tool:
            tool.set_status(Status(StatusCode.ERROR, "boom"))
    return list(memory.get_finished_spans()), provider


# -- the official exporter as the client -----------------------------------------------------------------


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_official_exporter_spans_arrive_as_the_same_records_as_in_process(
    url: str, sink: MemorySink, compression: Compression
) -> None:
    spans, _ = sdk_spans()
    exporter = OTLPSpanExporter(endpoint=url, compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert {r.span_id: r for r in sink.records} == {r.span_id: r for r in map(from_readable_span, spans)}
    tool = sink.by_name()["tool"]
    assert (tool.status_code, tool.status_message, tool.parent_span_id) == (
        2,
        "boom",
        sink.by_name()["agent"].span_id,
    )


def test_otlp_json_and_protobuf_bodies_arrive_as_the_same_records(url: str, sink: MemorySink) -> None:
    response = post(url, orjson.dumps(RICH_JSON), JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.json() == {}
    response = post(url, rich_request_pb().SerializeToString(), PB)
    assert response.status_code == 200
    assert response.headers["content-type"] == PB
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    assert tuple(sink.records) == RICH_RECORDS + RICH_RECORDS


def test_content_type_parameters_and_case_are_ignored(url: str, sink: MemorySink) -> None:
    assert post(url, orjson.dumps(RICH_JSON), "Application/JSON; charset=utf-8").status_code == 200
    assert len(sink.records) == 2


def test_an_empty_request_succeeds_without_calling_the_sink(url: str, sink: MemorySink) -> None:
    assert post(url, b"", PB).status_code == 200
    assert post(url, b"{}", JSON).json() == {}
    assert sink.calls == 0


def test_requests_reuse_one_keep_alive_connection(url: str, sink: MemorySink) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            response = client.post(url, content=good_body(), headers={"content-type": PB})
            assert response.status_code == 200
            assert response.headers.get("connection") != "close"
    assert len(sink.records) == 3


# -- partial success and bad input ---------------------------------------------------------------------------


def test_invalid_spans_are_rejected_through_partial_success_in_both_encodings(
    url: str, sink: MemorySink
) -> None:
    body = request_pb(span_pb("ok", TID, SID), span_pb("zero", bytes(16), SID)).SerializeToString()
    response = ExportTraceServiceResponse.FromString(post(url, body).content)
    assert response.partial_success.rejected_spans == 1
    assert "trace_id is all zeros" in response.partial_success.error_message

    doc = orjson.loads(orjson.dumps(RICH_JSON))
    doc["resourceSpans"][0]["scopeSpans"][1]["spans"][0]["spanId"] = "xyz"
    answer = post(url, orjson.dumps(doc), JSON).json()
    assert answer["partialSuccess"]["rejectedSpans"] == "1"  # int64 is a string in protobuf JSON
    assert "spanId must be 16 hex digits" in answer["partialSuccess"]["errorMessage"]
    assert [r.name for r in sink.records] == ["ok", "invoke_agent planner"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\xff\xff\xff\xff garbage", PB, "not a valid OTLP protobuf trace request"),
        (rich_request_pb().SerializeToString()[:-7], PB, "not a valid OTLP protobuf trace request"),
        (b'{"resourceSpans": [', JSON, "not valid JSON"),
        (b'{"resourceSpans": 7}', JSON, "resourceSpans must be a list"),
    ],
    ids=["garbage", "truncated", "invalid-json", "wrong-json-shape"],
)
def test_malformed_bodies_get_400_with_a_status_in_the_request_encoding(
    url: str, sink: MemorySink, body: bytes, content_type: str, message: str
) -> None:
    response = post(url, body, content_type)
    assert response.status_code == 400
    assert response.headers["content-type"] == content_type
    status = status_of(response)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert message in status.message
    assert sink.calls == 0
    assert_still_serving(url, sink)


def test_wrong_content_type_method_path_and_encoding(
    receiver: HttpReceiver, url: str, sink: MemorySink
) -> None:
    base = f"http://127.0.0.1:{receiver.bound_port}"
    response = post(url, good_body(), "text/plain")
    assert response.status_code == 415
    assert "unsupported content type 'text/plain'" in status_of(response).message
    assert post(url, good_body(), "").status_code == 415

    response = HTTP.get(url)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert HTTP.put(url, content=good_body()).status_code == 405
    assert HTTP.head(url).status_code == 405

    response = HTTP.post(f"{base}/v1/spans", content=good_body(), headers={"content-type": PB})
    assert response.status_code == 404
    assert response.headers["content-type"] == PB
    assert status_of(response).code == code_pb2.NOT_FOUND
    assert HTTP.get(f"{base}/").status_code == 404

    response = post(url, good_body(), PB, **{"content-encoding": "br"})
    assert response.status_code == 415
    assert "unsupported content encoding 'br'" in status_of(response).message
    assert sink.calls == 0
    assert_still_serving(url, sink)


def test_corrupt_gzip_is_a_400(url: str, sink: MemorySink) -> None:
    for body in (b"not gzip at all", gzip.compress(good_body())[:-10]):
        response = post(url, body, PB, **{"content-encoding": "gzip"})
        assert response.status_code == 400
        assert "not valid gzip data" in status_of(response).message
    assert_still_serving(url, sink)


def test_gzip_deflate_and_concatenated_gzip_members_are_accepted(url: str, sink: MemorySink) -> None:
    body = good_body()
    half = len(body) // 2
    bodies = {
        "gzip": gzip.compress(body),
        "x-gzip": gzip.compress(body[:half]) + gzip.compress(body[half:]),
        "deflate": zlib.compress(body),
    }
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = raw.compress(body) + raw.flush()
    for encoding, compressed in [*bodies.items(), ("deflate", raw_deflate)]:
        assert post(url, compressed, PB, **{"content-encoding": encoding}).status_code == 200, encoding
    assert len(sink.records) == 4


def test_oversized_body_is_a_413_the_client_can_read(url: str, sink: MemorySink) -> None:
    body = request_pb(span_pb("big", TID, SID, attributes=[kv("blob", s("x" * 400_000))])).SerializeToString()
    response = post(url, body)
    assert response.status_code == 413
    assert status_of(response).code == code_pb2.RESOURCE_EXHAUSTED
    assert f"larger than {LIMIT} bytes" in status_of(response).message
    assert sink.calls == 0
    assert_still_serving(url, sink)


def test_gzip_bomb_stops_at_the_limit(receiver: HttpReceiver, url: str, sink: MemorySink) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < LIMIT
    response = post(url, bomb, PB, **{"content-encoding": "gzip"})
    assert response.status_code == 413
    assert sink.calls == 0
    assert (
        receiver.metrics.registry.get_sample_value(
            "maxim_bridge_receiver_requests_total", {"receiver": "http", "signal": "traces", "outcome": "too_large"}
        )
        == 1
    )
    assert_still_serving(url, sink)


def test_a_huge_attribute_within_the_default_limit_arrives_whole(sink: MemorySink) -> None:
    rx = start(sink, limits=ReceiverLimits.http_default())
    try:
        big = "z" * 15_000_000
        body = request_pb(span_pb("big", TID, SID, attributes=[kv("blob", s(big))])).SerializeToString()
        response = post(
            f"http://127.0.0.1:{rx.bound_port}/v1/traces",
            gzip.compress(body),
            PB,
            **{"content-encoding": "gzip"},
        )
        assert response.status_code == 200
        assert sink.records[0].attributes["blob"] == big
    finally:
        rx.stop(1)


# -- raw sockets: framing and misbehaving clients ---------------------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def request_head(length: int | None = None, extra: str = "") -> bytes:
    head = f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PB}\r\n{extra}"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def test_missing_content_length_is_a_411(receiver: HttpReceiver, url: str, sink: MemorySink) -> None:
    assert raw_exchange(receiver.bound_port, request_head()).startswith(b"HTTP/1.1 411 ")
    assert_still_serving(url, sink)


def test_chunked_bodies_are_read_and_capped(receiver: HttpReceiver, url: str, sink: MemorySink) -> None:
    body = good_body()
    chunked = b"%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n" % (
        5,
        body[:5],
        len(body) - 5,
        body[5:],
    )
    answer = raw_exchange(receiver.bound_port, request_head(extra="Transfer-Encoding: chunked\r\n") + chunked)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert len(sink.records) == 1

    huge_chunk = b"%x\r\n" % (LIMIT + 1)
    answer = raw_exchange(
        receiver.bound_port, request_head(extra="Transfer-Encoding: chunked\r\n") + huge_chunk
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    answer = raw_exchange(
        receiver.bound_port, request_head(extra="Transfer-Encoding: chunked\r\n") + b"zz\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert_still_serving(url, sink)


@pytest.mark.parametrize(
    "junk",
    [
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"POST /v1/traces HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\r\n",
    ],
)
def test_junk_on_the_socket_never_takes_the_server_down(
    receiver: HttpReceiver, url: str, sink: MemorySink, junk: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", receiver.bound_port), timeout=10) as sock:
        sock.sendall(junk)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass  # closing with junk still unread resets the connection: that is fine, the server lives on
    assert_still_serving(url, sink)


def test_a_client_that_disconnects_mid_body_loses_only_its_request(
    receiver: HttpReceiver, url: str, sink: MemorySink
) -> None:
    with socket.create_connection(("127.0.0.1", receiver.bound_port), timeout=10) as sock:
        sock.sendall(request_head(1000) + b"only part")
    assert_still_serving(url, sink)
    assert sink.calls == 1


def test_a_slow_client_is_timed_out(sink: MemorySink) -> None:
    rx = start(sink, limits=ReceiverLimits(max_request_bytes=LIMIT, read_timeout_s=0.2))
    try:
        with socket.create_connection(("127.0.0.1", rx.bound_port), timeout=10) as sock:
            sock.sendall(request_head(1000) + b"stalls here")
            answer = sock.recv(65536)  # the server answers 408 and closes; it does not wait forever
            assert answer.startswith(b"HTTP/1.1 408 ")
        assert_still_serving(f"http://127.0.0.1:{rx.bound_port}/v1/traces", sink)
    finally:
        rx.stop(1)


def test_connections_beyond_the_cap_are_closed(sink: MemorySink) -> None:
    rx = start(sink, limits=ReceiverLimits(max_request_bytes=LIMIT, max_connections=2))
    idle = [socket.create_connection(("127.0.0.1", rx.bound_port), timeout=10) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", rx.bound_port), timeout=10) as extra:
            assert extra.recv(100) == b""  # closed at once, before any request
        assert (
            rx.metrics.registry.get_sample_value(
                "maxim_bridge_receiver_requests_total", {"receiver": "http", "signal": "other", "outcome": "unavailable"}
            )
            == 1
        )
    finally:
        for sock in idle:
            sock.close()
        rx.stop(1)


def test_when_every_worker_is_busy_the_answer_is_503() -> None:
    sink = GatedSink()
    rx = start(sink, limits=ReceiverLimits(max_request_bytes=LIMIT, max_workers=1, read_timeout_s=0.2))
    url = f"http://127.0.0.1:{rx.bound_port}/v1/traces"
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(post(url, good_body()).status_code))
    thread.start()
    try:
        assert sink.entered.wait(10)
        response = post(url, good_body())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
    finally:
        sink.release()
        thread.join(10)
        rx.stop(1)
    assert first == [200]


# -- backpressure -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [PB, JSON])
def test_a_refusing_sink_gives_503_with_retry_after(content_type: str) -> None:
    sink = MemorySink([AcceptResult(Verdict.OVERLOADED, 2.5), AcceptResult(Verdict.SHUTTING_DOWN)])
    rx = start(sink)
    url = f"http://127.0.0.1:{rx.bound_port}/v1/traces"
    body = good_body() if content_type == PB else orjson.dumps(RICH_JSON)
    try:
        response = post(url, body, content_type)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"  # whole seconds, rounded up
        assert response.headers["content-type"] == content_type
        if content_type == PB:
            status = status_pb2.Status.FromString(response.content)
            info = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(info)
            assert info.retry_delay.ToNanoseconds() == 2_500_000_000
        else:
            doc = response.json()
            assert doc["details"] == [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.500s"}
            ]
        assert status_of(response).code == code_pb2.UNAVAILABLE
        response = post(url, body, content_type)
        assert (response.status_code, response.headers["retry-after"]) == (503, "1")
        assert "shutting down" in status_of(response).message
        assert sink.records == []
        assert post(url, body, content_type).status_code == 200
    finally:
        rx.stop(1)


def test_the_official_exporter_retries_after_overload_and_nothing_is_lost() -> None:
    sink = MemorySink([AcceptResult(Verdict.OVERLOADED, 0.01)])
    rx = start(sink)
    try:
        spans, _ = sdk_spans()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{rx.bound_port}/v1/traces", timeout=20)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert sink.calls == 2
        assert len(sink.records) == 3
    finally:
        rx.stop(1)


def test_a_sink_that_raises_gives_503_and_the_server_keeps_serving() -> None:
    rx = start(FailingSink())
    try:
        url = f"http://127.0.0.1:{rx.bound_port}/v1/traces"
        for _ in range(2):
            response = post(url, good_body())
            assert response.status_code == 503
            assert "retry-after" in response.headers
    finally:
        rx.stop(1)


# -- security ----------------------------------------------------------------------------------------------------


def test_bearer_token_is_required_and_never_shown(sink: MemorySink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = BridgeMetrics()
    rx = start(sink, auth_token=Secret(TOKEN), metrics=metrics)
    url = f"http://127.0.0.1:{rx.bound_port}/v1/traces"
    try:
        for headers in [
            {},
            {"authorization": "Bearer nope"},
            {"authorization": TOKEN},
            {"authorization": f"Basic {TOKEN}"},
        ]:
            response = post(url, good_body(), **headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert status_of(response).code == code_pb2.UNAUTHENTICATED
            assert TOKEN not in response.text
        assert sink.calls == 0
        assert post(url, good_body(), authorization=f"Bearer {TOKEN}").status_code == 200
        spans, _ = sdk_spans()
        exporter = OTLPSpanExporter(endpoint=url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(sink.records) == 4
    finally:
        rx.stop(1)
    assert "refused a request without a valid bearer token" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in metrics.render()[0].decode()
    assert TOKEN not in repr(vars(rx))


def test_tls_with_a_self_signed_certificate(
    tmp_path: Path, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these variables override the exporter's own CA file (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert = self_signed_cert(tmp_path)
    (tmp_path / "ca.pem").write_bytes(cert.cert_pem)
    rx = start(sink, tls=cert.files)
    try:
        url = f"https://localhost:{rx.bound_port}/v1/traces"
        spans, _ = sdk_spans()
        exporter = OTLPSpanExporter(endpoint=url, certificate_file=str(tmp_path / "ca.pem"))
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(sink.records) == 3

        with pytest.raises(httpx.HTTPError):  # plaintext against the TLS port
            post(f"http://127.0.0.1:{rx.bound_port}/v1/traces", good_body())
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
            post(url, good_body())
        context = ssl.create_default_context(cadata=cert.cert_pem.decode())
        response = httpx.post(url, content=good_body(), headers={"content-type": PB}, verify=context)
        assert response.status_code == 200
        assert len(sink.records) == 4
    finally:
        rx.stop(1)


def test_tls_files_that_cannot_be_loaded_are_a_clear_start_error(tmp_path: Path, sink: MemorySink) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate")
    rx = HttpReceiver("127.0.0.1:0", sink, tls=TlsFiles(tmp_path / "bad.crt", tmp_path / "bad.key"))
    with pytest.raises(ReceiverStartError, match="cannot load TLS certificate or key"):
        rx.start()


# -- lifecycle --------------------------------------------------------------------------------------------------


def test_a_taken_port_is_a_clear_start_error(receiver: HttpReceiver, sink: MemorySink) -> None:
    with pytest.raises(ReceiverStartError, match=f"cannot listen on 127.0.0.1:{receiver.bound_port}"):
        HttpReceiver(f"127.0.0.1:{receiver.bound_port}", sink).start()


def test_endpoints_are_parsed_with_a_clear_error() -> None:
    assert parse_endpoint("127.0.0.1:4318") == ("127.0.0.1", 4318)
    assert parse_endpoint("[::1]:0") == ("::1", 0)
    for bad in ("4318", "localhost", "host:port", ":4318", "h:70000"):
        with pytest.raises(ValueError, match="endpoint must be host:port"):
            parse_endpoint(bad)


def test_ipv6_loopback(sink: MemorySink) -> None:
    rx = HttpReceiver("[::1]:0", sink)
    rx.start()
    try:
        assert post(f"http://[::1]:{rx.bound_port}/v1/traces", good_body()).status_code == 200
    finally:
        rx.stop(1)


def test_stop_finishes_in_flight_requests_and_closes_idle_connections() -> None:
    sink = GatedSink()
    rx = start(sink)
    port = rx.bound_port
    url = f"http://127.0.0.1:{port}/v1/traces"
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    outcome: list[httpx.Response] = []
    call = threading.Thread(target=lambda: outcome.append(post(url, good_body())))
    call.start()
    assert sink.entered.wait(10)
    stopper = threading.Thread(target=rx.stop, args=(30,))
    stopper.start()
    for _ in range(500):  # wait until the listening socket is closed
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        threading.Event().wait(0.01)
    else:
        pytest.fail("the receiver kept accepting connections while stopping")
    sink.release()
    call.join(10)
    stopper.join(10)
    assert not stopper.is_alive()
    assert [r.status_code for r in outcome] == [200]
    assert outcome[0].headers["connection"] == "close"  # a stopping server does not keep connections
    assert len(sink.records) == 1
    assert idle.recv(10) == b""  # the idle keep-alive connection was closed
    idle.close()


def test_stop_does_not_wait_past_the_grace_period_for_a_stuck_sink() -> None:
    sink = GatedSink()
    rx = start(sink)
    url = f"http://127.0.0.1:{rx.bound_port}/v1/traces"
    errors: list[Exception] = []

    def call() -> None:
        try:
            post(url, good_body())
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert sink.entered.wait(10)
    stopper = threading.Thread(target=rx.stop, args=(0.1,))
    stopper.start()
    stopper.join(10)
    try:
        assert not stopper.is_alive()  # stop returned while the sink was still stuck
        caller.join(10)
        assert len(errors) == 1  # the connection was cut: the client sees a transport error and retries
    finally:
        sink.release()


def test_expect_100_continue_refuses_before_the_body_is_sent(sink: MemorySink) -> None:
    rx = start(sink, auth_token=Secret(TOKEN))
    try:
        expect = "Expect: 100-continue\r\n"
        auth = f"Authorization: Bearer {TOKEN}\r\n"
        assert raw_exchange(rx.bound_port, request_head(LIMIT + 1, expect + auth)).startswith(
            b"HTTP/1.1 413 "
        )
        assert raw_exchange(rx.bound_port, request_head(10, expect)).startswith(b"HTTP/1.1 401 ")

        body = good_body()
        with socket.create_connection(("127.0.0.1", rx.bound_port), timeout=10) as sock:
            sock.sendall(request_head(len(body), expect + auth))
            assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(body)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert len(sink.records) == 1
    finally:
        rx.stop(1)
