#!/usr/bin/env bash
# Run the sidecar from a checkout: create .venv if missing, install the project into it, then
# `maxim-otel-bridge serve` with the given arguments. Without MAXIM_API_KEY it ships into the embedded
# local store (127.0.0.1:8787); see docs/sidecar.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q -e .
exec .venv/bin/maxim-otel-bridge serve "$@"
