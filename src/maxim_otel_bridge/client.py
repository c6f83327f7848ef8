"""The Maxim HTTP client: sends entities to `POST {base}/v1/logs/batch`, and owns every retry.

`send()` splits the entities into batches (by count and by bytes, never reordering them, so parents stay
before children), posts each one, and reports what happened as a `SendResult` value; it never raises for
a transport or server failure. Per answer:

- 2xx: delivered.
- 429, 502, 503, 504, connection errors and timeouts: retried with jittered exponential backoff (or after the
  server's Retry-After) until the deadline; then the batch and everything after it are reported `failed`
  (not delivered, retryable later) so the caller keeps them in order.
- 400, 413, 422: the batch is split in halves until the entities the server refuses are isolated; the rest are
  delivered, and each refused one (a poison entity: it alone gets the error) goes to the dead-letter file
  with the server's answer as the reason.
- 401, 403: reported once (`auth_failed`, one error log until a request succeeds again), never retried.
- Anything else (500 included, see `retry`): `failed`, not retried in the loop.

Waits use an `Event.wait`, so `interrupt()` / `close()` cut a backoff short at once (shutdown never hangs).
The API key lives in a `Secret` and in the HTTP client's default headers only: no log line, error text or
repr here contains it.
"""

from __future__ import annotations

import logging
import math
import random as _random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from . import __version__
from .config import Destination
from .deadletter import DeadLetter, DeadLetterFile
from .retry import AUTH_STATUSES, REJECTED_STATUSES, RETRYABLE_STATUSES, BackoffPolicy, parse_retry_after

__all__ = ["BATCH_PATH", "ClientOptions", "SendResult", "MaximClient", "split_batches"]

logger = logging.getLogger(__name__)

BATCH_PATH = "/v1/logs/batch"

MIN_ATTEMPT_TIMEOUT = 1.0
"""Even past the deadline, a batch gets one attempt with at least this long to answer (a flush at shutdown)."""

MAX_REASON_CHARS = 2000
"""How much of the server's answer is kept as a dead letter's reason."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How the client batches, waits and retries. Defaults suit Maxim's API; all can be changed."""

    max_batch_entities: int = 500
    max_batch_bytes: int = 4 * 1024 * 1024
    """Request body size limit; Maxim's own SDK splits at 5 MB, this stays below it."""
    timeout: float = 10.0
    """Seconds one attempt may take (connect + send + answer)."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    retry_deadline: float = 60.0
    """Seconds one `send()` may spend retrying when the caller gives no deadline."""
    dead_letter_path: str | None = None
    """JSONL file for entities Maxim refuses; None logs them (id and reason) instead."""

    def __post_init__(self) -> None:
        for name in ("max_batch_entities", "max_batch_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("timeout", "retry_deadline"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.backoff, BackoffPolicy):
            raise ValueError(f"backoff must be a BackoffPolicy, got {self.backoff!r}")


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one `send()` achieved. `failed` keeps the undelivered entities, in order, to send again later."""

    delivered: int = 0
    dead_lettered: tuple[str, ...] = ()
    """Ids of the entities Maxim refused (written to the dead-letter file, or logged)."""
    failed: tuple[Mapping[str, Any] | bytes, ...] = ()
    """As given: mappings from `send`, JSON bytes from `send_encoded`."""
    retry_after: float | None = None
    """The server's last Retry-After, in seconds, when it asked the client to wait."""
    auth_failed: bool = False
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        """Nothing left to retry (dead letters are final: retrying them cannot succeed)."""
        return not self.failed and not self.auth_failed


def split_batches(sizes: Sequence[int], max_entities: int, max_bytes: int, overhead: int = 0) -> list[range]:
    """Consecutive index ranges, each within `max_entities` and (with `overhead` and commas) `max_bytes`.

    Order is kept. An item larger than `max_bytes` on its own goes alone: the server decides about it.
    """
    batches: list[range] = []
    start = 0
    used = overhead
    for index, size in enumerate(sizes):
        count = index - start
        extra = size + (1 if count else 0)
        if count and (count >= max_entities or used + extra > max_bytes):
            batches.append(range(start, index))
            start, used, extra = index, overhead, size
        used += extra
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


