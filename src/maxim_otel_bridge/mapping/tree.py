"""Where each span hangs in Maxim: the nearest ancestor that is a Maxim `span`, or the trace.

Generations, tool calls and retrievals are leaves in Maxim, so anything under one of them in OTel is
re-parented to the leaf's own Maxim parent. Placements from earlier parts of the trace (`known`) let
late children link to spans sent before.

A parent that is neither in this part nor known is most likely a long-running span (an agent, a
workflow) that has not ended yet. The child is hung under it anyway, and a placeholder `span` entity
with that id is sent first so the reference always resolves; when the real span arrives, Maxim merges
it into the placeholder (same id). Hanging the child under the trace instead would lose the nesting
for good, since Maxim has no way to move it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from maxim_otel_bridge.mapping.classify import SPAN
from maxim_otel_bridge.mapping.ids import is_valid_id
from maxim_otel_bridge.mapping.options import Placement
from maxim_otel_bridge.record import SpanRecord

__all__ = ["Layout", "layout"]


@dataclass(frozen=True, slots=True)
class Layout:
    placements: dict[str, Placement]
    """Every span of the part, plus placeholders for missing parents."""
    placeholders: tuple[str, ...]
    """Ids of spans referenced as parents but neither in the part nor known (sent as bare spans)."""
    order: tuple[str, ...]
    """Span ids of the part, each after the Maxim span it hangs under (depth-first, by start time)."""


def layout(records: Mapping[str, SpanRecord], kinds: Mapping[str, str], known: Mapping[str, Placement]) -> Layout:
    placements: dict[str, Placement] = {}
    placeholders: dict[str, None] = {}
    # Placements are frozen values, and a trace's spans share a few (entity type, parent) pairs: one object each.
    made: dict[tuple[str, str | None], Placement] = {}

    def placement_of(entity_type: str, parent: str | None) -> Placement:
        placement = made.get((entity_type, parent))
        if placement is None:
            placement = made[entity_type, parent] = Placement(entity_type, parent)
        return placement

    def maxim_parent(start: str) -> str | None:
        # Walk up the OTel ancestry until a Maxim span (or the top) is found; iterative and cycle-safe. Most spans
        # hang right under a Maxim span: the leaves walked through, and the cycle guard, are made at the first leaf.
        chain: list[str] | None = None
        seen: set[str] | None = None
        parent_id = records[start].parent_span_id
        result: str | None = None
        while parent_id is not None:
            if parent_id in placements:
                placement = placements[parent_id]
                result = parent_id if placement.entity_type == SPAN else placement.parent
                break
            if parent_id in records:
                if parent_id == start or (seen is not None and parent_id in seen):
                    result = None  # a cycle in junk input: hang under the trace
                    break
                if kinds[parent_id] == SPAN:
                    result = parent_id
                    break
                if chain is None or seen is None:
                    chain, seen = [parent_id], {parent_id}
                else:
                    chain.append(parent_id)
                    seen.add(parent_id)
                parent_id = records[parent_id].parent_span_id
                continue
            if parent_id in known:
                placement = known[parent_id]
                result = parent_id if placement.entity_type == SPAN else placement.parent
                break
            if len(parent_id) <= 64 and is_valid_id(parent_id):
                placeholders[parent_id] = None
                placements[parent_id] = placement_of(SPAN, None)
                result = parent_id
            break
        # Every leaf walked through hangs under the same Maxim parent: remember it.
        for leaf in chain or ():
            if leaf not in placements:
                placements[leaf] = placement_of(kinds[leaf], result)
        return result

    for span_id in sorted(records):
        if span_id not in placements:
            placements[span_id] = placement_of(kinds[span_id], maxim_parent(span_id))

    children: dict[str | None, list[str]] = {}
    for span_id in records:
        parent = placements[span_id].parent
        children.setdefault(parent if parent in records else None, []).append(span_id)
    by_start = {span_id: (record.start_ns, span_id) for span_id, record in records.items()}
    for siblings in children.values():
        siblings.sort(key=by_start.__getitem__)
    order: list[str] = []
    visited: set[str] = set()

    def visit(top: str) -> None:
        stack = [top]
        while stack:
            span_id = stack.pop()
            if span_id in visited:
                continue
            visited.add(span_id)
            order.append(span_id)
            stack.extend(reversed(children.get(span_id, [])))

    for span_id in children.get(None, []):
        visit(span_id)
    for span_id in sorted(records, key=by_start.__getitem__):
        if span_id not in visited:
            # Spans parented in a circle (junk input): the earliest becomes a top-level span.
            placements[span_id] = placement_of(kinds[span_id], None)
            visit(span_id)
    return Layout(placements=placements, placeholders=tuple(placeholders), order=tuple(order))
