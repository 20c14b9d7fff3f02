"""Cumulus-style Linux switches (bash + passwordless sudo, ports swpN in one bridge `br0`), over SSH.

Only what provisioning an AP's uplink port needs: does the port exist, is the bridge VLAN-aware
(`/sys/class/net/br0/bridge/vlan_filtering`), which VLANs the port carries (`bridge -j vlan show`),
and `sudo bridge vlan add|del` to make that exactly the intended set.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from dzops.exceptions import DeviceError
from dzops.execute.drivers.hostapd import Driver as _LinuxDriver

BRIDGE = "br0"

_PORT_SCRIPT = r"""
port=$1 bridge=$2
if ip link show dev "$port" >/dev/null 2>&1; then echo '=PORT 1'; else echo '=PORT 0'; fi
f=$(cat "/sys/class/net/$bridge/bridge/vlan_filtering" 2>/dev/null || echo missing)
echo "=FILTERING $f"
echo '=VLANS'
if [ "$f" = 1 ]; then bridge -j vlan show dev "$port"; fi
echo
"""


@dataclass
class PortState:
    exists: bool = False
    vlan_filtering: str = "missing"  # "1", "0", or "missing" (kernel without CONFIG_BRIDGE_VLAN_FILTERING)
    vlans: dict[int, tuple[bool, bool]] = field(default_factory=dict)  # vid -> (pvid, untagged)

    @property
    def vlan_aware(self) -> bool:
        return self.vlan_filtering == "1"


def parse_port_state(output: str, port: str) -> PortState:
    """Parse the port script's output.

    >>> s = parse_port_state('=PORT 1\\n=FILTERING 1\\n=VLANS\\n[{"ifname":"swp2","vlans":[{"vlan":1,"flags":["PVID","Egress Untagged"]},{"vlan":10}]}]\\n', "swp2")
    >>> s.exists, s.vlan_aware, s.vlans
    (True, True, {1: (True, True), 10: (False, False)})
    >>> parse_port_state("=PORT 1\\n=FILTERING missing\\n=VLANS\\n\\n", "swp2").vlan_aware
    False
    """
    state = PortState()
    lines = output.splitlines()
    vlan_json: list[str] = []
    in_vlans = False
    for line in lines:
        if line.startswith("=PORT "):
            state.exists = line.split()[1] == "1"
        elif line.startswith("=FILTERING "):
            state.vlan_filtering = line.split()[1]
        elif line.startswith("=VLANS"):
            in_vlans = True
        elif in_vlans:
            vlan_json.append(line)
    text = "\n".join(vlan_json).strip()
    for entry in json.loads(text) if text else []:
        if entry.get("ifname") != port:
            continue
        for vlan in entry.get("vlans", []):
            flags = vlan.get("flags", [])
            for vid in range(vlan["vlan"], vlan.get("vlanEnd", vlan["vlan"]) + 1):
                state.vlans[vid] = ("PVID" in flags, "Egress Untagged" in flags)
    return state


def vlan_commands(port: str, current: dict[int, tuple[bool, bool]], intended: dict[int, bool]) -> list[str]:
    """`bridge vlan` commands turning the port's VLANs into exactly the intended ones (vid -> native).

    >>> vlan_commands("swp2", {1: (True, True), 10: (False, False)}, {10: False, 20: False, 99: True})
    ['bridge vlan del dev swp2 vid 1', 'bridge vlan add dev swp2 vid 20', 'bridge vlan add dev swp2 vid 99 pvid untagged']
    >>> vlan_commands("swp2", {10: (False, False), 99: (True, True)}, {10: False, 99: True})
    []
    """
    commands = [f"bridge vlan del dev {port} vid {vid}" for vid in sorted(current) if vid not in intended]
    for vid, native in sorted(intended.items()):
        if current.get(vid) != (native, native):
            commands.append(f"bridge vlan add dev {port} vid {vid}" + (" pvid untagged" if native else ""))
    return commands


class Driver(_LinuxDriver):
    """A Cumulus-style switch behind SSH with sudo."""

    def port_state(self, port: str) -> PortState:
        out = self._checked(f"reading port {port}", self.sudo_script(_PORT_SCRIPT, port, BRIDGE))
        return parse_port_state(out, port)

    def apply_bridge_commands(self, commands: list[str]) -> None:
        if not commands:
            return
        script = "set -e\n" + "\n".join(" ".join(shlex.quote(w) for w in c.split()) for c in commands) + "\n"
        self._checked("changing the port's VLANs", self.sudo_script(script))

    def get_config(self) -> str:
        status, out, err = self.run("bridge vlan show")
        if status != 0:
            raise DeviceError(self.credentials.host, f"'bridge vlan show' failed: {err.strip()}")
        return out
