"""Ports of a Linux device's bridge `br0` and the VLANs they carry, whichever bridge the device runs.

The backend is detected on the device by one read script, never assumed:
- `ovs-vsctl br-exists br0` answers 0: br0 is an Open vSwitch bridge (the lab's switches and APs,
  whose kernel has neither a VLAN-aware Linux bridge nor 8021q; OVS's user-space datapath does VLANs);
- else `/sys/class/net/br0/bridge/vlan_filtering` is 1: a VLAN-aware Linux bridge (Cumulus, Debian);
- else ("none") the bridge carries every frame untagged and its ports have no VLANs to set:
  provision-ap then reports a switch-port trunk as not applicable, and refuses to put SSIDs of
  different VLANs on such an AP.

A port's VLANs are one value for every backend, `vid -> native` (native: untagged in and out, the
PVID); an Open vSwitch port with neither tag nor trunks carries every VLAN (`all_vlans`). One
implementation per backend turns the intended VLANs into commands (`bridge vlan add|del` for Linux,
one `ovs-vsctl set port` for OVS) and puts a saved port back exactly as it was read.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Literal

from dzops.exceptions import DeviceError

BRIDGE = "br0"
Backend = Literal["ovs", "linux", "none"]

_READ_SCRIPT = r"""
bridge=$1; shift
if command -v ovs-vsctl >/dev/null 2>&1 && ovs-vsctl --timeout=10 br-exists "$bridge" 2>/dev/null; then
  backend=ovs detail="$bridge is an Open vSwitch bridge"
else
  f=$(cat "/sys/class/net/$bridge/bridge/vlan_filtering" 2>/dev/null || echo missing)
  if [ "$f" = 1 ]; then backend=linux; else backend=none; fi
  detail="/sys/class/net/$bridge/bridge/vlan_filtering: $f"
fi
printf '=BACKEND %s %s\n' "$backend" "$detail"
for p in "$@"; do
  if ip link show dev "$p" >/dev/null 2>&1; then e=1; else e=0; fi
  m=0
  case $backend in
    ovs) [ "$(ovs-vsctl --timeout=10 port-to-br "$p" 2>/dev/null)" = "$bridge" ] && m=1 ;;
    *) [ "$(basename "$(readlink "/sys/class/net/$p/master" 2>/dev/null)" 2>/dev/null)" = "$bridge" ] && m=1 ;;
  esac
  printf '=PORT %s %s %s\n' "$p" "$e" "$m"
  case $backend in
    ovs) [ $m = 1 ] && ovs-vsctl --timeout=10 get port "$p" vlan_mode tag trunks ;;
    linux) [ $m = 1 ] && bridge -j vlan show dev "$p"; echo ;;
  esac
done
echo '=END'
"""


@dataclass
class PortState:
    """One bridge port as read from the device."""

    exists: bool = False  # the interface exists
    backend: Backend = "none"
    detail: str = ""  # how the backend was recognised (for notes)
    member: bool = False  # the interface is a port of br0
    vlans: dict[int, bool] = field(default_factory=dict)  # vid -> native
    all_vlans: bool = False  # OVS: no tag and no trunks, every VLAN passes
    raw: str = ""  # OVS: `vlan_mode=... tag=... trunks=...` exactly as read, to put the port back

    @property
    def vlan_aware(self) -> bool:
        return self.backend != "none"

    def carries(self, intended: dict[int, bool]) -> bool:
        """Whether the port is on br0 with exactly the intended VLANs."""
        return self.member and not self.all_vlans and self.vlans == intended


def _ovs_value(text: str) -> list[str]:
    """An OVSDB column as ovs-vsctl prints it: `[]`, `10`, `[10, 20]`, `native-untagged`, `"x"`.

    >>> _ovs_value("[]"), _ovs_value("10"), _ovs_value("[10, 20]"), _ovs_value('"access"')
    ([], ['10'], ['10', '20'], ['access'])
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1:-1]
    return [word.strip().strip('"') for word in text.split(",") if word.strip()]


