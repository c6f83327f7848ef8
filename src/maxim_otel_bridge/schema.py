"""Strict validation of batch bodies against Maxim's published schema for `POST /v1/logs/batch`.

`batch_schema.json` is generated from the OpenAPI page by `scripts/build_batch_schema.py`: one JSON
Schema per entity `type`, so every problem names the entity kind, index, id and the exact field.
Used by the emulator (to refuse what Maxim would refuse) and by the tests (every payload sent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["ENTITY_TYPES", "PROVIDERS", "MESSAGE_ROLES", "Problem", "validate_batch", "validate_entity"]


@cache
def _schemas() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("batch_schema.json").read_text())


def _new_validator(schema: dict[str, Any]) -> Draft202012Validator:
    # Imported on first use: the sidecar and the mapping read only the enums below, and jsonschema with its
    # dependencies would add megabytes to each of their processes.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


@cache
def _validator(kind: str) -> Draft202012Validator:
    return _new_validator(_schemas()["entities"][kind])


ENTITY_TYPES: tuple[str, ...] = ("session", "trace", "span", "generation", "retrieval", "toolCall", "event")
PROVIDERS: tuple[str, ...] = tuple(_schemas()["entities"]["generation"]["properties"]["provider"]["enum"])
MESSAGE_ROLES: tuple[str, ...] = tuple(
    _schemas()["entities"]["generation"]["properties"]["messages"]["items"]["properties"]["role"]["enum"]
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One schema violation: where (`index`, `id`, JSON path) and what."""

    index: int | None
    entity_id: str | None
    path: str
    message: str

    def __str__(self) -> str:
        where = "body" if self.index is None else f"logs[{self.index}]"
        if self.entity_id:
            where += f" (id {self.entity_id!r})"
        if self.path:
            where += f" at {self.path}"
        return f"{where}: {self.message}"

    def to_json_obj(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.entity_id, "path": self.path, "message": self.message}


def _json_path(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validate_entity(entity: Any, index: int | None = None) -> list[Problem]:
    """All schema problems of one entity (empty when valid)."""
    if not isinstance(entity, Mapping):
        return [Problem(index, None, "", f"entity must be an object, got {type(entity).__name__}")]
    entity_id = entity.get("id") if isinstance(entity.get("id"), str) else None
    kind = entity.get("type")
    if kind not in ENTITY_TYPES:
        return [Problem(index, entity_id, "type", f"unknown entity type {kind!r}; expected one of {list(ENTITY_TYPES)}")]
    problems = []
    for error in sorted(_validator(kind).iter_errors(entity), key=lambda e: list(e.absolute_path)):
        problems.append(Problem(index, entity_id, _json_path(error.absolute_path), f"{kind}: {error.message}"))
    return problems


def validate_batch(body: Any) -> list[Problem]:
    """All problems of a batch body `{"repoId", "logs": [...]}` (empty when valid)."""
    if not isinstance(body, Mapping):
        return [Problem(None, None, "", f"body must be a JSON object, got {type(body).__name__}")]
    problems = [
        Problem(None, None, _json_path(e.absolute_path), e.message)
        for e in _new_validator(_schemas()["envelope"]).iter_errors(body)
    ]
    logs = body.get("logs")
    if isinstance(logs, list):
        for index, entity in enumerate(logs):
            problems.extend(validate_entity(entity, index))
    return problems
