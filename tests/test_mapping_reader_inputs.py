"""The inputs each convention declares for its readers, checked against what the readers do.

A span's readers are narrowed, per attribute key set, to those whose declared inputs it carries
(`precedence._readers_for`): that is exact only if a reader without any of its inputs returns None, and the
declaration is only honest if the reader reads nothing else. Both are checked on the captured spans of every
instrumentation and on junk spans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mapping_junk import EVENT_NAMES, values

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.mapping.candidates import Inputs
from maxim_otel_bridge.mapping.precedence import ALL_CONVENTIONS, PRECEDENCE, _READERS, _readers_for
from maxim_otel_bridge.record import EventRecord, SpanRecord

FIXTURES = Path(__file__).parent / "fixtures" / "captured"

DECLARED = [
    (convention.name, field, getattr(convention, field), inputs)
    for convention in ALL_CONVENTIONS
    for field, inputs in convention.inputs.items()
]


def _declares(inputs: Inputs, key: Any) -> bool:
    return isinstance(key, str) and (key in inputs.keys or key.startswith(inputs.prefixes))


def _without_inputs(record: SpanRecord, inputs: Inputs) -> SpanRecord:
    return replace(
        record,
        attributes={k: v for k, v in record.attributes.items() if not _declares(inputs, k)},
        events=tuple(e for e in record.events if e.name not in inputs.events),
    )


def _only_inputs(record: SpanRecord, inputs: Inputs) -> SpanRecord:
    # Events stay whole: readers count a message's position among all the span's events.
    return replace(record, attributes={k: v for k, v in record.attributes.items() if _declares(inputs, k)})


def _captured() -> Iterator[SpanRecord]:
    for path in sorted(FIXTURES.glob("*.json")):
        for objs in json.loads(path.read_text(encoding="utf-8"))["scenarios"].values():
            yield from (SpanRecord.from_json_obj(obj) for obj in objs)


CAPTURED = list(_captured())


def _check(reader: Any, inputs: Inputs, record: SpanRecord) -> None:
    assert reader(_without_inputs(record, inputs)) is None
    assert repr(reader(_only_inputs(record, inputs))) == repr(reader(record))


def test_every_declared_field_is_a_field_the_convention_reads() -> None:
    assert DECLARED
    for name, field, reader, inputs in DECLARED:
        assert field in PRECEDENCE, (name, field)
        assert reader is not None, (name, field)
        assert isinstance(inputs, Inputs) and (inputs.keys or inputs.prefixes or inputs.events), (name, field)


@pytest.mark.parametrize(("name", "field", "reader", "inputs"), DECLARED, ids=[f"{d[0]}.{d[1]}" for d in DECLARED])
def test_a_reader_answers_only_from_its_declared_inputs_on_captured_spans(
    name: str, field: str, reader: Any, inputs: Inputs
) -> None:
    for record in CAPTURED:
        _check(reader, inputs, record)


DECLARED_KEYS = sorted({key for *_, inputs in DECLARED for key in inputs.keys})
DECLARED_PREFIXES = sorted({prefix for *_, inputs in DECLARED for prefix in inputs.prefixes})
DECLARED_EVENTS = sorted({name for *_, inputs in DECLARED for name in inputs.events} | set(EVENT_NAMES))
SUB_KEYS = ["message.role", "message.content", "message.tool_calls.0.tool_call.id", "role", "content", "x", ""]

keys = st.one_of(
    st.sampled_from(DECLARED_KEYS),
    st.builds(
        lambda p, i, s: f"{p}{i}.{s}", st.sampled_from(DECLARED_PREFIXES), st.integers(0, 2), st.sampled_from(SUB_KEYS)
    ),
    st.builds(lambda p, s: p + s, st.sampled_from(DECLARED_PREFIXES), st.sampled_from(["", "x", "model"])),
    st.text(max_size=6),
)
junk_records = st.builds(
    SpanRecord,
    trace_id=st.just("0af7651916cd43dd8448eb211c80319c"),
    span_id=st.just("00000000000000a1"),
    parent_span_id=st.none(),
    name=st.sampled_from(["chat", "execute_tool x", "ai.toolCall", "x"]),
    start_ns=st.integers(-5, 2**64),
    end_ns=st.integers(-5, 2**64),
    attributes=st.dictionaries(keys, values, max_size=8),
    events=st.lists(
        st.builds(
            EventRecord,
            name=st.sampled_from(DECLARED_EVENTS),
            time_ns=st.integers(-5, 2**64),
            attributes=st.dictionaries(
                st.sampled_from([*DECLARED_KEYS, "body", "content", "message"]), values, max_size=3
            ),
        ),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_records)
def test_a_reader_answers_only_from_its_declared_inputs_on_junk_spans(record: SpanRecord) -> None:
    for _, _, reader, inputs in DECLARED:
        _check(reader, inputs, record)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_records)
def test_a_plan_keeps_every_reader_that_answers(record: SpanRecord) -> None:
    plan = _readers_for(record)
    for field, readers in _READERS.items():
        kept = plan[field]
        assert [r for r in readers if r in kept] == list(kept), "the order of precedence is kept"
        for reader in readers:
            if reader not in kept:
                assert reader(record) is None, (field, reader)


def test_spans_of_another_mapping_type_or_with_non_text_keys_run_every_reader() -> None:
    record = CAPTURED[0]
    assert _readers_for(replace(record, attributes={**record.attributes, 3: "x"})) is _READERS
    assert _readers_for(replace(record, attributes=_Attributes(record.attributes))) is _READERS


class _Attributes(dict):
    """A dict subclass: it could answer `get` for keys it does not list, so no plan is made for it."""


def test_a_record_whose_attributes_changed_is_planned_again_on_the_next_mapping() -> None:
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat"}
    record = SpanRecord("0af7651916cd43dd8448eb211c80319c", "00000000000000a1", None, "chat", 1, 2, attributes)
    before = map_trace_part([record]).entities
    attributes["gen_ai.usage.input_tokens"] = 7
    after = map_trace_part([record]).entities
    generation = next(e for e in after if e["type"] == "generation")
    assert generation["result"]["usage"]["prompt_tokens"] == 7
    assert before != after
