"""The benchmark's span set: agent traces as a real OTel SDK records them, and the same spans as OTLP requests.

Each trace is what an agent built on the OpenAI client produces with `opentelemetry-instrumentation-openai-v2`
(content capture SPAN_ONLY): an `invoke_agent` root, 5 `chat {model}` generations and 4 `execute_tool` calls,
alternating (chat -> tool -> chat ... -> final chat). Chat attributes are the exact keys openai-v2 2.4b0 sets
(`tests/fixtures/captured/openai_v2.json`): JSON `gen_ai.input.messages` of about 1.6 KB (system prompt, the
user's question, the conversation so far), `gen_ai.output.messages` of about 0.5 KB, request/response model,
response id, finish reasons, usage. Text is pseudo-random words from a fixed seed, so runs are identical and
nothing compresses or deduplicates unrealistically.

Spans are made by the real SDK (`TracerProvider`, explicit start/end times) and ordered by end time across
overlapping traces, the order a `BatchSpanProcessor` hands them to an exporter; `encode_requests` cuts them into
512-span OTLP requests with the official encoder, as `OTLPSpanExporter` would send them.

Ids carry fixed markers (`TRACE_MARKER` in the first 8 bytes of every trace id, `SPAN_MARKER` in the first 4 of
every span id) so a load generator can replay the pre-encoded requests as fresh traces with one
`bytes.replace` per marker (`relabel`) instead of re-encoding.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, set_span_in_context

__all__ = [
    "SPAN_MARKER",
    "TRACE_MARKER",
    "EncodedRequest",
    "SpanSetSpec",
    "build_spans",
    "encode_requests",
    "relabel",
    "round_markers",
    "span_counts",
    "trace_id_hex",
]

TRACE_MARKER = bytes.fromhex("b3e1c0de5a17f00d")
"""The first 8 bytes of every trace id in the span set."""
SPAN_MARKER = bytes.fromhex("5ca1ab1e")
"""The first 4 bytes of every span id in the span set."""

BASE_NS = 1_795_000_000_000_000_000
MS = 1_000_000
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
TOOLS = ("search_docs", "get_weather", "lookup_order", "convert_currency")
GENAI_SCOPE = ("opentelemetry.util.genai.handler", "1.1b0")  # where openai-v2 2.4b0 records its spans
APP_SCOPE = ("support-agent", "1.4.0")

_WORDS = [
    "order",
    "refund",
    "shipping",
    "invoice",
    "customer",
    "account",
    "balance",
    "delivery",
    "package",
    "warehouse",
    "address",
    "policy",
    "return",
    "window",
    "receipt",
    "discount",
    "coupon",
    "subscription",
    "renewal",
    "charge",
    "payment",
    "card",
    "transfer",
    "currency",
    "rate",
    "weather",
    "forecast",
    "city",
    "travel",
    "booking",
    "flight",
    "hotel",
    "seat",
    "upgrade",
    "baggage",
    "schedule",
    "delay",
    "support",
    "agent",
    "ticket",
    "priority",
    "escalation",
    "manager",
    "summary",
    "detail",
    "status",
    "update",
    "confirm",
    "cancel",
    "request",
    "reply",
]


@dataclass(frozen=True, slots=True)
class SpanSetSpec:
    traces: int = 1000
    chats: int = 5
    tools: int = 4
    input_bytes: int = 1600
    """Approximate size of each chat span's `gen_ai.input.messages` JSON."""
    output_bytes: int = 500
    """Approximate size of each chat span's `gen_ai.output.messages` JSON."""
    trace_spacing_ms: int = 40
    """Start-time distance between consecutive traces: they overlap, as in a busy service."""
    seed: int = 20261123
    first_trace: int = 0
    """Index of the first trace: sets with different ranges have disjoint trace ids (a warm-up set)."""

    @property
    def spans_per_trace(self) -> int:
        return 1 + self.chats + self.tools

    @property
    def spans(self) -> int:
        return self.traces * self.spans_per_trace


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """One serialized `ExportTraceServiceRequest`."""

    data: bytes
    spans: int
    roots: tuple[int, ...]
    """Indexes of the traces whose root span is in this request (for latency measurement)."""


