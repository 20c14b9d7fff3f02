"""provision-ap's restore never reuses a dead SSH session: it reconnects once, or says it could not."""

from __future__ import annotations

from pathlib import Path

import pytest

from dzops.exceptions import ConnectionFailed
from dzops.execute import ap as ap_run
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.bridge import PortState
from dzops.execute.drivers.hostapd import ApState
from dzops.inventory.loader import load_inventory
from dzops.plan.ap import ap_bsses, radio_interfaces

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
AP = "gewog-talo-ap1"
FACTORY = {"/etc/default/hostapd": "# factory defaults\n"}


class FakeAp:
    """One AP's files and hostapd, shared by every session opened to it."""

    def __init__(self, interfaces: set[str]) -> None:
        self.files: dict[str, str] = dict(FACTORY)
        self.masters: dict[str, str | None] = {}
        self.port_vlans: dict[str, str] = {}  # br0 port -> its VLANs as set (Open vSwitch columns)
        self.backend = "ovs"  # what the AP's br0 is; "none": a bridge without VLANs
        self.running = False
        self.interfaces = interfaces
        self.sessions: list[FakeSession] = []
        self.drop_on: str | None = None  # the call during which the SSH session dies
        self.refusal: str | None = None  # hostapd refuses the new files
        self.unreachable_after_drop = False

    def open_session(self, creds: Credentials) -> FakeSession:
        session = FakeSession(creds, self)
        self.sessions.append(session)
        return session


class FakeSession:
    def __init__(self, credentials: Credentials, box: FakeAp) -> None:
        self.credentials, self.box, self.dead = credentials, box, False

    def open(self) -> None:
        if self.box.unreachable_after_drop and any(s.dead for s in self.box.sessions):
            raise ConnectionFailed(self.credentials.host, "cannot reach 10.94.0.40:22: timed out")

    def close(self) -> None: ...

    def _call(self, name: str) -> None:
        if self.dead:
            raise ConnectionFailed(self.credentials.host, "command failed on the SSH connection: SSH session not active")
        if self.box.drop_on == name:
            self.box.drop_on, self.dead = None, True
            raise ConnectionFailed(self.credentials.host, "command failed on the SSH connection: Socket is closed")

    def read_state(self, paths: list[str], interfaces: list[str]) -> ApState:
        self._call("read_state")
        return ApState(files={p: self.box.files.get(p) for p in paths}, masters=dict(self.box.masters),
                       interfaces=set(self.box.interfaces), running=self.box.running)

    def write_files(self, files: dict[str, tuple[str | None, int]]) -> None:
        self._call("write_files")
        for path, (content, _mode) in files.items():
            if content is None:
                self.box.files.pop(path, None)
            else:
                self.box.files[path] = content

    def bridge_ports(self, ports: list[str]) -> dict[str, PortState]:
        self._call("bridge_ports")
        if self.box.backend == "none":
            return {p: PortState(exists=True, backend="none", detail="/sys/class/net/br0/bridge/vlan_filtering: 0",
                                 member=True) for p in ports}
        return {p: PortState(exists=True, backend="ovs", member=True, all_vlans=p not in self.box.port_vlans,
                             raw=self.box.port_vlans.get(p, "vlan_mode=[] tag=[] trunks=[]")) for p in ports}

    def apply_bridge_commands(self, commands: list[str]) -> None:
        self._call("apply_bridge_commands")
        for command in commands:
            port, columns = command.split(" set port ")[1].split(" ", 1)
            if columns == "vlan_mode=[] tag=[] trunks=[]":
                self.box.port_vlans.pop(port, None)
            else:
                self.box.port_vlans[port] = columns

    def restart(self, start: bool = True) -> str | None:
        self._call("restart")
        refused, self.box.refusal = self.box.refusal, None
        self.box.running = start and not refused
        if self.box.drop_on == "after_restart":  # the reply arrives, then the session dies
            self.box.drop_on, self.dead = None, True
        return refused


