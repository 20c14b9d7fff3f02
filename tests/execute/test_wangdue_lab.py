"""The main cycle on the second sample: Wangdue Phodrang's tree instead of Punakha's star.

On the lab of samples/wangdue that tests/execute/conftest.py builds from factory state, provisions
(provision-wan --all, provision-ap --all) and shares with test_routing_lab (the session's is Punakha's):
the links are /31s, each verified up to its gewog's goal, a second run changes nothing;
every SSID is enabled (the open guest SSID and the AP on a router port included); user apply
(a new admin logs in by key), backup, drift (clean; then a change made by hand is named and
`drift --remediate` puts it back) and diagram. Expected counts come from the inventory. Last, a
hop in the middle of a three-hop spur is cut: the goal check names it.
"""

from __future__ import annotations

import json
import subprocess
import time
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.execute.conftest import Cycle

pytestmark = pytest.mark.lab

LOGIN = "wdcycleadm"


@pytest.fixture(scope="module")
def cycle(wangdue_cycle: Cycle) -> Cycle:
    return wangdue_cycle


# -- provision-wan --------------------------------------------------------------------------------

def test_every_link_is_provisioned_as_a_slash31_and_verified_up_to_its_gewogs_goal(cycle: Cycle) -> None:
    from dzops.plan.wan import gewog_behind

    inventory = cycle.handle.inventory()
    assert [r.link for r in cycle.wan] == [link.name for link in inventory.wan_links]
    assert all(r.status == "changed" and r.verified for r in cycle.wan), [(r.link, r.status, r.error) for r in cycle.wan]
    pool, size = inventory.address_pools.wan, inventory.address_pools.wan_subnet_size
    for link in inventory.wan_links:  # written back, each a /31 of the pool
        assert link.subnet is not None and link.subnet.prefixlen == size == 31 and link.subnet.subnet_of(pool)
    assert len({link.subnet for link in inventory.wan_links}) == len(inventory.wan_links)
    for result in cycle.wan:
        assert IPv4Network(result.subnet) == inventory.wan_link(result.link).subnet
        gewog = gewog_behind(inventory, result.link)
        assert any(c.startswith(f"{gewog} LAN ") and "reaches HQ: wdp-hq-srv1" in c for c in result.checks), \
            (result.link, result.checks)
    # every link end carries its /31 address on the router
    lab = cycle.handle.lab
    for link in inventory.wan_links:
        for end, address in zip((link.a, link.b), link.subnet, strict=True):
            shown = lab.exec(end.host, ["ip", "-o", "-4", "addr", "show", "dev", end.ifname]).stdout
            assert f"inet {address}/31 " in shown, (link.name, end.host, shown)


def test_a_second_wan_run_changes_nothing(cycle: Cycle) -> None:
    from dzops.execute.wan import provision_wan

    inventory = cycle.handle.inventory()
    results = provision_wan(inventory, [link.name for link in inventory.wan_links])
    assert [r.status for r in results] == ["ok"] * len(inventory.wan_links), [(r.link, r.error) for r in results]
    assert not any(h.diff or h.changed for r in results for h in r.hosts.values())


# -- provision-ap ---------------------------------------------------------------------------------

