"""Span records to Maxim entities: pure functions, one module per concern.

`map_trace_part` is the entry point; `MappingOptions` holds the knobs; `Placement` and `MappedPart`
carry what it decided, so later parts of the same trace link to spans sent before.
"""

from __future__ import annotations

from maxim_otel_bridge.mapping.options import MappedPart, MappingOptions, Placement
from maxim_otel_bridge.mapping.part import map_trace_part

__all__ = ["MappedPart", "MappingOptions", "Placement", "map_trace_part"]
