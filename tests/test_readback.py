"""`trace get` / `trace list` and `fetch_trace`, against the real local store over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fakes import maxim_entities as m

from maxim_otel_bridge import cli, config
from maxim_otel_bridge.config import Destination, Secret
from maxim_otel_bridge.emulator import EmulatorServer
from maxim_otel_bridge.readback import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    fetch_trace,
    list_traces,
)

T1 = "0af7651916cd43dd8448eb211c80319c"
T2 = "4bf92f3577b34da6a3ce929d0e0e4736"
PINNED = "sk-local-7d1e0b"


def agent_batch() -> dict:
    failing = m.tool_call("a000000000000004", T1, "a000000000000003", name="book", start=1.0, end=1.2) | {
        "error": {"errorMessage": "no seats left", "errorType": "BookingError"}
    }
    return m.batch(
        m.trace(T1, name="plan trip"),
        m.span("a000000000000001", T1, name="agent planner", start=0.0, end=1.9),
        m.generation("a000000000000002", T1, "a000000000000001", model="gpt-4o", usage=(120, 30)),
        m.span("a000000000000003", T1, "a000000000000001", name="agent booker", start=0.8, end=1.5),
        failing,
    )


@pytest.fixture
def store(tmp_path: Path):
    with EmulatorServer(tmp_path / "store.db", api_key=PINNED) as server:
        response = httpx.post(f"{server.url}/v1/logs/batch", json=agent_batch(), headers={"x-maxim-api-key": PINNED})
        assert response.status_code == 200
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, store: EmulatorServer) -> EmulatorServer:
    monkeypatch.setenv(config.ENV_BASE_URL, store.url)
    monkeypatch.setenv(config.ENV_API_KEY, PINNED)
    monkeypatch.delenv(config.ENV_REPO_ID, raising=False)
    return store


EXPECTED_TREE = f"""\
trace plan trip  2.00s  [{T1}]
└─ span agent planner  1.90s  [a000000000000001]
   ├─ generation chat gpt-4o  400ms  model gpt-4o (openai)  tokens 120 in / 30 out / 150 total  [a000000000000002]
   └─ span agent booker  700ms  [a000000000000003]
      └─ toolCall book  200ms  ERROR BookingError: no seats left  [a000000000000004]
