"""MaximClient against the real batch sink server: batching, retries, bisection, dead letters, auth, secrets."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import orjson
import pytest
from fakes.batch_sink import BatchSink, CannedResponse, reject_entity_ids

from maxim_otel_bridge.client import ClientOptions, MaximClient, SendResult, split_batches
from maxim_otel_bridge.config import Destination
from maxim_otel_bridge.deadletter import read_dead_letters
from maxim_otel_bridge.retry import BackoffPolicy, parse_retry_after
from maxim_otel_bridge.schema import validate_entity

API_KEY = "sk-maxim-secret-key-123456"


class FakeClock:
    """Monotonic time that only moves when the client 'sleeps': backoff tests run instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def destination(sink: BatchSink) -> Destination:
    return Destination.resolve(api_key=API_KEY, repo_id="repo-1", base_url=sink.url, environ={})


def make_client(sink: BatchSink, clock: FakeClock | None = None, **options: object) -> MaximClient:
    clock = clock or FakeClock()
    return MaximClient(
        destination(sink),
        ClientOptions(**options),  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
        random=lambda: 0.5,  # jitter factor 1.0: waits are exactly the base delay
    )


def traces(*ids: str) -> list[dict]:
    entities = [{"id": i, "type": "trace", "name": f"trace {i}"} for i in ids]
    for entity in entities:
        assert validate_entity(entity) == []
    return entities


def spans(count: int, trace_id: str = "t") -> list[dict]:
    """A trace then `count` spans, each child of the previous: order matters."""
    out = [{"id": trace_id, "type": "trace", "name": "root"}]
    parent = None
    for n in range(count):
        span = {"id": f"s{n}", "type": "span", "name": f"step {n}", "traceId": trace_id}
        if parent:
            span["spanId"] = parent
        out.append(span)
        parent = span["id"]
    for entity in out:
        assert validate_entity(entity) == []
    return out


def received_ids(sink: BatchSink) -> list[str]:
    return [e["id"] for e in sink.entities()]


# -- the happy path and batching -----------------------------------------------------------------


def test_send_delivers_with_key_header_and_repo_id() -> None:
    with BatchSink(api_key=API_KEY) as sink, make_client(sink) as client:
        result = client.send(traces("a", "b"))
        assert result == SendResult(delivered=2)
        assert result.ok
        request = sink.requests[0]
        assert request.headers["x-maxim-api-key"] == API_KEY
        assert request.headers["content-type"] == "application/json"
        assert request.body == {"repoId": "repo-1", "logs": traces("a", "b")}
        assert sink.problems() == []


def test_empty_send_sends_nothing() -> None:
    with BatchSink() as sink, make_client(sink) as client:
        assert client.send([]) == SendResult()
        assert sink.request_count == 0


def test_split_by_count_preserves_order() -> None:
    with BatchSink() as sink, make_client(sink, max_batch_entities=3) as client:
        entities = spans(7)
        result = client.send(entities)
        assert result.delivered == 8
        assert [len(r.logs) for r in sink.requests] == [3, 3, 2]
        assert received_ids(sink) == [e["id"] for e in entities]
        assert sink.problems() == []


def test_split_by_bytes_preserves_order_and_respects_the_limit() -> None:
    limit = 600
    with BatchSink() as sink, make_client(sink, max_batch_bytes=limit) as client:
        entities = spans(12)
        result = client.send(entities)
        assert result.delivered == 13
        assert sink.request_count > 1
        assert all(len(r.raw_body) <= limit for r in sink.requests)
        assert received_ids(sink) == [e["id"] for e in entities]


def test_an_entity_larger_than_the_byte_limit_goes_alone() -> None:
    big = {"id": "big", "type": "trace", "input": "x" * 2000}
    with BatchSink() as sink, make_client(sink, max_batch_bytes=500) as client:
        result = client.send([*traces("a"), big, *traces("b")])
        assert result.delivered == 3
        assert [r.entity_ids for r in sink.requests] == [["a"], ["big"], ["b"]]


def test_split_batches_is_pure_and_ordered() -> None:
    assert split_batches([], 10, 100) == []
    assert split_batches([10, 10, 10], 2, 1000) == [range(0, 2), range(2, 3)]
    # overhead 10 + 40 + 1 comma + 40 = 91 fits 100; a third would not.
    assert split_batches([40, 40, 40], 10, 100, overhead=10) == [range(0, 2), range(2, 3)]
    assert split_batches([500, 5], 10, 100) == [range(0, 1), range(1, 2)]


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_with_exponential_backoff(status: int) -> None:
    clock = FakeClock()
    backoff = BackoffPolicy(initial=1.0, maximum=30.0, multiplier=2.0, jitter=0.5)
    with BatchSink() as sink, make_client(sink, clock, backoff=backoff) as client:
        sink.enqueue(status, status, status)
        result = client.send(traces("a"))
        assert result == SendResult(delivered=1, last_error=result.last_error)
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert [r.status for r in sink.requests] == [status, status, status, 200]