@dataclass(frozen=True, slots=True)
class _Answer:
    """One attempt's outcome: an HTTP status, or a transport error (status None)."""

    status: int | None
    text: str
    retry_after: float | None = None


class _Run:
    """The accumulating state of one `send()`."""

    __slots__ = ("deadline", "delivered", "dead", "failed", "retry_after", "auth_failed", "last_error", "stopped")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.delivered = 0
        self.dead: list[DeadLetter] = []
        self.failed: list[Mapping[str, Any] | bytes] = []
        self.retry_after: float | None = None
        self.auth_failed = False
        self.last_error: str | None = None
        self.stopped = False


_Item = tuple["Mapping[str, Any] | bytes", bytes]
"""An entity as the caller gave it (a mapping, or its JSON for `send_encoded`) and its JSON."""


class MaximClient:
    """Sends entities to one Maxim destination. Thread-safe; `close()` when done (or use `with`)."""

    def __init__(
        self,
        destination: Destination,
        options: ClientOptions = ClientOptions(),
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """`clock`: monotonic seconds (deadlines); `sleep(seconds)`: the backoff wait (default: interruptible
        `Event.wait`); `wall_clock`: epoch seconds (Retry-After dates, dead-letter times); `random`: jitter."""
        self.destination = destination
        self.options = options
        self._clock = clock
        self._interrupted = threading.Event()
        self._sleep = sleep if sleep is not None else self._interrupted.wait
        self._wall_clock = wall_clock
        self._random = random
        self._auth_reported = False
        self._dead_letters = (
            DeadLetterFile(options.dead_letter_path, wall_clock=wall_clock) if options.dead_letter_path else None
        )
        self._envelope_head = b'{"repoId":' + orjson.dumps(destination.repo_id) + b',"logs":['
        self._http = httpx.Client(
            base_url=destination.base_url,
            headers={
                "x-maxim-api-key": destination.api_key.reveal(),
                "content-type": "application/json",
                "user-agent": f"maxim-otel-bridge/{__version__}",
            },
            timeout=options.timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"MaximClient(base_url={self.destination.base_url!r}, repo_id={self.destination.repo_id!r})"

    def __enter__(self) -> MaximClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock `send(deadline=...)` is measured on."""
        return self._clock

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def interrupt(self) -> None:
        """Cut any backoff wait short, now and from now on: each batch then gets one attempt, no retries."""
        self._interrupted.set()

    def close(self) -> None:
        self.interrupt()
        self._http.close()

    # -- sending -----------------------------------------------------------------------------------

    def send(self, entities: Sequence[Mapping[str, Any]], *, deadline: float | None = None) -> SendResult:
        """Deliver `entities` in order. `deadline` is a time on `self.clock` after which no retry waits start
        (default: now + `options.retry_deadline`). Never raises for a network or server failure."""
        run = _Run(deadline if deadline is not None else self._clock() + self.options.retry_deadline)
        if self._http.is_closed:
            return SendResult(failed=tuple(entities), last_error="the client is closed")
        items: list[_Item] = []
        for entity in entities:
            try:
                items.append((entity, orjson.dumps(entity)))
            except (orjson.JSONEncodeError, TypeError) as exc:
                run.dead.append(DeadLetter(entity, f"entity is not JSON-serializable: {exc}"))
        return self._send_items(items, run)

    def send_encoded(self, entities: Sequence[bytes], *, deadline: float | None = None) -> SendResult:
        """Like `send`, for entities already serialized, each one JSON object (what the sidecar's mapping
        workers produce): they go into the request bodies as they are. `failed` holds the same bytes objects;
        an entity is parsed only to be written as a dead letter."""
        run = _Run(deadline if deadline is not None else self._clock() + self.options.retry_deadline)
        if self._http.is_closed:
            return SendResult(failed=tuple(entities), last_error="the client is closed")
        return self._send_items([(data, data) for data in entities], run)

    def _send_items(self, items: list[_Item], run: _Run) -> SendResult:
        overhead = len(self._envelope_head) + 2
        for batch in split_batches(
            [len(data) for _, data in items], self.options.max_batch_entities, self.options.max_batch_bytes, overhead
        ):
            chunk = items[batch.start : batch.stop]
            if run.stopped:
                run.failed.extend(entity for entity, _ in chunk)
            else:
                self._deliver(chunk, run)
        return self._finish(run)

    def _deliver(self, chunk: list[_Item], run: _Run) -> None:
        attempt = 0
        while True:
            answer = self._post(chunk, run)
            status = answer.status
            if status is not None and 200 <= status < 300:
                run.delivered += len(chunk)
                self._auth_reported = False
                return
            run.last_error = f"HTTP {status}: {answer.text}" if status is not None else answer.text
            if status in AUTH_STATUSES:
                self._report_auth(status)
                run.auth_failed = True
                self._give_up(chunk, run, log=False)
                return
            if status in REJECTED_STATUSES:
                self._isolate(chunk, answer, run)
                return
            if status is None or status in RETRYABLE_STATUSES:
                if answer.retry_after is not None:
                    run.retry_after = answer.retry_after
                wait = (
                    answer.retry_after
                    if answer.retry_after is not None
                    else self.options.backoff.delay(attempt, self._random)
                )
                if self._interrupted.is_set() or self._clock() + wait > run.deadline:
                    self._give_up(chunk, run)
                    return
                logger.warning(
                    "sending %d entities to Maxim failed (%s); retry %d in %.2fs",
                    len(chunk),
                    _short(run.last_error),
                    attempt + 1,
                    wait,
                )
                self._sleep(wait)
                if self._interrupted.is_set():
                    self._give_up(chunk, run)
                    return
                attempt += 1
                continue
            self._give_up(chunk, run)
            return

    def _isolate(self, chunk: list[_Item], answer: _Answer, run: _Run) -> None:
        """Bisect a refused batch: the halves the server takes are delivered, lone refused entities dead-lettered."""
        if len(chunk) == 1:
            entity, data = chunk[0]
            reason = f"HTTP {answer.status}: {answer.text}"
            run.dead.append(DeadLetter(orjson.loads(data) if isinstance(entity, bytes) else entity, reason))
            return
        middle = len(chunk) // 2
        for half in (chunk[:middle], chunk[middle:]):
            if run.stopped:
                run.failed.extend(entity for entity, _ in half)
            else:
                self._deliver(half, run)

    def _give_up(self, chunk: list[_Item], run: _Run, *, log: bool = True) -> None:
        run.failed.extend(entity for entity, _ in chunk)
        run.stopped = True
        if log:
            logger.warning("giving up on %d entities for now: %s", len(chunk), _short(run.last_error))

    def _report_auth(self, status: int) -> None:
        if self._auth_reported:
            logger.debug("Maxim still refuses the API key (HTTP %d)", status)
            return
        self._auth_reported = True
        logger.error(
            "Maxim refused the API key for log repository %r (HTTP %d): check MAXIM_API_KEY and "
            "MAXIM_LOG_REPO_ID; not retrying",
            self.destination.repo_id,
            status,
        )

    def _post(self, chunk: list[_Item], run: _Run) -> _Answer:
        body = self._envelope_head + b",".join(data for _, data in chunk) + b"]}"
        remaining = run.deadline - self._clock()
        timeout = min(self.options.timeout, max(remaining, MIN_ATTEMPT_TIMEOUT))
        try:
            response = self._http.post(BATCH_PATH, content=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            return _Answer(None, f"timed out after {timeout:.1f}s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Answer(None, f"{type(exc).__name__}: {exc}")
        text = response.text[:MAX_REASON_CHARS]
        retry_after = None
        if response.status_code in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._wall_clock())
        return _Answer(response.status_code, text, retry_after)

    def _finish(self, run: _Run) -> SendResult:
        if run.dead:
            self._write_dead_letters(run.dead)
        return SendResult(
            delivered=run.delivered,
            dead_lettered=tuple(str(letter.entity.get("id")) for letter in run.dead),
            failed=tuple(run.failed),
            retry_after=run.retry_after,
            auth_failed=run.auth_failed,
            last_error=run.last_error,
        )

    def _write_dead_letters(self, letters: list[DeadLetter]) -> None:
        where = str(self._dead_letters.path) if self._dead_letters is not None else "no dead-letter file configured"
        for letter in letters:
            logger.warning(
                "Maxim refused %s %s: %s (%s)",
                letter.entity.get("type"),
                letter.entity.get("id"),
                _short(letter.reason),
                where,
            )
        if self._dead_letters is not None:
            self._dead_letters.write(letters)


def _short(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
