"""A router whose OS the lab cannot run (ios, routeros, ...) gets an FRR stand-in built from the same
vendor-neutral intent, so a Dzongkhag of Cisco or MikroTik routers rehearses its WAN on its own topology.

The inventory copy here makes Talo's router a Cisco (`platform: ios`, IOS interface names Gi0/0 for
the WAN, Gi0/1 for the LAN). The spec tests check what the lab would build; the lab test builds
HQ's router and Talo's stand-in in a lab of their own (prefix `<DZOPS_TEST_LAB_PREFIX>s`, management
/24 `10.<DZOPS_TEST_LAB_OCTET + 64 mod 256>.0.0`) and checks FRR, OSPF Full with HQ, Talo's LAN
answering HQ, `lab status` naming the stand-in, and `--lab` commands driving it as FRR.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory
from dzops.lab.from_inventory import lab_inventory, spec_from_inventory, stands_in_for
from dzops.platforms import PLATFORMS
from tests.labkit import copy_sample_inventory

HQ, TALO = "punakha-hq-rtr1", "gewog-talo-rtr1"
IOS_NAMES = {"eth0": "Gi0/0", "eth1": "Gi0/1"}  # Talo's WAN and LAN ports, as IOS names them
REPO = Path(__file__).resolve().parents[2]


def cisco_talo(dest: Path, octet: int, state_dir: Path, platform: str = "ios") -> Path:
    """A copy of the sample whose Talo router is a Cisco (or another vendor's) router with its own port names."""
    copy_sample_inventory(dest, octet, state_dir)
    host_vars = dest / "host_vars" / f"{TALO}.yml"
    text = host_vars.read_text().replace("lan_interface: eth1", f"lan_interface: {IOS_NAMES['eth1']}")
    for linux, ios in IOS_NAMES.items():
        text = text.replace(f"\n  {linux}:\n", f"\n  {ios}:\n")
    host_vars.write_text(text + f"platform: {platform}\n")
    for name in ("wan_links.yml", "lan_links.yml"):
        path = dest / "group_vars" / "all" / name
        path.write_text(re.sub(rf"(host: {TALO}, interface: )(eth[01])",
                               lambda m: m.group(1) + IOS_NAMES[m.group(2)], path.read_text()))
    return dest


@pytest.fixture(scope="module")
def cisco(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    root = tmp_path_factory.mktemp("standin-spec")
    return load_inventory(cisco_talo(root / "inventory", 30, root / "state"))


def test_the_copy_really_declares_a_cisco_talo(cisco: Inventory) -> None:
    talo = cisco.devices[TALO]
    assert talo.platform == "ios" and set(talo.interfaces) == {"Gi0/0", "Gi0/1"} and talo.lan_interface == "Gi0/1"
    assert PLATFORMS["ios"].lab_kind is None  # the lab has no IOS: without a stand-in, Talo would be missing
    assert cisco.wan_link("hq-talo").b.interface == "Gi0/0"


@pytest.mark.parametrize(("platform", "standin"), [("ios", "ios"), ("routeros", "routeros"), ("frr", None)])
def test_which_routers_get_a_standin(cisco: Inventory, platform: str, standin: str | None) -> None:
    talo = cisco.devices[TALO].model_copy(update={"platform": platform})
    assert stands_in_for(talo) == standin
    assert stands_in_for(cisco.devices["gewog-talo-sw1"]) is None  # switches and APs: routers only


def test_lab_view_is_frr_with_linux_names_and_the_same_intent(cisco: Inventory) -> None:
    view = lab_inventory(cisco)
    talo = view.devices[TALO]
    assert talo.platform == "frr" and set(talo.interfaces) == {"Gi0-0", "Gi0-1"}
    assert talo.lan_interface == "Gi0-1"
    assert talo.interfaces["Gi0-1"].address == cisco.devices[TALO].interfaces["Gi0/1"].address
    assert view.wan_link("hq-talo").b.interface == "Gi0-0" and view.wan_link("hq-talo").a.interface == "eth9"
    assert view.devices[HQ] == cisco.devices[HQ]  # nothing else changes
    assert lab_inventory(view) == view  # idempotent


def test_spec_builds_an_frr_router_for_the_cisco_from_the_same_intent(cisco: Inventory, tmp_path: Path) -> None:
    from dzops.plan.wan import intended_router_configs

    spec = spec_from_inventory(cisco, "t1", state_root=tmp_path, configured=True)
    node = spec.node(TALO)
    assert (node.kind, node.stands_in_for) == ("router", "ios")
    assert spec.node(HQ).stands_in_for == ""
    assert [i.name for i in node.interfaces] == ["Gi0-0", "Gi0-1"]
    # the stand-in's frr.conf is exactly what FRR routers are meant to run, from the same inventory facts
    assert node.frr_config == intended_router_configs(lab_inventory(cisco), [TALO])[TALO]
    lan = cisco.devices[TALO].interfaces["Gi0/1"].address
    assert "interface Gi0-1\n description Talo gewog LAN" in node.frr_config and f" ip address {lan}\n" in node.frr_config
    assert "interface Gi0-0\n" in node.frr_config and "ip ospf network point-to-point" in node.frr_config
    assert f"ip address {cisco.devices[TALO].loopback}" in node.frr_config and "router ospf" in node.frr_config
    # both ends of the cable exist: HQ's eth9 to the stand-in's WAN port
    assert any({(link.a_node, link.a_interface), (link.b_node, link.b_interface)} == {(HQ, "eth9"), (TALO, "Gi0-0")}
               for link in spec.links)
    # the factory state of the stand-in is the factory state of any FRR router: mgmt, LAN, no WAN yet
    factory = spec_from_inventory(cisco, "t1", state_root=tmp_path).node(TALO)
    assert factory.stands_in_for == "ios" and "ip ospf network point-to-point" not in factory.frr_config


# --- in a lab ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Path, Path]]:
    if os.geteuid() != 0:
        pytest.fail("lab tests build network namespaces and need root")
    from dzops.lab.builder import Lab

    prefix = os.environ.get("DZOPS_TEST_LAB_PREFIX", "dzt")[:5] + "s"
    octet = (int(os.environ.get("DZOPS_TEST_LAB_OCTET", "99")) + 64) % 256
    root = tmp_path_factory.mktemp("standin-lab")
    state_root = root / "state"
    inventory_dir = cisco_talo(root / "inventory", octet, state_root / prefix)
    spec = spec_from_inventory(load_inventory(inventory_dir), prefix, state_root=state_root, configured=True)
    # HQ's router and Talo's stand-in, cabled as in the inventory; HQ's other ports stay unplugged.
    keep = {HQ, TALO}
    spec = dataclasses.replace(spec, nodes=tuple(n for n in spec.nodes if n.name in keep),
                               links=tuple(link for link in spec.links if {link.a_node, link.b_node} <= keep))
    lab = Lab(spec)
    try:
        status = lab.up()
        assert status.healthy, [n.name for n in status.nodes if not n.healthy]
        yield lab, inventory_dir, state_root
    finally:
        lab.down()


def _dzops(inventory_dir: Path, state_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DZOPS_INVENTORY": str(inventory_dir), "DZOPS_LAB_STATE": str(state_root)}
    return subprocess.run([sys.executable, "-m", "dzops", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)


@pytest.mark.lab
def test_standin_runs_frr_reaches_ospf_full_with_hq_and_its_lan_answers(standin_lab) -> None:  # noqa: ANN001
    lab, inventory_dir, _ = standin_lab
    cisco = load_inventory(inventory_dir)
    version = lab.exec(TALO, ["vtysh", "-c", "show version"]).stdout
    assert version.startswith("FRRouting 8.") and f"({TALO})" in version
    interface = lab.exec(TALO, ["vtysh", "-c", "show interface Gi0-1"]).stdout
    assert f"inet {cisco.devices[TALO].interfaces['Gi0/1'].address}" in interface
    hq_loopback = str(cisco.devices[HQ].loopback.ip)
    deadline = time.monotonic() + 90
    neighbors = ""
    while time.monotonic() < deadline:
        neighbors = lab.exec(TALO, ["vtysh", "-c", "show ip ospf neighbor"]).stdout
        if re.search(rf"^{re.escape(hq_loopback)}\s+\d+\s+Full/", neighbors, re.M):
            break
        time.sleep(1)
    assert re.search(rf"^{re.escape(hq_loopback)}\s+\d+\s+Full/", neighbors, re.M), neighbors
    lan = str(cisco.devices[TALO].interfaces["Gi0/1"].address.ip)
    deadline = time.monotonic() + 30
    while (ping := lab.exec(HQ, ["ping", "-c", "2", "-W", "2", lan])).returncode != 0 and time.monotonic() < deadline:
        time.sleep(1)  # the LAN route arrives a moment after Full
    assert ping.returncode == 0, ping.stdout + ping.stderr
    route = lab.exec(HQ, ["vtysh", "-c", f"show ip route {cisco.sites['talo'].lan_prefix}"]).stdout
    assert "Known via \"ospf\"" in route, route


@pytest.mark.lab
def test_lab_status_names_the_standin(standin_lab) -> None:  # noqa: ANN001
    lab, inventory_dir, state_root = standin_lab
    proc = _dzops(inventory_dir, state_root, "lab", "status", "--prefix", lab.prefix, "--json")
    assert proc.returncode == 0, proc.stderr
    nodes = {n["name"]: n for n in json.loads(proc.stdout)["nodes"]}
    assert nodes[TALO]["stands_in_for"] == "ios" and nodes[HQ]["stands_in_for"] == ""
    text = _dzops(inventory_dir, state_root, "lab", "status", "--prefix", lab.prefix)
    talo_line = next(line for line in text.stdout.splitlines() if line.startswith(TALO))
    assert "router (FRR for ios)" in talo_line


@pytest.mark.lab
def test_lab_commands_drive_the_standin_as_frr(standin_lab) -> None:  # noqa: ANN001
    lab, inventory_dir, state_root = standin_lab
    # backup reads the stand-in through the FRR driver (NAPALM's ios driver would find no IOS here)
    proc = _dzops(inventory_dir, state_root, "--lab", lab.prefix, "backup", "--limit", f"{HQ},{TALO}", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    talo = {d["host"]: d for d in out["devices"]}[TALO]
    assert talo["error"] is None and talo["files"], talo
    assert any("frr version" in (Path(out["repository"]) / rel).read_text() for rel in talo["changed"]), talo
    # the stand-in runs exactly its intended FRR config: no drift; a change at its console is drift
    proc = _dzops(inventory_dir, state_root, "--lab", lab.prefix, "drift", TALO, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = {d["host"]: d for d in json.loads(proc.stdout)["devices"]}[TALO]
    assert (report["platform"], report["status"], report["drifted"]) == ("frr", "ok", False), report
    lab.exec(TALO, ["vtysh", "-c", "configure terminal", "-c", "interface Gi0-1", "-c", "description moved by hand"])
    try:
        proc = _dzops(inventory_dir, state_root, "--lab", lab.prefix, "drift", TALO, "--json")
        report = {d["host"]: d for d in json.loads(proc.stdout)["devices"]}[TALO]
        assert proc.returncode == ExitCode.DRIFT_FOUND and report["drifted"], proc.stderr + proc.stdout
        assert any("description" in " ".join(f["commands"]) for f in report["findings"]), report
    finally:
        lab.exec(TALO, ["vtysh", "-c", "configure terminal", "-c", "interface Gi0-1",
                        "-c", "description Talo gewog LAN to gewog-talo-sw1 swp1"])


def test_lab_link_takes_the_vendor_interface_name(cisco: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dzops.cli.app import app
    from dzops.lab.builder import Lab

    calls: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(Lab, "set_link", lambda self, node, iface, up: calls.append((node, iface, up)))
    result = CliRunner().invoke(app, ["-i", str(cisco.root), "lab", "link", TALO, "Gi0/1", "down", "--prefix", "t1"])
    assert result.exit_code == 0, result.output
    assert calls == [(TALO, "Gi0-1", False)]  # the stand-in's port as the lab names it
