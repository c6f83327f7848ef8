"""The sidecar's throughput phase of `run.py --quick` for several sources or settings, alternating.

    python bench/throughput_ab.py ROUNDS NAME=SRC:MAP_WORKERS[,SETTING=VALUE ...] [NAME=... ...]

    python bench/throughput_ab.py 2 before=/tmp/old/src:0 after=:0 before-w1=/tmp/old/src:1 after-w1=:1
    python bench/throughput_ab.py 2 now=:1 big=:1,MAXIM_BRIDGE_SHIP_MAX_SPANS=2000

SRC is put first on the sidecar's PYTHONPATH (the `src` directory of an earlier commit, from `git archive`);
empty runs the installed tree. MAP_WORKERS sets `map_workers`; any further `MAXIM_BRIDGE_*` settings follow it,
separated by commas. Each run is a fresh sidecar fed 10 s of
closed-loop OTLP/gRPC load and drained, as in `run.py --quick`; one JSON line per run. Throughput on a shared
machine moves with its other load: compare variants within one invocation, where they alternate.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Plan, entities_per_trace, measure_throughput
from spanset import SpanSetSpec, build_spans, encode_requests


def main(argv: list[str]) -> None:
    rounds = int(argv[0])
    variants = []
    for arg in argv[1:]:
        name, _, rest = arg.partition("=")
        source, _, tail = rest.rpartition(":")
        workers, *assignments = tail.split(",")
        settings = {"MAXIM_BRIDGE_MAP_WORKERS": workers or "0"}
        for assignment in assignments:
            key, _, value = assignment.partition("=")
            settings[key] = value
        variants.append((name, source, settings))
    spec = SpanSetSpec()
    spans = build_spans(spec)
    requests = encode_requests(spans)
    _, per_trace = entities_per_trace(spans)
    plan = Plan.make(True)
    with tempfile.TemporaryDirectory(prefix="maxim-ab-") as tmp:
        workdir = Path(tmp)
        requests_path = workdir / "requests.pickle"
        requests_path.write_bytes(pickle.dumps(requests))
        for round_no in range(rounds):
            for name, source, settings in variants:
                if source:
                    os.environ["PYTHONPATH"] = source
                else:
                    os.environ.pop("PYTHONPATH", None)
                run_dir = workdir / f"{name}-{round_no}"
                run_dir.mkdir()
                result = measure_throughput(
                    plan,
                    run_dir,
                    requests_path,
                    per_trace,
                    spec.spans_per_trace,
                    None,
                    settings=settings,
                )
                line = {"variant": name, "round": round_no, "load_1min": round(os.getloadavg()[0], 2), **result}
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
