"""Does the mapping of this checkout give exactly what another source tree's gives, for every input of a corpus?

    python bench/mapping_equivalence.py OLD_SRC [--seed N] [--random K] [--traces T] [--show D]

e.g. `git archive main src | tar -x -C /tmp/base` and then `/tmp/base/src`. With `--installed`, the package the
interpreter has installed takes the place of this checkout: `.venv-compiled/bin/python
bench/mapping_equivalence.py src --installed` checks the compiled build (setup.py) against its source.

The corpus is mapped by `map_trace_part` of OLD_SRC and of this checkout, each in a subprocess of its own (with
the same hash seed), and the results are compared entity by entity; the first D differences are printed and the
exit status is 1 if there is any.

The corpus:

- every scenario of every captured instrumentation fixture (`tests/fixtures/captured/*.json`), mapped with
  several `MappingOptions` (the default, a small `max_value_chars`, content capture off, redaction patterns,
  and all of them together), whole and cut in two parts (the second mapped with the first's placements);
- the benchmark's span set (`bench/spanset.py`, T traces, read from the real SDK's spans), with the default
  options and with content capture off plus redaction;
- K random spans (seed N) in small traces: attribute keys of every convention (taken from the string
  constants of `mapping/conventions/*` and of the captured fixtures, indexed keys included), values of every
  type (wrong types, NaN, infinities, huge integers, long and nested values, tuples, JSON texts taken from the
  fixtures and mangled), events of every name the conventions read, any span kind and status, resources that
  carry session and user ids, and random `MappingOptions`.

What is compared: the entities (their `repr`, which tells 1 from 1.0 and True and keeps key order, so equal
means the same JSON bytes), the placements and the skipped records; a mapping that raises is compared by its
exception type and message.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import pickle
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FIXTURES = ROOT / "tests" / "fixtures" / "captured"
CONVENTIONS = ROOT / "src" / "maxim_otel_bridge" / "mapping" / "conventions"

# -- the random corpus, described as plain values (built once by the parent, the same for both trees) --------

_WORDS = ["chat", "execute_tool", "retrieval", "embeddings", "openai", "anthropic", "aws.bedrock", "LLM", "TOOL",
          "AGENT", "RETRIEVER", "CHAIN", "EMBEDDING", "user", "assistant", "system", "tool", "stop", "length",
          "tool_calls", "sk-abc123secret4567", "4111-1111", "text", "generation", "span", "retrieval", "toolCall",
          "ai.generateText", "ai.streamText.doStream", "invoke_agent", "completion", "llm", "null", "", " ", "é✓"]


def _string_constants(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 80:
            if " " not in node.value.strip() or node.value[0].isupper():
                found.add(node.value)
    return found


def _fixture_spans() -> list[dict[str, Any]]:
    spans = []
    for path in sorted(FIXTURES.glob("*.json")):
        for objs in json.loads(path.read_text(encoding="utf-8"))["scenarios"].values():
            spans.extend(objs)
    return spans


def _vocabulary() -> tuple[list[str], list[str], list[str], list[Any]]:
    """Attribute keys, indexed-key prefixes, event names and sample values (JSON texts among them)."""
    constants: set[str] = set()
    for path in sorted(CONVENTIONS.glob("*.py")):
        constants |= _string_constants(path)
    spans = _fixture_spans()
    keys = {c for c in constants if re.fullmatch(r"[a-z_][\w.]*", c) and ("." in c or "_" in c)}
    samples: list[Any] = []
    event_names = {c for c in constants if c.startswith("gen_ai.") or c[:1].isupper() or c == "exception"}
    for span in spans:
        keys |= set(span.get("attributes", {}))
        samples.extend(span.get("attributes", {}).values())
        for event in span.get("events", ()):
            event_names.add(event["name"])
            samples.extend(event.get("attributes", {}).values())
    prefixes = sorted(k for k in keys if k.endswith("."))
    plain = sorted(k for k in keys if not k.endswith("."))
    return plain, prefixes, sorted(event_names | {"x", "exception"}), samples


class RandomSpans:
    """A seeded generator of junk-to-plausible span descriptions (plain dicts, no project types)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys, self.prefixes, self.event_names, samples = _vocabulary()
        self.json_texts = sorted({s for s in samples if isinstance(s, str) and s[:1] in "[{"})
        self.samples = [s for s in samples if not (isinstance(s, str) and s[:1] in "[{")]
        self.subkeys = sorted({k.split(".", 1)[1] for k in self.keys if "." in k} | {
            "message.role", "message.content", "message.tool_calls.0.tool_call.function.name",
            "message.tool_calls.0.tool_call.function.arguments", "message.tool_calls.0.tool_call.id",
            "message.contents.0.message_content.type", "message.contents.0.message_content.text",
            "document.content", "document.id", "document.score", "document.metadata", "role", "content"})

    def key(self) -> str:
        r = self.rng.random()
        if r < 0.6:
            return self.rng.choice(self.keys)
        if r < 0.85 and self.prefixes:
            return f"{self.rng.choice(self.prefixes)}{self.rng.randrange(4)}.{self.rng.choice(self.subkeys)}"
        if r < 0.95:
            return self.rng.choice(self.keys) + self.rng.choice([".x", "_", ".0", "s"])
        return self.rng.choice(["", "x", "maxim.tag.x", "maxim.metric.m", "maxim.tags.y", "tag.tags", "a.b.c"])

    def scalar(self) -> Any:
        rng = self.rng
        return rng.choice([
            None, True, False, 0, 1, -1, 7, 2**53 + 1, 2**64, -(2**70), 3, 0.5, -0.0, 1e308, 1.5e-7,
            math.nan, math.inf, -math.inf, "", "0", "12", "3.5", "NaN", "true", "[", "[{", "{}", "[]",
            rng.choice(_WORDS), rng.choice(_WORDS) * rng.randrange(1, 40), "x" * rng.choice([49, 50, 51, 120, 5000]),
            rng.choice(self.samples) if self.samples else "s", rng.randrange(-5, 10**6), rng.uniform(-1e3, 1e3),
        ])

    def json_text(self) -> str:
        rng = self.rng
        if not self.json_texts:
            return "[]"
        text = rng.choice(self.json_texts)
        r = rng.random()
        if r < 0.5:
            return text
        if r < 0.6:
            return text[: rng.randrange(len(text) + 1)]  # cut by a length limit
        if r < 0.7:
            return text.replace("1", "NaN", 1) if "1" in text else text + "x"
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        return json.dumps(self.mangle(parsed, 3), allow_nan=True)

    def mangle(self, value: Any, depth: int) -> Any:
        """A copy with some leaves swapped for junk, some items dropped or duplicated."""
        rng = self.rng
        if depth <= 0 or rng.random() < 0.08:
            return self.scalar()
        if isinstance(value, dict):
            items = [(k, self.mangle(v, depth - 1) if rng.random() < 0.3 else v) for k, v in value.items()]
            if items and rng.random() < 0.2:
                items.pop(rng.randrange(len(items)))
            if rng.random() < 0.2:
                items.append((rng.choice(["type", "role", "content", "parts", "id", "name", "arguments", "x"]),
                              self.scalar()))
            return dict(items)
        if isinstance(value, list):
            items = [self.mangle(v, depth - 1) if rng.random() < 0.3 else v for v in value]
            if items and rng.random() < 0.2:
                items.append(items[0])
            return items
        return value

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.45 or depth > 3:
            return self.scalar()
        if r < 0.7:
            return self.json_text()
        if r < 0.8:
            items = [self.scalar() for _ in range(rng.randrange(4))]
            return tuple(items) if rng.random() < 0.5 else items
        if r < 0.9:
            return {rng.choice(["role", "content", "type", "text", "id", "name", "a", "parts"]): self.value(depth + 1)
                    for _ in range(rng.randrange(4))}
        if r < 0.95:
            nested: Any = "deep"
            for _ in range(rng.choice([10, 63, 64, 65, 70])):
                nested = [nested] if rng.random() < 0.5 else {"k": nested}
            return nested
        return [self.value(depth + 1) for _ in range(rng.randrange(3))]

    def attributes(self, count: int) -> dict[str, Any]:
        return {self.key(): self.value() for _ in range(count)}

    def event(self, start_ns: int) -> dict[str, Any]:
        rng = self.rng
        attributes = self.attributes(rng.randrange(4))
        if rng.random() < 0.5:
            for key in rng.sample(["content", "message", "body", "index", "finish_reason", "tool_calls", "id",
                                   "gen_ai.input.messages", "gen_ai.output.messages", "exception.type",
                                   "exception.message", "exception.stacktrace", "gen_ai.system_instructions"], 2):
                attributes[key] = self.value()
        return {"name": rng.choice(self.event_names), "time_ns": start_ns + rng.randrange(-10, 10**9),
                "attributes": attributes}

    def trace(self, trace_no: int, spans: int) -> list[dict[str, Any]]:
        rng = self.rng
        trace_id = f"{trace_no + 1:032x}" if rng.random() < 0.97 else rng.choice(["", "zz", "0" * 32, "A" * 32])
        span_ids = [f"{trace_no:08x}{i + 1:08x}" for i in range(spans)]
        resource = {"service.name": "svc"}
        if rng.random() < 0.3:
            resource.update(self.attributes(rng.randrange(3)))
            resource[rng.choice(["session.id", "user.id", "maxim.session.id", "gen_ai.conversation.id"])] = (
                self.scalar())
        out = []
        for i, span_id in enumerate(span_ids):
            r = rng.random()
            parent = (None if i == 0 and r < 0.8 else rng.choice(span_ids[:i] or [None]) if r < 0.9
                      else rng.choice(["ffffffffffffffff", "0000000000000000", "", None]))
            start = rng.choice([0, -5, 1_700_000_000_000_000_000 + rng.randrange(10**12), 2**66])
            end = start + rng.choice([0, -1, rng.randrange(10**10)])
            out.append({
                "trace_id": trace_id,
                "span_id": span_id if rng.random() < 0.98 else rng.choice(["", "xyz", span_ids[0]]),
                "parent_span_id": parent,
                "name": rng.choice(_WORDS + ["chat gpt-4o", "execute_tool get_weather", "ai.toolCall"]),
                "start_ns": start,
                "end_ns": end,
                "attributes": self.attributes(rng.randrange(1, 14)),
                "events": [self.event(start) for _ in range(rng.choice([0, 0, 0, 1, 2, 4]))],
                "kind": rng.choice([0, 1, 2, 3, 4, 5, -1, 9]),
                "status_code": rng.choice([0, 0, 1, 2, 2, 7]),
                "status_message": rng.choice(["", "boom", "x" * 80]),
                "resource": resource if rng.random() < 0.9 else dict(resource, extra=self.scalar()),
                "scope_name": rng.choice(["", "openai.v2", "ai", "opentelemetry.util.genai.handler"]),
                "scope_version": "1",
            })
        return out

    def options(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "max_value_chars": rng.choice([100_000, 100_000, 50, 1, 7, 300]),
            "capture_content": rng.random() < 0.75,
            "redact": rng.choice([(), (), (r"sk-[a-z0-9]+",), (r"[0-9a-f]{4}", r"user|openai|span", r'[{}":]')]),
        }


