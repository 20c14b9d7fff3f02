#!/usr/bin/env bash
# README command 1: install everything, then run the main job against the embedded sample
# inventory (Punakha Dzongkhag) in its virtual lab. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
dzops=.venv/bin/dzops
$dzops inventory check
$dzops lab up
$dzops lab status
echo "dzops demo: the virtual Punakha Dzongkhag is up; remove it with: $dzops lab down" >&2