def test_backoff_is_capped_and_jittered() -> None:
    policy = BackoffPolicy(initial=1.0, maximum=5.0, multiplier=2.0, jitter=0.5)
    assert policy.delay(10, lambda: 0.5) == 5.0
    assert policy.delay(1, lambda: 0.0) == 1.0  # 2 * (1 - 0.5)
    assert policy.delay(1, lambda: 1.0) == 3.0  # 2 * (1 + 0.5)
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter=2)
    with pytest.raises(ValueError, match="initial"):
        BackoffPolicy(initial=10, maximum=1)


def test_retry_after_seconds_is_honoured() -> None:
    clock = FakeClock()
    with BatchSink() as sink, make_client(sink, clock) as client:
        sink.enqueue(CannedResponse(429, {"Retry-After": "7"}))
        result = client.send(traces("a"))
        assert result.delivered == 1
        assert clock.sleeps == [7.0]


def test_retry_after_http_date_is_honoured() -> None:
    clock = FakeClock()
    wall_now = 1_800_000_000.0
    when = format_datetime(datetime.fromtimestamp(wall_now + 12, timezone.utc), usegmt=True)
    with BatchSink() as sink:
        client = MaximClient(
            destination(sink), clock=clock, sleep=clock.sleep, wall_clock=lambda: wall_now, random=lambda: 0.5
        )
        with client:
            sink.enqueue(CannedResponse(503, {"Retry-After": when}))
            assert client.send(traces("a")).delivered == 1
        assert clock.sleeps == [12.0]


