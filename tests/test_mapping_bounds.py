"""The bounds check that skips a generation's messages and result answers exactly as the full check.

It relies on what the builders make of them (dicts with string keys, lists, strings, None, and integers in the
result), which is checked here on the captured spans of every instrumentation and on junk spans.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mapping_junk import records
from test_mapping_reader_inputs import CAPTURED, junk_records

from maxim_otel_bridge.mapping import map_trace_part
from maxim_otel_bridge.mapping.part import _is_bounded_entity
from maxim_otel_bridge.mapping.precedence import _READERS
from maxim_otel_bridge.mapping.values import is_bounded
from maxim_otel_bridge.record import SpanRecord

LIMITS = (1, 5, 40, 100_000)


def _plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str) or value is None:
        return True
    if type(value) is dict:
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if type(value) is list:
        return all(_plain(v, depth + 1) for v in value)
    return False


def _plain_result(value: Any) -> bool:
    if isinstance(value, (str, int)) and not isinstance(value, bool) or value is None:
        return True
    if type(value) is dict:
        return all(isinstance(k, str) and _plain_result(v) for k, v in value.items())
    if type(value) is list:
        return all(_plain_result(v) for v in value)
    return False


def _check_results(entities: list[dict]) -> None:
    for entity in entities:
        if entity["type"] == "generation":
            assert type(entity["messages"]) is list and _plain(entity["messages"])
            assert _plain_result(entity.get("result")), entity.get("result")


def _check_messages(record: SpanRecord) -> None:
    for reader in _READERS["input_messages"]:
        messages = reader(record)
        assert messages is None or (type(messages) is list and _plain(messages)), (reader, messages)


def test_input_messages_of_captured_spans_are_plain() -> None:
    for record in CAPTURED:
        _check_messages(record)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_records)
def test_input_messages_of_junk_spans_are_plain(record: SpanRecord) -> None:
    _check_messages(record)


def _same_answer(entities: list[dict]) -> None:
    for entity in entities:
        for limit in LIMITS:
            assert _is_bounded_entity(entity, limit) == is_bounded(entity, limit), (limit, entity)


def test_the_entity_check_answers_as_the_full_check_on_captured_spans() -> None:
    _same_answer(map_trace_part(CAPTURED).entities)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(records, st.lists(junk_records, max_size=3)))
def test_the_entity_check_answers_as_the_full_check_on_junk_spans(batch: list[SpanRecord]) -> None:
    # Mapped with a limit no string reaches, so the entities reach the check as the builders made them.
    entities = map_trace_part(batch).entities
    _check_results(entities)
    _same_answer(entities)


def test_a_long_string_anywhere_in_the_messages_is_seen() -> None:
    for message in (
        {"role": "user", "content": "x" * 50},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"arguments": "y" * 50}}]},
    ):
        entity = {"id": "a", "type": "generation", "messages": [message]}
        assert not _is_bounded_entity(entity, 40)
        assert _is_bounded_entity(entity, 60)
    # Ids are references: never cut, so a long one does not make the entity unbounded.
    entity = {"id": "a", "type": "generation", "messages": [{"role": "tool", "tool_call_id": "z" * 50}]}
    assert _is_bounded_entity(entity, 40) and is_bounded(entity, 40)


@given(
    st.dictionaries(
        st.sampled_from(["id", "name", "messages", "metadata", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
            max_leaves=6,
        ),
    ),
    st.integers(0, 10),
)
def test_beside_is_the_full_check_when_the_known_item_is_bounded(value: dict, limit: int) -> None:
    if is_bounded(value.get("messages"), limit, 1):
        assert is_bounded(value, limit, skip=("messages",)) == is_bounded(value, limit)


def test_results_of_captured_spans_are_plain() -> None:
    _check_results(map_trace_part(CAPTURED).entities)


class _Text(str):
    def __len__(self) -> int:
        return 10**9


def test_a_string_subclass_in_the_messages_is_left_to_the_walk() -> None:
    entity = {"id": "a", "type": "generation", "messages": [{"role": "user", "content": _Text("x")}]}
    assert _is_bounded_entity(entity, 40) == is_bounded(entity, 40) is False
