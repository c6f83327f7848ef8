"""A real local HTTP server speaking OpenAI's chat completions and embeddings API, for instrumentation tests.

The OpenAI client, and every instrumentation wrapping it, see a real socket and real HTTP, so what they record is
what they record in production. Answers are deterministic and follow a small script:

- the model named `broken` gets a 400 error, like an unknown model;
- a request that offers tools and holds no tool result yet gets a tool call (the first tool, arguments from the
  script's `tool_arguments`), finish reason `tool_calls`;
- otherwise a text answer (`answer_text`), finish reason `stop`;
- `stream: true` sends the same answer as server-sent events, split in chunks, and a last usage-only chunk when
  `stream_options.include_usage` is set;
- `/v1/embeddings` returns one small deterministic vector per input.

Usage: `with OpenAIServer() as server: openai.OpenAI(base_url=server.base_url, api_key="sk-test")`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self

CREATED = 1_763_856_000
SYSTEM_FINGERPRINT = "fp_fake0001"


@dataclass
class ReceivedRequest:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Script:
    """What the server answers; the defaults fit a weather-agent conversation."""

    answer_text: str = "It is 18°C and sunny in Paris."
    tool_arguments: dict[str, Any] = field(default_factory=lambda: {"city": "Paris"})
    embedding_dimensions: int = 8


def _count_tokens(text: str) -> int:
    # A stable stand-in for a tokenizer: roughly one token per 4 characters, at least one.
    return max(1, (len(text) + 3) // 4)


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or []:
            parts.append(json.dumps(call.get("function", {})))
    return " ".join(parts)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: test output should show assertions, not an access log.
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(
                400,
                {
                    "error": {
                        "message": "body is not JSON",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        self.server.record(ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.path.rstrip("/").endswith("/chat/completions"):
            self._chat(body)
        elif self.path.rstrip("/").endswith("/embeddings"):
            self._embeddings(body)
        else:
            self._send_json(
                404,
                {
                    "error": {
                        "message": f"no route {self.path}",
                        "type": "invalid_request_error",
                    }
                },
            )

    def _chat(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if model == "broken":
            self._send_json(
                404,
                {
                    "error": {
                        "message": "The model `broken` does not exist",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
            return
        n = self.server.next_id()
        messages = body.get("messages") or []
        has_tool_result = any(m.get("role") == "tool" for m in messages)
        tools = body.get("tools") or []
        script = self.server.script
        message: dict[str, Any]
        if tools and not has_tool_result:
            name = tools[0].get("function", {}).get("name", "tool")
            call = {
                "id": f"call_{n:04d}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": json.dumps(script.tool_arguments),
                },
            }
            message, finish, completion_text = (
                {"role": "assistant", "content": None, "tool_calls": [call]},
                "tool_calls",
                json.dumps(call["function"]),
            )
        else:
            message, finish, completion_text = (
                {"role": "assistant", "content": script.answer_text},
                "stop",
                script.answer_text,
            )
        prompt_tokens = _count_tokens(_prompt_text(messages))
        completion_tokens = _count_tokens(completion_text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        response_model = f"{model}-2024-07-18" if model in ("gpt-4o-mini", "gpt-4o") else model
        completion_id = f"chatcmpl-fake{n:04d}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(
                completion_id,
                response_model,
                message,
                finish,
                usage if include_usage else None,
            )
            return
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": response_model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {
                        "index": 0,
                        "message": {**message, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(
        self,
        completion_id: str,
        model: str,
        message: dict[str, Any],
        finish: str,
        usage: dict[str, int] | None,
    ) -> None:
        common = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {
                                "name": call["function"]["name"],
                                "arguments": arguments[:half],
                            },
                        }
                    ]
                }
            )
            deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]})
        else:
            words = str(message["content"]).split(" ")
            deltas.extend({"content": (" " if i else "") + word} for i, word in enumerate(words))
        chunks = [
            {
                **common,
                "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}],
            }
            for d in deltas
        ]
        chunks.append(
            {
                **common,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}],
            }
        )
        if usage is not None:
            chunks.append({**common, "choices": [], "usage": usage})
        payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        data = payload.encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = self.server.script.embedding_dimensions
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(((len(str(t)) + i + k) % 7) / 7 - 0.5, 4) for k in range(dims)],
            }
            for i, t in enumerate(texts)
        ]
        tokens = sum(_count_tokens(str(t)) for t in texts)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _send_json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._counter = 0

    def record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter


class OpenAIServer:
    """The server on 127.0.0.1 and an OS-chosen port, served from a thread for the life of the `with` block."""

    def __init__(self, script: Script | None = None) -> None:
        self._server = _Server(script or Script())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[ReceivedRequest]:
        return list(self._server.requests)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def tool_call_reply(call: Any, result: str) -> list[dict[str, Any]]:
    """What an app sends back after the model asked for the tool call `call` (from the `openai` client): the
    assistant's message with that call, then the tool's `result`."""
    function = {"name": call.function.name, "arguments": call.function.arguments}
    return [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function", "function": function}]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
