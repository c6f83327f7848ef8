"""The mapping's knobs and the values it hands back, as frozen objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from maxim_otel_bridge.schema import PROVIDERS

__all__ = ["DEFAULT_MAX_VALUE_CHARS", "DEFAULT_UNKNOWN_PROVIDER", "MappedPart", "MappingOptions", "Placement"]

DEFAULT_MAX_VALUE_CHARS = 100_000
"""Large enough for long prompts, small enough that one entity stays far below Maxim's ~1 MB per log."""

DEFAULT_UNKNOWN_PROVIDER = "openai"
"""Most providers outside Maxim's enum (DeepSeek, Mistral, xAI, Perplexity, local servers) speak
OpenAI's API, so `openai` is the least misleading member of the enum. The original value is kept in
the generation's tags under `provider.original`."""


@dataclass(frozen=True, slots=True)
class MappingOptions:
    """How span records become entities. One frozen object, passed whole to every mapping step."""

    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
    """Strings longer than this are cut and end with a visible `...[truncated N chars]` marker."""
    unknown_provider: str = DEFAULT_UNKNOWN_PROVIDER
    """Provider sent for generations whose provider is outside Maxim's enum (must be in the enum)."""

    def __post_init__(self) -> None:
        if isinstance(self.max_value_chars, bool) or not isinstance(self.max_value_chars, int):
            raise ValueError(f"max_value_chars must be an int, got {self.max_value_chars!r}")
        if self.max_value_chars < 1:
            raise ValueError(f"max_value_chars must be at least 1, got {self.max_value_chars}")
        if self.unknown_provider not in PROVIDERS:
            raise ValueError(
                f"unknown_provider must be one of Maxim's providers {list(PROVIDERS)}, got {self.unknown_provider!r}"
            )


@dataclass(frozen=True, slots=True)
class Placement:
    """What a span became, remembered across the parts of one trace."""

    entity_type: str
    """`span`, `generation`, `toolCall` or `retrieval`."""
    parent: str | None
    """Id of the Maxim span it hangs under; None means directly under the trace."""


@dataclass(frozen=True, slots=True)
class MappedPart:
    """The entities for one part of a trace, and where each of its spans went."""

    entities: list[dict]
    """Ready to send, parents before children."""
    placements: dict[str, Placement]
    """For every span id of the part (and any placeholder span created for a missing parent)."""
    skipped: tuple[str, ...] = field(default=())
    """One line per input record that could not be mapped (not a span record, or unusable ids)."""
