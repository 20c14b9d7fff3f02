"""Which checks exist, and the "unreachable behind LINK" reasoning over the WAN graph from HQ."""

from __future__ import annotations

import pytest

from dzops.inventory.loader import load_inventory
from dzops.plan.health import Result, behind, findings, overall, plan_checks, wan_graph
from tests.labkit import SAMPLE

STAR = [("hq-a", "hq", "a"), ("hq-b", "hq", "b")]
CHAIN = [("hq-a", "hq", "a"), ("a-b", "a", "b"), ("b-c", "b", "c")]
RING = [("hq-a", "hq", "a"), ("a-b", "a", "b"), ("hq-b", "hq", "b")]
TREE = [("hq-a", "hq", "a"), ("a-b", "a", "b"), ("a-c", "a", "c"), ("hq-d", "hq", "d")]


@pytest.mark.parametrize(("edges", "down", "expected"), [
    (STAR, set(), {}),
    (STAR, {"hq-a"}, {"a": "hq-a"}),
    (STAR, {"hq-a", "hq-b"}, {"a": "hq-a", "b": "hq-b"}),
    # every site of a cut-off branch names the nearest down link, once
    (CHAIN, {"hq-a"}, {"a": "hq-a", "b": "hq-a", "c": "hq-a"}),
    (CHAIN, {"a-b"}, {"b": "a-b", "c": "a-b"}),
    (CHAIN, {"hq-a", "b-c"}, {"a": "hq-a", "b": "hq-a", "c": "hq-a"}),
    # a redundant path keeps a site reachable
    (RING, {"hq-a"}, {}),
    (RING, {"hq-a", "hq-b"}, {"a": "hq-a", "b": "hq-b"}),
    (RING, {"hq-b", "a-b"}, {"b": "hq-b"}),
    (TREE, {"hq-a"}, {"a": "hq-a", "b": "hq-a", "c": "hq-a"}),
    (TREE, {"a-c"}, {"c": "a-c"}),
    # a down link nobody depends on hides nothing
    (RING, {"a-b"}, {}),
], ids=["star-all-up", "star-one", "star-two", "chain-root", "chain-middle", "chain-two-cuts", "ring-one",
        "ring-both-from-hq", "ring-far-side", "tree-branch", "tree-leaf", "ring-redundant-link"])
def test_sites_behind_down_links(edges: list[tuple[str, str, str]], down: set[str], expected: dict[str, str]) -> None:
    assert behind(edges, "hq", down) == expected


def _r(key: str, site: str, status: str = "down", kind: str | None = None) -> Result:
    return Result(key, kind or key.split(":")[0], site, status, "seen")  # type: ignore[arg-type]


def test_a_cut_branch_is_one_finding_naming_every_site_behind_it() -> None:
    results = [_r("link:hq-a", "a"), _r("link:a-b", "b"), _r("link:b-c", "c"), _r("lan:a", "a"), _r("lan:b", "b"),
               _r("lan:c", "c"), _r("device:c-rtr", "c"), _r("device:hq-rtr", "hq", "up"), _r("link:hq-d", "d", "up")]
    [finding] = findings(results, CHAIN + [("hq-d", "hq", "d")], "hq")
    assert finding.key == "link:hq-a" and finding.behind == ("a", "b", "c")
    assert "a, b, c unreachable behind hq-a" in finding.message
    assert set(finding.hidden) == {"link:a-b", "link:b-c", "lan:a", "lan:b", "lan:c", "device:c-rtr"}


def test_problems_elsewhere_stay_their_own_findings() -> None:
    results = [_r("link:hq-a", "a"), _r("lan:a", "a"), _r("service:srv:tcp:x:22", "hq", "down", "service"),
               _r("resources:srv", "hq", "degraded")]
    keys = [(f.key, f.status) for f in findings(results, STAR, "hq")]
    assert keys == [("link:hq-a", "down"), ("service:srv:tcp:x:22", "down"), ("resources:srv", "degraded")]


def test_a_degraded_link_hides_nothing() -> None:
    results = [_r("link:hq-a", "a", "degraded"), _r("lan:a", "a", "degraded")]
    assert [f.key for f in findings(results, STAR, "hq")] == ["link:hq-a", "lan:a"]


@pytest.mark.parametrize(("statuses", "expected"), [
    ([], "up"), (["up", "up"], "up"), (["up", "degraded"], "degraded"), (["degraded", "down", "up"], "down")])
def test_overall_is_the_worst(statuses: list[str], expected: str) -> None:
    assert overall([_r(f"device:{i}", "s", s) for i, s in enumerate(statuses)]) == expected


def test_sample_inventory_checks() -> None:
    inventory = load_inventory(SAMPLE)
    checks = {c.key: c for c in plan_checks(inventory)}
    assert {f"link:{link.name}" for link in inventory.wan_links} <= set(checks)
    gewogs = [name for name, site in inventory.sites.items() if site.kind != "hq"]
    assert {f"lan:{site}" for site in gewogs} <= set(checks) and "lan:hq" not in checks
    assert "resources:punakha-hq-srv1" in checks and "service:punakha-hq-srv1:tcp:10.30.0.21:22" in checks
    assert checks["ap:gewog-talo-ap1"].site == "talo" and "resources:gewog-talo-ap1" not in checks
    assert {f"device:{name}" for name in inventory.devices} <= set(checks)
    # the WAN graph is HQ's star in the sample
    assert all(a == "hq" for _, a, _ in wan_graph(inventory))


def test_site_and_host_scope() -> None:
    inventory = load_inventory(SAMPLE)
    talo = {c.key for c in plan_checks(inventory, site="talo")}
    assert talo == {"device:gewog-talo-rtr1", "device:gewog-talo-sw1", "device:gewog-talo-ap1", "ap:gewog-talo-ap1",
                    "link:hq-talo", "lan:talo"}
    only_srv = {c.key for c in plan_checks(inventory, hosts=["punakha-hq-srv1"])}
    assert only_srv == {"device:punakha-hq-srv1", "resources:punakha-hq-srv1",
                        "service:punakha-hq-srv1:tcp:10.30.0.21:22"}