class _MarkedIds(IdGenerator):
    """Trace ids `TRACE_MARKER + index`, span ids `SPAN_MARKER + counter`: unique, reproducible, relabelable."""

    def __init__(self, span_start: int = 0) -> None:
        self.trace_index = 0
        self._span = span_start

    def generate_trace_id(self) -> int:
        return int.from_bytes(TRACE_MARKER + self.trace_index.to_bytes(8, "big"), "big")

    def generate_span_id(self) -> int:
        self._span += 1
        return int.from_bytes(SPAN_MARKER + self._span.to_bytes(4, "big"), "big")


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def _dumps(obj: object) -> str:
    # openai-v2 serializes compactly, without ASCII escaping of the separators.
    return json.dumps(obj, separators=(",", ":"))


def _chat_attributes(rng: random.Random, spec: SpanSetSpec, trace: int, step: int) -> dict:
    """openai-v2's chat span attributes for step `step` (0-based) of the agent loop."""
    final = step == spec.chats - 1
    call_id = f"call_{trace:05d}_{step}"
    history: list[dict] = []
    for earlier in range(step):
        earlier_id = f"call_{trace:05d}_{earlier}"
        tool = TOOLS[earlier % len(TOOLS)]
        history.append(
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": earlier_id, "name": tool, "arguments": {"q": _text(rng, 40)}}],
            }
        )
        history.append(
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": earlier_id, "response": _text(rng, 60)}]}
        )
    fixed = _dumps(history)
    # The conversation grows with each step; the system prompt and question fill the rest of the budget.
    free = max(200, spec.input_bytes - len(fixed) - 125)
    system_size = free * 3 // 5
    user_size = free - system_size
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": _text(rng, system_size)}]},
        {"role": "user", "parts": [{"type": "text", "content": _text(rng, user_size)}]},
        *history,
    ]
    if final:
        output = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": _text(rng, spec.output_bytes - 80)}],
                "finish_reason": "stop",
            }
        ]
        finish = "stop"
    else:
        tool = TOOLS[step % len(TOOLS)]
        output = [
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": _text(rng, spec.output_bytes - 190)},
                    {"type": "tool_call", "id": call_id, "name": tool, "arguments": {"q": _text(rng, 40)}},
                ],
                "finish_reason": "tool_calls",
            }
        ]
        finish = "tool_calls"
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 800,
        "gen_ai.input.messages": _dumps(messages),
        "gen_ai.output.messages": _dumps(output),
        "gen_ai.response.model": RESPONSE_MODEL,
        "gen_ai.response.id": f"chatcmpl-{trace:06d}{step}",
        "gen_ai.response.finish_reasons": (finish,),
        "gen_ai.usage.input_tokens": 380 + 40 * step,
        "gen_ai.usage.output_tokens": 110,
        "openai.response.system_fingerprint": "fp_5e1a7c0ffe",
    }


def _tool_attributes(rng: random.Random, trace: int, step: int) -> dict:
    tool = TOOLS[step % len(TOOLS)]
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": f"call_{trace:05d}_{step}",
        "gen_ai.tool.call.arguments": _dumps({"q": _text(rng, 40)}),
        "gen_ai.tool.call.result": _dumps({"result": _text(rng, 160)}),
    }