def ovs_port_vlans(vlan_mode: str, tag: str, trunks: str) -> tuple[dict[int, bool], bool]:
    """(vid -> native, all VLANs) of an OVS port from its three columns as ovs-vsctl prints them.

    >>> ovs_port_vlans("[]", "[]", "[]")
    ({}, True)
    >>> ovs_port_vlans("access", "20", "[]"), ovs_port_vlans("[]", "20", "[]")
    (({20: True}, False), ({20: True}, False))
    >>> ovs_port_vlans("native-untagged", "99", "[10, 20, 99]")
    ({10: False, 20: False, 99: True}, False)
    >>> ovs_port_vlans("trunk", "[]", "[10, 20]")
    ({10: False, 20: False}, False)
    """
    mode = (_ovs_value(vlan_mode) or [""])[0]
    tags = [int(v) for v in _ovs_value(tag)]
    vids = [int(v) for v in _ovs_value(trunks)]
    if not mode:
        mode = "access" if tags else "trunk"  # OVS's own default
    if mode == "access":
        return ({tags[0]: True} if tags else {}), False
    vlans = {vid: False for vid in vids}
    if tags:
        vlans[tags[0]] = mode == "native-untagged"
    return dict(sorted(vlans.items())), not vids


def ovs_columns(intended: dict[int, bool]) -> str:
    """The `ovs-vsctl set port` columns for vid -> native.

    >>> ovs_columns({20: True})
    'vlan_mode=access tag=20 trunks=[]'
    >>> ovs_columns({10: False, 20: False, 99: True})
    'vlan_mode=native-untagged tag=99 trunks=[10,20,99]'
    >>> ovs_columns({10: False, 20: False})
    'vlan_mode=trunk tag=[] trunks=[10,20]'
    """
    natives = [vid for vid, native in intended.items() if native]
    if len(natives) > 1:
        raise ValueError(f"a port has one native VLAN, not {natives}")
    tagged = sorted(vid for vid, native in intended.items() if not native)
    if natives and not tagged:
        return f"vlan_mode=access tag={natives[0]} trunks=[]"
    trunks = "[" + ",".join(str(v) for v in sorted(intended)) + "]"
    if natives:
        return f"vlan_mode=native-untagged tag={natives[0]} trunks={trunks}"
    return f"vlan_mode=trunk tag=[] trunks={trunks}"


def linux_vlan_commands(port: str, current: dict[int, bool], intended: dict[int, bool]) -> list[str]:
    """`bridge vlan` commands turning a Linux bridge port's VLANs into exactly the intended ones.

    >>> linux_vlan_commands("swp2", {1: True, 10: False}, {10: False, 20: False, 99: True})
    ['bridge vlan del dev swp2 vid 1', 'bridge vlan add dev swp2 vid 20', 'bridge vlan add dev swp2 vid 99 pvid untagged']
    >>> linux_vlan_commands("swp2", {10: False, 99: True}, {10: False, 99: True})
    []
    """
    commands = [f"bridge vlan del dev {port} vid {vid}" for vid in sorted(current) if vid not in intended]
    for vid, native in sorted(intended.items()):
        if current.get(vid) != native:
            commands.append(f"bridge vlan add dev {port} vid {vid}" + (" pvid untagged" if native else ""))
    return commands


def set_commands(port: str, state: PortState, intended: dict[int, bool]) -> list[str]:
    """Commands making the port a member of br0 with exactly the intended VLANs ([] when it is).

    >>> s = PortState(exists=True, backend="ovs", member=True, all_vlans=True, raw="vlan_mode=[] tag=[] trunks=[]")
    >>> set_commands("swp2", s, {10: False, 99: True})
    ['ovs-vsctl --timeout=30 set port swp2 vlan_mode=native-untagged tag=99 trunks=[10,99]']
    >>> set_commands("wlan0", PortState(exists=True, backend="linux", member=False), {20: True})
    ['ip link set dev wlan0 master br0', 'bridge vlan del dev wlan0 vid 1', 'bridge vlan add dev wlan0 vid 20 pvid untagged']
    """
    if state.carries(intended):
        return []
    if state.backend == "ovs":
        join = [] if state.member else [f"ovs-vsctl --timeout=30 --may-exist add-port {BRIDGE} {port}"]
        return [*join, f"ovs-vsctl --timeout=30 set port {port} {ovs_columns(intended)}"]
    if state.backend == "linux":
        join = [] if state.member else [f"ip link set dev {port} master {BRIDGE}"]
        # A port that joins a VLAN-aware bridge gets the default PVID 1: part of what is replaced.
        current = state.vlans if state.member else {1: True}
        return [*join, *linux_vlan_commands(port, current, intended)]
    raise ValueError(f"{port}: {state.detail}: no VLANs to set")


