"""The sidecar's settings: one frozen object built from flags > `MAXIM_BRIDGE_*` env vars > YAML file > defaults.

Every setting is declared once in `SETTINGS` (flag, environment variable, config-file key, default, parser,
meaning), and that one table drives the argument parser, the environment, the YAML file, validation and the
settings table in `docs/sidecar.md`. An invalid value is refused at start with a `ConfigError` naming the
setting and where the value came from; `serve` then exits with code 2.

The destination (`MAXIM_API_KEY`, `MAXIM_LOG_REPO_ID`, `MAXIM_BASE_URL`) is resolved by
`config.Destination`, so the SDK exporter and the sidecar read it the same way.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from maxim_otel_bridge.config import LOCAL_STORE_URL, ConfigError, Secret, parse_pattern_list, parse_switch
from maxim_otel_bridge.mapping.options import (
    DEFAULT_MAX_VALUE_CHARS,
    DEFAULT_UNKNOWN_PROVIDER,
    compile_patterns,
)
from maxim_otel_bridge.schema import PROVIDERS
from maxim_otel_bridge.sidecar.cpus import auto_map_workers, usable_cpus
from maxim_otel_bridge.sidecar.ingest import (
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_GRPC_MAX_REQUEST_BYTES,
    DEFAULT_HTTP_ENDPOINT,
    DEFAULT_HTTP_MAX_REQUEST_BYTES,
)

__all__ = [
    "SETTINGS",
    "Setting",
    "SidecarSettings",
    "add_setting_arguments",
    "load_settings",
    "parse_endpoint",
]

DEFAULT_ADMIN_ENDPOINT = "127.0.0.1:13133"
DEFAULT_LOCAL_STORE_ENDPOINT = LOCAL_STORE_URL.split("://", 1)[1]


def default_spool_dir() -> str:
    """`$XDG_STATE_HOME/maxim-otel-bridge/spool`, else `~/.local/state/maxim-otel-bridge/spool`."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "maxim-otel-bridge", "spool")


# -- value parsers: each takes the raw value (str from flags/env, any YAML scalar) and returns the typed one ------