OPTION_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {"max_value_chars": 50},
    "no-content": {"capture_content": False},
    "redact": {"redact": (r"sk-[A-Za-z0-9]+", r"Paris|weather", r"\d{2,}")},
    "all": {"max_value_chars": 30, "capture_content": False, "redact": (r"[0-9a-f]{4}", r"user|openai|span")},
}


def random_corpus(seed: int, spans: int) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    generator = RandomSpans(seed)
    cases = []
    made = trace_no = 0
    while made < spans:
        size = generator.rng.choice([1, 1, 2, 3, 5, 8])
        cases.append((f"random/{trace_no}", generator.options(), generator.trace(trace_no, size)))
        made += size
        trace_no += 1
    return cases


# -- the worker: maps the corpus with whatever `maxim_otel_bridge` is first on the path ---------------------------


def _records(objs: list[dict[str, Any]]) -> list[Any]:
    from maxim_otel_bridge.record import EventRecord, SpanRecord

    records = []
    for obj in objs:
        fields = dict(obj)
        fields["events"] = tuple(EventRecord(**e) for e in obj.get("events", ()))
        fields["links"] = ()
        records.append(SpanRecord(**fields))
    return records


def _outcome(records: list[Any], options: Any, known: Any = None) -> tuple[Any, ...]:
    from maxim_otel_bridge.mapping import map_trace_part

    try:
        part = map_trace_part(records, options) if known is None else map_trace_part(records, options, known)
    except Exception as exc:  # noqa: BLE001 - the comparison is whether both trees fail the same way
        return ("raised", f"{type(exc).__name__}: {exc}"), None
    placements = sorted((k, p.entity_type, p.parent) for k, p in part.placements.items())
    return (part.entities, placements, part.skipped), part.placements


