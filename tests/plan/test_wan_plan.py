"""The WAN plan is pure: same inventory, same addresses and candidates, every time."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from dzops.exceptions import InventoryError, UsageError
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import WanLink
from dzops.plan.wan import allocate_subnets, end_addresses, links_in_scope, plan_wan, wan_ends

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(SAMPLE)


def _link(name: str, subnet: str | None = None) -> WanLink:
    return WanLink(name=name, a={"host": "hq", "interface": f"e-{name}"}, b={"host": name, "interface": "eth0"},
                   provider="BT", circuit_id=f"C-{name}", bandwidth_mbps=10, routing={"protocol": "ospf"},
                   subnet=subnet)


@pytest.mark.parametrize(("links", "pool", "prefixlen", "expected"), [
    ([_link("a"), _link("b")], "10.0.0.0/29", 30, {"a": "10.0.0.0/30", "b": "10.0.0.4/30"}),
    ([_link("a"), _link("b", "10.0.0.0/30")], "10.0.0.0/29", 30, {"a": "10.0.0.4/30", "b": "10.0.0.0/30"}),
    ([_link("a"), _link("b")], "10.0.0.0/30", 31, {"a": "10.0.0.0/31", "b": "10.0.0.2/31"}),
    # a taken subnet that is not aligned to /30 still blocks the /30s it overlaps
    ([_link("a"), _link("b", "10.0.0.2/31")], "10.0.0.0/28", 30, {"a": "10.0.0.4/30", "b": "10.0.0.2/31"}),
], ids=["fresh", "keeps-taken", "slash31", "overlap-blocks"])
def test_allocation_is_deterministic_and_never_reuses(links, pool, prefixlen, expected):
    got = allocate_subnets(links, IPv4Network(pool), prefixlen)
    assert {k: str(v) for k, v in got.items()} == expected
    assert allocate_subnets(links, IPv4Network(pool), prefixlen) == got


def test_exhausted_pool_is_an_inventory_error():
    with pytest.raises(InventoryError, match="exhausted"):
        allocate_subnets([_link("a"), _link("b")], IPv4Network("10.0.0.0/30"))


def test_end_addresses_are_distinct_hosts_of_the_subnet():
    a, b = end_addresses(IPv4Network("10.30.255.8/30"))
    assert (str(a), str(b)) == ("10.30.255.9/30", "10.30.255.10/30")


def test_every_link_end_gets_its_far_end_and_far_lan(inventory):
    ends = wan_ends(inventory)
    talo = ends["gewog-talo-rtr1"]
    assert len(talo) == 1 and talo[0].far_host == "punakha-hq-rtr1"
    assert [str(p) for p in talo[0].far_lan_prefixes] == ["10.30.1.0/24"]
    hq = {e.link: e for e in ends["punakha-hq-rtr1"]}
    assert len(hq) == len(inventory.wan_links)
    assert str(hq["hq-talo"].far_address) == str(talo[0].address.ip)
    assert hq["hq-talo"].address.network == talo[0].address.network


def test_scope_by_name_site_and_all(inventory):
    assert links_in_scope(inventory, ["hq-talo"]) == ["hq-talo"]
    assert links_in_scope(inventory, site="talo") == ["hq-talo"]
    assert len(links_in_scope(inventory, site="hq")) == len(inventory.wan_links)
    with pytest.raises(UsageError, match="nosuch"):
        links_in_scope(inventory, ["nosuch"])


def test_a_run_on_one_link_leaves_other_unprovisioned_links_out(inventory):
    plan = plan_wan(inventory, ["hq-talo"])
    assert sorted(plan.candidates) == ["gewog-talo-rtr1", "punakha-hq-rtr1"]
    hq = plan.candidates["punakha-hq-rtr1"]
    assert "to gewog-talo-rtr1 eth0" in hq
    assert "to gewog-barp-rtr1" not in hq  # not provisioned, not in scope


def test_excluded_link_disappears_from_the_candidates(inventory):
    plan = plan_wan(inventory, ["hq-talo", "hq-barp"], exclude={"hq-barp"})
    assert plan.scope == ("hq-talo",)
    assert "gewog-barp-rtr1" not in plan.candidates["punakha-hq-rtr1"]


def test_candidate_is_a_whole_router_config_with_ospf_point_to_point(inventory):
    text = plan_wan(inventory, ["hq-talo"]).candidates["gewog-talo-rtr1"]
    assert text.startswith("frr version")
    assert "hostname gewog-talo-rtr1" in text
    assert " ip ospf network point-to-point" in text
    assert "ospf router-id 10.30.254.19" in text
    assert "|" not in text


def test_a_router_whose_links_are_all_excluded_gets_no_candidate(inventory):
    plan = plan_wan(inventory, ["hq-talo", "hq-barp"], exclude={"hq-talo"})
    assert "gewog-talo-rtr1" not in plan.candidates
    assert sorted(plan.candidates) == ["gewog-barp-rtr1", "punakha-hq-rtr1"]


def test_excluded_provisioned_link_keeps_its_running_stanza(inventory):
    link = inventory.wan_link("hq-talo").model_copy(update={"subnet": IPv4Network("10.30.255.32/30")})
    provisioned = inventory.model_copy(update={"wan_links": tuple(
        link if other.name == "hq-talo" else other for other in inventory.wan_links)})
    running = {"punakha-hq-rtr1": "interface eth9\n description old circuit\n ip address 10.30.255.33/30\nexit\n"}
    plan = plan_wan(provisioned, ["hq-talo", "hq-barp"], exclude={"hq-talo"}, running=running)
    hq = plan.candidates["punakha-hq-rtr1"]
    assert "interface eth9\n description old circuit\n ip address 10.30.255.33/30\nexit" in hq
    assert "to gewog-talo-rtr1" not in hq  # the new intent for the excluded link is not applied


# -- one intent for lab --configured, provision-wan and drift ----------------------------------------
def _with_subnets(inventory, subnets):
    return inventory.model_copy(update={"wan_links": tuple(
        link.model_copy(update={"subnet": IPv4Network(subnets[link.name])}) if link.name in subnets else link
        for link in inventory.wan_links)})


def test_drift_intends_every_declared_link_before_any_subnet_is_written_back(inventory):
    from dzops.plan.wan import intended_router_configs

    assert all(link.subnet is None for link in inventory.wan_links)  # the shipped sample
    configs = intended_router_configs(inventory, list(inventory.devices))
    assert sorted(configs) == sorted(h for h, d in inventory.devices.items() if d.function == "routers")
    hq = configs["punakha-hq-rtr1"]
    for link in inventory.wan_links:
        assert f"to {link.b.host} {link.b.ifname}" in hq
    assert " ip address 10.30.255.34/30" in configs["gewog-talo-rtr1"]


@pytest.mark.parametrize("written", [(), ("hq-talo",), ("hq-barp", "hq-talo", "hq-toewang")],
                         ids=["none", "one", "some"])
def test_writing_back_the_allocated_subnets_changes_no_intended_config(inventory, written):
    from dzops.plan.wan import intended_router_configs

    allocation = allocate_subnets(inventory.wan_links, inventory.address_pools.wan)
    before = intended_router_configs(inventory, list(inventory.devices))
    after = intended_router_configs(_with_subnets(inventory, {n: str(allocation[n]) for n in written}),
                                    list(inventory.devices))
    assert after == before


def test_lab_configured_renders_exactly_what_drift_intends(inventory, tmp_path):
    from dzops.lab.from_inventory import spec_from_inventory
    from dzops.plan.wan import intended_router_configs

    spec = spec_from_inventory(inventory, "dzd", state_root=tmp_path, configured=True)
    routers = {n.name: n.frr_config for n in spec.nodes if inventory.devices[n.name].function == "routers"}
    assert len(routers) == 12
    assert routers == intended_router_configs(inventory, list(routers))
    factory = spec_from_inventory(inventory, "dzd", state_root=tmp_path)
    assert all("ip ospf network point-to-point" not in n.frr_config for n in factory.nodes
               if n.name in routers)


def test_a_run_on_one_link_keeps_other_declared_links_that_are_running(inventory):
    # A lab built --configured carries every declared link before any subnet is written back:
    # provisioning one of them must not take the others down.
    from dzops.plan.wan import intended_router_configs

    running = intended_router_configs(inventory, ["punakha-hq-rtr1"])
    plan = plan_wan(inventory, ["hq-talo"], running=running)
    hq = plan.candidates["punakha-hq-rtr1"]
    for link in inventory.wan_links:
        assert f"to {link.b.host} {link.b.ifname}" in hq
    assert hq.count("interface eth") == running["punakha-hq-rtr1"].count("interface eth")


# -- allocation size per pool ------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "expected"), [
    (30, ["10.30.255.0/30", "10.30.255.4/30", "10.30.255.8/30"]),
    (31, ["10.30.255.0/31", "10.30.255.2/31", "10.30.255.4/31"]),
], ids=["slash30-default", "slash31-rfc3021"])
def test_the_pool_sets_the_allocation_size(inventory, size, expected):
    from dzops.plan.wan import wan_allocation

    pools = inventory.address_pools.model_copy(update={"wan_subnet_size": size})
    sized = inventory.model_copy(update={"address_pools": pools})
    allocation = wan_allocation(sized)
    assert [str(allocation[link.name]) for link in inventory.wan_links[:3]] == expected
    assert len(set(allocation.values())) == len(inventory.wan_links)  # never one subnet twice
    assert wan_allocation(sized) == allocation  # the same answer every time
    ends = wan_ends(sized)
    a = next(e for e in ends["punakha-hq-rtr1"] if e.link == "hq-barp")
    b = ends["gewog-barp-rtr1"][0]
    assert (str(a.address), str(b.address)) == ((f"10.30.255.0/{size}", f"10.30.255.1/{size}") if size == 31
                                                else ("10.30.255.1/30", "10.30.255.2/30"))


def test_a_slash31_pool_keeps_written_slash30s_and_fills_around_them():
    links = [_link("a"), _link("b", "10.0.0.0/30"), _link("c")]
    got = allocate_subnets(links, IPv4Network("10.0.0.0/29"), 31)
    assert {k: str(v) for k, v in got.items()} == {"b": "10.0.0.0/30", "a": "10.0.0.4/31", "c": "10.0.0.6/31"}
    with pytest.raises(InventoryError, match="exhausted"):  # the written /30 is never handed out again
        allocate_subnets([*links, _link("d")], IPv4Network("10.0.0.0/29"), 31)


@pytest.mark.parametrize("prefixlen", [29, 32])
def test_only_point_to_point_sizes_are_allocated(prefixlen):
    with pytest.raises(InventoryError, match="/30 or a /31"):
        allocate_subnets([_link("a")], IPv4Network("10.0.0.0/24"), prefixlen)


def test_a_slash32_link_subnet_is_refused_not_crashed_on():
    with pytest.raises(ValueError, match="needs a /30 or /31"):
        end_addresses(IPv4Network("10.30.255.4/32"))
