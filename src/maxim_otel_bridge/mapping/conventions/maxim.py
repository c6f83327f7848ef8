"""The project's own `maxim.*` attributes: what no instrumentation convention carries.

An application sets them on its spans to reach Maxim fields that OpenTelemetry has no word for: tags,
numeric metrics, evaluators to run, feedback, and explicit session, user, trace name and entity type
(the last one is read by `classify.py`). The table is in docs/conventions.md.

Readers are pure and never raise: a value of the wrong type is left out of the entity and described in
the entity's `metadata["maxim.ignored"]`, so the mistake is visible in Maxim instead of silently lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from maxim_otel_bridge.mapping.candidates import Convention, reads
from maxim_otel_bridge.mapping.coerce import coerce_float, coerce_str, parse_json
from maxim_otel_bridge.mapping.keysets import KeySetMemo
from maxim_otel_bridge.mapping.values import tag_value
from maxim_otel_bridge.record import SpanRecord

__all__ = [
    "EVALUATE_KEY",
    "EVALUATE_VARIABLES_PREFIX",
    "FEEDBACK_COMMENT_KEY",
    "FEEDBACK_SCORE_KEY",
    "IGNORED_KEY",
    "MAXIM",
    "METRIC_PREFIX",
    "SESSION_ID_KEY",
    "TAG_ALIAS_PREFIX",
    "TAG_PREFIX",
    "TRACE_EVALUATE_KEY",
    "TRACE_EVALUATE_VARIABLES_PREFIX",
    "TRACE_NAME_KEY",
    "USER_ID_KEY",
    "read_evaluate",
    "read_feedback",
    "read_metrics",
    "read_tags",
    "trace_fields",
    "with_entity_fields",
]

TAG_PREFIX = "maxim.tag."
"""`maxim.tag.<key>`: the entity's tag `<key>` (tags are strings: other values are rendered as text)."""
TAG_ALIAS_PREFIX = "maxim.tags."
"""Also accepted for tags; `maxim.tag.<key>` wins when both name the same key."""
METRIC_PREFIX = "maxim.metric."
"""`maxim.metric.<name>`: a number, the entity's metric `<name>`."""
EVALUATE_KEY = "maxim.evaluate"
"""Names of Maxim evaluators to run on this entity: a string array, a JSON array or a comma-separated string."""
EVALUATE_VARIABLES_PREFIX = "maxim.evaluate.variables."
"""`maxim.evaluate.variables.<name>`: a variable the evaluators read (text)."""
TRACE_EVALUATE_KEY = "maxim.trace.evaluate"
"""Evaluators to run on the trace rather than on the span that carries the attribute."""
TRACE_EVALUATE_VARIABLES_PREFIX = "maxim.trace.evaluate.variables."
FEEDBACK_SCORE_KEY = "maxim.feedback.score"
"""The trace's feedback score (a number); Maxim keeps feedback on traces and sessions only."""
FEEDBACK_COMMENT_KEY = "maxim.feedback.comment"
TRACE_NAME_KEY = "maxim.trace.name"
"""The trace's name, instead of the root span's name."""
SESSION_ID_KEY = "maxim.session.id"
"""The session id, before any instrumentation's (`session.id`, `gen_ai.conversation.id`, ...)."""
USER_ID_KEY = "maxim.user.id"
"""The user id (tag `user.id`), before any instrumentation's."""
IGNORED_KEY = "maxim.ignored"
"""Metadata key listing the `maxim.*` attributes that were left out, and why."""

_HAS_METRICS = frozenset({"trace", "generation", "retrieval"})
_HAS_EVALUATE = frozenset({"trace", "span", "generation", "retrieval"})
_METRIC_TAG_PREFIX = "metric."
"""A tool call has no metrics field in Maxim's schema: its metrics become tags `metric.<name>`."""

_MAX_SHOWN = 80


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _maxim_keys_of(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key for key in keys if key.startswith("maxim."))


_maxim_keys = KeySetMemo(_maxim_keys_of)


def _own(attributes: Mapping[str, Any]) -> dict[str, Any]:
    # Which keys are Maxim's depends only on the key set (remembered); most spans have none and stop here.
    keys = _maxim_keys(attributes)
    return {key: attributes[key] for key in keys} if keys else {}


def read_tags(attributes: Mapping[str, Any]) -> dict[str, str]:
    """`maxim.tag.<key>` (and the alias `maxim.tags.<key>`) as tags, sorted by key."""
    own = _own(attributes)
    if not own:
        return {}
    tags: dict[str, str] = {}
    for prefix in (TAG_PREFIX, TAG_ALIAS_PREFIX):
        for key in sorted(own):
            if key.startswith(prefix) and len(key) > len(prefix):
                tags.setdefault(key[len(prefix) :], tag_value(own[key]) or "")
    return dict(sorted(tags.items()))


def read_metrics(attributes: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    """`maxim.metric.<name>` numbers, and a note per value that is not a finite number (bools neither)."""
    metrics: dict[str, float] = {}
    ignored: list[str] = []
    for key in sorted(attributes):
        if not key.startswith(METRIC_PREFIX) or len(key) == len(METRIC_PREFIX):
            continue
        value = attributes[key]
        number = coerce_float(value)
        if number is None or not math.isfinite(number):
            ignored.append(f"{key}={_shown(value)}: not a number")
            continue
        metrics[key[len(METRIC_PREFIX) :]] = number
    return metrics, ignored


def _evaluator_names(value: Any) -> list[str] | None:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = parse_json(text)
            if parsed.ok and isinstance(parsed.value, list):
                value = parsed.value
            else:
                return None
        else:
            return [name.strip() for name in text.split(",") if name.strip()]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(name, str) for name in value):
            return None
        return [name.strip() for name in value if name.strip()]
    return None


