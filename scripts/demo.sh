#!/usr/bin/env bash
# README command 1: install everything, then run the main job against the embedded sample
# inventory (Punakha Dzongkhag) in its virtual lab. Run as root on Debian 12.
#
# The main job is an officer's first week, rehearsed: check the inventory, build the lab, bring
# every WAN link and access point up (verified), back up every device, report drift, document the
# network. provision-wan records the WAN subnets it allocates in inventory/ (see `git diff`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
dzops=.venv/bin/dzops
# Every command talks to the lab, with the lab's own host keys (lab up never writes the inventory's).
export DZOPS_LAB="${DZOPS_LAB_PREFIX:-dz}"
step() { printf '\n== %s\n' "$*" >&2; }

step "doctor (this machine)";      $dzops doctor --lab
step "inventory check";            $dzops inventory check
step "lab up (factory state)";     $dzops lab up
step "provision-wan --all";        $dzops provision-wan --all
step "provision-ap --all";         $dzops provision-ap --all
step "backup";                     $dzops backup
step "drift (expect none)";        $dzops drift --email
step "diagram and docs";           $dzops diagram --output artifacts/demo/diagram && $dzops docs --output artifacts/demo/docs
step "lab status";                 $dzops lab status
echo "dzops demo: done. Diagrams and docs are in artifacts/demo/; the lab stays up: $dzops lab down" >&2