def _hostapd(lab, host: str, interface: str, what: str) -> dict[str, str]:  # noqa: ANN001
    out = lab.exec(host, ["hostapd_cli", "-p", "/run/hostapd", "-i", interface, what]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_every_ssid_is_enabled_the_open_guest_and_the_ap_on_a_router_port_included(cycle: Cycle) -> None:
    inventory = cycle.handle.inventory()
    lab = cycle.handle.lab
    aps = [d for d in inventory.devices.values() if d.function == "access_points"]
    assert sorted(r.host for r in cycle.ap) == sorted(d.name for d in aps)
    assert all(r.status == "changed" for r in cycle.ap), [(r.host, r.status, r.error) for r in cycle.ap]
    enabled = 0
    for result in cycle.ap:
        device = inventory.devices[result.host]
        profiles = [inventory.ssid_profiles[name] for name in device.ssids]
        assert [s["ssid"] for s in result.data["ssids"]] == [p.ssid for p in profiles]
        for ssid, profile in zip(result.data["ssids"], profiles, strict=True):
            status = _hostapd(lab, result.host, ssid["interface"], "status")
            config = _hostapd(lab, result.host, ssid["interface"], "get_config")
            assert status.get("state") == "ENABLED" and config.get("ssid") == profile.ssid, (result.host, status)
            if profile.security == "open":
                assert "key_mgmt" not in config, (result.host, config)  # open: no key at all
            else:
                assert config.get("key_mgmt") in ("WPA-PSK", "SAE"), (result.host, config)
            enabled += 1
    assert enabled == sum(len(d.ssids) for d in aps)
    assert any(inventory.ssid_profiles[n].security == "open" for d in aps for n in d.ssids)
    on_router = [r for r in cycle.ap if inventory.devices[r.host].uplink.router]
    assert on_router, "the sample has an AP on a router port"
    for result in on_router:
        uplink = result.data["switch_port"]
        assert (uplink["status"], uplink["router"]) == ("not_applicable", inventory.devices[result.host].uplink.router)


# -- users ----------------------------------------------------------------------------------------

def test_a_new_admin_logs_in_to_a_router_and_the_server_by_key(cycle: Cycle) -> None:
    inventory = cycle.handle.inventory()
    key = cycle.root / "admin-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cycle@lab", "-f", str(key)], check=True)
    added = cycle.dzops("user", "add", LOGIN, "--name", "Cycle Admin", "--email", f"{LOGIN}@wangdue.gov.bt",
                        "--role", "admin", "--key", f"{key}.pub")
    assert added.returncode == 0, added.stderr
    applied = cycle.dzops("user", "apply", "--limit", "servers,routers", "--json")
    assert applied.returncode == ExitCode.OK, applied.stderr[-3000:] + applied.stdout[-2000:]
    hosts = {h["host"]: h for h in json.loads(applied.stdout)["hosts"]}
    expected = {d.name for d in inventory.hosts_in("servers") + inventory.hosts_in("routers")}
    assert set(hosts) == expected
    assert all(h["data"]["accounts"].get(LOGIN) == "created" for h in hosts.values()), hosts

    def ssh(address: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={inventory.known_hosts}",
                               "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
                               "-o", "ConnectTimeout=30", "-o", "KexAlgorithms=curve25519-sha256", "-i", str(key),
                               f"{LOGIN}@{address}", command], capture_output=True, text=True, timeout=90,
                              stdin=subprocess.DEVNULL)

    router = inventory.devices["wdp-kazhi-rtr1"]  # three hops out: reached over management like every device
    shown = ssh(str(router.mgmt_address), "show running-config")
    assert shown.returncode == 0 and f"hostname {router.name}" in shown.stdout, shown.stderr
    for server in inventory.hosts_in("servers"):
        who = ssh(str(server.mgmt_address), "id -un; hostname")
        assert who.returncode == 0 and who.stdout.split() == [LOGIN, server.name], who.stderr


# -- backup, drift, diagram -----------------------------------------------------------------------

def test_backup_commits_every_device(cycle: Cycle) -> None:
    inventory = cycle.handle.inventory()
    proc = cycle.dzops("backup", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]
    devices = json.loads(proc.stdout)["devices"]
    assert sorted(d["host"] for d in devices) == sorted(inventory.devices)
    assert {d["status"] for d in devices} == {"ok"}, [d for d in devices if d["status"] != "ok"]
    repo = inventory.backup_repository
    committed = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
    for device in inventory.devices.values():  # every device has files in the commit, under its site
        assert any(path.startswith(f"{device.site}/{device.name}/") for path in committed), device.name
    for router in inventory.hosts_in("routers"):
        config = (repo / router.site / router.name / "running-config").read_text()
        assert f"hostname {router.name}" in config and "ip ospf cost" in config
    cycle.done["backup"] = True


def _drift(cycle: Cycle) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = cycle.dzops("drift", "--json")
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc, report


def _drifted(report: dict[str, Any]) -> dict[str, list[str]]:
    return {d["host"]: [f"{f['kind']}: {f['title']}: {f['detail']}" for f in d["findings"]]
            for d in report.get("devices", []) if d["drifted"]}


