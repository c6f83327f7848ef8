#!/usr/bin/env bash
# Set up a virtualenv with the project and its test extras, then run the test suite.
# pytest exits 5 when it collects no tests: that is a failure here, not a pass.
#
# MAXIM_BRIDGE_COMPILE=1 ./scripts/test.sh runs the same suite against the compiled build (setup.py), the one
# the container image ships: installed, not editable, into .venv-compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MAXIM_BRIDGE_COMPILE:-0}" = 1 ]; then
  venv=.venv-compiled
  python3 -m venv "$venv"
  # Rebuilt from the current source every time: pip would keep an installed copy of the same version.
  "$venv/bin/pip" uninstall -q -y maxim-otel-bridge >/dev/null 2>&1 || true
  "$venv/bin/pip" install -q --disable-pip-version-check '.[test]'
  "$venv/bin/python" -c 'from maxim_otel_bridge.mapping import COMPILED; assert COMPILED, "the mapping is not compiled"'
else
  venv=.venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
fi
set +e
"$venv/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected: failing" >&2
  exit 1
fi
exit "$rc"