def restore_commands(port: str, saved: PortState, intended: dict[int, bool]) -> list[str]:
    """Commands putting back a port, saved before `set_commands(port, saved, intended)` ran.

    >>> s = PortState(exists=True, backend="ovs", member=True, raw="vlan_mode=[] tag=[] trunks=[]")
    >>> restore_commands("swp2", s, {10: False})
    ['ovs-vsctl --timeout=30 set port swp2 vlan_mode=[] tag=[] trunks=[]']
    >>> restore_commands("wlan0", PortState(exists=True, backend="ovs"), {20: True})
    ['ovs-vsctl --timeout=30 --if-exists del-port br0 wlan0']
    """
    if saved.backend == "ovs":
        if not saved.member:
            return [f"ovs-vsctl --timeout=30 --if-exists del-port {BRIDGE} {port}"]
        return [f"ovs-vsctl --timeout=30 set port {port} {saved.raw}"]
    if saved.backend == "linux":
        if not saved.member:
            return [f"ip link set dev {port} nomaster"]
        return linux_vlan_commands(port, intended, saved.vlans)
    return []


def parse_ports(output: str) -> dict[str, PortState]:
    """Parse the read script's output: port -> PortState.

    >>> out = "=BACKEND ovs br0 is an Open vSwitch bridge\\n=PORT swp2 1 1\\nnative-untagged\\n99\\n[10, 99]\\n=END\\n"
    >>> s = parse_ports(out)["swp2"]
    >>> s.backend, s.member, s.vlans, s.all_vlans, s.raw
    ('ovs', True, {10: False, 99: True}, False, 'vlan_mode=native-untagged tag=99 trunks=[10,99]')
    >>> out = '=BACKEND linux /sys/...: 1\\n=PORT swp2 1 1\\n[{"ifname":"swp2","vlans":[{"vlan":1,"flags":["PVID","Egress Untagged"]},{"vlan":10}]}]\\n=END\\n'
    >>> parse_ports(out)["swp2"].vlans
    {1: True, 10: False}
    >>> parse_ports("=BACKEND none /sys/class/net/br0/bridge/vlan_filtering: missing\\n=PORT swp9 0 0\\n=END\\n")["swp9"].exists
    False
    """
    if "=END" not in output:
        raise ValueError("the bridge read script's output ended early")
    backend: Backend = "none"
    detail = ""
    ports: dict[str, PortState] = {}
    current: str | None = None
    body: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("=BACKEND "):
            word, _, detail = line[len("=BACKEND "):].partition(" ")
            backend = word if word in ("ovs", "linux") else "none"  # type: ignore[assignment]
        elif line.startswith("=PORT "):
            name, exists, member = line.split()[1:4]
            ports[name] = PortState(exists == "1", backend, detail, member == "1")
            current, body[name] = name, []
        elif line.startswith("=END"):
            break
        elif current is not None:
            body[current].append(line)
    for name, state in ports.items():
        lines = [line for line in body[name] if line.strip()]
        if not state.member:
            continue
        if backend == "ovs":
            if len(lines) != 3:
                raise ValueError(f"{name}: unexpected ovs-vsctl output {lines!r}")
            state.vlans, state.all_vlans = ovs_port_vlans(*lines)
            mode, tag, trunks = ("[" + ",".join(_ovs_value(v)) + "]" if v.strip().startswith("[") else v.strip()
                                 for v in lines)
            state.raw = f"vlan_mode={mode} tag={tag} trunks={trunks}"
        elif backend == "linux":
            for entry in json.loads("\n".join(lines) or "[]"):
                if entry.get("ifname") != name:
                    continue
                for vlan in entry.get("vlans", []):
                    flags = vlan.get("flags", [])
                    for vid in range(vlan["vlan"], vlan.get("vlanEnd", vlan["vlan"]) + 1):
                        state.vlans[vid] = "PVID" in flags and "Egress Untagged" in flags
    return ports


class BridgePorts:
    """Bridge-port operations for a driver that runs root scripts over SSH (`sudo_script`, `_checked`)."""

    credentials: object

    def bridge_ports(self, ports: list[str]) -> dict[str, PortState]:
        out = self._checked("reading the bridge ports", self.sudo_script(_READ_SCRIPT, BRIDGE, *ports))  # type: ignore[attr-defined]
        try:
            return parse_ports(out)
        except ValueError as exc:
            raise DeviceError(self.credentials.host, f"reading the bridge ports: {exc}") from None  # type: ignore[attr-defined]

    def apply_bridge_commands(self, commands: list[str]) -> None:
        """Run the commands of `set_commands`/`restore_commands` as root, stopping at the first failure."""
        if not commands:
            return
        script = "set -e\n" + "\n".join(" ".join(shlex.quote(w) for w in c.split()) for c in commands) + "\n"
        self._checked("changing the bridge ports' VLANs", self.sudo_script(script))  # type: ignore[attr-defined]
