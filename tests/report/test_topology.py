"""Merging declared links with discovered ones: every link gets exactly one status."""

from __future__ import annotations

from pathlib import Path

import pytest

from dzops.execute.discover import DeviceDiscovery, InterfaceState, LldpNeighbor
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory
from dzops.report.topology import build_topology, declared_links, site_view

MINIMAL = Path(__file__).resolve().parents[1] / "fixtures" / "inventory" / "minimal"
WAN = "gewog-lobesa-rtr1:eth0--tst-hq-rtr1:eth1"
HQ_LAN = "tst-hq-rtr1:eth0--tst-hq-srv1:eth0"
GEWOG_LAN = "gewog-lobesa-rtr1:eth1--gewog-lobesa-sw1:swp1"
UPLINK = "gewog-lobesa-ap1:eth0--gewog-lobesa-sw1:swp2"
EXTRA = "gewog-lobesa-sw1:swp9--tst-hq-srv1:eth7"


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(MINIMAL, MINIMAL.parent / "vault-password.txt")


def network(inventory: Inventory, *, down: frozenset = frozenset(), unreachable: frozenset = frozenset(),
            one_sided: frozenset = frozenset(), extra: tuple = ()) -> dict[str, DeviceDiscovery]:
    """What discovery would return: every declared cable seen from both ends, then the faults.

    down: (host, ifname) ends without carrier; unreachable: hosts that did not answer;
    one_sided: (host, ifname) ends whose LLDP does not report the far end; extra: undeclared cables.
    """
    found = {name: DeviceDiscovery(name) for name in inventory.devices}
    cables = [(link.a, link.b) for link in declared_links(inventory)] + list(extra)
    for a, b in cables:
        for end, other in ((a, b), (b, a)):
            if end[0] not in found:
                continue
            d = found[end[0]]
            d.interfaces[end[1]] = InterfaceState(end[1], end not in down)
            if end not in one_sided:
                d.lldp.append(LldpNeighbor(end[1], other[0], other[1]))
    for name in unreachable:
        found[name] = DeviceDiscovery(name, status="unreachable", error="cannot reach")
    return found


def statuses(inventory: Inventory, found: dict[str, DeviceDiscovery]) -> dict[str, str]:
    return {link.id: link.status for link in build_topology(inventory, found).links}


CASES = [
    pytest.param({}, {WAN: "confirmed", HQ_LAN: "confirmed", GEWOG_LAN: "confirmed", UPLINK: "confirmed"},
                 id="all-seen"),
    pytest.param({"down": frozenset({("tst-hq-rtr1", "eth1")})}, {WAN: "declared-not-seen", HQ_LAN: "confirmed"},
                 id="one-end-without-carrier"),
    pytest.param({"down": frozenset({("gewog-lobesa-rtr1", "eth0")})}, {WAN: "declared-not-seen"},
                 id="far-end-down-while-near-lldp-still-lingers"),
    pytest.param({"one_sided": frozenset({("gewog-lobesa-sw1", "swp2")})}, {UPLINK: "declared-not-seen"},
                 id="lldp-seen-from-one-end-only"),
    pytest.param({"unreachable": frozenset({"gewog-lobesa-ap1"})}, {UPLINK: "confirmed"},
                 id="one-end-unreachable-other-end-decides"),
    pytest.param({"unreachable": frozenset({"gewog-lobesa-ap1", "gewog-lobesa-sw1"})},
                 {UPLINK: "unverified", GEWOG_LAN: "confirmed"}, id="both-ends-unreachable"),
    pytest.param({"extra": ((("tst-hq-srv1", "eth7"), ("gewog-lobesa-sw1", "swp9")),)},
                 {EXTRA: "seen-not-declared", WAN: "confirmed"}, id="undeclared-cable"),
    pytest.param({"extra": ((("tst-hq-srv1", "eth7"), ("gewog-lobesa-sw1", "swp9")),),
                  "down": frozenset({("tst-hq-srv1", "eth7")})}, {EXTRA: None}, id="undeclared-but-down-is-not-drawn"),
]


@pytest.mark.parametrize(("faults", "expected"), CASES)
def test_classification(inventory: Inventory, faults: dict, expected: dict[str, str | None]) -> None:
    got = statuses(inventory, network(inventory, **faults))
    for link_id, status in expected.items():
        assert got.get(link_id) == status, (link_id, got)


def test_every_declared_link_appears_once(inventory: Inventory) -> None:
    topology = build_topology(inventory, network(inventory))
    assert sorted(link.id for link in topology.links) == sorted({GEWOG_LAN, HQ_LAN, UPLINK, WAN})
    assert set(topology.nodes) == set(inventory.devices)
    assert topology.counts() == {"confirmed": 4, "declared-not-seen": 0, "seen-not-declared": 0, "unverified": 0}


def test_unknown_lldp_neighbour_becomes_an_undeclared_node(inventory: Inventory) -> None:
    found = network(inventory, extra=((("gewog-lobesa-sw1", "swp5"), ("rogue-box", "eth0")),))
    topology = build_topology(inventory, found)
    assert topology.nodes["rogue-box"].declared is False
    [link] = [link for link in topology.links if link.kind == "undeclared"]
    assert (link.status, link.id) == ("seen-not-declared", "gewog-lobesa-sw1:swp5--rogue-box:eth0")


def test_wan_link_carries_circuit_and_discovered_addresses(inventory: Inventory) -> None:
    found = network(inventory)
    found["tst-hq-rtr1"].interfaces["eth1"].addresses = ["10.40.255.1/30", "fd00::1/64"]
    [wan] = [link for link in build_topology(inventory, found).links if link.kind == "wan"]
    assert (wan.circuit_id, wan.bandwidth_mbps, wan.a_addresses, wan.b_addresses) == \
        ("BT-TST-0001", 20, ["10.40.255.1/30"], [])


@pytest.mark.parametrize(("site", "nodes"), [
    pytest.param("hq", {"tst-hq-rtr1", "tst-hq-srv1", "gewog-lobesa-rtr1"}, id="hq-with-far-end"),
    pytest.param("lobesa", {"gewog-lobesa-rtr1", "gewog-lobesa-sw1", "gewog-lobesa-ap1", "tst-hq-rtr1"}, id="gewog"),
])
def test_site_view_keeps_far_ends(inventory: Inventory, site: str, nodes: set[str]) -> None:
    view = site_view(build_topology(inventory, network(inventory)), site)
    assert set(view.nodes) == nodes
    assert all(link.a[0] in nodes and link.b[0] in nodes for link in view.links)