def read_evaluate(
    attributes: Mapping[str, Any], key: str = EVALUATE_KEY, variables_prefix: str = EVALUATE_VARIABLES_PREFIX
) -> tuple[dict[str, Any] | None, list[str]]:
    """Maxim's `evaluate` object (`evaluators`, optional `variables`), and notes on what was left out."""
    ignored: list[str] = []
    variables = {
        name[len(variables_prefix) :]: tag_value(value)
        for name, value in sorted(attributes.items())
        if name.startswith(variables_prefix) and len(name) > len(variables_prefix) and value is not None
    }
    if key not in attributes:
        if variables:
            ignored.append(f"{variables_prefix}*: no {key} to use them")
        return None, ignored
    names = _evaluator_names(attributes[key])
    if not names:
        ignored.append(f"{key}={_shown(attributes[key])}: expected evaluator names (a string array)")
        return None, ignored
    evaluate: dict[str, Any] = {"evaluators": list(dict.fromkeys(names))}
    if variables:
        evaluate["variables"] = variables
    return evaluate, ignored


def read_feedback(attributes: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """Maxim's `feedback` (`score`, optional `comment`); a comment alone is left out (the score is required)."""
    if FEEDBACK_SCORE_KEY not in attributes:
        if FEEDBACK_COMMENT_KEY in attributes:
            return None, [f"{FEEDBACK_COMMENT_KEY}: no {FEEDBACK_SCORE_KEY} (Maxim requires a score)"]
        return None, []
    raw = attributes[FEEDBACK_SCORE_KEY]
    score = coerce_float(raw)
    if score is None:
        return None, [f"{FEEDBACK_SCORE_KEY}={_shown(raw)}: not a number"]
    feedback: dict[str, Any] = {"score": score}
    comment = coerce_str(attributes.get(FEEDBACK_COMMENT_KEY))
    if comment is not None:
        feedback["comment"] = comment
    return feedback, []


def _note(entity: dict[str, Any], ignored: list[str]) -> None:
    if ignored:
        metadata = entity.setdefault("metadata", {})
        # The span may carry a `maxim.ignored` attribute of its own, of any type: it is kept, first.
        earlier = metadata.get(IGNORED_KEY)
        kept = earlier if isinstance(earlier, list) else [] if earlier is None else [earlier]
        metadata[IGNORED_KEY] = [*kept, *ignored]


def with_entity_fields(entity: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The span's own `maxim.metric.*` and `maxim.evaluate*` added to its entity (tags are set by the builder).

    A span has no `metrics` in Maxim's schema, so its metrics stay in its metadata as the attributes they
    are; a tool call has neither metrics nor evaluate: its metrics become tags `metric.<name>`, and its
    evaluators are left out with a note.
    """
    attributes = _own(attributes)
    if not attributes:
        return entity
    kind = entity.get("type")
    metrics, ignored = read_metrics(attributes)
    if metrics:
        if kind in _HAS_METRICS:
            entity["metrics"] = {**entity.get("metrics", {}), **metrics}
        elif kind == "toolCall":
            tags = entity.setdefault("tags", {})
            for name, number in metrics.items():
                tags[_METRIC_TAG_PREFIX + name] = tag_value(number) or ""
    evaluate, notes = read_evaluate(attributes)
    ignored.extend(notes)
    if evaluate is not None:
        if kind in _HAS_EVALUATE:
            entity["evaluate"] = evaluate
        else:
            ignored.append(f"{EVALUATE_KEY}: Maxim's {kind} takes no evaluators")
    _note(entity, ignored)
    return entity


def trace_fields(entity: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The trace's name, metrics, feedback and evaluate from the `maxim.*` attributes that describe it."""
    attributes = _own(attributes)
    if not attributes:
        return entity
    name = coerce_str(attributes.get(TRACE_NAME_KEY))
    if name is not None:
        entity["name"] = name
    metrics, ignored = read_metrics(attributes)
    if metrics:
        entity["metrics"] = {**entity.get("metrics", {}), **metrics}
    feedback, notes = read_feedback(attributes)
    ignored.extend(notes)
    if feedback is not None:
        entity["feedback"] = feedback
    evaluate, notes = read_evaluate(attributes, TRACE_EVALUATE_KEY, TRACE_EVALUATE_VARIABLES_PREFIX)
    ignored.extend(notes)
    if evaluate is not None:
        entity["evaluate"] = evaluate
    _note(entity, ignored)
    return entity


def _session_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get(SESSION_ID_KEY))


def _user_id(record: SpanRecord) -> str | None:
    return coerce_str(record.attributes.get(USER_ID_KEY))


def _consumes(entity_type: str, key: str) -> bool:
    # What an entity's own fields carry is not repeated in its metadata; the rest stays visible there.
    if not key.startswith("maxim."):
        return False
    if key.startswith((TAG_PREFIX, TAG_ALIAS_PREFIX)):
        return True
    if key.startswith(METRIC_PREFIX):
        return entity_type in ("generation", "retrieval", "toolCall")
    if key == EVALUATE_KEY or key.startswith(EVALUATE_VARIABLES_PREFIX):
        return entity_type in ("span", "generation", "retrieval")
    return False


MAXIM = Convention(
    name="maxim",
    session_id=_session_id,
    user_id=_user_id,
    consumes=_consumes,
    inputs={"session_id": reads(SESSION_ID_KEY), "user_id": reads(USER_ID_KEY)},
)
