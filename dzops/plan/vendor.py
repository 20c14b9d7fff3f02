"""WAN configuration for vendor routers (Cisco IOS, MikroTik RouterOS) as the config lines to push.

FRR has its own whole-file template (`templates/frr/router.j2`); these platforms are configured by
merging lines, so what comes out here is the ordered list a driver sends in configuration mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from dzops.plan.render import render
from dzops.plan.wan import REFERENCE_BANDWIDTH_MBPS, WanEnd

VENDOR_PLATFORMS = ("ios", "routeros")
OSPF_PROCESS = 1  # IOS process id: local to the router, one process serves every WAN link
ROUTEROS_OSPF_INSTANCE = "dzops-v2"


def routeros_area_name(area: int) -> str:
    """RouterOS names areas; the backbone gets the conventional name.

    >>> routeros_area_name(0), routeros_area_name(12)
    ('backbone', 'area12')
    """
    return "backbone" if area == 0 else f"area{area}"


def _lines(text: str) -> list[str]:
    # Blank lines carry nothing on either OS, and in configuration mode they are not a no-op everywhere.
    return [line for line in text.splitlines() if line.strip()]


def _ios(ends: list[WanEnd]) -> list[str]:
    lines: list[str] = []
    if any(end.routing == "ospf" for end in ends):
        lines += _lines(render("ios", "router_ospf", ospf_process=OSPF_PROCESS,
                                   reference_bandwidth_mbps=REFERENCE_BANDWIDTH_MBPS))
    for end in ends:
        lines += _lines(render("ios", "wan_link", end=end, ospf_process=OSPF_PROCESS))
    return lines


def _ospf_areas(ends: Iterable[WanEnd]) -> list[tuple[str, str]]:
    areas = sorted({end.ospf_area for end in ends if end.routing == "ospf"})
    return [(routeros_area_name(area), str(IPv4Address(area))) for area in areas]


def _routeros(ends: list[WanEnd]) -> list[str]:
    lines: list[str] = []
    areas = _ospf_areas(ends)
    if areas:
        lines += _lines(render("routeros", "ospf_instance", ospf_instance=ROUTEROS_OSPF_INSTANCE,
                               areas=areas))
    for end in ends:
        area_name = routeros_area_name(end.ospf_area)
        lines += _lines(render("routeros", "wan_link", end=end, ospf_area_name=area_name))
    return lines


def wan_config_lines(platform: str, ends: list[WanEnd]) -> list[str]:
    """The configuration lines that give one ios/routeros device all its WAN ends, in order.

    >>> from ipaddress import IPv4Address, IPv4Interface, IPv4Network
    >>> end = WanEnd(link="hq-talo", host="talo", interface="GigabitEthernet0/0", vlan=None,
    ...              ifname="GigabitEthernet0/0", address=IPv4Interface("10.30.255.6/30"),
    ...              description="WAN BT-PNK-0009 Bhutan Telecom 20M to hq eth9", mtu=1500, bandwidth_kbps=20_000,
    ...              routing="static", ospf_area=0, far_host="hq", far_address=IPv4Address("10.30.255.5"),
    ...              far_lan_prefixes=(IPv4Network("10.30.1.0/24"),))
    >>> print("\\n".join(wan_config_lines("ios", [end])))
    interface GigabitEthernet0/0
     description WAN BT-PNK-0009 Bhutan Telecom 20M to hq eth9
     bandwidth 20000
     ip address 10.30.255.6 255.255.255.252
     no shutdown
    exit
    ip route 10.30.1.0 255.255.255.0 10.30.255.5
    """
    if platform == "ios":
        return _ios(ends)
    if platform == "routeros":
        return _routeros(ends)
    raise ValueError(f"no WAN templates for platform {platform!r} (have: {', '.join(VENDOR_PLATFORMS)})")
