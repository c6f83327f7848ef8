"""What the OTLP trace and log decoders share: the request-level error, per-item problems for partial success,
`AnyValue` decoding (protobuf) and the OTLP/JSON readers of objects, lists, scalars and hex ids.

Every reader of the JSON encoding raises `InvalidItem` naming the field and what is wrong with it; the decoder
that called it decides whether that costs one item (a span, a log record: partial success) or the whole
request (`MalformedRequest`).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "InvalidItem",
    "MalformedRequest",
    "Problems",
    "decode_any_value",
    "decode_attributes",
    "j_any_value",
    "j_attributes",
    "j_hex",
    "j_int64",
    "j_list",
    "j_object",
    "j_optional_object",
    "j_str",
    "j_uint64",
    "json_request_items",
    "label",
]

# How many individual problems are spelled out in the partial-success message; the rest are counted.
_MAX_REPORTED_PROBLEMS = 5
_MAX_NAME_CHARS = 80

_HEX_DIGITS = frozenset("0123456789abcdef")
# AnyValue cases whose field is already the JSON value.
_SCALAR_CASES = frozenset(("string_value", "int_value", "double_value", "bool_value"))


class MalformedRequest(ValueError):
    """The body is not an OTLP request at all; the message says why (safe to return to the client)."""


class InvalidItem(ValueError):
    """One span or log record (or one of its parts) is unusable; the message says which field and why."""


def label(name: object) -> str:
    """An item's name for a problem message, cut short: the message goes back to the client and into logs."""
    text = repr(name)
    return text if len(text) <= _MAX_NAME_CHARS else text[: _MAX_NAME_CHARS - 3] + "..."


class Problems:
    """Collects per-item problems: a count of rejected items, and the first few messages for the client."""

    __slots__ = ("_messages", "_others", "rejected")

    def __init__(self) -> None:
        self.rejected = 0
        self._messages: list[str] = []
        self._others = 0

    def note(self, message: str) -> None:
        if len(self._messages) < _MAX_REPORTED_PROBLEMS:
            self._messages.append(message)
        else:
            self._others += 1

    def reject(self, message: str) -> None:
        self.rejected += 1
        self.note(message)

    @property
    def message(self) -> str:
        """The partial-success message: the first few problems and how many more; empty when there was none."""
        if not self._messages:
            return ""
        text = "; ".join(self._messages)
        if self._others:
            text += f"; and {self._others} more"
        return text


# ---------------------------------------------------------------------------------------------------
# Protobuf


def decode_attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """Repeated `KeyValue` -> dict of JSON values; a key without a value is left out (as the SDK does)."""
    result: dict[str, Any] = {}
    for kv in attributes:
        # Scalars inline: attributes are the hot loop of decoding. Most values are strings, and a non-empty
        # `string_value` can only be the set case of the oneof: one read instead of WhichOneof and getattr.
        value = kv.value
        text = value.string_value
        if text:
            result[kv.key] = text
            continue
        which = value.WhichOneof("value")
        if which in _SCALAR_CASES:
            result[kv.key] = getattr(value, which)
        elif which is not None:
            decoded = decode_any_value(value)
            if decoded is not None:
                result[kv.key] = decoded
    return result