def test_drift_is_clean_after_provisioning_then_names_a_change_and_remediates_it(cycle: Cycle) -> None:
    from dzops.plan.wan import intended_router_configs

    assert cycle.done.get("backup"), "drift compares with the backup the test before made"
    inventory = cycle.handle.inventory()
    proc, report = _drift(cycle)
    assert proc.returncode == ExitCode.OK, (proc.stderr[-2000:], _drifted(report))
    assert report["drift"] is False and sorted(d["host"] for d in report["devices"]) == sorted(inventory.devices)
    assert {d["status"] for d in report["devices"]} == {"ok"}
    assert (report["counts"]["intended"], report["counts"]["out_of_band"]) == (0, 0)

    # A change by hand on the three-hop spur's router: drift names it against its intended config,
    # and --remediate puts it back through provision-wan's checks of its links.
    spur = "wdp-kazhi-rtr1"
    lan = inventory.devices[spur].lan_interface
    cycle.handle.lab.exec(spur, ["vtysh", "-c", "configure terminal", "-c", f"interface {lan}",
                                 "-c", "description changed-by-hand"])
    proc, report = _drift(cycle)
    assert proc.returncode == ExitCode.DRIFT_FOUND, proc.stderr[-2000:]
    drifted = _drifted(report)
    assert list(drifted) == [spur], drifted
    # against intent: the commands that put the intended description back; against the last backup: the change
    config = intended_router_configs(inventory, [spur])[spur].splitlines()
    description = next(line.strip() for line in config[config.index(f"interface {lan}"):]
                       if line.strip().startswith("description "))
    [intended] = [f.splitlines() for f in drifted[spur] if f.startswith("intended:")]
    assert f"interface {lan}" in intended and description in [line.strip() for line in intended], drifted
    assert any(f.startswith("out-of-band:") and "changed-by-hand" in f for f in drifted[spur]), drifted

    fixed = cycle.dzops("drift", "--remediate", spur, "--json")
    assert fixed.returncode == ExitCode.OK, fixed.stderr[-3000:] + fixed.stdout[-2000:]
    [row] = json.loads(fixed.stdout)["devices"]
    assert (row["host"], row["status"], row["changed"], row["rolled_back"]) == (spur, "changed", True, False), row
    assert any("OSPF neighbour" in c for c in row["checks"]) and not row["not_checked"], row
    assert "changed-by-hand" not in cycle.handle.lab.exec(spur, ["vtysh", "-c", "show running-config"]).stdout
    proc, report = _drift(cycle)
    assert proc.returncode == ExitCode.OK and report["drift"] is False, _drifted(report)


def test_the_diagram_confirms_every_declared_link(cycle: Cycle, tmp_path: Path) -> None:
    inventory = cycle.handle.inventory()
    lab = cycle.handle.lab
    proc = cycle.dzops("diagram", "--output", str(tmp_path), "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert set(data["nodes"]) == set(inventory.devices)
    declared = len(inventory.wan_links) + len(inventory.lan_links) + sum(
        1 for d in inventory.devices.values() if d.uplink is not None)
    assert len(data["links"]) == declared == len(lab.spec.links)
    assert {link["status"] for link in data["links"]} == {"confirmed"}, \
        [(link["id"], link["status"]) for link in data["links"] if link["status"] != "confirmed"]


# -- the goal, with a hop in the middle cut (last: it disturbs routing) -------------------------------

def test_a_cut_middle_hop_is_named_by_the_goal_check_and_the_link_rolled_back(cycle: Cycle) -> None:
    from dzops.execute.wan import provision_wan
    from dzops.plan.wan import wan_ends

    inventory = cycle.handle.inventory()
    lab = cycle.handle.lab
    spur, cut = "phangyuel-kazhi", inventory.wan_link("thedtsho-phangyuel")  # Kazhi -> Phangyuel -> Thedtsho -> HQ
    agg_address = next(e.address.ip for e in wan_ends(inventory)[cut.a.host] if e.link == cut.name)
    links = tuple(link.model_copy(update={"circuit_id": "BT-WDP-9107"}) if link.name == spur else link
                  for link in inventory.wan_links)
    changed = inventory.model_copy(update={"wan_links": links})

    def running(host: str) -> str:
        return lab.exec(host, ["vtysh", "-c", "show running-config"]).stdout

    before = {h: running(h) for h in ("wdp-phangyuel-rtr1", "wdp-kazhi-rtr1")}
    lab.set_link(cut.a.host, cut.a.ifname, False)
    try:
        # The spur's own checks pass within a few seconds; the failing goal then waits out the whole bound.
        [result] = provision_wan(changed, [spur], verify_timeout=20)
    finally:
        lab.set_link(cut.a.host, cut.a.ifname, True)
    assert (result.status, result.rolled_back) == ("rolled_back", True), result.error
    assert result.failed_check.startswith("wdp-kazhi-rtr1 LAN 10.61.6.1 reaches HQ:")
    # Phangyuel (the first hop) answered; Thedtsho's address on the cut link is the first that did not
    assert f"first hop that fails: {cut.a.host} {agg_address} (WAN {cut.name})" in result.error, result.error
    assert any("OSPF neighbour" in c for c in result.checks)  # the spur itself came up
    assert {h: running(h) for h in before} == before

    # with the hop back, the same change verifies, its goal reached (routing re-converges meanwhile)
    started = time.monotonic()
    [again] = provision_wan(changed, [spur], verify_timeout=120)
    assert (again.status, again.verified) == ("changed", True), again.error
    assert any(c.startswith("wdp-kazhi-rtr1 LAN 10.61.6.1 reaches HQ:") for c in again.checks)
    assert time.monotonic() - started < 120