def parse_endpoint(value: Any) -> str:
    """`host:port` (IPv6 as `[::1]:4317`); port 0 asks the OS for a free port."""
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    return text


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a positive integer, got {value!r}")
    try:
        number = int(str(value).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer >= 0, got {value!r}")
    try:
        number = int(str(value).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"expected an integer >= 0, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected an integer >= 0, got {value!r}")
    return number


AUTO = "auto"


def _map_workers(value: Any) -> int | str:
    """A worker count, or `auto` (resolved by `load_settings` from the usable CPUs)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return _non_negative_int(value)
    except ValueError:
        raise ValueError(f"expected an integer >= 0 or {AUTO!r}, got {value!r}") from None


def _byte_size(value: Any) -> int:
    """A byte count: `1048576`, `512MiB`, `2 GB` (binary units: K/M/G are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512MiB, got {value!r}")
    text = str(value).strip().lower().replace("_", "")
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
    unit = text[len(digits) :].strip()
    try:
        number = float(digits)
    except ValueError:
        raise ValueError(f"expected a size such as 512MiB, got {value!r}") from None
    if unit not in _SIZE_UNITS or not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a size such as 512MiB, got {value!r}")
    return int(number * _SIZE_UNITS[unit])


def _seconds(value: Any) -> float:
    """Seconds: `5`, `0.5`, `5s`, `250ms`, `2m`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration in seconds, got {value!r}")
    text = str(value).strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)].strip(), factor
            break
    try:
        number = float(text) * scale
    except ValueError:
        raise ValueError(f"expected a duration in seconds, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a duration >= 0 seconds, got {value!r}")
    return number


def _positive_seconds(value: Any) -> float:
    number = _seconds(value)
    if number <= 0:
        raise ValueError(f"expected a duration > 0 seconds, got {value!r}")
    return number


def _text(value: Any) -> str:
    return str(value).strip()


def _optional_path(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _sync_mode(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("full", "normal"):
        raise ValueError(f"expected full or normal, got {value!r}")
    return text


def _provider(value: Any) -> str:
    text = str(value).strip()
    if text not in PROVIDERS:
        raise ValueError(f"expected one of Maxim's providers {sorted(PROVIDERS)}, got {value!r}")
    return text


def _redact_patterns(value: Any) -> tuple[re.Pattern[str], ...]:
    """A YAML list, a JSON array of strings, or one pattern per line; compiled here so a bad one stops start-up."""
    return compile_patterns(parse_pattern_list(value), "redact")


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where it can be given, its default, how its value is read, and what it means."""

    name: str
    flag: str
    env: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False

    @property
    def key(self) -> str:
        """The config-file key (the field name)."""
        return self.name


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "grpc_endpoint",
        "--grpc-endpoint",
        "MAXIM_BRIDGE_GRPC_ENDPOINT",
        DEFAULT_GRPC_ENDPOINT,
        parse_endpoint,
        "OTLP/gRPC listen address (host:port; 0.0.0.0 to listen on every interface).",
    ),
    Setting(
        "http_endpoint",
        "--http-endpoint",
        "MAXIM_BRIDGE_HTTP_ENDPOINT",
        DEFAULT_HTTP_ENDPOINT,
        parse_endpoint,
        "OTLP/HTTP listen address; spans are posted to /v1/traces, GenAI log records to /v1/logs (protobuf or JSON).",
    ),
    Setting(
        "admin_endpoint",
        "--admin-endpoint",
        "MAXIM_BRIDGE_ADMIN_ENDPOINT",
        DEFAULT_ADMIN_ENDPOINT,
        parse_endpoint,
        "Admin listen address: /healthz, /readyz, /metrics.",
    ),
    Setting(
        "spool_dir",
        "--spool-dir",
        "MAXIM_BRIDGE_SPOOL_DIR",
        None,
        _text,
        "Directory of the durable spool (created 0700). Default: $XDG_STATE_HOME/maxim-otel-bridge/spool, "
        "else ~/.local/state/maxim-otel-bridge/spool.",
    ),
    Setting(
        "spool_max_bytes",
        "--spool-max-bytes",
        "MAXIM_BRIDGE_SPOOL_MAX_BYTES",
        1024**3,
        _byte_size,
        "Cap on the spool's size; above it receivers answer UNAVAILABLE / 503 with a retry delay.",
    ),
    Setting(
        "spool_sync",
        "--spool-sync",
        "MAXIM_BRIDGE_SPOOL_SYNC",
        "full",
        _sync_mode,
        "SQLite synchronous mode: full (an acknowledged span survives power loss) or normal (survives a "
        "process crash; a power cut may lose the last commits).",
    ),
    Setting(
        "assembly_wait",
        "--assembly-wait",
        "MAXIM_BRIDGE_ASSEMBLY_WAIT",
        5.0,
        _seconds,
        "Seconds a trace waits for its local root before what has arrived ships anyway (in parts).",
    ),
    Setting(
        "placement_retention",
        "--placement-retention",
        "MAXIM_BRIDGE_PLACEMENT_RETENTION",
        3600.0,
        _positive_seconds,
        "Seconds the spool remembers where shipped spans went, so late spans of a trace link to them.",
    ),
    Setting(
        "grace_period",
        "--grace-period",
        "MAXIM_BRIDGE_GRACE_PERIOD",
        10.0,
        _seconds,
        "On SIGTERM/SIGINT: seconds spent shipping what is spooled before exiting (the rest stays spooled).",
    ),
    Setting(
        "auth_token",
        "--auth-token",
        "MAXIM_BRIDGE_AUTH_TOKEN",
        "",
        _text,
        "When set, OTLP clients must send `Authorization: Bearer <token>`.",
        secret=True,
    ),
    Setting(
        "tls_cert",
        "--tls-cert",
        "MAXIM_BRIDGE_TLS_CERT",
        None,
        _optional_path,
        "PEM certificate chain: receivers serve TLS (needs --tls-key).",
    ),
    Setting(
        "tls_key",
        "--tls-key",
        "MAXIM_BRIDGE_TLS_KEY",
        None,
        _optional_path,
        "PEM private key for --tls-cert.",
    ),
    Setting(
        "grpc_max_request_bytes",
        "--grpc-max-request-bytes",
        "MAXIM_BRIDGE_GRPC_MAX_REQUEST_BYTES",
        DEFAULT_GRPC_MAX_REQUEST_BYTES,
        _byte_size,
        "Largest OTLP/gRPC request accepted.",
    ),
    Setting(
        "http_max_request_bytes",
        "--http-max-request-bytes",
        "MAXIM_BRIDGE_HTTP_MAX_REQUEST_BYTES",
        DEFAULT_HTTP_MAX_REQUEST_BYTES,
        _byte_size,
        "Largest OTLP/HTTP request accepted (after decompression).",
    ),
    Setting(
        "batch_max_entities",
        "--batch-max-entities",
        "MAXIM_BRIDGE_BATCH_MAX_ENTITIES",
        500,
        _positive_int,
        "Entities per request to Maxim.",
    ),
    Setting(
        "batch_max_bytes",
        "--batch-max-bytes",
        "MAXIM_BRIDGE_BATCH_MAX_BYTES",
        4 * 1024**2,
        _byte_size,
        "Body size cap of one request to Maxim (Maxim's SDK splits at 5 MB).",
    ),
    Setting(
        "ship_max_spans",
        "--ship-max-spans",
        "MAXIM_BRIDGE_SHIP_MAX_SPANS",
        1000,
        _positive_int,
        "Spans taken from the spool for one send (whole ready traces, several requests if needed; whole span "
        "groups, so up to one group more); bounds the memory a send holds.",
    ),
    Setting(
        "ship_concurrency",
        "--ship-concurrency",
        "MAXIM_BRIDGE_SHIP_CONCURRENCY",
        3,
        _positive_int,
        "Sends to Maxim in flight at once (each thread claims, maps, sends and deletes in turn: with two mapping "
        "workers, the third keeps both mapping while one thread does the rest).",
    ),
    Setting(
        "map_workers",
        "--map-workers",
        "MAXIM_BRIDGE_MAP_WORKERS",
        AUTO,
        _map_workers,
        "Processes that map spans to Maxim entities, the most CPU-hungry step (0: in the shipping threads), at "
        "about 35 MB each. `auto`: none on one usable CPU, else one per CPU up to 2 (the usable CPUs are the "
        "affinity mask bounded by the cgroup CPU quota).",
    ),
    Setting(
        "send_timeout",
        "--send-timeout",
        "MAXIM_BRIDGE_SEND_TIMEOUT",
        10.0,
        _positive_seconds,
        "Seconds one request to Maxim may take.",
    ),
    Setting(
        "send_deadline",
        "--send-deadline",
        "MAXIM_BRIDGE_SEND_DEADLINE",
        5.0,
        _positive_seconds,
        "Seconds one send may spend retrying (the client's retries, Retry-After honoured) before it is "
        "left in the spool and the destination backs off.",
    ),
    Setting(
        "backoff_max",
        "--backoff-max",
        "MAXIM_BRIDGE_BACKOFF_MAX",
        60.0,
        _positive_seconds,
        "Longest pause of the destination after failed sends (doubles from 1 s per failure).",
    ),
    Setting(
        "dead_letter_path",
        "--dead-letter-path",
        "MAXIM_BRIDGE_DEAD_LETTER_PATH",
        None,
        _optional_path,
        "JSONL file for entities Maxim refuses. Default: dead-letters.jsonl in the spool directory.",
    ),
    Setting(
        "unknown_provider",
        "--unknown-provider",
        "MAXIM_BRIDGE_UNKNOWN_PROVIDER",
        DEFAULT_UNKNOWN_PROVIDER,
        _provider,
        "Provider sent for generations whose provider is outside Maxim's list.",
    ),
    Setting(
        "max_value_chars",
        "--max-value-chars",
        "MAXIM_BRIDGE_MAX_VALUE_CHARS",
        DEFAULT_MAX_VALUE_CHARS,
        _positive_int,
        "Longer strings are cut with a visible truncation marker.",
    ),
    Setting(
        "capture_content",
        "--capture-content",
        "MAXIM_BRIDGE_CAPTURE_CONTENT",
        True,
        parse_switch,
        "false: message contents, tool arguments and results, retrieval queries and documents, and trace "
        "input/output are sent as a placeholder; roles, tool names, finish reasons, usage and times still go.",
    ),
    Setting(
        "redact",
        "--redact",
        "MAXIM_BRIDGE_REDACT",
        (),
        _redact_patterns,
        "Regular expressions whose matches become [REDACTED] in every string sent (ids excepted): a JSON array "
        "of strings or one pattern per line (a YAML list in the file). Never shown: patterns may spell secrets.",
        secret=True,
    ),
    Setting(
        "local_store_endpoint",
        "--local-store-endpoint",
        "MAXIM_BRIDGE_LOCAL_STORE_ENDPOINT",
        DEFAULT_LOCAL_STORE_ENDPOINT,
        parse_endpoint,
        "Where the embedded local store listens when no MAXIM_API_KEY is set.",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    """Everything `serve` needs, validated. Build with `load_settings`."""

    grpc_endpoint: str = DEFAULT_GRPC_ENDPOINT
    http_endpoint: str = DEFAULT_HTTP_ENDPOINT
    admin_endpoint: str = DEFAULT_ADMIN_ENDPOINT
    spool_dir: str = ""
    spool_max_bytes: int = 1024**3
    spool_sync: str = "full"
    assembly_wait: float = 5.0
    placement_retention: float = 3600.0
    grace_period: float = 10.0
    auth_token: Secret = Secret("")
    tls_cert: str | None = None
    tls_key: str | None = None
    grpc_max_request_bytes: int = DEFAULT_GRPC_MAX_REQUEST_BYTES
    http_max_request_bytes: int = DEFAULT_HTTP_MAX_REQUEST_BYTES
    batch_max_entities: int = 500
    batch_max_bytes: int = 4 * 1024**2
    ship_max_spans: int = 1000
    ship_concurrency: int = 3
    map_workers: int = 1
    """Resolved: `auto` (the default) is a number here (see `cpus.auto_map_workers`)."""
    send_timeout: float = 10.0
    send_deadline: float = 5.0
    backoff_max: float = 60.0
    dead_letter_path: str | None = None
    unknown_provider: str = DEFAULT_UNKNOWN_PROVIDER
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
    capture_content: bool = True
    redact: tuple[re.Pattern[str], ...] = field(default=(), repr=False)
    local_store_endpoint: str = DEFAULT_LOCAL_STORE_ENDPOINT
    sources: Mapping[str, str] | None = None
    """Where each value came from (`flag`, `env`, `file`, `default`), for the start-up log line."""

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_dir)

    @property
    def dead_letter_file(self) -> Path:
        return Path(self.dead_letter_path) if self.dead_letter_path else self.spool_path / "dead-letters.jsonl"


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, plus `--config`. Flags default to None so an unset flag never hides env or file."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="YAML config file (keys as in config/bridge.yaml); flags and env vars win over it",
    )
    for setting in SETTINGS:
        default = setting.default if not setting.secret else "(none)"
        parser.add_argument(
            setting.flag,
            dest=setting.name,
            default=None,
            metavar="VALUE",
            help=f"{setting.help} [env {setting.env}; default {default}]",
        )


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of setting: value, got {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in _BY_NAME)
    if unknown:
        raise ConfigError(f"--config: {path} has unknown setting(s) {unknown}; known: {sorted(_BY_NAME)}")
    return data