def worker(corpus_file: str, out_file: str, traces: int) -> None:
    from maxim_otel_bridge.mapping import MappingOptions
    from maxim_otel_bridge.record import SpanRecord, from_readable_span

    with open(corpus_file, "rb") as f:
        random_cases = pickle.load(f)
    results: dict[str, Any] = {}

    def run(name: str, records: list[Any], options: Any) -> None:
        results[name], _ = _outcome(records, options)
        if len(records) > 1:
            cut = len(records) // 2
            results[f"{name}/part1"], placements = _outcome(records[:cut], options)
            if placements is not None:
                results[f"{name}/part2"], _ = _outcome(records[cut:], options, placements)

    for path in sorted(FIXTURES.glob("*.json")):
        fixture = json.loads(path.read_text(encoding="utf-8"))
        for scenario, objs in fixture["scenarios"].items():
            records = [SpanRecord.from_json_obj(obj) for obj in objs]
            for label, fields in OPTION_SETS.items():
                run(f"captured/{path.stem}/{scenario}/{label}", records, MappingOptions(**fields))

    sys.path.insert(0, str(BENCH))
    from spanset import SpanSetSpec, build_spans, trace_parts

    parts = trace_parts(from_readable_span(span) for span in build_spans(SpanSetSpec(traces=traces)))
    for label in ("default", "all"):
        options = MappingOptions(**OPTION_SETS[label])
        for index, records in enumerate(parts):
            results[f"spanset/{index}/{label}"], _ = _outcome(records, options)

    for name, fields, objs in random_cases:
        run(name, _records(objs), MappingOptions(**fields))
    with open(out_file, "wb") as f:
        pickle.dump(results, f)


