"""maxim-otel-bridge: OpenTelemetry traces from LLM and agent applications into Maxim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["MaximLogExporter", "MaximSpanExporter", "__version__"]

if TYPE_CHECKING:
    from .exporter import MaximSpanExporter
    from .log_exporter import MaximLogExporter


def __getattr__(name: str) -> Any:
    # Lazy so that `maxim-otel-bridge --help` and the sidecar do not import the SDK exporter machinery.
    if name == "MaximSpanExporter":
        from .exporter import MaximSpanExporter

        return MaximSpanExporter
    if name == "MaximLogExporter":
        from .log_exporter import MaximLogExporter

        return MaximLogExporter
    raise AttributeError(name)
