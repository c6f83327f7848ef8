"""Instructions per span of `map_trace_part` on the span set, counted by valgrind's callgrind: a figure that does
not move with the machine's other load or speed, for comparing the mapping before and after a change.

    python bench/mapping_instructions.py [--traces 200] [SRC ...]

With no SRC, counts the package the interpreter imports (the checkout, or the compiled build with
`.venv-compiled/bin/python`); each SRC is a `src` directory put first on `PYTHONPATH` instead (e.g.
`git archive <commit> src | tar -x -C /tmp/before`, then `/tmp/before/src`). Prints one JSON line: the
instructions per span of each. The same tree and inputs give the same count to a fraction of a percent.

The traces are built and read once, pickled, and mapped in a child process under callgrind, which counts only
inside the mapping calls (collection is switched on while `itertools.starmap` hands them out; the mapping never
uses `starmap` itself). About 15 seconds per tree with 200 traces; needs valgrind (Debian's `valgrind`).
Instructions are not time (memory stalls and the kernel are not counted): a change that moves them should be
confirmed with `bench/exporter_compare.py` or `bench/sidecar_breakdown.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WARM_UP_TRACES = 50
"""Mapped before counting starts, so caches the mapping fills on first use (plans, memos) are warm."""

_CHILD = """
import collections, itertools, pickle, sys
from maxim_otel_bridge.mapping import map_trace_part
with open(sys.argv[1], "rb") as f:
    parts = pickle.load(f)
for part in parts[:{warm_up}]:
    map_trace_part(part)
collections.deque(itertools.starmap(map_trace_part, ((part,) for part in parts)), maxlen=0)
"""


def write_parts(path: Path, traces: int) -> int:
    """The span set's traces as span records, one list per trace, pickled to `path`. Returns the span count."""
    from spanset import SpanSetSpec, build_spans, trace_parts

    from maxim_otel_bridge.record import from_readable_span

    parts = trace_parts(from_readable_span(span) for span in build_spans(SpanSetSpec(traces=traces)))
    path.write_bytes(pickle.dumps(parts))
    return sum(len(part) for part in parts)


def count(parts_path: Path, spans: int, source: Path | None, workdir: Path) -> float:
    """Instructions per span of mapping the pickled traces, the package imported from `source` if given."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    out_file = workdir / "callgrind.out"
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            "--toggle-collect=starmap_next",
            sys.executable,
            "-c",
            _CHILD.format(warm_up=WARM_UP_TRACES),
            str(parts_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"callgrind failed:\n{result.stderr[-3000:]}")
    return int(match.group(1)) / spans


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="*", type=Path, help="src directories to count instead of the installed one")
    parser.add_argument("--traces", type=int, default=200)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="maxim-instructions-") as tmp:
        workdir = Path(tmp)
        parts_path = workdir / "parts.pickle"
        spans = write_parts(parts_path, args.traces)
        targets: list[Path | None] = list(args.sources) or [None]
        counts = {str(source or "installed"): round(count(parts_path, spans, source, workdir)) for source in targets}
    print(json.dumps({"spans": spans, "instructions_per_span": counts}))


if __name__ == "__main__":
    main()
