"""Junk never breaks the decoder: any bytes or any JSON gives records or MalformedRequest, nothing else."""

from __future__ import annotations

import json

import orjson
from fakes.otlp_requests import RICH_JSON, rich_request_pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxim_otel_bridge.record import SpanRecord
from maxim_otel_bridge.sidecar.otlp_decode import (
    DecodedSpans,
    MalformedRequest,
    decode_encoded_spans,
    decode_trace_request_json,
    decode_trace_request_protobuf,
    join_encoded_spans,
    split_trace_request_protobuf,
)

RICH_PB = rich_request_pb().SerializeToString()
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_refuse(decode, body: bytes) -> DecodedSpans | None:
    try:
        decoded = decode(body)
    except MalformedRequest as exc:
        assert str(exc)  # a refusal always says why
        return None
    for record in decoded.records:
        assert isinstance(record, SpanRecord)
        assert len(record.trace_id) == 32 and len(record.span_id) == 16
        assert record.parent_span_id is None or len(record.parent_span_id) == 16
        orjson.dumps(record.to_json_obj())  # JSON-typed all the way down
    assert decoded.rejected >= 0
    assert bool(decoded.error_message) >= bool(decoded.rejected)
    return decoded


@FAST
@given(st.binary(max_size=2048))
def test_any_bytes_as_protobuf(body: bytes) -> None:
    decode_or_refuse(decode_trace_request_protobuf, body)


@FAST
@given(st.integers(min_value=0, max_value=len(RICH_PB) - 1), st.integers(min_value=0, max_value=255))
def test_a_real_request_with_one_byte_changed_or_cut(position: int, byte: int) -> None:
    mutated = RICH_PB[:position] + bytes([byte]) + RICH_PB[position + 1 :]
    decode_or_refuse(decode_trace_request_protobuf, mutated)
    decode_or_refuse(decode_trace_request_protobuf, RICH_PB[:position])


def split_agrees_with_decoding(body: bytes) -> None:
    """Splitting refuses, rejects and reports exactly as decoding does, and its spans decode to the same records."""
    decoded = decode_or_refuse(decode_trace_request_protobuf, body)
    try:
        split = split_trace_request_protobuf(body)
    except MalformedRequest:
        assert decoded is None
        return
    assert decoded is not None
    assert (split.rejected, split.error_message) == (decoded.rejected, decoded.error_message)
    records = decode_encoded_spans(join_encoded_spans(split.records)) if split.records else []
    assert repr(records) == repr(list(decoded.records))  # repr: a mutated double may be NaN, never equal to itself


@FAST
@given(st.integers(min_value=0, max_value=len(RICH_PB) - 1), st.integers(min_value=0, max_value=255))
def test_split_agrees_with_decoding_on_a_request_with_one_byte_changed_or_cut(position: int, byte: int) -> None:
    split_agrees_with_decoding(RICH_PB[:position] + bytes([byte]) + RICH_PB[position + 1 :])
    split_agrees_with_decoding(RICH_PB[:position])


@FAST
@given(st.binary(max_size=2048))
def test_split_agrees_with_decoding_on_any_bytes(body: bytes) -> None:
    split_agrees_with_decoding(body)


@FAST
@given(st.binary(max_size=2048))
def test_any_bytes_as_json(body: bytes) -> None:
    decode_or_refuse(decode_trace_request_json, body)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)


def replace_somewhere(document: object, path: list[int], junk: object) -> object:
    """Replace one node of `document` (chosen by `path`) with `junk`."""
    if not path or not isinstance(document, (dict, list)) or not document:
        return junk
    if isinstance(document, dict):
        key = sorted(document)[path[0] % len(document)]
        return {**document, key: replace_somewhere(document[key], path[1:], junk)}
    index = path[0] % len(document)
    return [*document[:index], replace_somewhere(document[index], path[1:], junk), *document[index + 1 :]]


@FAST
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=12), json_values)
def test_a_real_json_request_with_any_node_replaced_by_junk(path: list[int], junk: object) -> None:
    document = replace_somewhere(RICH_JSON, path, junk)
    # The stdlib encoder: unlike orjson it writes integers past 64 bits, which a client may send.
    decode_or_refuse(decode_trace_request_json, json.dumps(document).encode())
