#!/usr/bin/env bash
# Set up a virtualenv with the project and its test extras, then run the test suite.
# pytest exits 5 when it collects no tests: that is a failure here, not a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected: failing" >&2
  exit 1
fi
exit "$rc"
