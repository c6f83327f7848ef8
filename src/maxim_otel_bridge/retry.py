"""When to retry a request to Maxim, and how long to wait first.

Pure functions and one frozen policy: the client owns the retry loop, this module only answers
"is this retryable?" and "how long until the next attempt?".

The retryable set follows OTLP/HTTP (and the OTel Collector's exporterhelper): 429, 502, 503, 504, plus
connection errors and timeouts. A 500 is *not* retried in the loop: Maxim documents 500 as a response of the
batch endpoint without saying it is transient, and a 500 caused by the payload itself would otherwise be
re-sent until the deadline on every flush. The client reports it as `failed` (not delivered, not
dead-lettered), so the caller can try those entities again later.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone

__all__ = [
    "RETRYABLE_STATUSES",
    "REJECTED_STATUSES",
    "AUTH_STATUSES",
    "BackoffPolicy",
    "is_retryable_status",
    "parse_retry_after",
]

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses worth the same request again after a wait (OTLP/HTTP's list)."""

REJECTED_STATUSES = frozenset({400, 413, 422})
"""The server refuses (part of) the batch itself: split it to find the entities at fault."""

AUTH_STATUSES = frozenset({401, 403})
"""The key or repository is wrong: no retry can fix it."""


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Jittered exponential backoff: `initial * multiplier**attempt`, capped at `maximum`, then jittered.

    `jitter` is the randomization factor r: the wait is drawn uniformly from [d*(1-r), d*(1+r)]
    (the Collector's `randomization_factor`), which spreads the retries of many clients apart.
    """

    initial: float = 1.0
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "multiplier", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"backoff {name} must be a finite number, got {value!r}")
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first failure)."""
        base = min(self.maximum, self.initial * self.multiplier ** min(attempt, 64))
        return base * (1 - self.jitter + 2 * self.jitter * random())


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable.

    `now` is the wall-clock time (epoch seconds) an HTTP date is measured against. A date in the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            # HTTP dates are always GMT (RFC 9110 section 5.6.7), even when the zone is written -0000.
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
