#!/usr/bin/env bash
# The project's test command (README "Set-up"): installs what the checks need, then runs them all.
# Everything Python goes into the project's virtualenv (.venv, the one Pulumi.yaml names), created when missing;
# set PYTHON to use another interpreter. Lint and type checks first (cheap), then pytest over unit, Pulumi-mock,
# integration, Docker and real-Pulumi deploy tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  PYTHON="$PWD/.venv/bin/python"
fi
export PYTHON PATH="$(dirname "$PYTHON"):$PATH"

"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
bash scripts/install-tools.sh

"$PYTHON" -m ruff check .
"$PYTHON" -m mypy models stack bench tests

set +e
"$PYTHON" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure of the test command" >&2
  exit 1
fi
exit "$rc"
