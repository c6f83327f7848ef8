"""The exporter's CPU per span before and after a change, measured side by side under the same machine load.

    git archive <commit> src | tar -x -C /tmp/before
    python bench/exporter_compare.py /tmp/before/src [--rounds 5] [--traces 1000]

Each round runs `bench/exporter_cost.py` in a fresh process for the official OTLP gRPC exporter, the Maxim
exporter from the `src` directory given (put first on `PYTHONPATH`), the Maxim exporter of this checkout,
and the official OTLP/HTTP exporter, one after the other, so that the machine's other load falls on all
four alike. Prints one JSON line: the median CPU microseconds per span of each, both ratios to the gRPC
exporter, after over before, and every round's figures. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sinks import SinkProcess

SOURCE = HERE.parent / "src"


def cost(kind: str, target: str, traces: int, source: Path) -> float:
    """CPU microseconds per span of one exporter run, the package imported from `source`."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    out = subprocess.run(
        [sys.executable, str(HERE / "exporter_cost.py"), kind, target, str(traces)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"exporter_cost.py {kind} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["cpu_s"] / result["spans"] * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the src directory of the version to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traces", type=int, default=1000)
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {"otlp-grpc": [], "before": [], "now": [], "otlp-http": []}
    with SinkProcess("http") as http_sink, SinkProcess("grpc") as grpc_sink:
        for round_no in range(args.rounds):
            for name, results in runs.items():
                kind = "maxim" if name in ("before", "now") else name
                target = grpc_sink.endpoint if kind == "otlp-grpc" else http_sink.url
                results.append(cost(kind, target, args.traces, args.before if name == "before" else SOURCE))
                print(f"round {round_no + 1}: {name} {results[-1]:.1f} us/span", file=sys.stderr, flush=True)
    median = {name: statistics.median(results) for name, results in runs.items()}
    print(
        json.dumps(
            {
                "median_us_per_span": {name: round(value, 1) for name, value in median.items()},
                "ratio_before": round(median["before"] / median["otlp-grpc"], 2),
                "ratio_now": round(median["now"] / median["otlp-grpc"], 2),
                "now_over_before": round(median["now"] / median["before"], 3),
                "rounds": {name: [round(value, 1) for value in results] for name, results in runs.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
