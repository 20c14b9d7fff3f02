"""VLANs for real in the lab: Open vSwitch in each switch and AP keeps the SSIDs' VLANs apart.

Clients are network namespaces this test creates (with the lab's prefix), cabled by a veth to a
switch's or an AP's br0 as access ports of one VLAN, all in one TEST-NET subnet: only the VLANs
keep them apart. The AP's uplink and the switch port facing it are the trunks provision-ap set.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dzops.execute import ap as ap_run
from dzops.execute.ap import provision_ap
from dzops.execute.drivers.bridge import PortState
from dzops.inventory.models import Inventory, Vlan

pytestmark = pytest.mark.lab

AP, SWITCH, SWITCH_PORT = "gewog-talo-ap1", "gewog-talo-sw1", "swp2"
STAFF, GUEST = 10, 20
PREFIX = os.environ.get("DZOPS_TEST_LAB_PREFIX", "dzt")


def _ip(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=30)


@contextmanager
def clients(lab, wanted: list[tuple[str, str, int, str]]) -> Iterator[dict[str, str]]:
    """(name, node, VLAN, address) -> one namespace each, cabled to the node's br0 as an access port
    of that VLAN; yields name -> namespace. Everything is removed afterwards."""
    run = uuid.uuid4().hex[:4]
    made: dict[str, str] = {}
    ports: list[tuple[str, str]] = []
    try:
        for index, (name, node, vlan, address) in enumerate(wanted):
            ns, port = f"{PREFIX}-vl{run}{index}", f"{PREFIX}v{run}{index}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made[name] = ns
            node_ns = lab.netns_name(node)
            subprocess.run(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port,
                            "netns", node_ns], check=True)
            ports.append((node, port))
            add = lab.exec(node, ["ovs-vsctl", "add-port", "br0", port, f"tag={vlan}"])
            assert add.returncode == 0, add.stderr
            assert lab.exec(node, ["ip", "link", "set", port, "up"]).returncode == 0
            for args in (("addr", "add", address, "dev", "eth0"), ("link", "set", "eth0", "up"),
                         ("link", "set", "lo", "up")):
                assert _ip(ns, *args).returncode == 0
        yield made
    finally:
        for node, port in ports:
            lab.exec(node, ["ovs-vsctl", "--if-exists", "del-port", "br0", port])
        for ns in made.values():
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def _ping(ns: str, address: str, count: int = 5) -> bool:
    """A bounded ping from a client namespace: True when any reply came back."""
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2",
                           "-W", "1", "-w", str(count + 3), address], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0


def test_the_guest_vlan_cannot_reach_the_staff_vlan_across_the_trunks(provisioned_lab):
    lab = provisioned_lab.handle.lab
    [result] = [r for r in provisioned_lab.extra["ap"] if r.host == AP]
    assert result.data["switch_port"]["status"] == "changed"  # the trunk the clients cross
    wanted = [
        ("staff-host", SWITCH, STAFF, "192.0.2.10/24"),  # a staff server behind the access switch
        ("guest-host", SWITCH, GUEST, "192.0.2.20/24"),  # the guest VLAN's own gateway stand-in
        ("staff-client", AP, STAFF, "192.0.2.11/24"),  # on the staff SSID's VLAN at the AP
        ("guest-client", AP, GUEST, "192.0.2.12/24"),  # on the guest SSID's VLAN at the AP
    ]
    with clients(lab, wanted) as ns:
        # positive controls first: each VLAN works end to end through the AP uplink and the switch port
        assert _ping(ns["staff-client"], "192.0.2.10"), "staff client -> staff host across the trunks"
        assert _ping(ns["guest-client"], "192.0.2.20"), "guest client -> guest host across the trunks"
        # the guest VLAN never reaches the staff VLAN, though all four share one subnet
        assert not _ping(ns["guest-client"], "192.0.2.10", count=3)
        assert not _ping(ns["guest-client"], "192.0.2.11", count=3)
        assert not _ping(ns["staff-client"], "192.0.2.20", count=3)
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if n.startswith(f"{PREFIX}-vl")]


def test_a_port_left_off_the_trunk_carries_nothing_of_that_vlan(provisioned_lab):
    """The trunk is exactly the SSIDs' VLANs: a VLAN it does not list stays on its side of the AP."""
    lab = provisioned_lab.handle.lab
    wanted = [("switch-side", SWITCH, 40, "192.0.2.40/24"), ("ap-side", AP, 40, "192.0.2.41/24"),
              ("switch-mate", SWITCH, 40, "192.0.2.42/24")]
    with clients(lab, wanted) as ns:
        assert _ping(ns["switch-side"], "192.0.2.42"), "VLAN 40 works inside the switch"
        assert not _ping(ns["ap-side"], "192.0.2.40", count=3), "VLAN 40 is not on the trunk"


