"""Routing follows the inventory on real FRR: the Wangdue sample's dual-homed gewog in a lab.

Ruebisa has a primary path through the Thedtsho aggregation router (8 Mbit/s + 100 Mbit/s, OSPF
cost 1250 + 100) and a 2 Mbit/s backup straight to HQ (cost 5000). With both up the primary
carries the traffic; cut the primary and it moves to the backup; restore it and it moves back.
Traffic is counted on the interfaces (packets sent by pings from Ruebisa's LAN address), not only
read from the routing table.

It runs on the lab of samples/wangdue that tests/execute/conftest.py builds (shared with
test_wangdue_lab): built from factory state and routed as dzops' `provision-wan --all` left it, so
the costs and paths measured here are the ones dzops configured from the inventory.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.lab

RUEBISA, HQ = "wdp-ruebisa-rtr1", "wdp-hq-rtr1"
PRIMARY, BACKUP = "thedtsho-ruebisa", "hq-ruebisa-backup"


@pytest.fixture(scope="module")
def wangdue_lab(wangdue_cycle) -> tuple[object, object]:  # noqa: ANN001
    return wangdue_cycle.handle.lab, wangdue_cycle.handle.inventory()


def _next_hop(lab, prefix: str) -> str | None:  # noqa: ANN001
    out = lab.exec(RUEBISA, ["vtysh", "-c", f"show ip route {prefix}"]).stdout
    hops = re.findall(r"^\s+\*\s+(\d+\.\d+\.\d+\.\d+), via", out, re.M)
    return hops[0] if len(hops) == 1 else None


def _wait_for_hop(lab, prefix: str, hop: str, seconds: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while _next_hop(lab, prefix) != hop:
        assert time.monotonic() < deadline, f"{RUEBISA}: {prefix} never went via {hop}: {_next_hop(lab, prefix)}"
        time.sleep(1)


def _sent_over(lab, interfaces: list[str], source: str, target: str) -> dict[str, int]:  # noqa: ANN001
    """Packets each interface sent while Ruebisa's LAN pinged `target` 20 times."""
    def counters() -> dict[str, int]:
        out = lab.exec(RUEBISA, ["cat", *(f"/sys/class/net/{i}/statistics/tx_packets" for i in interfaces)]).stdout
        return dict(zip(interfaces, map(int, out.split()), strict=True))

    before = counters()
    ping = lab.exec(RUEBISA, ["ping", "-q", "-c", "20", "-i", "0.05", "-W", "2", "-I", source, target])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    after = counters()
    return {i: after[i] - before[i] for i in interfaces}


def test_the_primary_carries_traffic_then_the_backup_then_the_primary_again(wangdue_lab) -> None:  # noqa: ANN001
    from dzops.plan.wan import wan_ends

    lab, inventory = wangdue_lab
    ends = {e.link: e for e in wan_ends(inventory)[RUEBISA]}
    primary, backup = ends[PRIMARY], ends[BACKUP]
    hq_lan = str(inventory.sites["hq"].lan_prefix)
    hq_gateway = str(inventory.devices[HQ].interfaces["eth0"].address.ip)
    own = str(inventory.devices[RUEBISA].interfaces["eth1"].address.ip)
    interfaces = [primary.ifname, backup.ifname]

    _wait_for_hop(lab, hq_lan, str(primary.far_address), 90)  # OSPF Full after start
    sent = _sent_over(lab, interfaces, own, hq_gateway)
    assert sent[primary.ifname] >= 20 and sent[backup.ifname] < 5, sent

    lab.set_link(RUEBISA, primary.ifname, False)
    try:
        _wait_for_hop(lab, hq_lan, str(backup.far_address), 30)
        sent = _sent_over(lab, [backup.ifname], own, hq_gateway)
        assert sent[backup.ifname] >= 20, sent
    finally:
        lab.set_link(RUEBISA, primary.ifname, True)

    _wait_for_hop(lab, hq_lan, str(primary.far_address), 90)
    sent = _sent_over(lab, interfaces, own, hq_gateway)
    assert sent[primary.ifname] >= 20 and sent[backup.ifname] < 5, sent


def test_the_thin_spur_is_reached_over_three_hops(wangdue_lab) -> None:  # noqa: ANN001
    lab, inventory = wangdue_lab
    athang = inventory.sites["athang"].lan_prefix
    out = lab.exec(HQ, ["vtysh", "-c", f"show ip route {athang}"]).stdout
    assert re.search(r"metric (\d+)", out) and int(re.search(r"metric (\d+)", out).group(1)) >= 100 + 1000 + 19531, out
    # and the thin link is as thin as the inventory says: 512 kbit/s, not rounded to a whole Mbit/s
    link = inventory.wan_link("daga-athang")
    for end in (link.a, link.b):
        qdisc = lab.exec(end.host, ["tc", "qdisc", "show", "dev", end.interface]).stdout
        assert re.search(r"\btbf\b.*\brate 512Kbit\b", qdisc), (end.host, qdisc)


@pytest.mark.parametrize("gewog", ["wdp-kazhi-rtr1", "wdp-athang-rtr1", "wdp-ruebisa-rtr1"])
def test_the_hq_server_answers_each_gewog_lan(wangdue_lab, gewog: str) -> None:  # noqa: ANN001
    """The office the WAN exists for reaches its server: the server's reply finds its way back."""
    lab, inventory = wangdue_lab
    device = inventory.devices[gewog]
    own = str(device.interfaces[device.lan_interface].address.ip)
    server = str(inventory.devices["wdp-hq-srv1"].interfaces["eth0"].address.ip)
    deadline = time.monotonic() + 90  # OSPF Full after start, three hops out
    while True:
        ping = lab.exec(gewog, ["ping", "-q", "-c", "2", "-W", "2", "-I", own, server])
        if ping.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert ping.returncode == 0, ping.stdout + ping.stderr