def build_spans(spec: SpanSetSpec = SpanSetSpec()) -> list[ReadableSpan]:
    """The span set as finished SDK spans, in end-time order (what a BatchSpanProcessor would export)."""
    rng = random.Random(spec.seed)
    ids = _MarkedIds(span_start=spec.first_trace * spec.spans_per_trace)
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource(
            {"service.name": "support-agent", "service.version": "1.4.0", "deployment.environment": "bench"}
        ),
        id_generator=ids,
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    genai = provider.get_tracer(*GENAI_SCOPE)
    app = provider.get_tracer(*APP_SCOPE)
    for trace in range(spec.traces):
        ids.trace_index = spec.first_trace + trace
        start = BASE_NS + trace * spec.trace_spacing_ms * MS
        root = app.start_span(
            "invoke_agent support_agent",
            kind=SpanKind.INTERNAL,
            start_time=start,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": "openai",
                "gen_ai.agent.name": "support_agent",
                "gen_ai.conversation.id": f"conv-{trace // 4:05d}",
                "gen_ai.request.model": MODEL,
            },
        )
        context = set_span_in_context(root)
        clock = start + 2 * MS
        for step in range(spec.chats):
            chat = genai.start_span(
                f"chat {MODEL}",
                context=context,
                kind=SpanKind.CLIENT,
                start_time=clock,
                attributes=_chat_attributes(rng, spec, trace, step),
            )
            clock += 700 * MS + rng.randrange(300) * MS
            chat.end(end_time=clock)
            if step < spec.tools:
                tool = app.start_span(
                    f"execute_tool {TOOLS[step % len(TOOLS)]}",
                    context=context,
                    kind=SpanKind.INTERNAL,
                    start_time=clock + MS,
                    attributes=_tool_attributes(rng, trace, step),
                )
                clock += 20 * MS + rng.randrange(80) * MS
                tool.end(end_time=clock)
        root.end(end_time=clock + 3 * MS)
    provider.shutdown()
    return sorted(memory.get_finished_spans(), key=lambda s: s.end_time or 0)


def encode_requests(spans: Sequence[ReadableSpan], max_spans: int = 512) -> list[EncodedRequest]:
    """Consecutive batches of `max_spans`, serialized with the official OTLP encoder."""
    requests: list[EncodedRequest] = []
    for start in range(0, len(spans), max_spans):
        batch = spans[start : start + max_spans]
        data = encode_spans(batch).SerializeToString()
        roots = tuple(s.context.trace_id & 0xFFFF_FFFF_FFFF_FFFF for s in batch if s.parent is None)
        requests.append(EncodedRequest(data, len(batch), roots))
        _check_markers(data, len(batch), len(roots))
    return requests


def _check_markers(data: bytes, spans: int, roots: int) -> None:
    """The markers must occur only inside ids, or relabeling would corrupt other bytes."""
    trace_hits = data.count(TRACE_MARKER)
    span_hits = data.count(SPAN_MARKER)
    if trace_hits != spans or span_hits != 2 * spans - roots:
        raise ValueError(
            f"id markers also occur outside ids ({trace_hits} trace, {span_hits} span hits for {spans} spans)"
        )


def round_markers(round_no: int) -> tuple[bytes, bytes]:
    """The (trace, span) id prefixes replacing the markers in round `round_no` (0 keeps the originals)."""
    if round_no == 0:
        return TRACE_MARKER, SPAN_MARKER
    mixed = (round_no * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & (2**64 - 1)
    return mixed.to_bytes(8, "big"), (round_no | 0x8000_0000).to_bytes(4, "big")


def relabel(data: bytes, round_no: int) -> bytes:
    """The request with every trace and span id moved to round `round_no`: the same spans as new traces."""
    if round_no == 0:
        return data
    trace_prefix, span_prefix = round_markers(round_no)
    return data.replace(TRACE_MARKER, trace_prefix).replace(SPAN_MARKER, span_prefix)


def trace_id_hex(round_no: int, trace_index: int) -> str:
    """The lowercase hex trace id of trace `trace_index` in round `round_no` (as Maxim entities carry it)."""
    return (round_markers(round_no)[0] + trace_index.to_bytes(8, "big")).hex()


def span_counts(spans: Sequence[ReadableSpan]) -> dict[str, int]:
    """Spans per operation name (`invoke_agent`, `chat`, `execute_tool`), for checks and the report."""
    counts: dict[str, int] = {}
    for span in spans:
        operation = str((span.attributes or {}).get("gen_ai.operation.name", ""))
        counts[operation] = counts.get(operation, 0) + 1
    return counts


def trace_parts(records: Iterable[Any]) -> list[list[Any]]:
    """Span records grouped by trace id, traces in order of first appearance: the parts `map_trace_part` takes."""
    by_trace: dict[str, list[Any]] = {}
    for record in records:
        by_trace.setdefault(record.trace_id, []).append(record)
    return list(by_trace.values())
