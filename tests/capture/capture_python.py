"""Write `tests/fixtures/captured/<name>.json` from real instrumentation packages (Python, and the Vercel AI SDK).

Re-run after upgrading an instrumentation package, then review the diff:

    cd /work/main && .venv/bin/python tests/capture/capture_python.py            # all of them
    cd /work/main && .venv/bin/python tests/capture/capture_python.py traceloop  # just one
    cd /work/main && .venv/bin/python tests/capture/capture_python.py vercel_ai  # needs node and npm
    cd /work/main && .venv/bin/python tests/capture/capture_python.py --print traceloop  # to stdout, no file

Each file holds the package name and version and, per scenario, the span records exactly as the package emitted
them (ids come from a sequential generator; times and the local server's port are those of the capture run).
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from capture import vercel_ai
from capture.scenarios import CAPTURES, capture, dumps

FIXTURES = TESTS / "fixtures" / "captured"


def main(argv: list[str]) -> int:
    known = [*CAPTURES, "vercel_ai"]
    if len(argv) == 2 and argv[0] == "--print" and argv[1] in CAPTURES:
        # For the live tests: a fresh process per package, since instrumentors patch the OpenAI client globally
        # and not every one of them unpatches completely.
        sys.stdout.write(dumps(argv[1], capture(argv[1])))
        return 0
    names = argv or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown capture(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 2
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = FIXTURES / f"{name}.json"
        text = vercel_ai.dumps(vercel_ai.capture()) if name == "vercel_ai" else dumps(name, capture(name))
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(TESTS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
