"""Reading an HTTP request body from an untrusted client: framing, size cap, deadline, decompression.

Pure of the HTTP server: functions over a buffered stream and bytes, so each rule is tested directly
(`tests/test_receivers_http_body.py`). Every failure is one of three exceptions the receiver turns
into an answer: `BodyTooLarge` (413), `BadFraming` (400 / 411), `BodyTimeout` (408); corrupt compressed
data raises `zlib.error` (400).

The size cap holds at every step: a declared length over the cap is refused before reading, chunked
bodies are counted as they arrive, and decompression runs in steps whose output is capped, so a small
gzip body that would inflate to gigabytes stops at the cap.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable

__all__ = [
    "CONTENT_ENCODINGS",
    "BadFraming",
    "BodyTimeout",
    "BodyTooLarge",
    "decompress",
    "read_chunked_body",
    "read_sized_body",
]

_READ_CHUNK = 64 * 1024
_MAX_CHUNK_LINE = 1024
_MAX_TRAILER_LINES = 100


class BodyTooLarge(Exception):
    """The body is (or would decompress to) more than the cap."""


class BodyTimeout(Exception):
    """The body did not arrive before the deadline."""


class BadFraming(Exception):
    """The body's framing is wrong; `status` is the HTTP status to answer (400, or 411 for no length)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _read_exactly(stream: io.BufferedIOBase, size: int, deadline: float) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        # The socket's own timeout bounds each read; the deadline bounds a body that trickles in.
        if time.monotonic() > deadline:
            raise BodyTimeout
        chunk = stream.read1(min(remaining, _READ_CHUNK))
        if not chunk:
            raise BadFraming("connection closed before the whole body arrived")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_sized_body(
    stream: io.BufferedIOBase, content_length: str | None, limit: int, deadline: float
) -> bytes:
    """A body framed by `Content-Length`."""
    if content_length is None:
        raise BadFraming("Content-Length (or chunked transfer encoding) is required", 411)
    try:
        length = int(content_length)
    except ValueError:
        raise BadFraming(f"invalid Content-Length {content_length[:40]!r}") from None
    if length < 0:
        raise BadFraming(f"invalid Content-Length {content_length[:40]!r}")
    # A compressed body larger than the limit would decompress to more still: refuse it unread.
    if length > limit:
        raise BodyTooLarge
    return _read_exactly(stream, length, deadline)


def read_chunked_body(stream: io.BufferedIOBase, limit: int, deadline: float) -> bytes:
    """A body in chunked transfer encoding; chunk extensions and trailer fields are read and ignored."""
    chunks = []
    total = 0
    while True:
        line = stream.readline(_MAX_CHUNK_LINE)
        if not line.endswith(b"\n"):
            raise BadFraming("malformed chunk header")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadFraming("malformed chunk size") from None
        if size < 0:
            raise BadFraming("malformed chunk size")
        if size == 0:
            break
        total += size
        if total > limit:
            raise BodyTooLarge
        chunks.append(_read_exactly(stream, size, deadline))
        if stream.read(2) != b"\r\n":
            raise BadFraming("malformed chunk terminator")
    for _ in range(_MAX_TRAILER_LINES):
        if stream.readline(8192) in (b"\r\n", b"\n", b""):
            return b"".join(chunks)
    raise BadFraming("too many trailer fields")


def _inflate(data: bytes, limit: int, wbits: int) -> bytes:
    """Decompress at most `limit` bytes out; concatenated gzip members are all read (RFC 1952)."""
    out = bytearray()
    while True:
        decompressor = zlib.decompressobj(wbits)
        # max_length caps each step's output, so a bomb is stopped at the limit, not after expanding.
        # (It is always at least 1 here: 0 would mean "no cap".)
        out += decompressor.decompress(data, limit + 1 - len(out))
        while decompressor.unconsumed_tail and len(out) <= limit:
            out += decompressor.decompress(decompressor.unconsumed_tail, limit + 1 - len(out))
        if len(out) > limit:
            raise BodyTooLarge
        if not decompressor.eof:
            raise zlib.error("truncated compressed data")
        data = decompressor.unused_data
        if not data.strip(b"\0"):  # some writers pad the last member with zeros
            return bytes(out)


def _gunzip(data: bytes, limit: int) -> bytes:
    return _inflate(data, limit, 16 + zlib.MAX_WBITS)


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate: accept both.
    try:
        return _inflate(data, limit, zlib.MAX_WBITS)
    except zlib.error:
        return _inflate(data, limit, -zlib.MAX_WBITS)


_DECOMPRESSORS: dict[str, Callable[[bytes, int], bytes] | None] = {
    "identity": None,
    "": None,
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _deflate,
}

CONTENT_ENCODINGS = frozenset(_DECOMPRESSORS)
"""`Content-Encoding` values understood (lowercase)."""


def decompress(encoding: str, data: bytes, limit: int) -> bytes:
    """`data` decoded per `encoding` (one of CONTENT_ENCODINGS), at most `limit` bytes."""
    decoder = _DECOMPRESSORS[encoding]
    return data if decoder is None else decoder(data, limit)