def _port(lab, node: str, port: str) -> str:
    return " ".join(lab.exec(node, ["ovs-vsctl", "get", "port", port, "vlan_mode", "tag", "trunks"]).stdout.split())


def _with_guest_vlan(inventory: Inventory, vlan: int) -> Inventory:
    profiles = dict(inventory.ssid_profiles)
    profiles["guest"] = profiles["guest"].model_copy(update={"vlan": vlan})
    return inventory.model_copy(update={"ssid_profiles": profiles,
                                        "vlans": {**inventory.vlans, vlan: Vlan(id=vlan, name="guest-new")}})


def test_trunk_apply_verify_and_restore_on_a_failed_verify(provisioned_lab, monkeypatch: pytest.MonkeyPatch):
    """A switch that takes the new trunk but reads back something else: provision-ap puts back the
    previous trunk set on the switch, the AP uplink and the SSID's access port."""
    lab = provisioned_lab.handle.lab
    original = provisioned_lab.handle.inventory()
    before = {(n, p): _port(lab, n, p) for n, p in ((SWITCH, SWITCH_PORT), (AP, "eth0"), (AP, "wlan1"))}
    assert before[(SWITCH, SWITCH_PORT)] == "native-untagged 99 [10, 20, 99]"

    applied: dict[str, str] = {}
    real_ports_ok = ap_run.ApRun._ports_ok

    def port_check_after_apply(self, ap, ports, switch_state):  # noqa: ANN001, ANN202
        # What the switch really holds now, read at its console: the new trunk was applied ...
        applied["switch"] = _port(lab, SWITCH, SWITCH_PORT)
        applied["eth0"] = _port(lab, AP, "eth0")
        # ... but the switch reports it back wrong (a device that did not keep it)
        wrong = PortState(exists=True, backend="ovs", member=True, vlans={STAFF: False, 99: True})
        return real_ports_ok(self, ap, ports, wrong)

    monkeypatch.setattr(ap_run.ApRun, "_ports_ok", port_check_after_apply)
    [result] = provision_ap(_with_guest_vlan(original, 30), [AP], verify_timeout=2)
    monkeypatch.undo()

    assert applied == {"switch": "native-untagged 99 [10, 30, 99]", "eth0": "native-untagged 99 [10, 30, 99]"}
    assert result.status == "rolled_back", (result.status, result.error)
    assert f"verification failed: {SWITCH} {SWITCH_PORT} trunk VLANs 10,30 native 99" in result.error
    assert result.data["switch_port"]["status"] == "restored"
    assert {key: _port(lab, *key) for key in before} == before  # the previous trunk set, exactly

    # and with an honest switch the same change is applied and verified, then undone by provision-ap
    try:
        [changed] = provision_ap(_with_guest_vlan(original, 30), [AP], verify_timeout=60)
        assert changed.status == "changed", changed.error
        assert _port(lab, SWITCH, SWITCH_PORT) == "native-untagged 99 [10, 30, 99]"
        assert f"{SWITCH} {SWITCH_PORT} trunk VLANs 10,30 native 99" in changed.data["checks"]
    finally:
        [back] = provision_ap(original, [AP], verify_timeout=60)
    assert back.status == "changed" and {key: _port(lab, *key) for key in before} == before


