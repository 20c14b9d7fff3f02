"""Routing follows the inventory: OSPF cost from bandwidth (or an explicit cost per end), areas per end.

The rendered frr.conf is read back with a small parser of its own (interface -> area, cost), so a
template that wrote the right words in the wrong stanza fails here.
"""

from __future__ import annotations

import heapq
from pathlib import Path

import pytest

from dzops.bandwidth import OSPF_REFERENCE_MBPS, ospf_cost, parse_bandwidth
from dzops.inventory.loader import load_inventory
from dzops.plan.wan import intended_router_configs, wan_ends

REPO = Path(__file__).resolve().parents[2]
WANGDUE = REPO / "samples" / "wangdue"
PUNAKHA = REPO / "inventory"
HQ, AGG, RUEBISA, DAGA = "wdp-hq-rtr1", "wdp-thedtsho-agg1", "wdp-ruebisa-rtr1", "wdp-daga-rtr1"


@pytest.fixture(scope="module")
def wangdue():
    return load_inventory(WANGDUE)


@pytest.mark.parametrize(("written", "cost"), [
    ("10Gbit", 1), ("1Gbit", 10), ("100Mbit", 100), (100, 100), ("20Mbit", 500), ("10Mbit", 1000),
    ("8Mbit", 1250), ("2Mbit", 5000), ("512kbit", 19531), ("256kbit", 39062), ("64kbit", 65535),
], ids=lambda v: str(v))
def test_cost_for_each_bandwidth(written, cost):
    assert ospf_cost(parse_bandwidth(written)) == cost


def test_reference_bandwidth_keeps_the_speeds_a_dzongkhag_buys_apart():
    costs = [ospf_cost(parse_bandwidth(b)) for b in ("1Gbit", "100Mbit", "10Mbit", "2Mbit", "512kbit")]
    assert len(set(costs)) == len(costs) and costs == sorted(costs)
    assert max(costs) < 65535  # not capped: 512kbit is still cheaper than anything slower


