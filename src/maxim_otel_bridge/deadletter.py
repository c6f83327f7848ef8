"""The dead-letter file: entities Maxim refused, kept with the reason instead of being lost.

One JSON line per entity: `{"time": ISO 8601 UTC, "reason": the server's answer, "entity": {...}}`, so a
person can read why, fix the cause, and re-send the lines. The file holds user data (prompts, outputs):
its directory is created 0700 and the file 0600.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

__all__ = ["DeadLetter", "DeadLetterFile", "read_dead_letters"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused entity and why."""

    entity: Mapping[str, Any]
    reason: str


class DeadLetterFile:
    """Appends dead letters to a JSONL file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str], *, wall_clock: Callable[[], float] | None = None) -> None:
        self.path = Path(path)
        self._now = wall_clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DeadLetterFile({str(self.path)!r})"

    def write(self, letters: Iterable[DeadLetter]) -> int:
        """Append the letters; returns how many were written (0 and an error log when the file cannot be written)."""
        now = self._now() if self._now is not None else None
        stamp = datetime.fromtimestamp(now, timezone.utc) if now is not None else datetime.now(timezone.utc)
        time_text = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        # Entities that cannot be serialized as they are still get a line (odd values as their repr).
        lines = [
            orjson.dumps(
                {"time": time_text, "reason": letter.reason, "entity": letter.entity},
                default=repr,
                option=orjson.OPT_NON_STR_KEYS,
            )
            + b"\n"
            for letter in letters
        ]
        if not lines:
            return 0
        try:
            with self._lock:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "ab") as handle:
                    # One write per call: concurrent appenders (another process) never interleave inside a line.
                    handle.write(b"".join(lines))
        except OSError as exc:
            logger.error("could not write %d dead letter(s) to %s: %s", len(lines), self.path, exc)
            return 0
        return len(lines)


def read_dead_letters(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The lines of a dead-letter file, parsed (a missing file has none)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)
