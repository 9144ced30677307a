#!/usr/bin/env bash
# The project's test command (README "Set-up"): installs what the checks need, then runs them all.
# Lint and type checks first (cheap), then pytest over unit, Pulumi-mock, integration and smoke tests.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
bash scripts/install-tools.sh

python3 -m ruff check .
python3 -m mypy models stack bench tests

set +e
python3 -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure of the test command" >&2
  exit 1
fi
exit "$rc"
