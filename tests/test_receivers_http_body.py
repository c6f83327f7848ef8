"""Request body reading for the HTTP receiver: framing, the size cap at every step, deadlines, decompression."""

from __future__ import annotations

import gzip
import io
import time
import zlib

import pytest

from maxim_otel_bridge.sidecar.http_body import (
    CONTENT_ENCODINGS,
    BadFraming,
    BodyTimeout,
    BodyTooLarge,
    decompress,
    read_chunked_body,
    read_sized_body,
)

LATER = float("inf")


def stream(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


# -- Content-Length ---------------------------------------------------------------------------------------


def test_sized_body_reads_exactly_the_declared_length() -> None:
    source = stream(b"hello world, and the next request")
    assert read_sized_body(source, "11", 100, LATER) == b"hello world"
    assert source.read() == b", and the next request"


def test_sized_body_over_the_limit_is_refused_unread() -> None:
    source = stream(b"x" * 50)
    with pytest.raises(BodyTooLarge):
        read_sized_body(source, "50", 49, LATER)
    assert source.read() == b"x" * 50


@pytest.mark.parametrize(
    ("length", "status", "message"),
    [
        (None, 411, "Content-Length (or chunked transfer encoding) is required"),
        ("ten", 400, "invalid Content-Length 'ten'"),
        ("-5", 400, "invalid Content-Length '-5'"),
    ],
)
def test_sized_body_with_a_bad_length(length: str | None, status: int, message: str) -> None:
    with pytest.raises(BadFraming, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read_sized_body(stream(b"data"), length, 100, LATER)
    assert caught.value.status == status


def test_sized_body_cut_short_or_late() -> None:
    with pytest.raises(BadFraming, match="connection closed before the whole body arrived"):
        read_sized_body(stream(b"short"), "10", 100, LATER)
    with pytest.raises(BodyTimeout):
        read_sized_body(stream(b"0123456789"), "10", 100, time.monotonic() - 1)
    assert read_sized_body(stream(b""), "0", 100, time.monotonic() - 1) == b""  # nothing to wait for


# -- chunked ------------------------------------------------------------------------------------------------


def test_chunked_body_with_extensions_and_trailers() -> None:
    source = stream(b"5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\nNEXT")
    assert read_chunked_body(source, 100, LATER) == b"hello world"
    assert source.read() == b"NEXT"


def test_chunked_body_is_capped_as_it_arrives() -> None:
    source = stream(b"a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n")
    with pytest.raises(BodyTooLarge):
        read_chunked_body(source, 15, LATER)
    with pytest.raises(BodyTooLarge):  # a huge declared chunk is refused before its data is read
        read_chunked_body(stream(b"ffffffffffff\r\n"), 1 << 20, LATER)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"zz\r\n", "malformed chunk size"),
        (b"-1\r\n", "malformed chunk size"),
        (b"5", "malformed chunk header"),
        (b"5" * 2000 + b"\r\n", "malformed chunk header"),
        (b"5\r\nhelloXX0\r\n\r\n", "malformed chunk terminator"),
        (b"5\r\nhel", "connection closed before the whole body arrived"),
        (b"0\r\n" + b"X-T: 1\r\n" * 101, "too many trailer fields"),
    ],
)
def test_chunked_body_framing_errors(data: bytes, message: str) -> None:
    with pytest.raises(BadFraming, match=message):
        read_chunked_body(stream(data), 1 << 20, LATER)


# -- decompression ---------------------------------------------------------------------------------------------


BODY = b"OTLP body " * 1000


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def test_supported_encodings() -> None:
    assert CONTENT_ENCODINGS == {"identity", "", "gzip", "x-gzip", "deflate"}


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("identity", BODY),
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY[:4000]) + gzip.compress(BODY[4000:])),  # several members
        ("gzip", gzip.compress(BODY) + b"\0" * 16),  # zero padding after the last member
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate(BODY)),  # no zlib header, as some clients send it
    ],
)
def test_decompress_each_encoding(encoding: str, data: bytes) -> None:
    assert decompress(encoding, data, len(BODY)) == BODY


def test_decompression_stops_at_the_limit() -> None:
    assert decompress("gzip", gzip.compress(BODY), len(BODY)) == BODY  # exactly the limit is fine
    with pytest.raises(BodyTooLarge):
        decompress("gzip", gzip.compress(BODY), len(BODY) - 1)
    with pytest.raises(BodyTooLarge):  # the second member crosses the limit
        decompress("gzip", gzip.compress(BODY) + gzip.compress(b"x"), len(BODY))
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < 100_000  # a thousand times smaller than what it inflates to
    with pytest.raises(BodyTooLarge):
        decompress("gzip", bomb, 1 << 20)


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", b"not compressed at all"),
        ("gzip", gzip.compress(BODY)[:-12]),
        ("gzip", gzip.compress(BODY) + b"trailing junk"),
        ("deflate", b"\xff\xfe garbage"),
        ("gzip", b""),
    ],
)
def test_corrupt_compressed_data_is_a_zlib_error(encoding: str, data: bytes) -> None:
    with pytest.raises(zlib.error):
        decompress(encoding, data, 1 << 20)