def frr_interfaces(config: str) -> dict[str, dict[str, str]]:
    """interface -> {'area': ..., 'cost': ...} from an frr.conf, stanza by stanza."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in config.splitlines():
        if line.startswith("interface "):
            current = found.setdefault(line.split()[1], {})
        elif line == "exit":
            current = None
        elif current is not None and line.startswith(" ip ospf area "):
            current["area"] = line.split()[-1]
        elif current is not None and line.startswith(" ip ospf cost "):
            current["cost"] = line.split()[-1]
    return found


def test_every_wan_interface_carries_its_cost_and_the_reference_is_set(wangdue):
    configs = intended_router_configs(wangdue, list(wangdue.devices))
    for host, ends in wan_ends(wangdue).items():
        parsed = frr_interfaces(configs[host])
        assert f" auto-cost reference-bandwidth {OSPF_REFERENCE_MBPS}\n" in configs[host]
        for end in ends:
            link = wangdue.wan_link(end.link)
            assert parsed[end.ifname]["cost"] == str(ospf_cost(link.bandwidth_kbps)), (host, end.link)


@pytest.mark.parametrize(("host", "expected"), [
    # the hub: its link to the aggregation router and its backup link are both backbone; LAN too
    (HQ, {"eth0": "0", "eth1": "0", "eth2": "0", "lo": "0"}),
    # the aggregation router borders area 1: each WAN end in its own link's area, own networks in 0
    (AGG, {"eth0": "0", "eth1": "0", "eth2": "1", "eth3": "1", "eth4": "0", "lo": "0"}),
    # a gewog wholly in area 1: its LAN and loopback follow its links (not area 0, not the first link's)
    (DAGA, {"eth0": "1", "eth1": "1", "eth2": "1", "lo": "1"}),
], ids=["hub", "aggregation-border", "area-1-gewog"])
def test_areas_per_end_are_rendered_on_their_own_interfaces(wangdue, host, expected):
    config = intended_router_configs(wangdue, [host])[host]
    assert {name: data["area"] for name, data in frr_interfaces(config).items()} == expected


def test_a_declared_router_area_puts_its_lan_and_loopback_there(wangdue):
    agg = wangdue.devices[AGG].model_copy(update={"ospf_area": 1})
    moved = wangdue.model_copy(update={"devices": {**wangdue.devices, AGG: agg}})
    parsed = frr_interfaces(intended_router_configs(moved, [AGG])[AGG])
    assert (parsed["eth1"]["area"], parsed["lo"]["area"], parsed["eth0"]["area"]) == ("1", "1", "0")


def path_costs(inventory, source: str) -> dict[str, tuple[int, list[str]]]:
    """Shortest-path cost from `source` to every router over the rendered OSPF costs (Dijkstra, as OSPF)."""
    graph: dict[str, list[tuple[str, int, str]]] = {}
    for host, ends in wan_ends(inventory).items():
        for end in ends:
            graph.setdefault(host, []).append((end.far_host, end.ospf_cost, end.link))
    best: dict[str, tuple[int, list[str]]] = {}
    queue: list[tuple[int, str, list[str]]] = [(0, source, [])]
    while queue:
        cost, node, via = heapq.heappop(queue)
        if node in best:
            continue
        best[node] = (cost, via)
        for far, step, link in graph.get(node, []):
            if far not in best:
                heapq.heappush(queue, (cost + step, far, via + [link]))
    return best


def test_the_dual_homed_gewogs_primary_path_is_cheaper_than_its_backup(wangdue):
    cost, via = path_costs(wangdue, RUEBISA)[HQ]
    backup = next(e for e in wan_ends(wangdue)[RUEBISA] if e.link == "hq-ruebisa-backup")
    assert via == ["thedtsho-ruebisa", "hq-thedtsho"]
    assert cost == 1250 + 100 < backup.ospf_cost == 5000
    # OSPF prefers a route inside an area over one through another: both paths must share one.
    assert {wangdue.wan_link(n).routing.area for n in via} == {wangdue.wan_link("hq-ruebisa-backup").routing.area}


def test_without_bandwidth_costs_the_backup_would_win(wangdue):
    """What the issue saw: every interface cost 10, so one hop over the 2 Mbit/s backup beat two hops."""
    flat = wangdue.model_copy(update={"wan_links": tuple(
        link.model_copy(update={"bandwidth_kbps": 1_000_000}) for link in wangdue.wan_links)})
    assert path_costs(flat, RUEBISA)[HQ][1] == ["hq-ruebisa-backup"]


def test_the_thin_spurs_are_three_hops_from_hq(wangdue):
    costs = path_costs(wangdue, HQ)
    assert len(costs["wdp-athang-rtr1"][1]) == 3 and len(costs["wdp-kazhi-rtr1"][1]) == 3
    assert costs["wdp-athang-rtr1"][0] == 100 + 1000 + 19531


def test_an_explicit_cost_per_end_overrides_the_bandwidth(wangdue):
    links = tuple(link.model_copy(update={"b": link.b.model_copy(update={"ospf_cost": 7})})
                  if link.name == "hq-ruebisa-backup" else link for link in wangdue.wan_links)
    override = wangdue.model_copy(update={"wan_links": links})
    ruebisa = frr_interfaces(intended_router_configs(override, [RUEBISA])[RUEBISA])
    hq = frr_interfaces(intended_router_configs(override, [HQ])[HQ])
    assert ruebisa["eth2"]["cost"] == "7"  # the overridden end
    assert hq["eth2"]["cost"] == "5000"  # the other end keeps the bandwidth's cost
    assert path_costs(override, RUEBISA)[HQ][1] == ["hq-ruebisa-backup"]


def test_the_punakha_star_keeps_one_area_everywhere():
    inventory = load_inventory(PUNAKHA)
    configs = intended_router_configs(inventory, list(inventory.devices))
    assert {data["area"] for config in configs.values() for data in frr_interfaces(config).values()} == {"0"}
