"""The Vercel AI SDK (Node) traced by the OpenTelemetry Node SDK, exporting OTLP/HTTP to a local receiver.

`tests/node/vercel-ai/run.mjs` runs three scenarios with the SDK's own mock models (`ai/test`): `generateText`
with a tool round trip, `streamText` with usage, `embedMany`, `generateText` with images. Its dependencies are pinned by the lockfile and
installed with `npm ci` the first time (or when the lockfile changed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from capture.otlp_http_sink import OtlpHttpSink
from maxim_otel_bridge.record import SpanRecord

PROJECT = Path(__file__).resolve().parents[1] / "node" / "vercel-ai"
SCENARIOS = ("tool_round_trip", "streaming", "embeddings", "multimodal")
_STAMP = PROJECT / "node_modules" / ".package-lock.json"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def ensure_installed() -> None:
    """`npm ci` unless node_modules already matches the lockfile (npm writes its own copy of it there)."""
    lock = PROJECT / "package-lock.json"
    if _STAMP.exists() and _STAMP.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        check=False,  # the return code is checked below, with npm/node output in the error
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci failed in {PROJECT}:\n{done.stderr[-4000:]}")


def ai_version() -> str:
    return str(json.loads((PROJECT / "node_modules" / "ai" / "package.json").read_text())["version"])


def run_script(traces_url: str) -> None:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_url,
        "OTEL_LOG_LEVEL": "error",
    }
    done = subprocess.run(
        ["node", "run.mjs"],
        check=False,  # the return code is checked below, with npm/node output in the error
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"run.mjs failed ({done.returncode}):\n{done.stderr[-4000:]}")


def capture() -> dict[str, list[SpanRecord]]:
    """Run the script against a fresh receiver; records grouped per scenario (one trace each, in run order)."""
    ensure_installed()
    with OtlpHttpSink() as sink:
        run_script(sink.traces_url)
        records, errors = sink.records, sink.errors
    if errors:
        raise RuntimeError(f"the receiver rejected spans: {errors}")
    roots = sorted((r for r in records if r.parent_span_id is None), key=lambda r: r.start_ns)
    if len(roots) != len(SCENARIOS):
        raise RuntimeError(f"expected {len(SCENARIOS)} traces, got roots {[r.name for r in roots]}")
    return {name: [r for r in records if r.trace_id == root.trace_id] for name, root in zip(SCENARIOS, roots)}


def dumps(captured: dict[str, list[SpanRecord]]) -> str:
    doc = {
        "package": "ai (npm)",
        "version": ai_version(),
        "scenarios": {scenario: [r.to_json_obj() for r in records] for scenario, records in captured.items()},
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