"""


def test_trace_get_prints_the_tree(env: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", "get", T1]) == 0
    out, err = capsys.readouterr()
    assert out == EXPECTED_TREE
    assert PINNED not in out + err


def test_trace_get_json_prints_the_response(env: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", "get", T1, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    direct = httpx.get(
        f"{env.url}/v1/log-repositories/logs/traces", params={"id": T1}, headers={"x-maxim-api-key": PINNED}
    ).json()
    assert printed == direct
    assert printed["data"]["timeline"][0]["timeline"][0]["completionResult"]["usage"]["total_tokens"] == 150


def test_unknown_trace(env: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", "get", T2]) == EXIT_NOT_FOUND
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: trace {T2} not found (trace '{T2}' not found)\n"


def test_refused_key(env: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(config.ENV_API_KEY, "sk-wrong-31337")
    assert cli.main(["trace", "get", T1]) == EXIT_UNAUTHORIZED
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: the server refused the API key (HTTP 401): check MAXIM_API_KEY\n"
    assert "sk-wrong-31337" not in err


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(config.ENV_BASE_URL, url)
    monkeypatch.delenv(config.ENV_API_KEY, raising=False)
    assert cli.main(["trace", "get", T1]) == EXIT_UNREACHABLE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: cannot reach {url}: ") and err.count("\n") == 1


def test_bad_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(config.ENV_API_KEY, "sk-real")
    monkeypatch.setenv(config.ENV_BASE_URL, "ftp://maxim.example")
    assert cli.main(["trace", "get", T1]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: MAXIM_BASE_URL must be an http(s) URL") and "sk-real" not in err


def test_no_key_and_no_url_reads_the_local_store(
    store: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default local address is fixed (8787); the test's store is on a free port, so point the default there.
    monkeypatch.setattr(config, "LOCAL_STORE_URL", store.url)
    for name in (config.ENV_API_KEY, config.ENV_BASE_URL, config.ENV_REPO_ID):
        monkeypatch.delenv(name, raising=False)
    # The local default sends the key "local", which this store (pinned) refuses: proof that it was asked.
    assert cli.main(["trace", "get", T1]) == EXIT_UNAUTHORIZED
    capsys.readouterr()
    with EmulatorServer(store.db_path.with_name("open.db")) as open_store:
        monkeypatch.setattr(config, "LOCAL_STORE_URL", open_store.url)
        assert cli.main(["trace", "get", T1]) == EXIT_NOT_FOUND
    assert f"trace {T1} not found" in capsys.readouterr().err


def test_trace_list(env: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    later = m.batch(m.trace(T2, name="second"))
    assert httpx.post(f"{env.url}/v1/logs/batch", json=later, headers={"x-maxim-api-key": PINNED}).status_code == 200
    assert cli.main(["trace", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{T2}  2026-01-01T00:00:00.000Z  1 entities  second",
        f"{T1}  2026-01-01T00:00:00.000Z  5 entities  plan trip",
    ]
    assert cli.main(["trace", "list", "--limit", "1", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["data"]
    assert [t["id"] for t in listed] == [T2]
    assert cli.main(["trace", "list", "--limit", "0"]) == EXIT_FAILED
    assert "limit must be an integer from 1 to 1000" in capsys.readouterr().err


def test_base_url_flag_wins_over_the_environment(
    env: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(config.ENV_BASE_URL, "http://127.0.0.1:9")  # nothing listens on the discard port
    assert cli.main(["trace", "get", T1, "--base-url", env.url, "--timeout", "5"]) == 0
    assert capsys.readouterr().out == EXPECTED_TREE
    assert cli.main(["trace", "list", "--base-url", env.url]) == 0
    assert T1 in capsys.readouterr().out


def test_console_script_in_a_real_process(env: EmulatorServer) -> None:
    script = Path(sys.executable).with_name("maxim-otel-bridge")
    environ = {**os.environ, config.ENV_BASE_URL: env.url, config.ENV_API_KEY: PINNED}

    def trace_get(trace_id: str) -> subprocess.CompletedProcess[str]:
        command = [str(script), "trace", "get", trace_id]
        return subprocess.run(command, env=environ, check=False, capture_output=True, text=True, timeout=60)

    found = trace_get(T1)
    assert (found.returncode, found.stdout, found.stderr) == (0, EXPECTED_TREE, "")
    missing = trace_get(T2)
    assert missing.returncode == EXIT_NOT_FOUND
    assert missing.stdout == "" and missing.stderr.strip().splitlines() == [
        f"error: trace {T2} not found (trace '{T2}' not found)"
    ]


# -- answers only a remote server gives (Maxim's servers are out of reach: a transport plays them) ---------


def _maxim(handler) -> tuple[Destination, httpx.MockTransport]:
    return Destination("https://api.maxim.example", Secret("sk-remote"), "repo"), httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("response", "status", "error"),
    [
        (httpx.Response(500, text="upstream\nexploded"), 500, "HTTP 500 reading trace x: upstream exploded"),
        (httpx.Response(200, text="<html>"), 200, "the answer for trace x is not JSON"),
        (httpx.Response(200, json={"items": []}), 200, "the answer for trace x has no `data`"),
        (httpx.Response(200, json={"data": [1]}), 200, "the answer for trace x is not an object"),
        (httpx.Response(403, json={"message": "forbidden"}), 403, "the server refused the API key (HTTP 403)"),
        (httpx.Response(400, json={"error": "id must be a string"}), 400, "HTTP 400 reading trace x: id must be a string"),
    ],
)
def test_fetch_trace_reports_odd_answers_as_values(response: httpx.Response, status: int, error: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    destination, transport = _maxim(answer)
    result = fetch_trace(destination, "x", transport=transport)
    assert (result.ok, result.status) == (False, status)
    assert result.error is not None and result.error.startswith(error)
    assert result.exit_code == (EXIT_UNAUTHORIZED if status == 403 else EXIT_FAILED)
    (request,) = seen
    assert request.url.path == "/v1/log-repositories/logs/traces" and request.url.params["id"] == "x"
    assert request.headers["x-maxim-api-key"] == "sk-remote"


def test_fetch_trace_timeout_and_listing_without_a_local_store() -> None:
    def too_slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    destination, transport = _maxim(too_slow)
    result = fetch_trace(destination, "x", timeout=2.5, transport=transport)
    assert (result.status, result.exit_code) == (None, EXIT_UNREACHABLE)
    assert result.error == "https://api.maxim.example did not answer within 2.5s"

    destination, transport = _maxim(lambda request: httpx.Response(404, json={"message": "Not Found"}))
    listing = list_traces(destination, 5, transport=transport)
    assert listing.exit_code == EXIT_NOT_FOUND
    assert listing.error == "https://api.maxim.example has no trace listing: only the local store (`emulate`) lists traces"
