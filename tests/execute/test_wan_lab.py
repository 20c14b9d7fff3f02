"""provision-wan against the lab's real FRR routers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.execute.wan import provision_wan
from dzops.inventory.models import Inventory

pytestmark = pytest.mark.lab

HQ = "punakha-hq-rtr1"


def running(lab, node: str) -> str:
    return lab.exec(node, ["vtysh", "-c", "show running-config"]).stdout


def with_link(inventory: Inventory, name: str, **changes) -> Inventory:
    links = tuple(link.model_copy(update=changes) if link.name == name else link for link in inventory.wan_links)
    return inventory.model_copy(update={"wan_links": links})


def with_device(inventory: Inventory, host: str, **changes) -> Inventory:
    devices = dict(inventory.devices)
    devices[host] = devices[host].model_copy(update=changes)
    return inventory.model_copy(update={"devices": devices})


def test_first_run_provisions_and_verifies_every_link(provisioned_lab):
    results = provisioned_lab.wan_results
    assert len(results) == 11
    assert all(r.changed and r.verified and r.status == "changed" for r in results), \
        [(r.link, r.status, r.error) for r in results]
    assert all(any("OSPF neighbour" in c and "Full" in c for c in r.checks) for r in results)


def test_every_gewog_lan_is_reachable_from_hq(provisioned_lab):
    lab = provisioned_lab.handle.lab
    inventory = provisioned_lab.handle.inventory()
    for site in inventory.sites.values():
        if site.kind != "gewog":
            continue
        gateway = str(next(site.lan_prefix.hosts()))
        ping = lab.exec(HQ, ["ping", "-c", "1", "-W", "2", gateway])
        assert ping.returncode == 0, f"{site.name} LAN {gateway} unreachable from HQ"
    neighbours = lab.exec(HQ, ["vtysh", "-c", "show ip ospf neighbor"]).stdout
    assert neighbours.count("Full/-") == 11


def test_allocations_are_written_back_keeping_the_file(provisioned_lab):
    path = provisioned_lab.handle.inventory_dir / "group_vars/all/wan_links.yml"
    text = path.read_text()
    assert text.startswith("---\n# WAN circuits")  # comments kept
    assert text.count("    subnet: 10.30.255.") == 11
    assert "a: {host: punakha-hq-rtr1, interface: eth1}" in text  # flow style kept
    inventory = provisioned_lab.handle.inventory()
    assert all(link.subnet is not None for link in inventory.wan_links)


def test_second_run_changes_nothing(provisioned_lab):
    before = {n: running(provisioned_lab.handle.lab, n) for n in (HQ, "gewog-talo-rtr1")}
    results = provision_wan(provisioned_lab.handle.inventory(), [r.link for r in provisioned_lab.wan_results])
    assert [r.status for r in results] == ["ok"] * 11
    assert not any(h.diff or h.changed for r in results for h in r.hosts.values())
    assert {n: running(provisioned_lab.handle.lab, n) for n in before} == before


def test_failed_verification_restores_both_ends_exactly(provisioned_lab):
    lab = provisioned_lab.handle.lab
    inventory = with_link(provisioned_lab.handle.inventory(), "hq-talo", circuit_id="BT-PNK-9999")
    before = {n: running(lab, n) for n in (HQ, "gewog-talo-rtr1")}
    lab.set_link("gewog-talo-rtr1", "eth0", False)
    try:
        [result] = provision_wan(inventory, ["hq-talo"], verify_timeout=8)
    finally:
        lab.set_link("gewog-talo-rtr1", "eth0", True)
    assert result.status == "rolled_back" and result.rolled_back and not result.verified
    assert result.failed_check and "gewog-talo-rtr1 eth0 is up" in result.failed_check
    assert {n: running(lab, n) for n in before} == before


def test_wrong_password_changes_nothing(provisioned_lab):
    lab = provisioned_lab.handle.lab
    from pydantic import SecretStr

    inventory = with_device(with_link(provisioned_lab.handle.inventory(), "hq-talo", circuit_id="BT-PNK-7777"),
                            "gewog-talo-rtr1", password=SecretStr("not-the-password"))
    before = running(lab, HQ)
    [result] = provision_wan(inventory, ["hq-talo"])
    assert result.status == "failed" and "authentication failed" in (result.error or "")
    assert result.error.startswith("gewog-talo-rtr1:")
    assert running(lab, HQ) == before


def test_unreachable_device_changes_nothing(provisioned_lab):
    lab = provisioned_lab.handle.lab
    inventory = with_link(provisioned_lab.handle.inventory(), "hq-talo", circuit_id="BT-PNK-8888")
    before = running(lab, HQ)
    lab.stop_daemon("gewog-talo-rtr1", "sshd")
    try:
        [result] = provision_wan(inventory, ["hq-talo"])
    finally:
        lab.start_daemon("gewog-talo-rtr1", "sshd")
    assert result.status == "unreachable" and "cannot reach" in (result.error or "")
    assert running(lab, HQ) == before


def test_missing_interface_changes_nothing(provisioned_lab):
    lab = provisioned_lab.handle.lab
    inventory = provisioned_lab.handle.inventory()
    talo = inventory.wan_link("hq-talo")
    inventory = with_link(inventory, "hq-talo", b=talo.b.model_copy(update={"interface": "eth7"}))
    before = {n: running(lab, n) for n in (HQ, "gewog-talo-rtr1")}
    [result] = provision_wan(inventory, ["hq-talo"])
    assert result.status == "failed" and result.failed_check == "interface exists"
    assert "no interface eth7" in (result.error or "")
    assert {n: running(lab, n) for n in before} == before


def test_cli_check_prints_diff_and_touches_nothing(provisioned_lab, tmp_path):
    handle = provisioned_lab.handle
    path = handle.inventory_dir / "group_vars/all/wan_links.yml"
    original = path.read_text()
    path.write_text(original.replace("circuit_id: TICL-PNK-0009", "circuit_id: TICL-PNK-0010"))
    before = running(handle.lab, HQ)
    try:
        proc = subprocess.run([sys.executable, "-m", "dzops", "provision-wan", "--check", "--json", "hq-talo"],
                              env=handle.env(), capture_output=True, text=True, timeout=120)
    finally:
        path.write_text(original)
    assert proc.returncode == ExitCode.OK, proc.stderr
    import json

    [link] = json.loads(proc.stdout)
    assert link["status"] == "changed" and not link["verified"]
    assert "+  description WAN TICL-PNK-0010" in link["hosts"][HQ]["diff"]
    assert running(handle.lab, HQ) == before