# -- the comparison ----------------------------------------------------------------------------------------------


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """Where two values first differ (by repr: types, key order and NaN included), or None."""
    if repr(old) == repr(new):
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        if list(old) != list(new):
            return f"{path or '.'}: keys {list(old)} != {list(new)}"
        for key in old:
            found = first_difference(old[key], new[key], f"{path}.{key}")
            if found:
                return found
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and type(old) is type(new):
        if len(old) != len(new):
            return f"{path or '.'}: {len(old)} items != {len(new)}"
        for index, (a, b) in enumerate(zip(old, new)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
    return f"{path or '.'}: {_short(old)} != {_short(new)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + f"...({len(text)} chars)"


def compare(old: dict[str, Any], new: dict[str, Any], show: int) -> int:
    differences = 0
    if set(old) != set(new):
        print(f"cases differ: only old {sorted(set(old) - set(new))[:5]}, only new {sorted(set(new) - set(old))[:5]}")
        differences += 1
    for name in sorted(set(old) & set(new), key=lambda n: (n.split("/")[0], n)):
        a, b = old[name], new[name]
        if repr(a) == repr(b):
            continue
        differences += 1
        if differences > show:
            continue
        if a[0] == "raised" or b[0] == "raised":
            print(f"{name}: {_short(a)} != {_short(b)}")
            continue
        entities_a, entities_b = a[0], b[0]
        for index in range(max(len(entities_a), len(entities_b))):
            ea = entities_a[index] if index < len(entities_a) else None
            eb = entities_b[index] if index < len(entities_b) else None
            found = first_difference(ea, eb)
            if found:
                label = (ea or eb or {}).get("type"), (ea or eb or {}).get("id")
                print(f"{name}: entity {index} {label}: {found}")
                break
        else:
            print(f"{name}: {first_difference(a[1:], b[1:], 'placements/skipped')}")
    return differences


def _map_with(src: Path | None, corpus_file: str, out_file: str, traces: int) -> dict[str, Any]:
    """The corpus mapped by the tree `src`, or by the installed package when `src` is None."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONPATH", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", corpus_file, out_file, "--traces", str(traces)],
        env=env,
        check=True,
        cwd=tempfile.gettempdir(),  # so the tree on PYTHONPATH, not the checkout's, is the one imported
    )
    with open(out_file, "rb") as f:
        return pickle.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old_src", nargs="?", help="the other tree's src directory")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--random", type=int, default=3000, help="random spans in the corpus")
    parser.add_argument("--traces", type=int, default=300, help="traces of the benchmark's span set")
    parser.add_argument("--show", type=int, default=10, help="differences printed")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="compare with the package this interpreter has installed (e.g. a compiled build) "
        "instead of this checkout's src",
    )
    parser.add_argument("--worker", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.traces)
        return 0
    if not args.old_src:
        parser.error("OLD_SRC is required")
    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = os.path.join(tmp, "corpus.pickle")
        with open(corpus_file, "wb") as f:
            pickle.dump(random_corpus(args.seed, args.random), f)
        old = _map_with(Path(args.old_src).resolve(), corpus_file, os.path.join(tmp, "old.pickle"), args.traces)
        new_src = None if args.installed else ROOT / "src"
        new = _map_with(new_src, corpus_file, os.path.join(tmp, "new.pickle"), args.traces)
    entities = sum(len(r[0]) for r in new.values() if r[0] != "raised")
    raised = sum(1 for r in new.values() if r[0] == "raised")
    differences = compare(old, new, args.show)
    print(f"{len(new)} cases, {entities} entities, {raised} raised; {differences} cases differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
