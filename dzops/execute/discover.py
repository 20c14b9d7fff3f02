"""Discovery: what the live network says about itself, for diagrams, docs and the asset register.

From every reachable device, in parallel (one SSH connection per device, its commands on several
exec channels of that connection, about ten devices at a time):

- LLDP neighbours: `lldpcli -f json0 show neighbors details` (json0: every level is a list,
  whatever the count);
- interfaces, their operational state and addresses: `ip -j addr show`;
- OSPF neighbours (FRR routers): `vtysh -c 'show ip ospf neighbor json'`;
- facts: model, serial, OS version, uptime (FRR `show version` + `/etc/os-release`;
  Linux `/etc/os-release`, `/proc/uptime`, `/sys/class/dmi/id` where present).

FRR routers on a shell login answer with the stock programs (the access role puts the login in
`_lldpd`, `frrvty` and `frr`); a vtysh-only login answers vtysh commands only, so its interfaces
come from `show interface json` and it has no LLDP or uptime to give.

NAPALM platforms (IOS, RouterOS, EOS, NX-OS, Junos) answer through NAPALM's getters
(`discover_napalm`): get_facts, get_interfaces, get_interfaces_ip, get_lldp_neighbors_detail.
Devices of platforms without any recipe are results with status "skipped", never errors. Failures are data (`DeviceDiscovery.status`).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute.drivers.base import Credentials
from dzops.execute.fanout import fan_out
from dzops.execute.ssh import FAN_OUT_WORKERS, Progress, Session, credentials
from dzops.inventory.models import Device, Inventory
from dzops.platforms import PLATFORMS

log = logging.getLogger(__name__)

MAX_CHANNELS = 4  # below sshd's MaxSessions (10); a device answers a handful of commands at once
# Debian keeps lldpcli in /usr/sbin, which is not on an ordinary login's PATH.
LLDP_NEIGHBORS = "/usr/sbin/lldpcli -f json0 show neighbors details"
IP_ADDR = "ip -j addr show"
OSPF_NEIGHBORS = "show ip ospf neighbor json"
FRR_VERSION = "show version"
FRR_INTERFACES = "show interface json"
# One exec channel for every Linux fact; a missing DMI file (VMs, namespaces) is simply empty.
LINUX_FACTS = ("cat /etc/os-release; echo @@uptime; cat /proc/uptime; echo @@vendor; "
               "cat /sys/class/dmi/id/sys_vendor 2>/dev/null; echo @@model; "
               "cat /sys/class/dmi/id/product_name 2>/dev/null; true")
# root-only on Linux, so through sudo; asked only where DMI exists (not in VMs without it, namespaces)
SERIAL_FILE = "/sys/class/dmi/id/product_serial"
LINUX_SERIAL = f"if [ -e {SERIAL_FILE} ]; then sudo -S -p '' cat {SERIAL_FILE}; fi"



@dataclass(frozen=True)
class LldpNeighbor:
    interface: str  # the local port
    system: str  # the neighbour's system name (its hostname)
    port: str  # the neighbour's port id (an interface name where portidsubtype is ifname)


@dataclass
class InterfaceState:
    name: str
    up: bool  # operationally up (carrier), not just administratively
    addresses: list[str] = field(default_factory=list)  # CIDR strings, IPv4 and global IPv6
    mac: str | None = None


@dataclass
class OspfNeighbor:
    router_id: str
    state: str  # e.g. "Full/-"
    address: str
    interface: str


@dataclass
class DeviceDiscovery:
    host: str
    status: str = "ok"  # ok | unreachable | failed | skipped
    error: str | None = None
    lldp: list[LldpNeighbor] = field(default_factory=list)
    interfaces: dict[str, InterfaceState] = field(default_factory=dict)
    ospf: list[OspfNeighbor] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # model, serial, vendor, os_version, uptime_seconds
    warnings: list[str] = field(default_factory=list)  # commands that failed while others answered

    @property
    def discovered(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- parsers (pure) ------------------------------------------------------------------------------

def _first(items: Any, key: str = "value") -> str:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return str(items[0].get(key, ""))
    return ""


def parse_lldp_neighbors(text: str) -> list[LldpNeighbor]:
    """Neighbours from `lldpcli ... -f json0 show neighbors`.

    >>> out = ('{"lldp": [{"interface": [{"name": "eth0", "chassis": [{"name": [{"value": "hq-rtr1"}]}],'
    ...        ' "port": [{"id": [{"type": "ifname", "value": "eth1"}], "descr": [{"value": "WAN"}]}]}]}]}')
    >>> parse_lldp_neighbors(out)
    [LldpNeighbor(interface='eth0', system='hq-rtr1', port='eth1')]
    >>> parse_lldp_neighbors('{"lldp": [{}]}')
    []
    """
    data = json.loads(text or "{}")
    found: list[LldpNeighbor] = []
    for lldp in data.get("lldp", []) or []:
        for iface in lldp.get("interface", []) or []:
            chassis = (iface.get("chassis") or [{}])[0]
            system = _first(chassis.get("name")) or _first(chassis.get("id"))
            port = (iface.get("port") or [{}])[0]
            ids = port.get("id") or [{}]
            # A port id that is a MAC says little; the description usually carries the name then.
            port_name = _first(ids) if _first(ids, "type") in ("ifname", "local", "") else \
                (_first(port.get("descr")) or _first(ids))
            found.append(LldpNeighbor(iface.get("name", ""), system, port_name))
    return sorted(found, key=lambda n: (n.interface, n.system, n.port))


def parse_ip_addr(text: str) -> dict[str, InterfaceState]:
    """Interfaces from `ip -j addr show`; link-local IPv6 addresses are left out.

    >>> out = ('[{"ifname": "eth0", "operstate": "UP", "flags": ["UP", "LOWER_UP"], "address": "aa:bb:cc:dd:ee:ff",'
    ...        ' "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 30},'
    ...        ' {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},'
    ...        ' {"ifname": "eth1", "operstate": "DOWN", "flags": ["BROADCAST"], "addr_info": []}]')
    >>> {k: (v.up, v.addresses) for k, v in parse_ip_addr(out).items()}
    {'eth0': (True, ['10.0.0.1/30']), 'eth1': (False, [])}
    """
    result: dict[str, InterfaceState] = {}
    for item in json.loads(text or "[]"):
        name = item.get("ifname", "")
        flags = item.get("flags", [])
        # Bridge ports and veths in a namespace may say "UNKNOWN"; LOWER_UP is the carrier itself.
        up = "LOWER_UP" in flags and "UP" in flags and item.get("operstate") != "DOWN"
        addresses = [f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", [])
                     if a.get("local") and a.get("scope") != "link"]
        result[name] = InterfaceState(name, up, addresses, item.get("address"))
    return result


def parse_frr_interfaces(text: str) -> dict[str, InterfaceState]:
    """Interfaces from FRR's `show interface json` (for a vtysh-only login, which has no `ip`).

    >>> out = ('{"eth0": {"operationalStatus": "up", "hardwareAddress": "aa:bb:cc:dd:ee:ff",'
    ...        ' "ipAddresses": [{"address": "10.0.0.1/30"}, {"address": "fe80::1/64"}]},'
    ...        ' "eth1": {"operationalStatus": "down", "ipAddresses": []}}')
    >>> {k: (v.up, v.addresses, v.mac) for k, v in parse_frr_interfaces(out).items()}
    {'eth0': (True, ['10.0.0.1/30'], 'aa:bb:cc:dd:ee:ff'), 'eth1': (False, [], None)}
    """
    result: dict[str, InterfaceState] = {}
    for name, item in (json.loads(text or "{}") or {}).items():
        addresses = [a["address"] for a in item.get("ipAddresses", []) or []
                     if a.get("address") and not str(a["address"]).lower().startswith("fe80:")]
        result[name] = InterfaceState(name, item.get("operationalStatus") == "up", addresses,
                                      item.get("hardwareAddress"))
    return result


def parse_ospf_neighbors(text: str) -> list[OspfNeighbor]:
    """Neighbours from FRR's `show ip ospf neighbor json` (8.x: router id -> list of adjacencies).

    >>> out = '{"neighbors": {"10.0.0.2": [{"nbrState": "Full/-", "ifaceAddress": "10.1.1.2", "ifaceName": "eth1:10.1.1.1"}]}}'
    >>> parse_ospf_neighbors(out)
    [OspfNeighbor(router_id='10.0.0.2', state='Full/-', address='10.1.1.2', interface='eth1')]
    >>> parse_ospf_neighbors('{}')
    []
    """
    data = json.loads(text or "{}")
    result: list[OspfNeighbor] = []
    for router_id, adjacencies in (data.get("neighbors") or {}).items():
        for adj in adjacencies if isinstance(adjacencies, list) else [adjacencies]:
            state = adj.get("nbrState") or adj.get("state") or ""
            iface = str(adj.get("ifaceName", "")).split(":", 1)[0]
            result.append(OspfNeighbor(router_id, state, adj.get("ifaceAddress", adj.get("address", "")), iface))
    return sorted(result, key=lambda n: (n.router_id, n.interface))


def parse_frr_version(text: str) -> str:
    """The version line of FRR's `show version`.

    >>> parse_frr_version("FRRouting 8.4.4 (r1) on Linux(6.1.0).\\nCopyright 1996-2005\\n")
    'FRRouting 8.4.4'
    """
    match = re.search(r"^(FRRouting \S+)", text, re.M)
    return match.group(1) if match else text.strip().splitlines()[0] if text.strip() else ""


def parse_linux_facts(text: str) -> dict[str, Any]:
    """Facts from the LINUX_FACTS command's output.

    >>> out = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\\nID=debian\\n@@uptime\\n3600.52 7000.1\\n@@vendor\\nQEMU\\n@@model\\nStandard PC\\n'
    >>> parse_linux_facts(out)
    {'os_version': 'Debian GNU/Linux 12 (bookworm)', 'uptime_seconds': 3600, 'vendor': 'QEMU', 'model': 'Standard PC'}
    """
    sections: dict[str, list[str]] = {"os": []}
    current = "os"
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        else:
            sections[current].append(line)
    os_release = dict(line.split("=", 1) for line in sections["os"] if "=" in line)
    uptime = (sections.get("uptime") or [""])[0].split()
    facts: dict[str, Any] = {
        "os_version": os_release.get("PRETTY_NAME", "").strip('"') or None,
        "uptime_seconds": int(float(uptime[0])) if uptime else None,
        "vendor": "\n".join(sections.get("vendor", [])).strip() or None,
        "model": "\n".join(sections.get("model", [])).strip() or None,
    }
    return facts


# --- one device ------------------------------------------------------------------------------------

class _Opened:
    """One device's SSH session for discovery: FRR routers through their driver (which checks the
    access role), everything else through a plain session."""

    def __init__(self, device: Device, creds: Credentials) -> None:
        self.creds = creds
        if PLATFORMS[device.platform].config_syntax == "frr":
            from dzops.execute.drivers.frr import Driver

            self.driver: Any = Driver(creds)
            self.session: Session = self.driver.session
        else:
            self.driver = self.session = Session(creds)

    def open(self) -> None:
        self.driver.open()

    def close(self) -> None:
        self.driver.close()

    def run(self, command: str, stdin: str | None = None) -> str:
        """stdout of a command; a non-zero exit or a vtysh `% ` reply raises DeviceError."""
        status, out, err = self.session.run(command, stdin=stdin, timeout=60)
        errors = [line for line in (out + "\n" + err).splitlines() if line.startswith("% ")]
        if status != 0 or errors:
            reason = errors[0] if errors else (err.strip().splitlines() or [f"exit status {status}"])[-1]
            raise DeviceError(self.creds.host, f"'{command}' failed: {reason}")
        return out


def _vtysh(command: str) -> str:
    return f"vtysh -c {shlex.quote(command)}"


def _recipe(device: Device) -> tuple[str, dict[str, str]] | None:
    """(kind, name -> command) for a device's platform, or None when there is no recipe yet."""
    platform = PLATFORMS.get(device.platform)
    if platform is None:
        return None
    if platform.config_syntax == "frr" and device.router_login == "vtysh":
        return "frr-vtysh", {"ospf": OSPF_NEIGHBORS, "version": FRR_VERSION, "frr_interfaces": FRR_INTERFACES}
    if platform.config_syntax == "frr":
        return "frr", {"lldp": LLDP_NEIGHBORS, "ip": IP_ADDR, "ospf": _vtysh(OSPF_NEIGHBORS),
                       "version": _vtysh(FRR_VERSION), "facts": LINUX_FACTS}
    if platform.config_syntax in ("linux", "hostapd"):
        # lldpcli is setuid _lldpd for group adm on Debian: a plain login needs sudo for it.
        return "linux", {"lldp": f"sudo -S -p '' {LLDP_NEIGHBORS}", "ip": IP_ADDR, "facts": LINUX_FACTS,
                         "serial": LINUX_SERIAL}
    return None


