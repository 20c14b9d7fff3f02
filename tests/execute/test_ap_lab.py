"""provision-ap against the lab's real hostapd APs and Cumulus-style switches.

The lab's switches and APs run Open vSwitch (the kernel has no VLAN-aware bridge and no 8021q):
each SSID's interface is an access port of its VLAN on the AP's br0, and the AP uplink and the
switch port facing it are trunks of the SSIDs' VLANs (management native), read back from ovs-vsctl.
That VLANs really separate traffic is tests/lab/test_lab_vlans.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pydantic import SecretStr

from dzops.cli.exit_codes import ExitCode
from dzops.execute.ap import provision_ap
from dzops.inventory.models import Inventory, Radius, SsidProfile, Vlan
from dzops.plan import ap as plan

pytestmark = pytest.mark.lab

TALO = "gewog-talo-ap1"
FILES = ("/etc/default/hostapd", "/etc/hostapd/wlan0.conf", "/etc/hostapd/wlan1.conf")
SWITCH, SWITCH_PORT = "gewog-talo-sw1", "swp2"


def port_vlans(lab, node: str, port: str) -> str:
    """`vlan_mode tag trunks` of an Open vSwitch port, as ovs-vsctl prints them, on one line."""
    proc = lab.exec(node, ["ovs-vsctl", "get", "port", port, "vlan_mode", "tag", "trunks"])
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def snapshot(lab, node: str) -> dict[str, str]:
    """The AP's hostapd files, hostapd's pid, its br0 ports' VLANs and the switch port's, read at the consoles."""
    out = {f: lab.exec(node, ["cat", f]).stdout for f in FILES}
    out["pid"] = lab.exec(node, ["cat", "/run/hostapd.pid"]).stdout.strip()
    out.update({f"vlans:{port}": port_vlans(lab, node, port) for port in ("wlan0", "wlan1", "eth0")})
    if node == TALO:
        out["vlans:switch"] = port_vlans(lab, SWITCH, SWITCH_PORT)
    return out


def cli_status(lab, node: str, iface: str, what: str = "status") -> dict[str, str]:
    out = lab.exec(node, ["hostapd_cli", "-p", "/run/hostapd", "-i", iface, what]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def with_profile(inventory: Inventory, name: str, **changes: object) -> Inventory:
    profiles = dict(inventory.ssid_profiles)
    profiles[name] = profiles[name].model_copy(update=changes)
    vlans = {**inventory.vlans, 30: Vlan(id=30, name="guest-new")}
    return inventory.model_copy(update={"ssid_profiles": profiles, "vlans": vlans})


def with_ap(inventory: Inventory, host: str, **changes: object) -> Inventory:
    devices = dict(inventory.devices)
    devices[host] = devices[host].model_copy(update=changes)
    return inventory.model_copy(update={"devices": devices})


def test_first_run_starts_hostapd_with_every_ssid_in_its_vlan(provisioned_lab):
    results = provisioned_lab.extra["ap"]
    lab = provisioned_lab.handle.lab
    assert len(results) == 11
    assert all(r.status == "changed" and r.changed and r.data["restarted"] for r in results), \
        [(r.host, r.status, r.error) for r in results]
    for result in results:
        # 2 SSIDs x (ENABLED, ssid, key_mgmt), 2 access ports, the uplink trunk, the switch port
        assert len(result.data["checks"]) == 10, result.data["checks"]
        for ssid in result.data["ssids"]:
            status = cli_status(lab, result.host, ssid["interface"])
            config = cli_status(lab, result.host, ssid["interface"], "get_config")
            assert status["state"] == "ENABLED" and config["ssid"] == ssid["ssid"]
            assert config["key_mgmt"] == "WPA-PSK"
            assert f"# VLAN {ssid['vlan']} (" in lab.exec(result.host, ["cat", f"/etc/hostapd/{ssid['interface']}.conf"]).stdout
            assert ssid["bridge"] == "br0"
            assert port_vlans(lab, result.host, ssid["interface"]) == f"access {ssid['vlan']} []"
    talo = next(r for r in results if r.host == TALO)
    assert [(s["ssid"], s["vlan"]) for s in talo.data["ssids"]] == [("Punakha-Staff", 10), ("Punakha-Guest", 20)]
    snap = snapshot(lab, TALO)
    assert (snap["vlans:wlan0"], snap["vlans:wlan1"]) == ("access 10 []", "access 20 []")
    assert snap["vlans:eth0"] == snap["vlans:switch"] == "native-untagged 99 [10, 20, 99]"


def test_switch_port_trunk_is_applied_and_verified(provisioned_lab):
    """The switch runs Open vSwitch: the trunk is set, read back and reported; no not_applicable left."""
    lab = provisioned_lab.handle.lab
    assert lab.exec(SWITCH, ["ovs-vsctl", "br-exists", "br0"]).returncode == 0
    for result in provisioned_lab.extra["ap"]:
        port = result.data["switch_port"]
        assert port["status"] == "changed" and port["vlans"] == [10, 20, 99] and port["native_vlan"] == 99, port
        assert port["note"] is None
        assert f"{port['switch']} {port['port']} trunk VLANs 10,20 native 99" in result.data["checks"]
        assert f"set port {port['port']} vlan_mode=native-untagged tag=99 trunks=[10,20,99]" in result.diff
        assert port_vlans(lab, port["switch"], port["port"]) == "native-untagged 99 [10, 20, 99]"


def test_psk_never_in_results(provisioned_lab):
    inventory = provisioned_lab.handle.inventory()
    secrets = [p.psk.get_secret_value() for p in inventory.ssid_profiles.values() if p.psk]
    dumped = json.dumps([r.to_dict() for r in provisioned_lab.extra["ap"]])
    assert "wpa_passphrase=********" in dumped
    assert not any(secret in dumped for secret in secrets)


def test_second_run_changes_nothing_and_does_not_restart(provisioned_lab):
    handle = provisioned_lab.handle
    before = {n: snapshot(handle.lab, n) for n in (TALO, "gewog-barp-ap1")}
    proc = subprocess.run([sys.executable, "-m", "dzops", "provision-ap", "--all", "--json"],
                          env=handle.env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == ExitCode.OK, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["status"] for r in results] == ["ok"] * 11
    assert not any(r["changed"] or r["data"]["restarted"] or r["data"]["files_changed"] for r in results)
    assert {n: snapshot(handle.lab, n) for n in before} == before


def test_vlan_change_rewrites_only_that_ssid(provisioned_lab):
    lab = provisioned_lab.handle.lab
    original = provisioned_lab.handle.inventory()
    before = snapshot(lab, TALO)
    changed = with_profile(original, "guest", vlan=30)
    try:
        [result] = provision_ap(changed, [TALO], verify_timeout=60)
        after = snapshot(lab, TALO)
    finally:
        [restored] = provision_ap(original, [TALO], verify_timeout=60)
    assert result.status == "changed", result.error
    assert result.data["files_changed"] == ["/etc/hostapd/wlan1.conf"]
    assert result.data["switch_port"]["vlans"] == [10, 30, 99]
    assert "-# VLAN 20 (guest)" in result.diff and "+# VLAN 30 (guest-new)" in result.diff
    assert f"~ {TALO} wlan1: access VLAN 20 -> access VLAN 30" in result.diff
    assert "wlan0" not in result.diff.replace("/etc/hostapd/wlan1.conf", "")
    assert after["vlans:wlan1"] == "access 30 []" and after["vlans:wlan0"] == "access 10 []"
    assert after["vlans:eth0"] == after["vlans:switch"] == "native-untagged 99 [10, 30, 99]"
    unrelated = ("wlan1", "eth0", "switch", "pid")
    assert {k: v for k, v in after.items() if not any(u in k for u in unrelated)} == \
           {k: v for k, v in before.items() if not any(u in k for u in unrelated)}
    assert cli_status(lab, TALO, "wlan1")["state"] == "ENABLED" == cli_status(lab, TALO, "wlan0")["state"]
    assert restored.status == "changed"
    assert {k: v for k, v in snapshot(lab, TALO).items() if k != "pid"} == {k: v for k, v in before.items() if k != "pid"}


def _vaulted(text: str, password_file: Path) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(password_file.read_bytes().strip())
    blob = VaultLib([("default", secret)]).encrypt(text, secret).decode()
    return "!vault |\n" + "".join(f"      {line}\n" for line in blob.splitlines())


def test_seven_character_psk_is_refused_before_any_device_is_touched(provisioned_lab, tmp_path):
    handle = provisioned_lab.handle
    inventory_dir = tmp_path / "inventory"
    shutil.copytree(handle.inventory_dir, inventory_dir)
    network = inventory_dir / "group_vars/all/network.yml"
    text = network.read_text()
    assert 'psk: "{{ vault_ssid_guest_psk }}"' in text
    network.write_text(text.replace('psk: "{{ vault_ssid_guest_psk }}"',
                                    "psk: " + _vaulted("short77", inventory_dir / "DEMO-ONLY-vault-password.txt")))
    before = snapshot(handle.lab, TALO)
    env = {**handle.env(), "DZOPS_INVENTORY": str(inventory_dir)}
    check = subprocess.run([sys.executable, "-m", "dzops", "inventory", "check"], env=env,
                           capture_output=True, text=True, timeout=300)
    run = subprocess.run([sys.executable, "-m", "dzops", "provision-ap", TALO], env=env,
                         capture_output=True, text=True, timeout=300)
    assert check.returncode == run.returncode == ExitCode.INVALID_INVENTORY
    found = check.stdout + check.stderr
    assert "group_vars/all/network.yml:" in found and "ssid_profiles.guest.psk: PSK must be 8 to 63 characters" in found
    assert "short77" not in found + run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    assert snapshot(handle.lab, TALO) == before


def test_unreachable_ap_changes_nothing(provisioned_lab):
    lab = provisioned_lab.handle.lab
    inventory = with_profile(provisioned_lab.handle.inventory(), "guest", vlan=30)
    lab.stop_daemon(TALO, "sshd")
    try:
        before = snapshot(lab, TALO)
        [result] = provision_ap(inventory, [TALO])
        after = snapshot(lab, TALO)
    finally:
        lab.start_daemon(TALO, "sshd")
    assert result.status == "unreachable" and result.error.startswith(f"{TALO}: cannot reach")
    assert "\n" not in result.error
    assert after == before


def test_missing_switch_port_changes_nothing_on_ap_or_switch(provisioned_lab):
    lab = provisioned_lab.handle.lab
    inventory = provisioned_lab.handle.inventory()
    device = inventory.devices[TALO]
    inventory = with_profile(with_ap(inventory, TALO, uplink=device.uplink.model_copy(update={"port": "swp9"})),
                             "guest", vlan=30)
    before = snapshot(lab, TALO)
    [result] = provision_ap(inventory, [TALO])
    assert result.status == "failed"
    assert result.error == f"uplink switch gewog-talo-sw1 has no port swp9 (uplink of {TALO})"
    assert snapshot(lab, TALO) == before


def test_hostapd_refusal_restores_the_saved_files(provisioned_lab):
    """An SSID hostapd's parser refuses (a RADIUS secret it cannot use) must leave the AP as it was."""
    lab = provisioned_lab.handle.lab
    inventory = provisioned_lab.handle.inventory()
    # `inventory check` refuses an empty secret; built past validation here, this stands for any
    # file the device itself refuses, which the inventory cannot foresee.
    bad = SsidProfile.model_construct(
        name="guest", ssid="Punakha-Guest", security="wpa2-enterprise", vlan=20, psk=None, hidden=False,
        client_isolation=False, band="2.4ghz",
        radius=Radius.model_construct(server=IPv4Address("10.30.1.20"), port=1812, secret=SecretStr("")))
    inventory = inventory.model_copy(update={"ssid_profiles": {**inventory.ssid_profiles, "guest": bad}})
    before = snapshot(lab, TALO)
    [result] = provision_ap(inventory, [TALO], verify_timeout=20)
    after = snapshot(lab, TALO)
    assert result.status == "rolled_back", (result.status, result.error)
    assert {k: v for k, v in after.items() if k != "pid"} == {k: v for k, v in before.items() if k != "pid"}
    assert cli_status(lab, TALO, "wlan1")["state"] == "ENABLED"


