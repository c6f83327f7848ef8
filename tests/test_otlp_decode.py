"""OTLP decoding: protobuf and OTLP/JSON requests -> SpanRecords, the same records as the SDK path."""

from __future__ import annotations

import copy
import math

import orjson
import pytest
from fakes.otlp_requests import (
    CHILD,
    RICH_JSON,
    RICH_RECORDS,
    ROOT,
    TRACE,
    kv,
    request_pb,
    rich_request_pb,
    s,
    span_pb,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanPb
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from maxim_otel_bridge.record import from_readable_span
from maxim_otel_bridge.sidecar.otlp_decode import (
    MalformedRequest,
    decode_encoded_spans,
    decode_trace_request_json,
    decode_trace_request_protobuf,
    join_encoded_spans,
    split_trace_request_protobuf,
)

TID = bytes.fromhex(TRACE)
SID = bytes.fromhex(ROOT)


def json_body(document: object) -> bytes:
    return orjson.dumps(document)


def rich_span_json() -> dict:
    return copy.deepcopy(RICH_JSON["resourceSpans"][0]["scopeSpans"][1]["spans"][0])


def json_request(*spans: object) -> bytes:
    return json_body({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]})


# -- both encodings, every field ------------------------------------------------------------------------


def test_protobuf_request_decodes_every_field_and_value_type() -> None:
    decoded = decode_trace_request_protobuf(rich_request_pb().SerializeToString())
    assert decoded.records == RICH_RECORDS
    assert (decoded.rejected, decoded.error_message) == (0, "")


def test_hand_written_otlp_json_decodes_to_the_same_records_as_protobuf() -> None:
    decoded = decode_trace_request_json(json_body(RICH_JSON))
    assert decoded.records == RICH_RECORDS
    assert decoded.records == decode_trace_request_protobuf(rich_request_pb().SerializeToString()).records