def test_a_bridge_without_vlans_is_detected_as_such():
    """The not_applicable path is detected, not assumed: a plain Linux bridge (no OVS, no VLAN
    filtering) in a throwaway namespace reads as backend "none", and nothing is planned on it."""
    from dzops.execute.drivers.bridge import _READ_SCRIPT, parse_ports, set_commands

    ns = f"{PREFIX}-nv{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for args in (("link", "add", "br0", "type", "bridge"), ("link", "add", "p0", "type", "veth", "peer", "name", "p1"),
                     ("link", "set", "p0", "master", "br0")):
            assert _ip(ns, *args).returncode == 0
        out = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", _READ_SCRIPT, "dz", "br0", "p0", "p9"],
                             capture_output=True, text=True, timeout=60).stdout
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    ports = parse_ports(out)
    assert (ports["p0"].backend, ports["p0"].exists, ports["p0"].member) == ("none", True, True), out
    assert "vlan_filtering" in ports["p0"].detail and not ports["p0"].vlan_aware
    assert (ports["p9"].exists, ports["p9"].member) == (False, False)
    with pytest.raises(ValueError, match="no VLANs to set"):
        set_commands("p0", ports["p0"], {STAFF: True})


def _pss_kib(lab, node: str, pidfile: str) -> int:
    pid = lab.exec(node, ["cat", pidfile]).stdout.strip()
    rollup = lab.exec(node, ["cat", f"/proc/{pid}/smaps_rollup"]).stdout
    return next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))


def test_every_switch_and_ap_runs_its_own_open_vswitch(lab, inventory: Inventory) -> None:
    """ovsdb-server and ovs-vswitchd inside each switch and AP (recorded, so status and teardown
    know them), br0 on the user-space datapath; PSS per node is printed (run with -s to see it)."""
    kinds = {"cumulus": "switch", "hostapd": "ap"}
    expected = sorted(d.name for d in inventory.devices.values() if d.platform in kinds)
    nodes = {n.name: n for n in lab.status().nodes if n.kind in ("switch", "ap")}
    assert sorted(nodes) == expected
    pss: dict[str, int] = {}
    for name, node in nodes.items():
        assert {"ovsdb-server", "ovs-vswitchd"} <= set(node.expected_daemons), name
        assert node.daemons["ovsdb-server"] and node.daemons["ovs-vswitchd"], (name, node.daemons)
        datapath = lab.exec(name, ["ovs-vsctl", "get", "bridge", "br0", "datapath_type"]).stdout.strip()
        assert datapath == "netdev", (name, datapath)
        # its own: the vswitchd a node's ovs-vsctl talks to runs in that node's network namespace
        comms = {subprocess.run(["cat", f"/proc/{pid}/comm"], capture_output=True, text=True).stdout.strip()
                 for pid in subprocess.run(["ip", "netns", "pids", lab.netns_name(name)], capture_output=True,
                                           text=True).stdout.split()}
        assert {"ovsdb-server", "ovs-vswitchd"} <= comms, (name, comms)
        pss[name] = sum(_pss_kib(lab, name, f"/run/openvswitch/{d}.pid") for d in ("ovsdb-server", "ovs-vswitchd"))
    print("\nOpen vSwitch PSS per node (KiB):", pss, "mean", sum(pss.values()) // len(pss))

    # a stopped vswitchd is seen by status, started again as the lab started it, and br0 is still there
    lab.stop_daemon(SWITCH, "ovs-vswitchd")
    try:
        assert lab.status().node(SWITCH).daemons["ovs-vswitchd"] is False
    finally:
        lab.start_daemon(SWITCH, "ovs-vswitchd")
    assert lab.status().node(SWITCH).daemons["ovs-vswitchd"] is True
    assert lab.exec(SWITCH, ["ovs-vsctl", "port-to-br", SWITCH_PORT]).stdout.strip() == "br0"