# -- hostapd's own parser on every rendered config ----------------------------------------------------


def _golden_inventory(inventory: Inventory) -> Inventory:
    profiles = {
        **inventory.ssid_profiles,
        "iot": SsidProfile(name="iot", ssid="Punakha-IoT", security="wpa3-sae", psk=SecretStr("iot-sae-secret-3"),
                           vlan=30, hidden=True, band="5ghz"),
        "campus": SsidProfile(name="campus", ssid="Punakha-Campus", security="wpa2-enterprise", vlan=40,
                              radius={"server": "10.30.1.20", "secret": SecretStr("radius-shared-secret-4")}),
    }
    vlans = {**inventory.vlans, 30: Vlan(id=30, name="iot"), 40: Vlan(id=40, name="campus")}
    from dzops.inventory.models import Interface

    inv = inventory.model_copy(update={"ssid_profiles": profiles, "vlans": vlans})
    return with_ap(inv, TALO, ssids=("staff", "guest", "iot", "campus"),
                   interfaces={n: Interface() for n in ("eth0", "wlan0", "wlan1", "wlan2", "wlan3")})


def test_hostapd_parser_accepts_every_rendered_ssid_kind(provisioned_lab, tmp_path):
    """WPA2-PSK, WPA3-SAE (hidden, 5 GHz) and WPA2-Enterprise files, started by hostapd in a throwaway netns."""
    inventory = _golden_inventory(provisioned_lab.handle.inventory())
    files = plan.intended_ap_files(inventory, inventory.devices[TALO])
    bsses = plan.ap_bsses(inventory, inventory.devices[TALO])
    ns = f"{os.environ.get('DZOPS_TEST_LAB_PREFIX', 'dzt')}-hp{uuid.uuid4().hex[:6]}"
    ctrl, pidfile = tmp_path / "ctrl", tmp_path / "hostapd.pid"
    paths = []
    for bss in bsses:
        path = tmp_path / f"{bss.interface}.conf"
        path.write_text(files[bss.path].replace("ctrl_interface=/run/hostapd", f"ctrl_interface={ctrl}"))
        path.chmod(0o600)
        paths.append(str(path))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for bss in bsses:
            subprocess.run(["ip", "-n", ns, "link", "add", bss.interface, "type", "veth", "peer", "name",
                            f"{bss.interface}_p"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", bss.interface, "up"], check=True)
        start = subprocess.run(["ip", "netns", "exec", ns, "hostapd", "-B", "-P", str(pidfile), *paths],
                               capture_output=True, text=True, timeout=60)
        assert start.returncode == 0, start.stdout[-2000:]
        states = {}
        for bss in bsses:
            out = subprocess.run(["ip", "netns", "exec", ns, "hostapd_cli", "-p", str(ctrl), "-i", bss.interface,
                                  "get_config"], capture_output=True, text=True, timeout=30).stdout
            states[bss.interface] = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        assert [(states[b.interface]["ssid"], states[b.interface]["key_mgmt"].split()[0]) for b in bsses] == \
            [("Punakha-Staff", "WPA-PSK"), ("Punakha-Guest", "WPA-PSK"), ("Punakha-IoT", "SAE"),
             ("Punakha-Campus", "WPA-EAP")]
    finally:
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def test_hostapd_parser_refuses_a_five_character_passphrase(provisioned_lab, tmp_path):
    """The other side of the parser check: the file form dzops renders is really validated by hostapd."""
    inventory = provisioned_lab.handle.inventory()
    text = plan.intended_ap_files(inventory, inventory.devices[TALO])["/etc/hostapd/wlan0.conf"]
    bad = "\n".join("wpa_passphrase=abcde" if line.startswith("wpa_passphrase=") else line
                    for line in text.splitlines()) + "\n"
    path = tmp_path / "bad.conf"
    path.write_text(bad.replace("ctrl_interface=/run/hostapd", f"ctrl_interface={tmp_path / 'ctrl'}"))
    ns = f"{os.environ.get('DZOPS_TEST_LAB_PREFIX', 'dzt')}-hp{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "wlan0", "type", "veth", "peer", "name", "wlan0_p"], check=True)
        proc = subprocess.run(["ip", "netns", "exec", ns, "hostapd", "-B", "-P", str(tmp_path / "pid"), str(path)],
                              capture_output=True, text=True, timeout=60)
    finally:
        if (tmp_path / "pid").exists():
            subprocess.run(["kill", (tmp_path / "pid").read_text().strip()], check=False)
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    from dzops.execute.drivers.hostapd import refusal

    assert proc.returncode != 0
    assert refusal(proc.stdout).startswith("Line ") and "passphrase length 5" in refusal(proc.stdout)
