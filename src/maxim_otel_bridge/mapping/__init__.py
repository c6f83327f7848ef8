"""Span records to Maxim entities: pure functions, one module per concern.

`map_trace_part` is the entry point; `MappingOptions` holds the knobs; `Placement` and `MappedPart`
carry what it decided, so later parts of the same trace link to spans sent before.
"""

from __future__ import annotations

from maxim_otel_bridge.mapping import part as _part
from maxim_otel_bridge.mapping.options import MappedPart, MappingOptions, Placement
from maxim_otel_bridge.mapping.part import map_trace_part

__all__ = ["COMPILED", "MappedPart", "MappingOptions", "Placement", "map_trace_part"]

COMPILED: bool = not _part.__file__.endswith(".py")
"""True in the compiled build (`MAXIM_BRIDGE_COMPILE=1`, setup.py), where the mapping's modules are extension
modules; False when they run as Python source."""
