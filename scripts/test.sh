#!/usr/bin/env bash
# README command 2: install everything, then run the whole test suite (lab tests need root:
# they build one virtual lab for the session and remove it afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/python -m pytest -q "$@"
