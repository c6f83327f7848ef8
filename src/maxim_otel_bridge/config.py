"""Settings shared by every part of the bridge: the Maxim destination, and how secrets are held.

Each environment variable is a named constant here, so code and docs refer to one spelling.
Explicit arguments win over environment variables, which win over defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ENV_API_KEY",
    "ENV_REPO_ID",
    "ENV_BASE_URL",
    "DEFAULT_BASE_URL",
    "LOCAL_STORE_URL",
    "LOCAL_REPO_ID",
    "ConfigError",
    "Secret",
    "Destination",
    "is_loopback_url",
    "parse_pattern_list",
    "parse_switch",
]

ENV_API_KEY = "MAXIM_API_KEY"
"""Maxim API key, sent as `x-maxim-api-key` (same name as Maxim's own SDK)."""

ENV_REPO_ID = "MAXIM_LOG_REPO_ID"
"""Id of the Maxim log repository the logs go to (same name as Maxim's own SDK)."""

ENV_BASE_URL = "MAXIM_BASE_URL"
"""Base URL of the Maxim API; `https://api.getmaxim.ai` unless set (point it at `emulate` to stay local)."""

DEFAULT_BASE_URL = "https://api.getmaxim.ai"

LOCAL_STORE_URL = "http://127.0.0.1:8787"
"""Where the local Maxim-compatible store (`emulate`, and the sidecar's embedded default) listens."""

LOCAL_REPO_ID = "local"
"""Repository id used with the local store when none is configured."""


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting and what to do."""


class Secret:
    """A string that never shows itself in reprs, logs, tracebacks or metrics."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would be a way for the key to leak into a dump: refuse it.
        raise TypeError("Secret values cannot be pickled")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_switch(value: Any) -> bool:
    """A boolean setting: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case), or a YAML boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_pattern_list(value: Any) -> tuple[str, ...]:
    """Regular expressions from a YAML list, a JSON array of strings, or text with one pattern per line.

    Only the shape is checked here; `mapping.MappingOptions` compiles them. Errors never quote a pattern:
    a redaction pattern may spell out the secret it is there to hide.
    """
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value).strip()
        items = None
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None  # a character class such as `[0-9]{16}` on its own line
            if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
                items = parsed
        if items is None:
            items = [line.strip() for line in text.splitlines() if line.strip()]
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise ValueError(f"pattern {index} is not a non-empty string")
    return tuple(items)


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where entities go: the Maxim API, or a local Maxim-compatible store."""

    base_url: str
    api_key: Secret
    repo_id: str

    @property
    def is_local(self) -> bool:
        return is_loopback_url(self.base_url)

    @classmethod
    def resolve(
        cls,
        api_key: str | None = None,
        repo_id: str | None = None,
        base_url: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        allow_local_default: bool = False,
    ) -> Destination:
        """Explicit values, then `MAXIM_*` variables, then defaults.

        With no API key anywhere: a loopback `base_url` is fine (the local store takes any key); with
        `allow_local_default` (the sidecar) the local store becomes the destination; otherwise it is an error.
        """
        env = os.environ if environ is None else environ
        key = api_key if api_key is not None else env.get(ENV_API_KEY, "")
        url = (base_url or env.get(ENV_BASE_URL, "") or "").rstrip("/")
        repo = repo_id if repo_id is not None else env.get(ENV_REPO_ID, "")
        if not key:
            if url and is_loopback_url(url):
                key = "local"
            elif not url and allow_local_default:
                url, key = LOCAL_STORE_URL, "local"
            else:
                raise ConfigError(
                    f"no Maxim API key: set {ENV_API_KEY} (or pass api_key=...); to stay local, point "
                    f"{ENV_BASE_URL} at a local store such as `maxim-otel-bridge emulate` ({LOCAL_STORE_URL})"
                )
        url = url or DEFAULT_BASE_URL
        if not repo:
            if is_loopback_url(url):
                repo = LOCAL_REPO_ID
            else:
                raise ConfigError(f"no Maxim log repository: set {ENV_REPO_ID} (or pass repo_id=...)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{ENV_BASE_URL} must be an http(s) URL, got {url!r}")
        return cls(base_url=url, api_key=Secret(key), repo_id=repo)
