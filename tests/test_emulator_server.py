"""The local Maxim-compatible API driven over real HTTP, on port 0, with a real SQLite file."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import maxim_entities as m

from maxim_otel_bridge.emulator import EmulatorServer
from maxim_otel_bridge.emulator import server as server_module
from maxim_otel_bridge.schema import validate_batch

KEY = {"x-maxim-api-key": "any-key"}
T1 = "0af7651916cd43dd8448eb211c80319c"
T2 = "4bf92f3577b34da6a3ce929d0e0e4736"
SEED_NAME = "001_4ad75f874ff0e1d4.txt"


@pytest.fixture
def server(tmp_path: Path):
    with EmulatorServer(tmp_path / "store.db") as running:
        yield running


def post(server: EmulatorServer, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(f"{server.url}/v1/logs/batch", content=body, headers=headers if headers is not None else KEY)
    return httpx.post(f"{server.url}/v1/logs/batch", json=body, headers=headers if headers is not None else KEY)


def get_trace(server: EmulatorServer, trace_id: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
    params = {} if trace_id is None else {"id": trace_id}
    return httpx.get(
        f"{server.url}/v1/log-repositories/logs/traces", params=params, headers=headers if headers is not None else KEY
    )


def agent_batch(trace_id: str = T1) -> dict:
    return m.batch(
        m.trace(trace_id, name="plan trip", input="Plan a trip", output="Done"),
        m.span("a000000000000001", trace_id, name="agent planner", start=0.0, end=1.9),
        m.generation("a000000000000002", trace_id, "a000000000000001"),
        m.tool_call("a000000000000003", trace_id, "a000000000000001"),
        m.retrieval("a000000000000004", trace_id, "a000000000000001"),
        m.event("a000000000000005", trace_id, "a000000000000001"),
    )


def entries_by_id(timeline: list[dict]) -> dict[str, dict]:
    found = {}
    for entry in timeline:
        found[entry["id"]] = entry
        found.update(entries_by_id(entry.get("timeline") or []))
    return found


# -- accepting and refusing batches ----------------------------------------------------------------------


def test_valid_batch_is_accepted_and_stored(server: EmulatorServer) -> None:
    body = agent_batch()
    response = post(server, body)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert server.store.count() == len(body["logs"])
    stored = server.store.get("a000000000000002")
    assert stored is not None and stored.repo_id == "repo-1"
    assert stored.data == body["logs"][2]


def _generation_with(**changes: Any) -> dict:
    entity = m.generation("b000000000000001", T1)
    for key, value in changes.items():
        if value is _DROP:
            entity.pop(key)
        else:
            entity[key] = value
    return entity


_DROP = object()


@pytest.mark.parametrize(
    ("entity", "path", "message"),
    [
        (_generation_with(model=_DROP), "", "'model' is a required property"),
        (_generation_with(provider="mistral"), "provider", "'mistral' is not one of"),
        (_generation_with(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role", "'robot' is not one of"),
        (_generation_with(model=42), "model", "42 is not of type 'string'"),
        (_generation_with(modelParameters="hot"), "modelParameters", "'hot' is not of type 'object'"),
        (m.span("b000000000000002", T1) | {"tags": {"team": 7}}, "tags.team", "7 is not of type 'string'"),
        (m.tool_call("b000000000000003", T1) | {"args": {"q": 1}}, "args", "is not of type 'string'"),
        ({"id": "b000000000000004", "type": "metric"}, "type", "unknown entity type 'metric'"),
    ],
    ids=["missing-model", "provider-outside-enum", "bad-role", "model-not-string", "params-not-object",
         "tag-not-string", "args-not-string", "unknown-type"],
)
def test_each_schema_violation_is_refused_with_the_entity_and_problem(
    server: EmulatorServer, entity: dict, path: str, message: str
) -> None:
    valid = m.trace(T1)
    body = {"repoId": "repo-1", "logs": [valid, entity]}
    assert validate_batch(body), "the case must be invalid by the schema itself"
    response = post(server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert response.json()["success"] is False
    problems = error["problems"]
    assert any(
        p["index"] == 1 and p["id"] == entity["id"] and p["path"] == path and message in p["message"] for p in problems
    ), problems
    assert f"logs[1] (id '{entity['id']}')" in error["message"]
    # A refused batch stores nothing, not even its valid entities.
    assert server.store.count() == 0
    assert get_trace(server, T1).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"repoId": "repo-1", "logs": {"id": "x", "type": "trace"}}, "is not of type 'array'"),
        ({"logs": []}, "'repoId' is a required property"),
        ({"repoId": 5, "logs": []}, "5 is not of type 'string'"),
        ([{"id": "x", "type": "trace"}], "body must be a JSON object, got list"),
        ({"repoId": "repo-1", "logs": ["trace"]}, "entity must be an object, got str"),
    ],
    ids=["logs-not-a-list", "no-repo", "repo-not-string", "body-a-list", "entity-not-object"],
)
def test_malformed_bodies_are_refused(server: EmulatorServer, body: Any, message: str) -> None:
    response = post(server, body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert server.store.count() == 0


def test_body_that_is_not_json_is_refused(server: EmulatorServer) -> None:
    response = post(server, b'{"repoId": "repo-1", "logs": [')
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("body is not valid JSON")
    response = post(server, b"\xff\xfe not text")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    nan = json.dumps(agent_batch()).replace('"temperature": 0.2', '"temperature": NaN').encode()
    assert b"NaN" in nan
    response = post(server, nan)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "body is not valid JSON: NaN is not a JSON value"
    deep = post(server, b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 400
    assert deep.json()["error"]["message"] == "body is not valid JSON: nested too deeply"
    assert server.store.count() == 0


def test_missing_or_empty_key_is_401(server: EmulatorServer) -> None:
    for headers in ({}, {"x-maxim-api-key": ""}):
        response = post(server, agent_batch(), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "missing x-maxim-api-key header"
        assert get_trace(server, T1, headers=headers).status_code == 401
    assert server.store.count() == 0


def test_pinned_key_accepts_only_that_key_and_never_shows_it(tmp_path: Path) -> None:
    pinned = "sk-pinned-5f2c"
    with EmulatorServer(tmp_path / "store.db", api_key=pinned) as server:
        wrong = post(server, agent_batch(), headers={"x-maxim-api-key": "sk-other"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "invalid API key"
        assert pinned not in wrong.text
        assert pinned not in repr(server)
        assert server.store.count() == 0
        assert post(server, agent_batch(), headers={"x-maxim-api-key": pinned}).status_code == 200
        assert get_trace(server, T1, headers={"x-maxim-api-key": pinned}).status_code == 200


def test_unsupported_encoding_and_oversized_bodies_are_refused(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = post(server, json.dumps(agent_batch()).encode(), headers={**KEY, "content-encoding": "br"})
    assert gz.status_code == 415
    monkeypatch.setattr(server_module, "MAX_BODY_BYTES", 100)
    big = post(server, agent_batch())
    assert big.status_code == 413
    assert "exceeds 100" in big.json()["error"]["message"]
    assert server.store.count() == 0


def test_unknown_paths_and_methods(server: EmulatorServer) -> None:
    assert httpx.get(f"{server.url}/v1/nothing", headers=KEY).status_code == 404
    assert httpx.get(f"{server.url}/v1/logs/batch", headers=KEY).status_code == 405
    assert httpx.post(f"{server.url}/v1/log-repositories/logs/traces", headers=KEY, content=b"{}").status_code == 405


# -- merging ---------------------------------------------------------------------------------------------


def test_same_id_merges_later_fields_win_earlier_kept(server: EmulatorServer) -> None:
    first = m.trace(T1, name="draft", input="question", tags={"env": "dev"})
    assert post(server, m.batch(first)).status_code == 200
    second = {"id": T1, "type": "trace", "name": "final", "output": "answer", "endTimestamp": "2026-01-01T00:00:05.000Z"}
    assert post(server, m.batch(second, repo_id="repo-2")).status_code == 200
    data = get_trace(server, T1).json()["data"]
    assert data["name"] == "final"
    assert data["output"] == "answer"
    assert data["input"] == "question"
    assert data["tags"] == {"env": "dev"}
    assert data["startTimestamp"] == first["startTimestamp"]
    assert data["endTimestamp"] == "2026-01-01T00:00:05.000Z"
    assert data["duration"] == 5000
    assert data["version"] == 2
    stored = server.store.get(T1)
    assert stored is not None and stored.repo_id == "repo-2"


def test_same_id_twice_in_one_batch_merges_in_order(server: EmulatorServer) -> None:
    start = m.span("c000000000000001", T1, name="tool loop", end=None)
    end = {"id": "c000000000000001", "type": "span", "endTimestamp": "2026-01-01T00:00:01.500Z"}
    assert post(server, m.batch(m.trace(T1), start, end)).status_code == 200
    entry = get_trace(server, T1).json()["data"]["timeline"][0]
    assert entry["name"] == "tool loop"
    assert entry["duration"] == 1500
    assert server.store.count() == 2


# -- reading back ----------------------------------------------------------------------------------------


def _seed_text() -> str:
    repo = Path(__file__).resolve().parent.parent
    shared = repo.parent / "shared" / "seeds" / SEED_NAME
    return (shared if shared.exists() else repo / "tests" / "data" / "seed_001_trace_by_id.txt").read_text()


def _seed_sample() -> dict:
    text = _seed_text()
    start = re.search(r'^\{\s*"data"', text, re.MULTILINE)
    assert start is not None, "the seed's JSON sample was not found"
    sample, _ = json.JSONDecoder().raw_decode(text[start.start():])
    return sample


def test_read_shape_has_the_seed_field_names(server: EmulatorServer) -> None:
    seed = _seed_sample()["data"]
    seed_span = seed["timeline"][0]
    seed_leaf = seed_span["timeline"][0]
    assert post(server, agent_batch()).status_code == 200
    response = get_trace(server, T1)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    data = body["data"]
    assert set(seed) <= set(data), set(seed) - set(data)
    span = data["timeline"][0]
    assert span["type"] == "span"
    assert set(seed_span) <= set(span), set(seed_span) - set(span)
    children = {entry["type"]: entry for entry in span["timeline"]}
    assert set(children) == {"generation", "toolCall", "retrieval", "event"}
    retrieval_only = {"input", "docs"}
    generation = children["generation"]
    assert set(seed_leaf) - retrieval_only <= set(generation), set(seed_leaf) - retrieval_only - set(generation)
    assert retrieval_only <= set(children["retrieval"])
    result, seed_result = generation["completionResult"], seed_leaf["completionResult"]
    assert set(seed_result) <= set(result), set(seed_result) - set(result)
    assert set(seed_result["usage"]) <= set(result["usage"])
    assert set(seed_result["choices"][0]) <= set(result["choices"][0])
    # Values, not just names: the same kinds as the documented sample.
    assert isinstance(data["duration"], (int, float)) and isinstance(data["version"], int)
    assert generation["duration"] == 400
    assert generation["timestamp"] == generation["startTimestamp"] == "2026-01-01T00:00:00.100Z"
    assert result["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert result["provider"] == "openai" and result["model_params"] == {"temperature": 0.2}
    assert children["retrieval"]["docs"] == ["doc one", "doc two"]
    assert children["retrieval"]["input"] == "flights to Oslo"
    assert children["toolCall"]["result"] == "3 flights"


def test_children_before_parents_across_batches(server: EmulatorServer) -> None:
    outer, inner = "d000000000000001", "d000000000000002"
    # Deepest first: a tool call that names only its span, then a generation, then the spans, then the trace.
    assert post(server, m.batch(m.tool_call("d000000000000004", None, inner))).status_code == 200
    assert post(server, m.batch(m.generation("d000000000000003", T1, inner))).status_code == 200
    assert get_trace(server, T1).status_code == 404
    assert post(server, m.batch(m.span(inner, T1, outer, name="inner", start=0.05))).status_code == 200
    assert post(server, m.batch(m.span(outer, T1, name="outer"), m.trace(T1))).status_code == 200
    data = get_trace(server, T1).json()["data"]
    assert [e["id"] for e in data["timeline"]] == [outer]
    (inner_entry,) = data["timeline"][0]["timeline"]
    assert inner_entry["id"] == inner
    assert [(e["type"], e["id"]) for e in inner_entry["timeline"]] == [
        ("generation", "d000000000000003"),
        ("toolCall", "d000000000000004"),
    ]


def test_entity_whose_parent_never_arrives_shows_under_the_trace(server: EmulatorServer) -> None:
    orphan = m.generation("e000000000000001", T1, "e0000000000000ff")
    assert post(server, m.batch(m.trace(T1), orphan)).status_code == 200
    timeline = get_trace(server, T1).json()["data"]["timeline"]
    assert [e["id"] for e in timeline] == ["e000000000000001"]
    assert timeline[0]["spanId"] == "e0000000000000ff"


def test_traces_are_kept_apart(server: EmulatorServer) -> None:
    assert post(server, agent_batch(T1)).status_code == 200
    other = m.batch(m.trace(T2, name="other"), m.span("f000000000000001", T2, name="lonely"))
    assert post(server, other).status_code == 200
    first = entries_by_id(get_trace(server, T1).json()["data"]["timeline"])
    second = entries_by_id(get_trace(server, T2).json()["data"]["timeline"])
    assert "f000000000000001" not in first and set(second) == {"f000000000000001"}
    assert len(first) == 5


def test_unknown_trace_is_404_and_missing_id_is_400(server: EmulatorServer) -> None:
    assert post(server, agent_batch()).status_code == 200
    unknown = get_trace(server, T2)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == f"trace '{T2}' not found"
    # A span's id is not a trace id.
    assert get_trace(server, "a000000000000001").status_code == 404
    for missing in (None, ""):
        response = get_trace(server, missing)
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "query parameter `id` is required"


def test_listing_newest_first_with_limit(server: EmulatorServer) -> None:
    assert post(server, agent_batch(T1)).status_code == 200
    assert post(server, m.batch(m.trace(T2, name="second"))).status_code == 200
    listed = httpx.get(f"{server.url}/local/v1/traces", headers=KEY).json()["data"]
    assert [t["id"] for t in listed] == [T2, T1]
    assert listed[1]["entities"] == 6 and listed[1]["name"] == "plan trip" and listed[1]["repoId"] == "repo-1"
    # A late child of the older trace makes it the most recently written one.
    assert post(server, m.batch(m.event("a00000000000000f", T1, "a000000000000001"))).status_code == 200
    limited = httpx.get(f"{server.url}/local/v1/traces", params={"limit": 1}, headers=KEY).json()["data"]
    assert [t["id"] for t in limited] == [T1]
    assert limited[0]["entities"] == 7
    for bad in ("0", "x", "100000"):
        response = httpx.get(f"{server.url}/local/v1/traces", params={"limit": bad}, headers=KEY)
        assert response.status_code == 400
        assert "limit must be an integer" in response.json()["error"]["message"]


# -- the server as a component ---------------------------------------------------------------------------


def test_store_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "store.db"
    with EmulatorServer(db) as first:
        assert post(first, agent_batch()).status_code == 200
        before = get_trace(first, T1).json()
    with EmulatorServer(db) as second:
        assert get_trace(second, T1).json() == before


def test_concurrent_batches_are_all_stored(server: EmulatorServer) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        with httpx.Client(headers=KEY) as client:
            for n in range(10):
                trace_id = f"{worker:016x}{n:016x}"
                body = m.batch(m.trace(trace_id), m.span(f"{worker:08x}{n:08x}", trace_id))
                status = client.post(f"{server.url}/v1/logs/batch", json=body).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 60
    assert server.store.count() == 120
    assert len(server.store.recent_traces(1000)) == 60


def test_taken_port_raises_and_stop_is_idempotent(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmulatorServer(tmp_path / "store.db", port=port)
        with pytest.raises(OSError):
            server.start()
    server.stop()
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018 - the property raises when not started
    server.start()
    try:
        assert server.port == port
        assert post(server, agent_batch()).status_code == 200
    finally:
        server.stop()
        server.stop()


def test_refused_requests_do_not_poison_a_kept_alive_connection(tmp_path: Path) -> None:
    # A refusal sent before the body is read must not leave that body on the connection for the next request.
    with EmulatorServer(tmp_path / "store.db", api_key="sk-right") as server, httpx.Client(base_url=server.url) as http:
        body = json.dumps(agent_batch()).encode()
        for path, key, status in [
            ("/v1/logs/batch", "sk-wrong", 401),
            ("/v1/nothing", "sk-right", 404),
            ("/v1/logs/batch", "sk-right", 200),
        ]:
            response = http.post(path, content=body, headers={"x-maxim-api-key": key})
            assert response.status_code == status, response.text
        assert get_trace(server, T1, headers={"x-maxim-api-key": "sk-right"}).status_code == 200


def test_a_client_that_stops_mid_body_gets_408_and_frees_the_server(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module._Handler, "timeout", 0.2)
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(
            b"POST /v1/logs/batch HTTP/1.1\r\nHost: x\r\nx-maxim-api-key: k\r\nContent-Length: 100\r\n\r\n{\"repoId\""
        )
        answer = client.makefile("rb").read()  # the server answers, then closes the connection
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"body not received within 0.2s" in answer
    assert post(server, agent_batch()).status_code == 200


def test_a_database_without_write_order_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:
        old.execute(
            "CREATE TABLE entities (id TEXT PRIMARY KEY, type TEXT NOT NULL, trace_id TEXT, parent_id TEXT, "
            "repo_id TEXT NOT NULL, data TEXT NOT NULL, version INTEGER NOT NULL, created_at REAL NOT NULL, "
            "updated_at REAL NOT NULL)"
        )
        old.execute(
            "INSERT INTO entities VALUES (?, 'trace', ?, NULL, 'repo-0', ?, 1, 0, 0)",
            (T2, T2, json.dumps(m.trace(T2, name="old"))),
        )
    old.close()
    with EmulatorServer(db) as server:
        assert get_trace(server, T2).json()["data"]["name"] == "old"
        assert post(server, agent_batch()).status_code == 200
        assert [t.id for t in server.store.recent_traces(10)] == [T1, T2]
