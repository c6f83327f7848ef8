"""`maxim-otel-bridge emulate`: a real process serving until SIGTERM, and its argument errors."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fakes import maxim_entities as m

from maxim_otel_bridge import cli
from maxim_otel_bridge.emulator import EntityStore
from maxim_otel_bridge.emulator.command import parse_listen

T = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8787", ("127.0.0.1", 8787)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("[::1]:9000", ("::1", 9000)),
     ("localhost:1", ("localhost", 1))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8787", ":8787", "host:", "host:port", "host:70000", "host:-1"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"--listen must be HOST:PORT \(for example 127.0.0.1:8787\)"):
        parse_listen(text)


def test_bad_listen_and_taken_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["emulate", "--listen", "nowhere", "--db", str(tmp_path / "a.db")]) == 2
    assert capsys.readouterr().err.startswith("error: --listen must be HOST:PORT")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert cli.main(["emulate", "--listen", address, "--db", str(tmp_path / "a.db")]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on {address}: ") and err.count("\n") == 1


def test_emulate_serves_until_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    script = Path(sys.executable).with_name("maxim-otel-bridge")
    process = subprocess.Popen(
        [str(script), "emulate", "--listen", "127.0.0.1:0", "--db", str(db), "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.match(r"local Maxim-compatible store on (http://127\.0\.0\.1:\d+) \(database (.+)\)$", first.strip())
        assert match, first
        url = match.group(1)
        assert Path(match.group(2)) == db
        assert process.stdout.readline().strip() == f"point the bridge at it: MAXIM_BASE_URL={url}"
        headers = {"x-maxim-api-key": "sk-cli"}
        body = m.batch(m.trace(T, name="from the cli"), m.span("a000000000000001", T))
        assert httpx.post(f"{url}/v1/logs/batch", json=body, headers=headers).status_code == 200
        assert httpx.post(f"{url}/v1/logs/batch", json=body, headers={"x-maxim-api-key": "other"}).status_code == 401
        read = httpx.get(f"{url}/v1/log-repositories/logs/traces", params={"id": T}, headers=headers)
        assert read.json()["data"]["name"] == "from the cli"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "sk-cli" not in err
    with EntityStore(db) as store:  # the data outlives the process
        assert store.count() == 2
