#!/usr/bin/env bash
# Run the test suites of both environments with one pytest marker expression.
#
#   scripts/run_tests.sh "not slow"   # make test
#   scripts/run_tests.sh slow         # make test-slow
#
# Every suite runs even if an earlier one fails; the exit code is non-zero if any failed.
# A suite that does not exist yet is skipped with a message, never silently.
set -euo pipefail
cd "$(dirname "$0")/.."
mark=${1:?usage: run_tests.sh MARKEXPR}

failed=() ran=0
suite() {  # suite NAME PYTHON PYTEST-ARGS...
  local name=$1 py=$2; shift 2
  echo "==== $name: $py -m pytest -m '$mark' $*"
  local rc=0
  "$py" -m pytest -m "$mark" "$@" || rc=$?
  case $rc in
    0) ran=$((ran + 1)) ;;
    5) echo "==== $name: no tests selected by -m '$mark'" ;;  # pytest's "no tests collected"
    *) failed+=("$name (exit $rc)") ;;
  esac
}
skip() { echo "==== $1: SKIPPED, $2"; }

if [[ -d tests ]]; then suite "core tests" .venv/bin/python
else skip "core tests" "no tests/ folder yet"; fi

# Check for the package on disk, not by importing it: an import error must fail the run.
if [[ -e cryptoface/testing/__init__.py || -e cryptoface/testing.py ]]; then
  suite "conformance" .venv/bin/python --pyargs cryptoface.testing
else skip "conformance" "no cryptoface/testing package yet"; fi

if [[ -d exporters/tests ]]; then suite "exporters" .venv-train/bin/python exporters/tests
else skip "exporters" "no exporters/tests folder yet"; fi

if ((${#failed[@]})); then
  echo "==== FAILED: ${failed[*]}"; exit 1
fi
echo "==== all suites passed ($ran of 3 ran tests)"
