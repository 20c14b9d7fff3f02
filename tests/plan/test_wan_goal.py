"""The goal check's plan: which gewog a link serves, the path its LAN takes to HQ, and the first hop that fails.

Pure: computed from the inventory alone (both samples), the hop walk from a table of answers.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dzops.inventory.loader import load_inventory
from dzops.plan.wan import Hop, first_failing_hop, gewog_behind, goal_checks, wan_allocation

ROOT = Path(__file__).resolve().parents[2]
PUNAKHA, WANGDUE = ROOT / "inventory", ROOT / "samples" / "wangdue"


@pytest.fixture(scope="module")
def wangdue():
    return load_inventory(WANGDUE)


@pytest.fixture(scope="module")
def punakha():
    return load_inventory(PUNAKHA)


def _path(n: int) -> list[Hop]:
    return [Hop(f"r{i}", IPv4Address(f"10.0.0.{i}"), f"WAN l{i}") for i in range(n)]


@pytest.mark.parametrize(("answering", "expected", "asked"), [
    ({"r0", "r1", "r2", "r3"}, None, ["r0", "r1", "r2", "r3"]),  # all answer: nothing to name
    (set(), "r0", ["r0"]),  # the first hop is already down
    ({"r0"}, "r1", ["r0", "r1"]),  # named where the walk stops, nothing asked after it
    ({"r0", "r1", "r2"}, "r3", ["r0", "r1", "r2", "r3"]),  # only the last (the server) is silent
    ({"r0", "r2", "r3"}, "r1", ["r0", "r1"]),  # a later hop answering does not hide an earlier one
], ids=["all-answer", "first", "second", "last", "gap"])
def test_the_walk_names_the_first_hop_that_does_not_answer(answering, expected, asked) -> None:
    seen: list[str] = []

    def answers(hop: Hop) -> bool:
        seen.append(hop.host)
        return hop.host in answering

    hop = first_failing_hop(_path(4), answers)
    assert (hop.host if hop else None) == expected
    assert seen == asked


@pytest.mark.parametrize(("link", "gewog"), [
    ("hq-thedtsho", "wdp-thedtsho-agg1"),  # the aggregation router is a gewog office too
    ("thedtsho-daga", "wdp-daga-rtr1"),  # between two gewogs: the end farther from HQ
    ("phangyuel-kazhi", "wdp-kazhi-rtr1"),
    ("thedtsho-ruebisa", "wdp-ruebisa-rtr1"),  # both ends one hop from HQ: farther by OSPF cost
    ("hq-ruebisa-backup", "wdp-ruebisa-rtr1"),  # both of Ruebisa's links share its one goal check
])
def test_a_link_serves_the_gewog_at_its_end_farther_from_hq(wangdue, link: str, gewog: str) -> None:
    assert gewog_behind(wangdue, link) == gewog


def test_every_punakha_link_serves_its_spoke(punakha) -> None:
    for link in punakha.wan_links:
        assert gewog_behind(punakha, link.name) == link.b.host


def _hop_names(check) -> list[str]:  # noqa: ANN001
    return [f"{h.host}/{h.role}" for h in check.path]


@pytest.mark.parametrize(("router", "hops"), [
    ("wdp-kazhi-rtr1", ["wdp-phangyuel-rtr1/WAN phangyuel-kazhi", "wdp-thedtsho-agg1/WAN thedtsho-phangyuel",
                        "wdp-hq-rtr1/WAN hq-thedtsho"]),
    ("wdp-athang-rtr1", ["wdp-daga-rtr1/WAN daga-athang", "wdp-thedtsho-agg1/WAN thedtsho-daga",
                         "wdp-hq-rtr1/WAN hq-thedtsho"]),
    # dual-homed: the primary (8 Mbit/s + 100 Mbit/s, cost 1350) wins over the 2 Mbit/s backup (5000)
    ("wdp-ruebisa-rtr1", ["wdp-thedtsho-agg1/WAN thedtsho-ruebisa", "wdp-hq-rtr1/WAN hq-thedtsho"]),
    ("wdp-thedtsho-agg1", ["wdp-hq-rtr1/WAN hq-thedtsho"]),
])
def test_the_path_to_hq_is_the_one_ospf_takes_then_the_gateway_and_the_server(wangdue, router, hops) -> None:
    [check] = goal_checks(wangdue)[router]
    server = wangdue.devices["wdp-hq-srv1"]
    assert check.server == server.name and check.target == server.interfaces["eth0"].address.ip
    assert check.source == wangdue.devices[router].interfaces[wangdue.devices[router].lan_interface].address.ip
    assert _hop_names(check) == [*hops, f"wdp-hq-rtr1/gateway of {server.name}", f"{server.name}/server"]
    assert check.path[-2].address == wangdue.default_gateway(server.name)
    # each WAN hop is the far router's address on that link, at the link's allocated /31
    allocation = wan_allocation(wangdue)
    for hop in check.path[:-2]:
        assert hop.address in allocation[hop.role.removeprefix("WAN ")]


def test_an_explicit_ospf_cost_moves_the_path_to_the_backup(wangdue) -> None:
    primary = wangdue.wan_link("thedtsho-ruebisa")
    links = tuple(link.model_copy(update={"b": primary.b.model_copy(update={"ospf_cost": 60000})})
                  if link.name == primary.name else link for link in wangdue.wan_links)
    [check] = goal_checks(wangdue.model_copy(update={"wan_links": links}))["wdp-ruebisa-rtr1"]
    assert _hop_names(check)[0] == "wdp-hq-rtr1/WAN hq-ruebisa-backup"


def test_every_gewog_router_checks_every_hq_server_and_its_declared_ports(punakha, wangdue) -> None:
    for inventory in (punakha, wangdue):
        gewog_routers = {d.name for d in inventory.devices.values() if d.function == "routers"
                         and inventory.sites[d.site].kind == "gewog"}
        hq_servers = {d.name for d in inventory.devices.values() if d.function == "servers"
                      and inventory.sites[d.site].kind == "hq"}
        checks = goal_checks(inventory)
        assert set(checks) == gewog_routers
        for router, per_server in checks.items():
            assert {c.server for c in per_server} == hq_servers, router
            for check in per_server:
                declared = {int(h.target.rsplit(":", 1)[1]) for h in inventory.devices[check.server].health_checks
                            if h.kind == "tcp"}
                assert set(check.ports) == declared and declared
