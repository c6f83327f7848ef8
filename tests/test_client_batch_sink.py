"""The batch sink test server behaves like Maxim's batch endpoint and can be scripted."""

from __future__ import annotations

import httpx
import pytest
from fakes.batch_sink import BATCH_PATH, BatchSink, CannedResponse, reject_entity_ids


def _trace(entity_id: str, **fields: object) -> dict:
    return {"id": entity_id, "type": "trace", **fields}


def _post(sink: BatchSink, logs: list, key: str = "k") -> httpx.Response:
    return httpx.post(
        sink.url + BATCH_PATH, json={"repoId": "r", "logs": logs}, headers={"x-maxim-api-key": key}, timeout=5
    )


def test_valid_batch_is_accepted_and_recorded() -> None:
    with BatchSink() as sink:
        response = _post(sink, [_trace("t1", name="a"), _trace("t1", output="x"), _trace("t2")])
        assert response.status_code == 200
        assert response.json() == {"success": True}
        assert sink.request_count == 1
        assert sink.requests[0].headers["x-maxim-api-key"] == "k"
        assert [e["id"] for e in sink.entities()] == ["t1", "t1", "t2"]
        assert sink.entities_by_id()["t1"] == {"id": "t1", "type": "trace", "name": "a", "output": "x"}
        assert sink.problems() == []


def test_invalid_batch_gets_400_with_the_problems_and_is_not_stored() -> None:
    with BatchSink() as sink:
        response = _post(sink, [{"id": "g1", "type": "generation"}])
        assert response.status_code == 400
        assert "model" in response.json()["error"]["message"]
        assert sink.entities() == []
        assert sink.entities(include_rejected=True)[0]["id"] == "g1"
        assert sink.problems()


def test_scripted_responses_then_default() -> None:
    with BatchSink() as sink:
        sink.enqueue(CannedResponse(503, {"Retry-After": "7"}), 429)
        first = _post(sink, [_trace("t1")])
        assert (first.status_code, first.headers["retry-after"]) == (503, "7")
        assert _post(sink, [_trace("t1")]).status_code == 429
        assert _post(sink, [_trace("t1")]).status_code == 200
        assert [r.status for r in sink.requests] == [503, 429, 200]
        assert len(sink.entities()) == 1


def test_scripted_success_never_hides_an_invalid_body() -> None:
    with BatchSink() as sink:
        sink.enqueue(200)
        assert _post(sink, [{"id": "x", "type": "nope"}]).status_code == 400


def test_decider_rejects_batches_containing_an_id() -> None:
    with BatchSink(decide=reject_entity_ids(["bad"])) as sink:
        assert _post(sink, [_trace("ok"), _trace("bad")]).status_code == 400
        assert _post(sink, [_trace("ok")]).status_code == 200
        assert list(sink.entities_by_id()) == ["ok"]


def test_wrong_api_key_gets_401() -> None:
    with BatchSink(api_key="right") as sink:
        assert _post(sink, [_trace("t")], key="wrong").status_code == 401
        assert _post(sink, [_trace("t")], key="right").status_code == 200


def test_refuse_connections_then_resume_on_the_same_port() -> None:
    with BatchSink() as sink, httpx.Client(timeout=5) as client:
        port = sink.port
        body = {"repoId": "r", "logs": [_trace("t")]}
        assert client.post(sink.url + BATCH_PATH, json=body).status_code == 200  # keep-alive connection open
        sink.refuse_connections()
        assert not sink.listening
        with pytest.raises(httpx.TransportError):
            client.post(sink.url + BATCH_PATH, json=body)
        sink.resume()
        assert sink.port == port
        assert client.post(sink.url + BATCH_PATH, json=body).status_code == 200
        assert len(sink.entities()) == 2


def test_wait_for_entities() -> None:
    with BatchSink() as sink:
        assert not sink.wait_for_entities(["t"], timeout=0.05)
        _post(sink, [_trace("t")])
        assert sink.wait_for_entities(["t"], timeout=1)


def test_validation_can_be_turned_off_for_benchmarks() -> None:
    with BatchSink(validate=False) as sink:
        assert _post(sink, [{"id": "g1", "type": "generation"}]).status_code == 200
        assert sink.problems() == []