def test_parse_retry_after() -> None:
    assert parse_retry_after("3", now=0) == 3.0
    assert parse_retry_after(" 1.5 ", now=0) == 1.5
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=500.0) == 0.0  # in the past
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("-4", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_deadline_stops_retrying_and_reports_failed_entities_in_order() -> None:
    clock = FakeClock()
    backoff = BackoffPolicy(initial=1.0, maximum=100.0, multiplier=2.0, jitter=0.0)
    with BatchSink() as sink, make_client(sink, clock, backoff=backoff, max_batch_entities=2) as client:
        sink.decide = lambda request: CannedResponse(503)
        entities = spans(3)
        result = client.send(entities, deadline=clock() + 10)
        # Waits 1, 2, 4 fit in 10 s; the next (8) would not.
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert sink.request_count == 4
        assert result.delivered == 0
        assert [e["id"] for e in result.failed] == [e["id"] for e in entities]
        assert result.last_error is not None and "503" in result.last_error
        assert not result.ok


def test_retry_after_beyond_the_deadline_is_reported_not_waited() -> None:
    clock = FakeClock()
    with BatchSink() as sink, make_client(sink, clock) as client:
        sink.enqueue(CannedResponse(429, {"Retry-After": "120"}))
        result = client.send(traces("a"), deadline=clock() + 30)
        assert clock.sleeps == []
        assert result.retry_after == 120.0
        assert [e["id"] for e in result.failed] == ["a"]


def test_500_is_not_retried_but_reported_failed() -> None:
    clock = FakeClock()
    with BatchSink() as sink, make_client(sink, clock) as client:
        sink.enqueue(500)
        result = client.send(traces("a", "b"))
        assert sink.request_count == 1
        assert clock.sleeps == []
        assert [e["id"] for e in result.failed] == ["a", "b"]
        assert result.dead_lettered == ()


def test_connection_refused_then_recovery() -> None:
    clock = FakeClock()
    with BatchSink() as sink:
        sink.refuse_connections()
        recovered = threading.Event()

        def sleep_then_recover(seconds: float) -> None:
            clock.sleep(seconds)
            if len(clock.sleeps) == 2:  # the server comes back during the second wait
                sink.resume()
                recovered.set()

        client = MaximClient(destination(sink), clock=clock, sleep=sleep_then_recover, random=lambda: 0.5)
        with client:
            result = client.send(traces("a", "b"))
        assert recovered.is_set()
        assert result.delivered == 2
        assert result.ok
        assert len(clock.sleeps) == 2
        assert received_ids(sink) == ["a", "b"]


def test_timeout_is_retried() -> None:
    clock = FakeClock()
    with BatchSink() as sink, make_client(sink, clock, timeout=0.2) as client:
        sink.enqueue(CannedResponse(200, delay=5.0))
        result = client.send(traces("a"))
        assert result.delivered == 1
        assert result.last_error is not None and "timed out" in result.last_error
        # The slow first answer never counted: a retry (after a backoff wait) delivered.
        assert len(clock.sleeps) >= 1
        assert sink.request_count == len(clock.sleeps) + 1


# -- refused entities ------------------------------------------------------------------------------


def test_poison_entity_is_dead_lettered_and_its_batch_mates_delivered(tmp_path: Path) -> None:
    dead_path = tmp_path / "dl" / "dead.jsonl"
    entities = spans(9)
    poison = "s4"
    with BatchSink(decide=reject_entity_ids([poison], "bad value")) as sink:
        with make_client(sink, dead_letter_path=str(dead_path)) as client:
            result = client.send(entities)
        assert result.dead_lettered == (poison,)
        assert result.delivered == len(entities) - 1
        assert result.ok
        delivered = received_ids(sink)
        assert delivered == [e["id"] for e in entities if e["id"] != poison]  # order kept
        assert sink.problems() == []
    lines = list(read_dead_letters(dead_path))
    assert len(lines) == 1
    assert lines[0]["entity"] == next(e for e in entities if e["id"] == poison)
    assert "HTTP 400" in lines[0]["reason"] and "bad value: s4" in lines[0]["reason"]
    assert lines[0]["time"].endswith("Z")
    assert (dead_path.stat().st_mode & 0o777) == 0o600
    assert (dead_path.parent.stat().st_mode & 0o777) == 0o700


def test_several_poison_entities_are_isolated(tmp_path: Path) -> None:
    dead_path = tmp_path / "dead.jsonl"
    entities = spans(15)
    bad = {"s0", "s7", "s14"}
    with BatchSink(decide=reject_entity_ids(bad)) as sink:
        with make_client(sink, dead_letter_path=str(dead_path)) as client:
            result = client.send(entities)
        assert set(result.dead_lettered) == bad
        assert received_ids(sink) == [e["id"] for e in entities if e["id"] not in bad]
    assert {line["entity"]["id"] for line in read_dead_letters(dead_path)} == bad


def test_schema_invalid_entity_rejected_by_the_server_is_dead_lettered(tmp_path: Path) -> None:
    dead_path = tmp_path / "dead.jsonl"
    invalid = {"id": "g1", "type": "generation", "name": "no model"}
    with BatchSink() as sink, make_client(sink, dead_letter_path=str(dead_path)) as client:
        result = client.send([*traces("a"), invalid, *traces("b")])
        assert result.dead_lettered == ("g1",)
        assert received_ids(sink) == ["a", "b"]
    (line,) = read_dead_letters(dead_path)
    assert "model" in line["reason"]


def test_without_a_dead_letter_file_refused_entities_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with (
        BatchSink(decide=reject_entity_ids(["b"])) as sink,
        make_client(sink) as client,
        caplog.at_level(logging.WARNING, logger="maxim_otel_bridge.client"),
    ):
        result = client.send(traces("a", "b"))
    assert result.dead_lettered == ("b",)
    assert any("b" in r.getMessage() and "no dead-letter file" in r.getMessage() for r in caplog.records)


def test_unserializable_entity_is_dead_lettered_without_a_request(tmp_path: Path) -> None:
    dead_path = tmp_path / "dead.jsonl"
    weird = {"id": "w", "type": "trace", "metadata": {"x": object()}}
    with BatchSink() as sink, make_client(sink, dead_letter_path=str(dead_path)) as client:
        result = client.send([weird, *traces("a")])
        assert result.dead_lettered == ("w",)
        assert received_ids(sink) == ["a"]
    (line,) = read_dead_letters(dead_path)
    assert "not JSON-serializable" in line["reason"]
    assert line["entity"]["id"] == "w"


# -- entities already serialized (send_encoded) -----------------------------------------------------


def test_encoded_entities_are_sent_as_they_are_in_order_and_batched() -> None:
    encoded = [orjson.dumps(e) for e in spans(9)]
    with BatchSink() as sink, make_client(sink, max_batch_entities=4) as client:
        result = client.send_encoded(encoded)
        assert (result.delivered, result.failed, result.ok) == (10, (), True)
        assert [orjson.dumps(e) for e in sink.entities()] == encoded
        assert len(sink.requests) == 3
        assert sink.problems() == []


def test_encoded_entities_not_delivered_come_back_as_the_same_objects() -> None:
    encoded = [orjson.dumps(e) for e in traces("a", "b")]
    with BatchSink() as sink, make_client(sink) as client:
        sink.enqueue(401)
        result = client.send_encoded(encoded)
        assert result.auth_failed
        assert [id(e) for e in result.failed] == [id(e) for e in encoded]


def test_a_refused_encoded_entity_is_dead_lettered_as_an_object(tmp_path: Path) -> None:
    dead_path = tmp_path / "dead.jsonl"
    entities = spans(5)
    with BatchSink(decide=reject_entity_ids(["s2"], "bad value")) as sink:
        with make_client(sink, dead_letter_path=str(dead_path)) as client:
            result = client.send_encoded([orjson.dumps(e) for e in entities])
        assert (result.dead_lettered, result.delivered) == (("s2",), 5)
        assert received_ids(sink) == [e["id"] for e in entities if e["id"] != "s2"]
    (line,) = read_dead_letters(dead_path)
    assert line["entity"] == entities[3]


# -- auth ------------------------------------------------------------------------------------------


def test_401_is_reported_once_and_never_retried(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    with BatchSink(api_key="another-key") as sink, make_client(sink, clock) as client:
        with caplog.at_level(logging.DEBUG, logger="maxim_otel_bridge.client"):
            first = client.send(traces("a", "b"))
            second = client.send(traces("c"))
        assert first.auth_failed and second.auth_failed
        assert [e["id"] for e in first.failed] == ["a", "b"]
        assert sink.request_count == 2  # one per send, no retry loop
        assert clock.sleeps == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "MAXIM_API_KEY" in errors[0].getMessage()


def test_403_is_an_auth_failure_too() -> None:
    with BatchSink() as sink, make_client(sink) as client:
        sink.enqueue(403)
        result = client.send(traces("a"))
        assert result.auth_failed
        assert sink.request_count == 1


# -- interruption -----------------------------------------------------------------------------------


def test_interrupt_cuts_a_backoff_wait_short() -> None:
    # The real, Event-based wait: a 60 s Retry-After must end as soon as interrupt() is called.
    with BatchSink() as sink:
        sink.enqueue(CannedResponse(503, {"Retry-After": "60"}))
        client = MaximClient(destination(sink), ClientOptions(retry_deadline=300))
        outcome: list[SendResult] = []
        sender = threading.Thread(target=lambda: outcome.append(client.send(traces("a"))))
        sender.start()
        assert sink.wait_for(lambda s: s.request_count == 1, timeout=5)
        started = time.monotonic()
        client.close()
        sender.join(timeout=5)
        assert not sender.is_alive()
        assert time.monotonic() - started < 5
        assert [e["id"] for e in outcome[0].failed] == ["a"]


def test_after_interrupt_each_batch_gets_one_attempt_without_waits() -> None:
    clock = FakeClock()
    with BatchSink() as sink, make_client(sink, clock) as client:
        client.interrupt()
        sink.enqueue(503)
        assert [e["id"] for e in client.send(traces("a")).failed] == ["a"]
        assert client.send(traces("b")).delivered == 1
        assert clock.sleeps == []


# -- secrets ----------------------------------------------------------------------------------------


def test_the_api_key_never_appears_in_logs_errors_or_reprs(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    clock = FakeClock()
    dead_path = tmp_path / "dead.jsonl"
    with BatchSink(decide=reject_entity_ids(["b"])) as sink:
        client = make_client(sink, clock, dead_letter_path=str(dead_path))
        texts = [repr(client), str(client), repr(client.options), repr(client.destination)]
        with caplog.at_level(logging.DEBUG):
            sink.enqueue(503, 401)
            texts.append(str(client.send(traces("a"))))
            texts.append(str(client.send(traces("a", "b"))))
            sink.refuse_connections()
            texts.append(str(client.send(traces("c"), deadline=clock() + 0.5)))
        client.close()
    texts.extend(r.getMessage() for r in caplog.records)
    texts.append(dead_path.read_text())
    assert len(caplog.records) >= 3
    for text in texts:
        assert API_KEY not in text


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_batch_entities"):
        ClientOptions(max_batch_entities=0)
    with pytest.raises(ValueError, match="timeout"):
        ClientOptions(timeout=-1)


def test_custom_transport_is_used() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        return httpx.Response(200, json={"success": True})

    dest = Destination.resolve(api_key=API_KEY, repo_id="r", base_url="https://api.example.test", environ={})
    with MaximClient(dest, transport=httpx.MockTransport(handler)) as client:
        assert client.send(traces("a")).delivered == 1
    assert seen == [{"repoId": "r", "logs": traces("a")}]


def test_an_unwritable_dead_letter_file_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with BatchSink(decide=reject_entity_ids(["b"])) as sink:
        with (
            make_client(sink, dead_letter_path=str(blocker / "dead.jsonl")) as client,
            caplog.at_level(logging.ERROR, logger="maxim_otel_bridge.deadletter"),
        ):
            result = client.send(traces("a", "b"))
        assert result.dead_lettered == ("b",)
        assert received_ids(sink) == ["a"]
    assert any("could not write 1 dead letter" in r.getMessage() for r in caplog.records)


def test_send_after_close_reports_everything_failed() -> None:
    with BatchSink() as sink:
        client = make_client(sink)
        client.close()
        result = client.send(traces("a", "b"))
        assert [e["id"] for e in result.failed] == ["a", "b"]
        assert result.last_error == "the client is closed"
        assert sink.request_count == 0
