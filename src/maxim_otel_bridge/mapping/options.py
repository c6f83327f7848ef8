"""The mapping's knobs and the values it hands back, as frozen objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from maxim_otel_bridge.schema import PROVIDERS

__all__ = [
    "DEFAULT_MAX_VALUE_CHARS",
    "DEFAULT_UNKNOWN_PROVIDER",
    "MappedPart",
    "MappingOptions",
    "Placement",
    "compile_patterns",
]

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
    capture_content: bool = True
    """False: message contents, tool arguments and results, retrieval queries and documents, and trace
    input/output are replaced by a visible placeholder; roles, tool call ids and names, finish reasons,
    usage, model, times and tags stay (`content_policy.py`)."""
    redact: tuple[re.Pattern[str], ...] = field(default=(), repr=False)
    """Regular expressions (strings are compiled here, once); every match in every string the entities
    carry, except ids and enum fields, is replaced by `[REDACTED]`."""

    def __post_init__(self) -> None:
        if not isinstance(self.capture_content, bool):
            raise ValueError(f"capture_content must be a bool, got {self.capture_content!r}")
        # Frozen: the compiled tuple replaces what was given (strings or patterns, any iterable).
        object.__setattr__(self, "redact", compile_patterns(self.redact, "redact"))
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


def compile_patterns(patterns: object, setting: str) -> tuple[re.Pattern[str], ...]:
    """Regular expressions compiled once; a bad one raises ValueError naming `setting` and its position.

    The pattern's text is left out of the message: redaction patterns often spell out the very secret
    they keep out of Maxim.
    """
    if isinstance(patterns, (str, re.Pattern)):
        patterns = (patterns,)
    try:
        items = tuple(patterns)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{setting} must be a list of regular expressions, got {type(patterns).__name__}") from None
    compiled: list[re.Pattern[str]] = []
    for index, pattern in enumerate(items):
        if isinstance(pattern, re.Pattern) and isinstance(pattern.pattern, str):
            regex = pattern
        elif isinstance(pattern, str) and pattern:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                where = f" at position {exc.pos}" if exc.pos is not None else ""
                raise ValueError(f"{setting}[{index}] is not a valid regular expression: {exc.msg}{where}") from None
        else:
            raise ValueError(f"{setting}[{index}] must be a non-empty regular expression string")
        if regex.search("") is not None:
            # It would put the marker between every two characters of every string.
            raise ValueError(f"{setting}[{index}] matches the empty string")
        compiled.append(regex)
    return tuple(compiled)
