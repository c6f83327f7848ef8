"""Regenerate src/maxim_otel_bridge/batch_schema.json from Maxim's OpenAPI page for POST /v1/logs/batch.

OpenAPI 3.0 is not JSON Schema: `nullable: true` becomes a null type, `$ref`s into components are
inlined, and the `oneOf` over entities is split into one schema per entity `type` so validation errors
name the right entity kind. Usage: python scripts/build_batch_schema.py ../shared/seeds/000_*.txt
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "src" / "maxim_otel_bridge" / "batch_schema.json"


def _openapi_yaml(text: str) -> dict[str, Any]:
    match = re.search(r"````yaml[^\n]*\n(.*?)````", text, re.S)
    if not match:
        raise SystemExit("no ````yaml block in the seed")
    return yaml.safe_load(match.group(1))


def _convert(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _convert(components[name], components)
    out = {k: _convert(v, components) for k, v in node.items() if k not in ("nullable", "discriminator", "description")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif not out:
            return {}
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    if "anyOf" in out:
        # `- nullable: true` inside anyOf converts to {}; that branch means "null is allowed".
        branches = [b for b in out["anyOf"] if b != {}]
        if len(branches) != len(out["anyOf"]):
            branches.append({"type": "null"})
        out["anyOf"] = branches
    if node.get("format") == "uri":
        out.pop("format", None)
    return out


def build(seed_text: str) -> dict[str, Any]:
    spec = _openapi_yaml(seed_text)
    components = spec["components"]["schemas"]
    body = spec["paths"]["/v1/logs/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    entities = {}
    for branch in body["properties"]["logs"]["items"]["oneOf"]:
        kind = branch["properties"]["type"]["enum"][0]
        schema = _convert(branch, components)
        schema.pop("title", None)
        result = schema["properties"].get("result")
        if result is not None and "oneOf" in result:
            # The discriminator on `object` as if/then/else, so an error names the fields of the right result kind.
            chat, text = result["oneOf"]
            schema["properties"]["result"] = {
                "type": "object",
                "required": ["object"],
                "if": {"properties": {"object": {"const": "chat.completion"}}},
                "then": chat,
                "else": text,
            }
        entities[kind] = schema
    envelope = _convert(body, components)
    envelope["properties"]["logs"] = {"type": "array"}
    return {"envelope": envelope, "entities": entities}


def main() -> None:
    seed = Path(sys.argv[1]) if len(sys.argv) > 1 else next(Path(__file__).resolve().parents[2].glob("shared/seeds/000_*.txt"))
    OUT.write_text(json.dumps(build(seed.read_text()), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