def load_settings(
    flags: Mapping[str, Any] | argparse.Namespace | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> SidecarSettings:
    """Flags > `MAXIM_BRIDGE_*` env vars > the YAML file > defaults. Raises ConfigError naming the bad setting."""
    if isinstance(flags, argparse.Namespace):
        flags = vars(flags)
    flags = dict(flags or {})
    env = os.environ if environ is None else environ
    if config_file is None:
        config_file = flags.get("config")
    file_values = _read_config_file(config_file) if config_file else {}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        for source, raw, where in (
            ("flag", flags.get(setting.name), setting.flag),
            ("env", env.get(setting.env), setting.env),
            ("file", file_values.get(setting.key), f"{setting.key} in {config_file}"),
        ):
            if raw is None or (source == "env" and raw == ""):
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                shown = "****" if setting.secret else repr(raw)
                raise ConfigError(f"invalid {setting.name} ({where}) = {shown}: {exc}") from None
            sources[setting.name] = source
            break
        else:
            values[setting.name] = setting.default
            sources[setting.name] = "default"

    if values["map_workers"] == AUTO:
        values["map_workers"] = auto_map_workers(usable_cpus())
    if not values["spool_dir"]:
        values["spool_dir"] = default_spool_dir()
    values["auth_token"] = Secret(values["auth_token"] or "")
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        raise ConfigError("tls_cert and tls_key go together: set both (--tls-cert/--tls-key) or neither")
    for name in ("tls_cert", "tls_key"):
        if values[name] and not Path(values[name]).is_file():
            raise ConfigError(f"invalid {name}: {values[name]} is not a readable file")
    endpoints = [values[name] for name in ("grpc_endpoint", "http_endpoint", "admin_endpoint")]
    clashing = {e for e in endpoints if endpoints.count(e) > 1 and not e.endswith(":0")}
    if clashing:
        raise ConfigError(f"grpc_endpoint, http_endpoint and admin_endpoint must differ, {sorted(clashing)} repeats")
    known = {f.name for f in fields(SidecarSettings)}
    return SidecarSettings(**{k: v for k, v in values.items() if k in known}, sources=sources)