class FakeSwitch:
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def open(self) -> None: ...

    def close(self) -> None: ...

    def port_state(self, port: str) -> PortState:
        return PortState(exists=True, backend="none", detail="/sys/class/net/br0/bridge/vlan_filtering: missing")


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(SAMPLE)


@pytest.fixture()
def box(inventory, monkeypatch: pytest.MonkeyPatch) -> FakeAp:
    device = inventory.devices[AP]
    fake = FakeAp(set(radio_interfaces(device)) | {b.interface for b in ap_bsses(inventory, device)} | {"eth0"})

    def driver_for(platform: str, creds: Credentials, **_options: object) -> object:
        return fake.open_session(creds) if platform == "hostapd" else FakeSwitch(creds)

    monkeypatch.setattr(ap_run, "driver_for", driver_for)
    return fake


@pytest.mark.parametrize("drop_on", ["restart", "apply_bridge_commands"])
def test_a_session_lost_mid_apply_is_replaced_for_the_restore(inventory, box: FakeAp, drop_on: str) -> None:
    box.drop_on = drop_on
    [result] = ap_run.provision_ap(inventory, [AP], verify_timeout=1)
    assert result.status == "rolled_back", result.error
    assert "Socket is closed" in (result.error or "") and "restored the saved files" in (result.error or "")
    assert box.files == FACTORY and not box.running  # as it was: factory files, hostapd stopped
    assert box.port_vlans == {}  # every br0 port back to Open vSwitch's default (no tag, no trunks)
    assert [s.dead for s in box.sessions] == [True, False]  # the dead session was never asked to restore


def test_a_session_that_dies_after_a_refusal_is_replaced_for_the_restore(inventory, box: FakeAp) -> None:
    box.refusal, box.drop_on = "Line 19: invalid WPA passphrase length 5 (expected 8..63)", "after_restart"
    [result] = ap_run.provision_ap(inventory, [AP], verify_timeout=1)
    assert result.status == "rolled_back", result.error
    assert "hostapd refused the new files: Line 19" in (result.error or "")
    assert box.files == FACTORY and len(box.sessions) == 2


def test_a_restore_that_cannot_reconnect_is_failed_not_rolled_back(inventory, box: FakeAp) -> None:
    box.drop_on, box.unreachable_after_drop = "restart", True
    [result] = ap_run.provision_ap(inventory, [AP], verify_timeout=1)
    assert result.status == "failed"
    assert "RESTORE FAILED: cannot reconnect to restore" in (result.error or "")
    assert box.files != FACTORY  # honest: the new files are still on the AP, and the result says so


def test_an_ap_whose_bridge_has_no_vlans_is_left_untouched(inventory, box: FakeAp) -> None:
    """Staff and guest in one flat bridge would reach each other: refused, with the detected reason."""
    box.backend = "none"
    [result] = ap_run.provision_ap(inventory, [AP], verify_timeout=1)
    assert result.status == "failed" and "\n" not in (result.error or "")
    assert result.error == (f"{AP}: br0 has no VLANs (/sys/class/net/br0/bridge/vlan_filtering: 0; no Open vSwitch): "
                            "VLANs 10,20,99 cannot be kept apart, nothing changed")
    assert box.files == FACTORY and box.port_vlans == {} and not box.running


def test_a_switch_without_vlans_gets_the_trunk_reported_not_applicable(inventory, box: FakeAp) -> None:
    [result] = ap_run.provision_ap(inventory, [AP], check=True)
    port = result.data["switch_port"]
    assert port["status"] == "not_applicable" and "vlan_filtering: missing" in port["note"]
    assert "intended trunk (not applied here)" in result.diff
    # the AP side is still planned: its SSIDs' access ports and its uplink trunk
    assert result.status == "changed", result.error
    assert f"~ {AP} eth0: every VLAN -> trunk VLANs 10,20 native 99" in result.diff
    assert f"~ {AP} wlan1: every VLAN -> access VLAN 20" in result.diff
    assert box.port_vlans == {} and box.files == FACTORY  # --check: nothing written
