"""Linux/OpenWrt-style access points running hostapd, over SSH (bash + passwordless sudo).

The unit of configuration is a set of files (`dzops.plan.ap.intended_ap_files`): one hostapd config
per SSID plus `/etc/default/hostapd`, whose `DAEMON_CONF` lists them for one hostapd process.
Procedure (measured on the lab's hostapd 2.10, see `dzops.lab.routers`):

- read: one exec channel prints every file (base64), `ip -j link show`, whether hostapd runs and
  `hostapd_cli status|get_config` of each SSID interface;
- write: one exec channel, files on stdin, each written to a temporary name and renamed;
- VLAN: each SSID interface is an access port of its VLAN on the AP's one bridge `br0`, the uplink
  a trunk of the SSIDs' VLANs (`dzops.execute.drivers.bridge`: Open vSwitch or a VLAN-aware Linux
  bridge, detected on the AP; hostapd with driver=none does not add the interface itself);
- restart = validate: stop with start-stop-daemon (waits until the ctrl sockets are gone), start
  with `hostapd -B`; exit status 1 and `Line N: ...` mean hostapd refused the files.

SSH session handling (host-key policy, error classification, bounded channels) is dzops.execute.ssh's.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from dzops.exceptions import DeviceError
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.bridge import BridgePorts
from dzops.execute.ssh import Session

PIDFILE = "/run/hostapd.pid"
CTRL_DIR = "/run/hostapd"
HOSTAPD = "/usr/sbin/hostapd"

_READ_SCRIPT = r"""
pidfile=$1 ctrl=$2; shift 2
files= ifaces=
while [ $# -gt 0 ]; do [ "$1" = -- ] && { shift; break; }; files="$files $1"; shift; done
ifaces=$*
for f in $files; do
  if [ -f "$f" ]; then printf '=FILE %s\n' "$f"; base64 -w0 < "$f"; printf '\n'
  else printf '=NOFILE %s\n' "$f"; fi
done
printf '=LINKS\n'; ip -j link show; printf '\n'
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo '=RUNNING 1'; else echo '=RUNNING 0'; fi
for i in $ifaces; do
  printf '=STATUS %s\n' "$i"; hostapd_cli -p "$ctrl" -i "$i" status 2>&1
  printf '=CONFIG %s\n' "$i"; hostapd_cli -p "$ctrl" -i "$i" get_config 2>&1
done
printf '=END\n'
"""

_WRITE_SCRIPT = r"""
set -e
while read -r path mode data; do
  if [ "$mode" = - ]; then rm -f "$path"; continue; fi
  mkdir -p "$(dirname "$path")"
  printf '%s' "$data" | base64 -d > "$path.dzops-new"
  chmod "$mode" "$path.dzops-new"
  mv -f "$path.dzops-new" "$path"
done
"""

_RESTART_SCRIPT = r"""
pidfile=$1 hostapd=$2 action=$3
start-stop-daemon --stop --quiet --retry 5 --oknodo --pidfile "$pidfile" --exec "$hostapd" || exit 3
[ "$action" = start ] || exit 0
[ -r /etc/default/hostapd ] && . /etc/default/hostapd
exec "$hostapd" -B -P "$pidfile" ${DAEMON_CONF:-/etc/hostapd/hostapd.conf}
"""


def parse_key_values(text: str) -> dict[str, str]:
    """hostapd_cli's `key=value` lines as a dict.

    >>> parse_key_values("state=ENABLED\\nssid[0]=Office\\nnoise line\\n")
    {'state': 'ENABLED', 'ssid[0]': 'Office'}
    """
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            out[key] = value
    return out


def refusal(output: str) -> str:
    """The first line of hostapd's own verdict on refused config files.

    >>> refusal("Line 19: invalid WPA passphrase length 5 (expected 8..63)\\n2 errors found in configuration file 'x'\\n")
    'Line 19: invalid WPA passphrase length 5 (expected 8..63)'
    >>> refusal("wlan0: could not start\\n")
    'wlan0: could not start'
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Line "):
            return line
    return lines[-1] if lines else "hostapd refused to start"


@dataclass
class ApState:
    """What an AP holds now: the files asked for, bridge membership, and hostapd's view of each SSID."""

    files: dict[str, str | None] = field(default_factory=dict)  # None: absent
    masters: dict[str, str | None] = field(default_factory=dict)  # interface -> its bridge (None: none)
    interfaces: set[str] = field(default_factory=set)
    running: bool = False
    status: dict[str, dict[str, str]] = field(default_factory=dict)  # iface -> hostapd_cli status
    config: dict[str, dict[str, str]] = field(default_factory=dict)  # iface -> hostapd_cli get_config


def parse_state(output: str) -> ApState:
    """Parse the output of the read script.

    >>> s = parse_state("=FILE /a\\naGk=\\n=NOFILE /b\\n=LINKS\\n" + '[{"ifname":"wlan0","master":"br10"},{"ifname":"br10"}]'
    ...                 "\\n=RUNNING 1\\n=STATUS wlan0\\nstate=ENABLED\\n=CONFIG wlan0\\nssid=X\\n=END\\n")
    >>> s.files, s.masters, s.running, s.status["wlan0"]["state"], s.config["wlan0"]["ssid"]
    ({'/a': 'hi', '/b': None}, {'wlan0': 'br10', 'br10': None}, True, 'ENABLED', 'X')
    """
    state = ApState()
    section: tuple[str, str] | None = None
    buffer: list[str] = []

    def flush() -> None:
        if section is None:
            return
        kind, arg = section
        text = "\n".join(buffer)
        if kind == "FILE":
            state.files[arg] = base64.b64decode(text.strip()).decode() if text.strip() else ""
        elif kind == "LINKS":
            for link in json.loads(text or "[]"):
                state.masters[link["ifname"]] = link.get("master")
                state.interfaces.add(link["ifname"])
        elif kind == "STATUS":
            state.status[arg] = parse_key_values(text)
        elif kind == "CONFIG":
            state.config[arg] = parse_key_values(text)

    for line in output.splitlines():
        if line.startswith("="):
            flush()
            buffer = []
            kind, _, arg = line[1:].partition(" ")
            section = None
            if kind == "NOFILE":
                state.files[arg] = None
            elif kind == "RUNNING":
                state.running = arg.strip() == "1"
            elif kind in ("FILE", "LINKS", "STATUS", "CONFIG"):
                section = (kind, arg)
        else:
            buffer.append(line)
    flush()
    return state


class Driver(BridgePorts):
    """A hostapd AP (files + one hostapd process, ports on br0) behind SSH with sudo."""

    def __init__(self, credentials: Credentials, **_options: Any) -> None:
        self.credentials = credentials
        self.session = Session(credentials)

    def open(self) -> None:
        self.session.open()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, command: str, stdin: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
        """One exec channel; stdin (if any) is sent and closed. Returns (status, stdout, stderr)."""
        return self.session.run(command, stdin=stdin, timeout=timeout)

    def sudo_script(self, script: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        argv = ["sudo", "-n", "sh", "-c", script, "dzops", *args]
        return self.run(" ".join(shlex.quote(a) for a in argv), stdin=stdin)

    def _checked(self, what: str, result: tuple[int, str, str]) -> str:
        status, out, err = result
        if status != 0:
            detail = (err.strip() or out.strip()).splitlines()
            raise DeviceError(self.credentials.host, f"{what} failed: {detail[-1] if detail else f'exit {status}'}")
        return out

    # -- AP operations ------------------------------------------------------------------------
    def read_state(self, paths: list[str], interfaces: list[str]) -> ApState:
        out = self._checked("reading the AP's state",
                            self.sudo_script(_READ_SCRIPT, PIDFILE, CTRL_DIR, *paths, "--", *interfaces))
        if "=END" not in out:
            raise DeviceError(self.credentials.host, "reading the AP's state: output ended early")
        return parse_state(out)

    def write_files(self, files: dict[str, tuple[str | None, int]]) -> None:
        """Write (content, mode) per path; content None removes the file."""
        lines = []
        for path, (content, mode) in files.items():
            if content is None:
                lines.append(f"{path} - -")
            else:
                lines.append(f"{path} {mode:o} {base64.b64encode(content.encode()).decode()}")
        self._checked("writing the hostapd files", self.sudo_script(_WRITE_SCRIPT, stdin="\n".join(lines) + "\n"))

    def restart(self, start: bool = True) -> str | None:
        """Stop hostapd, then start it (when asked) on the files in place; returns hostapd's refusal, if any."""
        status, out, err = self.sudo_script(_RESTART_SCRIPT, PIDFILE, HOSTAPD, "start" if start else "stop")
        if status == 3:
            raise DeviceError(self.credentials.host, f"cannot stop hostapd: {(err or out).strip()}")
        return None if status == 0 else refusal(out + "\n" + err)

    def get_config(self) -> str:
        """The hostapd files in use, each under a `# ==> PATH` header (for backups; mask before showing)."""
        defaults = self.read_state(["/etc/default/hostapd"], []).files.get("/etc/default/hostapd") or ""
        paths = []
        for line in defaults.splitlines():
            if line.startswith("DAEMON_CONF="):
                paths = line.split("=", 1)[1].strip().strip('"').split()
        state = self.read_state(["/etc/default/hostapd", *paths], [])
        return "".join(f"# ==> {p}\n{c or ''}" for p, c in state.files.items())