def test_records_from_the_sdk_encoder_equal_the_in_process_records() -> None:
    """What the official OTLP exporters send decodes to exactly what `from_readable_span` makes in process."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "svc", "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope.name", "9.9")
    with tracer.start_as_current_span("other") as other:
        link_context = other.get_span_context()
    attributes = {
        "s": "text",
        "b": False,
        "i": -(2**40),
        "f": 3.5,
        "bytes": b"\x00\xff",
        "strs": ["x", "y"],
        "ints": [1, 2, 3],
        "floats": [0.5],
        "bools": [True, False],
    }
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("evt", {"k": "v", "n": 1})
        with tracer.start_as_current_span(
            "child", kind=SpanKind.CONSUMER, links=[Link(link_context, {"why": "x"})]
        ) as c:
            c.set_status(Status(StatusCode.ERROR, "broken"))
    provider.shutdown()
    spans = memory.get_finished_spans()
    body = encode_spans(spans).SerializeToString()

    decoded = decode_trace_request_protobuf(body)

    assert sorted(decoded.records, key=lambda r: r.span_id) == sorted(
        (from_readable_span(span) for span in spans), key=lambda r: r.span_id
    )
    assert decoded.rejected == 0


def test_spans_of_different_resources_keep_their_own_resource() -> None:
    memory = InMemorySpanExporter()
    for service in ("a", "b", "a"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer("t").start_as_current_span(service):
            pass

    records = [from_readable_span(span) for span in memory.get_finished_spans()]

    assert [(r.name, r.resource["service.name"]) for r in records] == [("a", "a"), ("b", "b"), ("a", "a")]


def test_empty_requests_decode_to_nothing() -> None:
    for decoded in (
        decode_trace_request_protobuf(b""),
        decode_trace_request_json(b"{}"),
        decode_trace_request_json(b'{"resourceSpans": []}'),
        decode_trace_request_json(b'{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}'),
    ):
        assert decoded.records == ()
        assert decoded.rejected == 0


# -- invalid spans: rejected one by one, the rest kept ----------------------------------------------------


@pytest.mark.parametrize(
    ("trace_id", "span_id", "parent", "reason"),
    [
        (bytes(16), SID, b"", "trace_id is all zeros"),
        (TID[:8], SID, b"", "trace_id must be 16 bytes, got 8"),
        (b"", SID, b"", "trace_id must be 16 bytes, got 0"),
        (TID, bytes(8), b"", "span_id is all zeros"),
        (TID, SID[:7], b"", "span_id must be 8 bytes, got 7"),
        (TID, SID, b"\x01\x02", "parent_span_id must be empty or 8 bytes, got 2"),
    ],
)
def test_protobuf_span_with_bad_ids_is_rejected_and_the_others_kept(
    trace_id: bytes, span_id: bytes, parent: bytes, reason: str
) -> None:
    good = span_pb("good", TID, bytes.fromhex(CHILD))
    bad = span_pb("bad", trace_id, span_id, parent)
    decoded = decode_trace_request_protobuf(request_pb(good, bad, good).SerializeToString())
    assert [r.name for r in decoded.records] == ["good", "good"]
    assert decoded.rejected == 1
    assert decoded.error_message == f"span 'bad': {reason}"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("traceId", "00000000000000000000000000000000", "traceId is all zeros"),
        ("traceId", "W47/95gDgQPSabYzgT/GDA==", "traceId must be 32 hex digits"),  # base64, not hex
        ("traceId", TRACE[:-1] + "g", "traceId must be 32 hex digits"),
        ("traceId", None, "traceId must be a hex string, got NoneType"),
        ("spanId", "eee19b7e", "spanId must be 16 hex digits"),
        ("spanId", 12345, "spanId must be a hex string, got int"),
        ("parentSpanId", "abc", "parentSpanId must be 16 hex digits"),
        ("attributes", {"k": "v"}, "attributes must be a list, got dict"),
        ("startTimeUnixNano", "soon", "startTimeUnixNano must be an integer"),
        ("startTimeUnixNano", -1, "startTimeUnixNano is out of range"),
        ("kind", True, "kind must be an integer, got a boolean"),
        ("name", 5, "name must be a string, got int"),
    ],
)
def test_json_span_with_a_bad_field_is_rejected_and_the_others_kept(
    field: str, value: object, reason: str
) -> None:
    bad = rich_span_json()
    bad["name"] = "bad"
    bad[field] = value
    decoded = decode_trace_request_json(json_request(rich_span_json(), bad, "not an object"))
    assert [r.name for r in decoded.records] == ["chat gpt-4o"]
    assert decoded.rejected == 2
    assert reason in decoded.error_message
    assert "must be an object, got str" in decoded.error_message


def test_an_all_zero_parent_means_root_in_both_encodings() -> None:
    pb = decode_trace_request_protobuf(request_pb(span_pb("r", TID, SID, bytes(8))).SerializeToString())
    span = rich_span_json()
    span["parentSpanId"] = "0000000000000000"
    js = decode_trace_request_json(json_request(span))
    assert pb.records[0].parent_span_id is None
    assert js.records[0].parent_span_id is None


def test_a_link_with_bad_ids_is_dropped_and_said_so_but_the_span_is_kept() -> None:
    span = span_pb("linked", TID, SID)
    span.links.append(SpanPb.Link(trace_id=bytes(16), span_id=SID))
    span.links.append(SpanPb.Link(trace_id=TID, span_id=bytes.fromhex(CHILD)))
    decoded = decode_trace_request_protobuf(request_pb(span).SerializeToString())
    assert decoded.rejected == 0
    assert [link.span_id for link in decoded.records[0].links] == [CHILD]
    assert decoded.error_message == "span 'linked': dropped a link: trace_id is all zeros"

    js = rich_span_json()
    js["links"] = [{"traceId": TRACE, "spanId": "short"}, {"traceId": TRACE, "spanId": CHILD}]
    decoded = decode_trace_request_json(json_request(js))
    assert decoded.rejected == 0
    assert [link.span_id for link in decoded.records[0].links] == [CHILD]
    assert "dropped a link: spanId must be 16 hex digits" in decoded.error_message


def test_many_problems_are_summarized_not_listed_in_full() -> None:
    bad = [span_pb(f"bad{i}", bytes(16), SID) for i in range(12)]
    decoded = decode_trace_request_protobuf(request_pb(*bad).SerializeToString())
    assert decoded.rejected == 12
    assert decoded.error_message.count("trace_id is all zeros") == 5
    assert decoded.error_message.endswith("; and 7 more")


# -- malformed bodies: the whole request is refused with a reason ---------------------------------------------


def test_garbage_and_truncated_protobuf_are_malformed() -> None:
    body = rich_request_pb().SerializeToString()
    for junk in (b"\xff\xff\xff\xff\xff", body[: len(body) // 2], b"\x0a\x05ab"):
        with pytest.raises(MalformedRequest, match="not a valid OTLP protobuf trace request"):
            decode_trace_request_protobuf(junk)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"resourceSpans": {}}', "resourceSpans must be a list"),
        (b'{"resourceSpans": [5]}', "resourceSpans[0]: resourceSpans item must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": "x"}]}', "resourceSpans[0]: scopeSpans must be a list"),
        (
            b'{"resourceSpans": [{"resource": {"attributes": [{"key": 1}]}}]}',
            "attribute key must be a string",
        ),
    ],
)
def test_malformed_json_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedRequest, match=reason.replace("[", r"\[").replace("]", r"\]")):
        decode_trace_request_json(body)


# -- values -------------------------------------------------------------------------------------------------------


def json_value(value: object) -> object:
    span = rich_span_json()
    span["attributes"] = [{"key": "v", "value": value}]
    decoded = decode_trace_request_json(json_request(span))
    assert decoded.rejected == 0, decoded.error_message
    return decoded.records[0].attributes.get("v")


def test_json_int64_as_string_or_number_and_special_doubles() -> None:
    assert json_value({"intValue": "9223372036854775807"}) == 2**63 - 1
    assert json_value({"intValue": 12}) == 12
    assert json_value({"doubleValue": 2}) == 2.0
    assert json_value({"doubleValue": "Infinity"}) == math.inf
    assert math.isnan(json_value({"doubleValue": "NaN"}))  # type: ignore[arg-type]
    assert json_value({"bytesValue": "-_8="}) == "+/8="  # URL-safe base64 is accepted, stored standard
    assert json_value({}) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"intValue": "9223372036854775808"}, "intValue is out of range"),
        ({"intValue": 1.5}, "intValue must be an integer"),
        ({"boolValue": "true"}, "boolValue must be true or false"),
        ({"doubleValue": "fast"}, "doubleValue must be a number"),
        ({"bytesValue": "not base64!"}, "bytesValue is not valid base64"),
        ({"arrayValue": []}, "arrayValue must be an object"),
    ],
)
def test_json_bad_values_reject_only_their_span(value: object, reason: str) -> None:
    bad = rich_span_json()
    bad["attributes"] = [{"key": "v", "value": value}]
    decoded = decode_trace_request_json(json_request(bad, rich_span_json()))
    assert len(decoded.records) == 1
    assert decoded.rejected == 1
    assert reason in decoded.error_message


def test_unknown_kind_and_status_fall_back_and_json_enum_names_are_understood() -> None:
    span = span_pb("odd", TID, SID)
    span.kind = 42  # type: ignore[assignment]
    span.status.code = 9  # type: ignore[assignment]
    record = decode_trace_request_protobuf(request_pb(span).SerializeToString()).records[0]
    assert (record.kind, record.status_code) == (0, 0)

    named = rich_span_json()
    named["kind"] = "SPAN_KIND_PRODUCER"
    named["status"] = {"code": "STATUS_CODE_ERROR", "message": "m"}
    record = decode_trace_request_json(json_request(named)).records[0]
    assert (record.kind, record.status_code, record.status_message) == (4, 2, "m")


def test_repeated_attribute_keys_keep_the_last_value_in_both_encodings() -> None:
    span = span_pb("dup", TID, SID, attributes=[kv("k", s("first")), kv("k", AnyValue(int_value=2))])
    assert decode_trace_request_protobuf(request_pb(span).SerializeToString()).records[0].attributes == {
        "k": 2
    }
    js = rich_span_json()
    js["attributes"] = [
        {"key": "k", "value": {"stringValue": "first"}},
        {"key": "k", "value": {"intValue": "2"}},
    ]
    assert decode_trace_request_json(json_request(js)).records[0].attributes == {"k": 2}


def test_huge_attribute_values_pass_through_whole() -> None:
    big = "x" * 3_000_000
    body = request_pb(span_pb("big", TID, SID, attributes=[kv("payload", s(big))])).SerializeToString()
    assert decode_trace_request_protobuf(body).records[0].attributes["payload"] == big


def test_resource_attributes_are_shared_by_the_spans_of_one_resource() -> None:
    request = request_pb(
        span_pb("a", TID, SID),
        span_pb("b", TID, bytes.fromhex(CHILD)),
        resource=[kv("service.name", s("svc"))],
    )
    decoded = decode_trace_request_protobuf(request.SerializeToString())
    assert [r.resource for r in decoded.records] == [{"service.name": "svc"}] * 2
    assert all(r.scope_name == "tests" for r in decoded.records)


def test_decoder_accepts_what_the_generated_request_type_serializes() -> None:
    # A request with several resources: records keep the order of the request.
    request = ExportTraceServiceRequest()
    request.resource_spans.extend(request_pb(span_pb("first", TID, SID)).resource_spans)
    request.resource_spans.extend(request_pb(span_pb("second", TID, bytes.fromhex(CHILD))).resource_spans)
    decoded = decode_trace_request_protobuf(request.SerializeToString())
    assert [r.name for r in decoded.records] == ["first", "second"]


def test_problem_messages_cut_long_span_names_short() -> None:
    bad = span_pb("n" * 10_000, bytes(16), SID)
    decoded = decode_trace_request_protobuf(request_pb(bad).SerializeToString())
    assert (
        decoded.error_message == "span '" + "n" * 76 + "...: trace_id is all zeros"
    )  # the name's repr: 80 chars


# -- split: the protobuf receivers' path, checked like decoding, decoded where the span is mapped -------------


def _split_then_decoded(body: bytes) -> tuple[list, int, str]:
    split = split_trace_request_protobuf(body)
    records = decode_encoded_spans(join_encoded_spans(split.records)) if split.records else []
    return records, split.rejected, split.error_message


def test_split_spans_decode_to_the_same_records_alone_or_concatenated() -> None:
    body = rich_request_pb().SerializeToString()
    split = split_trace_request_protobuf(body)
    assert [decode_encoded_spans(s.data)[0] for s in split.records] == list(RICH_RECORDS)
    assert _split_then_decoded(body) == (list(RICH_RECORDS), 0, "")
    assert [(s.trace_id, s.span_id, s.parent_span_id) for s in split.records] == [
        (r.trace_id, r.span_id, r.parent_span_id) for r in RICH_RECORDS
    ]


def test_joined_spans_write_each_resource_and_scope_once_per_run_and_decode_in_order() -> None:
    first = rich_request_pb()
    second = request_pb(span_pb("other", TID, bytes.fromhex(CHILD)), span_pb("third", TID, SID))
    second.resource_spans[0].resource.attributes.add(key="service.name", value=s("second"))
    a = split_trace_request_protobuf(first.SerializeToString()).records
    b = split_trace_request_protobuf(second.SerializeToString()).records
    mixed = [*a[:2], *b[:1], *a[2:], *b[1:]]
    expected = [
        *decode_trace_request_protobuf(first.SerializeToString()).records[:2],
        decode_trace_request_protobuf(second.SerializeToString()).records[0],
        *decode_trace_request_protobuf(first.SerializeToString()).records[2:],
        decode_trace_request_protobuf(second.SerializeToString()).records[1],
    ]
    joined = join_encoded_spans(mixed)
    assert decode_encoded_spans(joined) == expected
    request = ExportTraceServiceRequest.FromString(joined)
    pairs = list(zip(mixed, mixed[1:]))
    scope_runs = 1 + sum(x.resource is not y.resource or x.scope is not y.scope for x, y in pairs)
    resource_runs = 1 + sum(x.resource is not y.resource for x, y in pairs)
    assert len(mixed) > scope_runs
    assert sum(len(r.scope_spans) for r in request.resource_spans) == scope_runs
    assert len(request.resource_spans) == resource_runs
    assert len(joined) < len(b"".join(span.data for span in mixed))  # each alone repeats its resource and scope


def test_split_rejects_drops_and_reports_exactly_what_decoding_does() -> None:
    good = span_pb("good", TID, bytes.fromhex(CHILD))
    linked = span_pb("linked", TID, SID)
    linked.links.append(SpanPb.Link(trace_id=bytes(16), span_id=SID))
    linked.links.append(SpanPb.Link(trace_id=TID, span_id=bytes.fromhex(CHILD)))
    bad = [span_pb(f"bad{i}", bytes(16), SID) for i in range(7)]
    body = request_pb(good, span_pb("short", TID, SID[:7]), linked, *bad, good).SerializeToString()
    decoded = decode_trace_request_protobuf(body)
    assert decoded.rejected == 8 and "dropped a link" in decoded.error_message
    assert _split_then_decoded(body) == (list(decoded.records), decoded.rejected, decoded.error_message)


def test_split_keeps_the_kind_as_sent_for_the_spool_and_decoding_normalizes_it() -> None:
    span = span_pb("odd kind", TID, SID)
    span.kind = 42
    body = request_pb(span).SerializeToString()
    [encoded] = split_trace_request_protobuf(body).records
    assert encoded.kind == 42
    assert decode_encoded_spans(encoded.data) == list(decode_trace_request_protobuf(body).records)


def test_a_string_table_index_value_counts_as_unset_on_both_paths() -> None:
    # `string_value_strindex` points into a profiles request's string table: trace requests have none.
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=TID, span_id=SID, name="s")
    span.attributes.add(key="plain", value=AnyValue(string_value="kept"))
    span.attributes.add(key="indexed", value=AnyValue(string_value_strindex=3))
    listed = AnyValue(kvlist_value={"values": [{"key": "k", "value": {"string_value_strindex": 1}}]})
    span.attributes.add(key="listed", value=listed)
    body = request.SerializeToString()

    decoded = decode_trace_request_protobuf(body)
    split = split_trace_request_protobuf(body)
    from_split = decode_encoded_spans(join_encoded_spans(split.records))

    assert decoded.rejected == split.rejected == 0
    for record in (decoded.records[0], from_split[0]):
        assert record.attributes == {"plain": "kept", "listed": {"k": None}}
