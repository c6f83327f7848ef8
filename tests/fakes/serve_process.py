"""Run `maxim-otel-bridge serve` as a real subprocess (the console script) on free ports, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("maxim-otel-bridge"))


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this process.

    The kernel may give the port it just released to the next bind, so two calls in a row (a sidecar's gRPC,
    HTTP and admin ports) could otherwise return the same port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children...), from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            pending.extend(children)
    return found


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any MAXIM_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAXIM_")}
    env.update(extra or {})
    return env


class ServeProcess:
    """One `serve` subprocess; stderr is captured to a file for assertions on its log lines."""

    def __init__(
        self,
        spool_dir: Path,
        *,
        env: Mapping[str, str],
        args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.admin_port = free_port()
        self.spool_dir = spool_dir
        self.log_path = log_path or spool_dir.parent / f"serve-{self.http_port}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                CONSOLE_SCRIPT,
                "serve",
                "--grpc-endpoint",
                f"127.0.0.1:{self.grpc_port}",
                "--http-endpoint",
                f"127.0.0.1:{self.http_port}",
                "--admin-endpoint",
                f"127.0.0.1:{self.admin_port}",
                "--spool-dir",
                str(spool_dir),
                *args,
            ],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.admin_url + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/readyz")
        return status, orjson.loads(body)

    def wait_started(self, timeout: float = 20.0) -> None:
        """Until the admin endpoint answers /healthz (receivers are up by then: they start first)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log}")
            with contextlib.suppress(OSError):
                if self.get("/healthz")[0] == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"serve did not start within {timeout}s:\n{self.log}")

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup at all
        self.wait(10)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def __enter__(self) -> ServeProcess:
        self.wait_started()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def make_spans(traces: int, children: int = 4) -> list[list[ReadableSpan]]:
    """Real SDK spans: per trace an `agent` root with `children` GenAI chat spans, children ending first."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bridge.tests")
    for n in range(traces):
        with tracer.start_as_current_span(f"agent {n}"):
            for _ in range(children):
                with tracer.start_as_current_span(
                    "chat gpt-4o",
                    kind=trace.SpanKind.CLIENT,
                    attributes={
                        "gen_ai.system": "openai",
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 10,
                        "gen_ai.usage.output_tokens": 20,
                    },
                ):
                    pass
    spans = exporter.get_finished_spans()
    provider.shutdown()
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    return list(by_trace.values())


def otlp_body(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializePartialToString()


def span_hex(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x")


def trace_hex(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


@contextlib.contextmanager
def serving(spool_dir: Path, env: Mapping[str, str], args: Sequence[str] = ()) -> Iterator[ServeProcess]:
    with ServeProcess(spool_dir, env=env, args=args) as process:
        yield process