def discover_napalm(inventory: Inventory, device: Device) -> DeviceDiscovery:
    """A NAPALM platform's discovery from its getters (facts, interfaces and addresses, LLDP neighbours).

    The getters the platform row lacks are not asked (`dzops.platforms.supports`); one that fails is a
    warning, like a command that fails on an FRR router.
    """
    from dzops.execute.drivers import driver_for
    from dzops.execute.drivers.napalm import discovery_facts, discovery_interfaces, discovery_lldp
    from dzops.platforms import supports

    result = DeviceDiscovery(host=device.name)
    driver: Any = driver_for(device.platform, credentials(inventory, device))
    try:
        driver.open()
    except ConnectionFailed as exc:
        result.status, result.error = "unreachable", str(exc)
        return result
    except DeviceError as exc:
        result.status, result.error = "failed", str(exc)
        return result
    answers: dict[str, Any] = {}
    try:
        for getter in ("get_facts", "get_interfaces", "get_interfaces_ip", "get_lldp_neighbors_detail"):
            if supports(device.platform, getter):  # type: ignore[arg-type]
                try:
                    answers[getter] = getattr(driver, getter)()
                except DeviceError as exc:
                    result.warnings.append(str(exc))
    finally:
        driver.close()
    if "get_interfaces" not in answers and "get_interfaces_ip" not in answers:
        result.status, result.error = "failed", result.warnings[0] if result.warnings else "no answer"
        return result
    interfaces = discovery_interfaces(answers.get("get_interfaces", {}), answers.get("get_interfaces_ip", {}))
    result.interfaces = {name: InterfaceState(name, up, addresses, mac) for name, (up, addresses, mac) in interfaces.items()}
    result.lldp = [LldpNeighbor(local, system, port)
                   for local, system, port in discovery_lldp(answers.get("get_lldp_neighbors_detail", {}))]
    result.facts = discovery_facts(answers.get("get_facts", {}))
    result.facts["model"] = result.facts.get("model") or device.model
    return result


