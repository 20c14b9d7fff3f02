#!/usr/bin/env bash
# README command 2: install everything, then run the whole test suite (lab tests need root:
# they build one virtual lab for the session and remove it afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# Every program and kernel feature the suite needs, checked first: a missing package is named with
# its fix in one line instead of surfacing as a hundred failed tests (exit 9). The kernel probe's
# throwaway namespace carries the test lab's prefix.
.venv/bin/dzops doctor --lab --prefix "${DZOPS_TEST_LAB_PREFIX:-dzt}"
exec .venv/bin/python -m pytest -q "$@"
