"""Whole intended candidates for the NAPALM platforms (Cisco IOS, MikroTik RouterOS): the text a
config replace turns the running config into.

A replace makes the running config exactly the candidate, so the candidate must hold everything the
device needs, including what the inventory does not describe (management access, crypto keys, vty
lines, firewall). dzops owns the parts its inventory describes and carries every other part over
from the running config verbatim:

- owned (rendered from the inventory): hostname/identity, the device's WAN ends (and the physical
  interface under a VLAN end), LAN interface, loopback, dzops' OSPF process, static routes through a
  WAN neighbour, the staff accounts the inventory manages, and an AP's SSIDs and radios;
- kept (from the running config): everything else, in its running order.

So an interface or account the inventory never named is never removed by a replace; one it names
is exactly as intended, `no ...` lines included. Each command owns only its parts (`parts`):
provision-wan the WAN side, user apply the accounts, provision-ap the radios and SSIDs; drift
compares with every part the device's function has. Pure text in, text out: no device is touched here.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import Literal

from dzops.inventory.models import Device, Inventory
from dzops.plan.render import render
from dzops.plan.users import Account, managed_logins, plan_users, ssh_key_parts
from dzops.plan.vendor import OSPF_PROCESS, ROUTEROS_OSPF_INSTANCE, routeros_area_name
from dzops.plan.wan import REFERENCE_BANDWIDTH_MBPS, WanEnd, wan_ends

CANDIDATE_PLATFORMS = ("ios", "routeros")  # platforms with whole-candidate templates here
Part = Literal["wan", "users", "ap"]
PARTS_BY_FUNCTION: dict[str, frozenset[Part]] = {
    "routers": frozenset({"wan", "users"}), "switches": frozenset({"users"}),
    "access_points": frozenset({"users", "ap"}), "servers": frozenset({"users"}),
}


def device_parts(device: Device) -> frozenset[Part]:
    """What of a device's config the inventory describes, by its function (drift compares all of it).

    >>> sorted(PARTS_BY_FUNCTION["access_points"])
    ['ap', 'users']
    """
    return PARTS_BY_FUNCTION.get(device.function, frozenset({"users"}))


# Lines of IOS's show-run that are no configuration (header, change stamps, the closing `end`).
IOS_NOISE = re.compile(r"^(Building configuration|Current configuration|! (Last|NVRAM) config|end$)")
# Headers an autonomous AP's templates own (ios/ap_ssids.j2, ios/ap_radios.j2).
IOS_AP_HEADERS = re.compile(r"^(dot11 ssid |aaa group server radius rad_eap$|aaa authentication login eap_methods |"
                            r"radius-server host |interface (Dot11Radio\d+(\.\d+)?|GigabitEthernet0\.\d+)$)")


def ios_key_hash(blob: str) -> str:
    """What IOS shows for an SSH public key in its running config: the MD5 of the key, upper-case hex.

    >>> ios_key_hash("AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5")
    'D034EE3F8F5647118D349CE730303635'
    """
    return hashlib.md5(base64.b64decode(blob), usedforsecurity=False).hexdigest().upper()


def ios_blocks(config: str) -> list[list[str]]:
    """A show-run as its top-level blocks (header line, then its indented lines); `!` and noise dropped.

    >>> ios_blocks("Building configuration...\\n!\\nhostname r1\\ninterface Gi0/1\\n description x\\n!\\nend\\n")
    [['hostname r1'], ['interface Gi0/1', ' description x']]
    """
    blocks: list[list[str]] = []
    for raw in config.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.strip() == "!" or IOS_NOISE.match(line):
            continue
        if line[0].isspace() and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


# IOS's reversible "type 7" (`service password-encryption`): each byte XORed with this published key,
# starting at the offset the first two digits give. IOS shows a PSK or RADIUS key typed in clear this way.
IOS_TYPE7_KEY = "dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"
IOS_TYPE7 = re.compile(r"[0-9]{2}(?:[0-9A-Fa-f]{2})+")
# Candidate lines carrying a secret in clear that IOS may show back in type 7, as (prefix, secret):
# `wpa-psk ascii 0 KEY` is shown `wpa-psk ascii 7 HEX`, `radius-server host ... key KEY` as `... key 7 HEX`.
IOS_CLEAR_SECRET = re.compile(r"^(?P<prefix>wpa-psk ascii) 0 (?P<secret>\S.*)$|^(?P<prefix2>radius-server host .* key) (?P<secret2>(?!7 )\S.*)$")


def ios_type7_decode(stored: str) -> str | None:
    """The clear text of an IOS type 7 string; None when the text is not one.

    >>> ios_type7_decode("123A0C041104"), ios_type7_decode("1511021F0725")
    ('Cisco', 'cisco')
    >>> ios_type7_decode("$9$salt"), ios_type7_decode("123")
    (None, None)
    """
    if not IOS_TYPE7.fullmatch(stored):
        return None
    seed = int(stored[:2])
    return "".join(chr(int(stored[i:i + 2], 16) ^ ord(IOS_TYPE7_KEY[(seed + i // 2 - 1) % len(IOS_TYPE7_KEY)]))
                   for i in range(2, len(stored), 2))


def ios_stored_secrets(candidate: str, running: str) -> str:
    """The candidate with each clear secret that the running config already holds, in IOS's type 7 form,
    written in that stored form, so a second run compares equal; a changed secret stays in clear (a change).

    IOS never shows a `wpa-psk ascii 0 KEY` back as typed: with password encryption it shows
    `wpa-psk ascii 7 HEX`, a different line for the same key, and a replace would rewrite it on every
    run. Type 7 is reversible, so the running form is decoded and compared here (nothing is printed).
    A secret stored in a form that cannot be decoded (type 6 with the device's master key) stays in
    clear: that is reported as a change on every run.

    >>> running = "dot11 ssid Staff\\n   vlan 10\\n   wpa-psk ascii 7 123A0C041104\\n!\\n"
    >>> print(ios_stored_secrets("dot11 ssid Staff\\n vlan 10\\n wpa-psk ascii 0 Cisco\\n!\\n", running), end="")
    dot11 ssid Staff
     vlan 10
     wpa-psk ascii 7 123A0C041104
    !
    >>> ios_stored_secrets("dot11 ssid Staff\\n wpa-psk ascii 0 Other-key\\n", running)
    'dot11 ssid Staff\\n wpa-psk ascii 0 Other-key\\n'
    """
    stored: dict[tuple[str | None, str], list[str]] = {}  # (block header, prefix) -> type 7 strings shown
    for block in ios_blocks(running):
        for context, line in [(None, block[0]), *((block[0], child.strip()) for child in block[1:])]:
            prefix, _, value = line.rpartition(" 7 ")
            if prefix and IOS_TYPE7.fullmatch(value.strip()):
                stored.setdefault((context, prefix), []).append(value.strip())
    out: list[str] = []
    header: str | None = None
    for line in candidate.splitlines():
        body = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        context = header if indent else None
        if not indent and body and body != "!":
            header = line.rstrip()
        match = IOS_CLEAR_SECRET.match(body)
        if match:
            prefix = match.group("prefix") or match.group("prefix2")
            secret = match.group("secret") or match.group("secret2")
            same = [value for value in stored.get((context, prefix), []) if ios_type7_decode(value) == secret]
            if same:
                line = f"{indent}{prefix} 7 {same[0]}"
        out.append(line)
    return "\n".join(out) + ("\n" if candidate.endswith("\n") else "")


def owned_interfaces(device: Device, ends: Iterable[WanEnd]) -> set[str]:
    """Interfaces whose whole block the inventory describes on this device."""
    names = {"Loopback0"} if device.loopback else set()
    if device.lan_interface:
        names.add(device.lan_interface)
    for end in ends:
        names.add(end.ifname)
        if end.vlan:
            names.add(end.interface)
    return names


def _ios_owned(header: str, interfaces: set[str], next_hops: set[str], logins: set[str], ap: bool,
               wan: bool) -> bool:
    words = header.split()
    if words[0] == "hostname":
        return True
    if words[0] == "interface" and len(words) == 2:
        return words[1] in interfaces or bool(ap and IOS_AP_HEADERS.match(header))
    if header == f"router ospf {OSPF_PROCESS}":
        return wan
    if words[:2] == ["ip", "route"]:
        return words[-1] in next_hops
    if words[0] == "username" and len(words) > 1:
        return words[1] in logins
    return bool(ap and IOS_AP_HEADERS.match(header))


def ios_candidate_text(rendered: str) -> str:
    """Rendered template lines as a config file: `exit` at the top level becomes `!`, `no shutdown` goes.

    Typed commands leave a context with `exit`; a file separates blocks with `!`. A replace removes
    a `shutdown` that the candidate lacks, and IOS never shows `no shutdown`, so writing it would be
    a difference forever.

    >>> print(ios_candidate_text("interface Gi0/1\\n description x\\n no shutdown\\nexit\\n\\n\\nend\\n"), end="")
    interface Gi0/1
     description x
    !
    end
    """
    out: list[str] = []
    for line in rendered.splitlines():
        if not line.strip() or line.strip() == "no shutdown":
            continue
        line = "!" if line == "exit" else line.rstrip()
        if line == "!" and out and out[-1] == "!":
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _accounts(inventory: Inventory, device: Device, accounts: list[Account] | None,
              parts: frozenset[Part]) -> list[Account]:
    if "users" not in parts:
        return []
    return accounts if accounts is not None else plan_users(inventory, [device.name]).get(device.name, [])


def _ap_context(inventory: Inventory, device: Device, parts: frozenset[Part]) -> dict[str, object]:
    if "ap" not in parts or device.function != "access_points":
        return {"ap": False}
    from dzops.plan.ap import ap_bsses

    radio = device.radio
    bsses = ap_bsses(inventory, device)
    if device.platform == "routeros":
        bsses = sorted(bsses, key=lambda b: b.band)  # each band's master interface before its virtual APs
    return {"ap": True, "bsses": bsses,
            "radio": {"channel": radio.channel if radio else "auto", "power": radio.power if radio else "auto",
                      "country": radio.country if radio else "BT"}}


def ios_candidate(inventory: Inventory, device: Device, running: str, ends: list[WanEnd] | None = None,
                  accounts: list[Account] | None = None, parts: Iterable[Part] | None = None) -> str:
    """The whole intended IOS config of a device: owned parts rendered, the rest kept from `running`.

    `parts` (default: all of the device's, `device_parts`) says what dzops owns this time; `ends`
    defaults to every WAN end the inventory gives the device, `accounts` to the inventory's users.
    """
    owned = frozenset(parts) if parts is not None else device_parts(device)
    ends = (ends if ends is not None else wan_ends(inventory).get(device.name, [])) if "wan" in owned else []
    accounts = _accounts(inventory, device, accounts, owned)
    ap = _ap_context(inventory, device, owned)
    interfaces = owned_interfaces(device, ends) if "wan" in owned else set()
    next_hops = {str(end.far_address) for end in ends}
    logins = managed_logins(inventory) if "users" in owned else set()
    kept: list[str] = []
    pubkey_kept: list[str] = []
    for block in ios_blocks(running):
        if block[0] == "ip ssh pubkey-chain":
            pubkey_kept += _unmanaged_pubkeys(block[1:], logins)
        elif not _ios_owned(block[0], interfaces, next_hops, logins, bool(ap["ap"]), "wan" in owned):
            kept += [*block, "!"] if len(block) > 1 else block
    keys = {a.login: [(algo, ios_key_hash(blob)) for algo, blob, _ in (ssh_key_parts(k) for k in a.ssh_keys)]
            for a in accounts if a.state == "present" and a.ssh_keys}
    text = render("ios", "router", device=device, wan="wan" in owned,
                  lan=device.interfaces.get(device.lan_interface or "") if "wan" in owned else None,
                  wan_ends=ends, ospf_process=OSPF_PROCESS, reference_bandwidth_mbps=REFERENCE_BANDWIDTH_MBPS,
                  accounts=accounts, keys=keys, pubkey_kept=pubkey_kept, kept=kept, **ap)
    return ios_stored_secrets(ios_candidate_text(text), running)


def _unmanaged_pubkeys(children: list[str], logins: set[str]) -> list[str]:
    """The pubkey-chain entries (a `username` line and its keys) of logins dzops does not manage."""
    kept: list[str] = []
    keep = False
    depth = None
    for line in children:
        indent = len(line) - len(line.lstrip())
        if depth is None or indent <= depth:
            depth = indent
            words = line.split()
            keep = not (words[:1] == ["username"] and len(words) > 1 and words[1] in logins)
        if keep:
            kept.append(line)
    return kept


# -- RouterOS ---------------------------------------------------------------------------------------

ROS_VALUE = r'(?:"(?:[^"\\]|\\.)*"|\S+)'


def ros_value(line: str, key: str) -> str | None:
    """One `key=value` of a RouterOS command line, unquoted; None when absent.

    >>> ros_value('/user add name="karma d" group=full', "name"), ros_value("/ip address add address=10.0.0.1/30", "interface")
    ('karma d', None)
    """
    match = re.search(rf"(?:^|\s){re.escape(key)}=({ROS_VALUE})", line)
    if match is None:
        return None
    value = match.group(1)
    return value[1:-1].replace('\\"', '"') if value.startswith('"') else value


def _ros_owned(line: str, interfaces: set[str], next_hops: set[str], logins: set[str], ap: bool, wan: bool) -> bool:
    if line.startswith("/system identity set "):
        return True
    if line.startswith(("/ip address add ", "/routing ospf interface-template add ")):
        return (ros_value(line, "interface") or ros_value(line, "interfaces")) in interfaces
    if line.startswith("/interface vlan add "):
        return ros_value(line, "name") in interfaces
    if line.startswith("/interface ethernet set "):
        named = ros_value(line, "default-name") or line.split()[3]
        return named.rstrip("]") in interfaces
    if line.startswith(("/routing ospf instance ", "/routing ospf area ")):
        return wan and ROUTEROS_OSPF_INSTANCE in (ros_value(line, "name"), ros_value(line, "instance"))
    if line.startswith("/ip route add "):
        return ros_value(line, "gateway") in next_hops
    if line.startswith(("/user add ", "/user ssh-keys add ")):
        return (ros_value(line, "name") or ros_value(line, "user")) in logins
    if line.startswith((":if ([:len [/user find", "/user ssh-keys remove ", "/user remove ")):
        return any(f'"{login}"' in line for login in logins)
    if ap and line.startswith(("/interface wireless", "/interface bridge", "/radius add ")):
        return "bridge-ap" in line or "dz-" in line or line.startswith(("/interface wireless", "/radius add "))
    return False


def ros_export_lines(export: str) -> list[str]:
    """An `/export terse` as its command lines (comments and blanks dropped, `\\` continuations joined).

    >>> ros_export_lines("# by RouterOS 7.4\\n/system identity set name=r1\\n/ip address add \\\\\\n    address=10.0.0.1/30 interface=ether1\\n")
    ['/system identity set name=r1', '/ip address add address=10.0.0.1/30 interface=ether1']
    """
    joined = re.sub(r"\\\r?\n\s*", "", export)
    return [line.rstrip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def routeros_candidate(inventory: Inventory, device: Device, running: str, ends: list[WanEnd] | None = None,
                       accounts: list[Account] | None = None, parts: Iterable[Part] | None = None) -> str:
    """The whole intended RouterOS configuration: owned lines rendered, the rest kept from the export."""
    owned = frozenset(parts) if parts is not None else device_parts(device)
    ends = (ends if ends is not None else wan_ends(inventory).get(device.name, [])) if "wan" in owned else []
    accounts = _accounts(inventory, device, accounts, owned)
    ap = _ap_context(inventory, device, owned)
    interfaces = owned_interfaces(device, ends) - {"Loopback0"} if "wan" in owned else set()
    next_hops = {str(end.far_address) for end in ends}
    logins = managed_logins(inventory) if "users" in owned else set()
    kept = [line for line in ros_export_lines(running)
            if not _ros_owned(line, interfaces, next_hops, logins, bool(ap["ap"]), "wan" in owned)]
    area_ids = sorted({end.ospf_area for end in ends if end.routing == "ospf"})
    areas = [(routeros_area_name(area), str(IPv4Address(area))) for area in area_ids]
    keys = {a.login: [ssh_key_parts(k) for k in a.ssh_keys] for a in accounts}
    text = render("routeros", "router", device=device, wan_ends=ends, ospf_instance=ROUTEROS_OSPF_INSTANCE,
                  areas=areas, area_names={area: routeros_area_name(area) for area in area_ids},
                  accounts=accounts, keys=keys, kept=kept, **ap)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip()) + "\n"


def candidate(inventory: Inventory, device: Device, running: str, ends: list[WanEnd] | None = None,
              accounts: list[Account] | None = None, parts: Iterable[Part] | None = None) -> str:
    """The whole intended candidate of a NAPALM-platform device (ios, routeros)."""
    if device.platform == "ios":
        return ios_candidate(inventory, device, running, ends, accounts, parts)
    if device.platform == "routeros":
        return routeros_candidate(inventory, device, running, ends, accounts, parts)
    raise ValueError(f"{device.name}: no whole-candidate templates for platform {device.platform!r}")