def discover_device(inventory: Inventory, device: Device) -> DeviceDiscovery:
    platform_row = PLATFORMS.get(device.platform)
    if platform_row is not None and platform_row.napalm_driver is not None:
        return discover_napalm(inventory, device)
    result = DeviceDiscovery(host=device.name)
    recipe = _recipe(device)
    if recipe is None:
        result.status = "skipped"
        result.error = f"no discovery for platform '{device.platform}' yet"
        return result
    kind, commands = recipe
    creds = credentials(inventory, device)
    session = _Opened(device, creds)
    try:
        session.open()
    except ConnectionFailed as exc:
        result.status, result.error = "unreachable", str(exc)
        return result
    except DeviceError as exc:
        result.status, result.error = "failed", str(exc)
        return result
    # sudo -S reads the password from stdin; it never appears on a command line or in a log.
    stdin = creds.sudo_password + "\n" if kind == "linux" else None
    outputs: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []

    def run(item: tuple[str, str]) -> None:
        name, command = item
        try:
            outputs[name] = session.run(command, stdin if "sudo -S" in command else None)
        except ConnectionFailed:
            dropped.append(item)
        except DeviceError as exc:
            result.warnings.append(str(exc))

    try:
        with ThreadPoolExecutor(max_workers=MAX_CHANNELS) as pool:
            list(pool.map(run, commands.items()))
        if dropped:
            # A busy sshd sometimes drops a connection mid-way: ask once more, on a fresh one.
            retry, dropped[:] = list(dropped), []
            session.close()
            session.open()
            for item in retry:
                run(item)
    except DeviceError as exc:
        result.warnings.append(str(exc))
    finally:
        session.close()
    result.warnings += [f"{device.name}: '{command}': the SSH connection dropped" for _, command in dropped]
    if not {"lldp", "ip", "frr_interfaces"} & set(outputs):
        result.status, result.error = "failed", result.warnings[0] if result.warnings else "no answer"
        return result
    try:
        result.lldp = parse_lldp_neighbors(outputs.get("lldp", ""))
        result.interfaces = (parse_frr_interfaces(outputs["frr_interfaces"]) if "frr_interfaces" in outputs
                             else parse_ip_addr(outputs.get("ip", "")))
        result.ospf = parse_ospf_neighbors(outputs.get("ospf", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        result.status, result.error = "failed", f"{device.name}: unexpected discovery output: {exc}"
        return result
    if kind.startswith("frr"):
        os_line = parse_frr_version(outputs.get("version", ""))
        host = parse_linux_facts(outputs["facts"]) if "facts" in outputs else {}
        base = host.get("os_version") or ""
        result.facts = {"vendor": "FRRouting", "model": None, "serial": None,
                        "os_version": f"{os_line} on {base}" if os_line and base else (os_line or base or None),
                        # A vtysh-only login exposes no host uptime (FRR's `show version` has none).
                        "uptime_seconds": host.get("uptime_seconds")}
    else:
        result.facts = {**parse_linux_facts(outputs.get("facts", "")),
                        "serial": outputs.get("serial", "").strip() or None}
    result.facts["model"] = result.facts.get("model") or device.model
    return result


def discover(inventory: Inventory, hosts: list[str] | None = None, *,
             progress: Progress | None = None, workers: int = FAN_OUT_WORKERS) -> dict[str, DeviceDiscovery]:
    """Discover the named hosts (default: every device), about `workers` devices at a time."""
    names = sorted(hosts if hosts is not None else inventory.devices)
    report = progress or (lambda _h, _m: None)

    def one(name: str) -> DeviceDiscovery:
        try:
            found = discover_device(inventory, inventory.devices[name])
        except Exception as exc:  # noqa: BLE001 - one device's surprise is its result, not the run's end
            log.debug("%s: discovery failed", name, exc_info=True)
            found = DeviceDiscovery(name, status="failed", error=f"{name}: {type(exc).__name__}: {exc}")
        report(name, found.status if not found.error else f"{found.status}: {found.error}")
        return found

    return dict(zip(names, fan_out(one, names, forks=workers), strict=True))
