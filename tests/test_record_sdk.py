"""`from_readable_span` reads finished SDK spans without the SDK's copying accessors, and gives the same record."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind

from maxim_otel_bridge.record import from_readable_span, normalize_attributes, normalize_value

_PUBLIC = (
    "name", "context", "parent", "kind", "start_time", "end_time", "status", "attributes", "events", "links",
    "resource", "instrumentation_scope",
)  # fmt: skip


class PublicOnly:
    """A span that offers only the public `ReadableSpan` properties (as another SDK version might)."""

    def __init__(self, span: ReadableSpan) -> None:
        for name in _PUBLIC:
            setattr(self, name, getattr(span, name))


def finished_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope", "1.0")
    with tracer.start_as_current_span("other") as other:
        linked = other.get_span_context()
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"s": "x", "n": 1}) as root:
        root.add_event("evt", {"k": "v", "list": ["a", "b"]})
        with tracer.start_as_current_span("child", links=[Link(linked, {"why": "x"})]) as child:
            child.set_attribute("tuple", ("a", "b"))
            child.set_attribute("bytes", b"\x00\xff")
    return list(memory.get_finished_spans())


def test_finished_spans_give_the_records_the_public_accessors_give() -> None:
    spans = finished_spans()
    records = [from_readable_span(span) for span in spans]
    assert records == [from_readable_span(PublicOnly(span)) for span in spans]  # type: ignore[arg-type]
    root = next(r for r in records if r.name == "root")
    child = next(r for r in records if r.name == "child")
    assert root.attributes == {"s": "x", "n": 1}
    assert [(e.name, dict(e.attributes)) for e in root.events] == [("evt", {"k": "v", "list": ["a", "b"]})]
    assert child.attributes == {"tuple": ["a", "b"], "bytes": "AP8="}
    assert [dict(link.attributes) for link in child.links] == [{"why": "x"}]


def test_records_do_not_share_the_span_attributes() -> None:
    span = finished_spans()[-1]
    record = from_readable_span(span)
    assert record.attributes is not span._attributes._dict  # type: ignore[attr-defined]
    assert record.attributes == dict(span.attributes)


def test_a_live_span_is_read_through_its_public_accessor() -> None:
    """A span that has not ended may still change: its attributes are read as the SDK hands them out."""
    provider = TracerProvider()
    span = provider.get_tracer("scope").start_span("live", attributes={"a": 1})
    record = from_readable_span(span)  # type: ignore[arg-type]
    span.set_attribute("b", 2)
    span.end()
    assert record.attributes == {"a": 1}
    assert from_readable_span(span).attributes == {"a": 1, "b": 2}  # type: ignore[arg-type]


def test_a_hand_made_readable_span_with_plain_attributes() -> None:
    context = SpanContext(trace_id=1, span_id=2, is_remote=False)
    span = ReadableSpan(name="plain", context=context, attributes={"k": "v"}, events=(), links=())
    record = from_readable_span(span)
    assert record.attributes == {"k": "v"}
    assert record.events == () and record.links == ()


def test_attribute_values_become_json_types_in_place() -> None:
    attributes = {"s": "x", "seq": ("a", 1, 2.5, True), "raw": b"\x00\xff", "mixed": ("a", b"\x01"), "none": None}
    normalized = normalize_attributes(attributes)
    assert normalized == {"s": "x", "seq": ["a", 1, 2.5, True], "raw": "AP8=", "mixed": ["a", "AQ=="], "none": None}
    assert list(normalized) == list(attributes)  # key order kept
    assert attributes["seq"] == ("a", 1, 2.5, True)  # the input is left as it was
    assert normalize_value(((1, 2), {"k": (b"\x02",)})) == [[1, 2], {"k": ["Ag=="]}]