def decode_any_value(value: AnyValue) -> Any:
    """One `AnyValue` as a JSON value (None when unset)."""
    which = value.WhichOneof("value")
    if which in _SCALAR_CASES:
        return getattr(value, which)
    if which == "array_value":
        return [decode_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _decode_kvlist(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if which is None or which == "string_value_strindex":
        # A strindex points into a profiles request's string table; trace and log requests have none, so
        # the value cannot be read: it counts as unset.
        return None
    raise AssertionError(
        f"unhandled AnyValue case {which!r}"
    )  # a new proto field: this function must learn it


def _decode_kvlist(values: Iterable[KeyValue]) -> dict[str, Any]:
    # Inside a kvlist an unset value is kept as null: the key itself carries information.
    result: dict[str, Any] = {}
    for kv in values:
        result[kv.key] = decode_any_value(kv.value)
    return result


# ---------------------------------------------------------------------------------------------------
# OTLP/JSON


def json_request_items(data: bytes, key: str) -> list[Any]:
    """The top-level list (`resourceSpans`, `resourceLogs`) of an OTLP/JSON request; MalformedRequest otherwise."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedRequest(f"body must be a JSON object with {key}")
    try:
        return j_list(document, key)
    except InvalidItem as exc:
        raise MalformedRequest(str(exc)) from None


def j_attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InvalidItem(f"attributes must be a list, got {type(value).__name__}")
    result: dict[str, Any] = {}
    for kv in value:
        key, decoded = _j_key_value(kv)
        if decoded is not None:
            result[key] = decoded
    return result


def _j_key_value(kv: Any) -> tuple[str, Any]:
    kv = j_object(kv, "attribute")
    key = kv.get("key")
    if not isinstance(key, str):
        raise InvalidItem("attribute key must be a string")
    return key, j_any_value(kv.get("value"))


def j_any_value(value: Any) -> Any:
    """One OTLP/JSON AnyValue object as a JSON value (None when empty), identical to the protobuf path."""
    if value is None:
        return None
    value = j_object(value, "attribute value")
    if "stringValue" in value:
        return j_str(value["stringValue"], "stringValue")
    if "intValue" in value:
        return j_int64(value["intValue"], "intValue")
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise InvalidItem("boolValue must be true or false")
        return flag
    if "doubleValue" in value:
        return _j_double(value["doubleValue"])
    if "arrayValue" in value:
        array = j_object(value["arrayValue"], "arrayValue")
        return [j_any_value(v) for v in j_list(array, "values")]
    if "kvlistValue" in value:
        kvlist = j_object(value["kvlistValue"], "kvlistValue")
        return dict(_j_key_value(kv) for kv in j_list(kvlist, "values"))
    if "bytesValue" in value:
        return _j_bytes(value["bytesValue"])
    return None


def j_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidItem(f"{what} must be an object, got {type(value).__name__}")
    return value


def j_optional_object(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    return None if value is None else j_object(value, key)


def j_list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidItem(f"{key} must be a list, got {type(value).__name__}")
    return value


def j_str(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidItem(f"{field} must be a string, got {type(value).__name__}")
    return value


def j_int64(value: Any, field: str, low: int = -(2**63), high: int = 2**63 - 1) -> int:
    # Proto3 JSON: 64-bit integers arrive as decimal strings (or plain numbers from lenient encoders).
    if isinstance(value, bool):
        raise InvalidItem(f"{field} must be an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 10)
        except ValueError:
            raise InvalidItem(f"{field} must be an integer, got {value[:40]!r}") from None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise InvalidItem(f"{field} must be an integer, got {type(value).__name__}")
    if not low <= number <= high:
        raise InvalidItem(f"{field} is out of range")
    return number


def j_uint64(value: Any, field: str) -> int:
    return 0 if value is None else j_int64(value, field, 0, 2**64 - 1)


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _j_double(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidItem("doubleValue must be a number, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidItem(f"doubleValue must be a number, got {str(value)[:40]!r}")


def _j_bytes(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidItem("bytesValue must be a base64 string")
    try:
        # Proto3 JSON accepts standard and URL-safe base64; normalize to standard like the protobuf path.
        raw = base64.b64decode(
            value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4),
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise InvalidItem("bytesValue is not valid base64") from None
    return base64.b64encode(raw).decode("ascii")


def j_hex(value: Any, field: str, size: int) -> str:
    """An OTLP/JSON id of `size` bytes: hex digits in either case, returned in lowercase."""
    if not isinstance(value, str):
        raise InvalidItem(f"{field} must be a hex string, got {type(value).__name__}")
    text = value.lower()
    if len(text) != 2 * size or not _HEX_DIGITS.issuperset(text):
        raise InvalidItem(f"{field} must be {2 * size} hex digits, got {value[:64]!r}")
    return text
