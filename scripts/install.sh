#!/usr/bin/env bash
# Installs everything dzops and its lab need on Debian 12 (run as root): Debian packages, then
# dzops itself in ./.venv. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  python3 python3-venv python3-pip git openssl ca-certificates sudo
  iproute2 procps iputils-ping util-linux            # namespaces, links, ps, ping, unshare/nsenter
  frr frr-pythontools openssh-server openssh-client sshpass lldpd hostapd  # routers (frr-reload.py), APs, logins
  openvswitch-switch                                 # VLAN-aware switching in user space (no 8021q here)
  debootstrap dpkg-dev apt-utils                     # the servers' base image and the lab package repo
  cron graphviz chromium                             # schedules, diagrams, report screenshots
)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "dzops install: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# The Cisco IOS simulator used as a real SSH peer in tests pins a Twisted that no longer builds;
# it runs with current releases of its dependencies (listed in the test extra).
.venv/bin/pip install -q --disable-pip-version-check --no-deps fake-switches==1.5.0
echo "dzops install: ready (.venv/bin/dzops)" >&2
