"""provision-ap on an IOS or RouterOS AP sets the switch port it plugs into, as it does for hostapd APs.

The AP is a fake of dzops' NAPALM adapter; the switch a fake Open vSwitch port that takes the very
`ovs-vsctl set port` commands dzops.execute.drivers.bridge writes (those commands are proven on real
OVS switches by the hostapd AP lab tests, tests/execute/test_ap_lab.py). What is proven here is the
vendor path's order: the port is read before anything changes, set and read back before the AP's
commit, put back when the AP's apply fails or rolls back, left alone by --check, and an uplink switch
whose platform has no switch-port VLAN driver refuses the AP before any device is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.execute.drivers.bridge import PortState, ovs_port_vlans
from dzops.execute.drivers.napalm import ApplyOutcome
from dzops.execute.vendor_ap import provision_vendor_ap
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
# The sample AP serves staff (VLAN 10) and guest (VLAN 20); management is VLAN 99.
TRUNK = {10: False, 20: False, 99: True}


def ovs_port(vlan_mode: str = "[]", tag: str = "[]", trunks: str = "[]") -> PortState:
    vlans, every = ovs_port_vlans(vlan_mode, tag, trunks)
    return PortState(exists=True, backend="ovs", detail="br0 is an Open vSwitch bridge", member=True, vlans=vlans,
                     all_vlans=every, raw=f"vlan_mode={vlan_mode} tag={tag} trunks={trunks}")


class FakeSwitch:
    """One OVS port: `ovs-vsctl ... set port PORT vlan_mode=.. tag=.. trunks=..` sets its columns."""

    def __init__(self, creds: Credentials, state: dict[str, Any]) -> None:
        self.creds, self.state = creds, state

    def open(self) -> None:
        self.state["opened"] = True

    def close(self) -> None: ...

    def port_state(self, port: str) -> PortState:
        assert port == "swp2"
        return self.state["port"]  # type: ignore[no-any-return]

    def apply_bridge_commands(self, commands: list[str]) -> None:
        if self.state["sent"] and self.state.get("undo_fails"):
            from dzops.exceptions import ConnectionFailed

            raise ConnectionFailed(self.creds.host, "SSH session dropped")
        self.state["sent"].append(commands)
        for command in commands:
            words = command.split()
            assert words[:4] == ["ovs-vsctl", "--timeout=30", "set", "port"] and words[4] == "swp2", command
            columns = dict(word.split("=", 1) for word in words[5:])
            if not self.state["port_refuses"]:
                self.state["port"] = ovs_port(columns["vlan_mode"], columns["tag"], columns["trunks"])


class FakeAp:
    def __init__(self, creds: Credentials, state: dict[str, Any]) -> None:
        self.creds, self.state = creds, state

    def open(self) -> None:
        self.state["opened"] = True

    def close(self) -> None: ...

    def get_config(self) -> str:
        return str(self.state["running"])

    def compare_config(self, candidate: str) -> ConfigDiff:
        have, want = set(self.state["running"].splitlines()), set(candidate.splitlines())
        return ConfigDiff(add=tuple(sorted(want - have)), remove=tuple(sorted(have - want)))

    def apply(self, candidate: str, verify: Any, revert_in: int = 300) -> ApplyOutcome:
        self.state["port_when_committed"] = self.state["switch"]["port"]
        diff, before = self.compare_config(candidate), self.state["running"]
        if self.state["fails"]:
            from dzops.exceptions import DeviceError

            raise DeviceError(self.creds.host, "commit_config failed: session dropped")
        self.state["running"] = before if self.state["radio_refuses"] else candidate
        reason = verify() if not diff.empty else None
        if reason:
            self.state["running"] = before
            return ApplyOutcome(diff=diff, committed=True, rolled_back=True, reason=reason)
        return ApplyOutcome(diff=diff, committed=True, confirmed=True)


def fake_drivers(monkeypatch: pytest.MonkeyPatch, ap_state: dict[str, Any], switch_state: dict[str, Any]) -> None:
    """driver_for answering the AP's platform with FakeAp and the switch's (cumulus) with FakeSwitch."""
    import dzops.execute.drivers as drivers

    def driver_for(platform: str, creds: Credentials, **_options: Any) -> Any:
        return FakeSwitch(creds, switch_state) if platform == "cumulus" else FakeAp(creds, ap_state)

    monkeypatch.setattr(drivers, "driver_for", driver_for)


def switch_state(port: PortState | None = None) -> dict[str, Any]:
    return {"port": port or ovs_port(), "sent": [], "port_refuses": False, "opened": False}


@pytest.fixture(params=["ios", "routeros"])
def setup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[Inventory, str, dict[str, Any]]:
    inventory = load_inventory(SAMPLE)
    ap = inventory.devices["gewog-barp-ap1"]
    assert ap.uplink is not None and ap.uplink.switch == "gewog-barp-sw1" and ap.uplink.port == "swp2"
    inventory = inventory.model_copy(update={"devices": inventory.devices | {
        ap.name: ap.model_copy(update={"platform": request.param})}})
    running = "hostname old\n!\nend\n" if request.param == "ios" else "/system identity set name=old\n"
    switch = switch_state()
    state: dict[str, Any] = {"running": running, "radio_refuses": False, "fails": False, "switch": switch,
                             "opened": False}
    fake_drivers(monkeypatch, state, switch)
    return inventory, ap.name, state


def test_apply_makes_the_switch_port_a_trunk_of_the_ssids_before_the_ap_commits(
        setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    result = provision_vendor_ap(inventory, host)
    assert result.status == "changed", result.error
    port = state["switch"]["port"]
    assert port.carries(TRUNK)
    assert state["port_when_committed"].carries(TRUNK)  # set and read back before the AP's commit
    info = result.data["switch_port"]
    assert (info["switch"], info["port"], info["vlans"], info["native_vlan"], info["status"]) == \
        ("gewog-barp-sw1", "swp2", [10, 20, 99], 99, "changed")
    assert "gewog-barp-sw1 swp2: every VLAN -> trunk VLANs 10,20 native 99" in result.diff
    assert "ovs-vsctl --timeout=30 set port swp2 vlan_mode=native-untagged tag=99 trunks=[10,20,99]" in result.diff


def test_a_second_run_changes_neither_the_ap_nor_the_port(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    assert provision_vendor_ap(inventory, host).status == "changed"
    sent = len(state["switch"]["sent"])
    again = provision_vendor_ap(inventory, host)
    assert (again.status, again.changed, again.diff) == ("ok", False, "")
    assert again.data["switch_port"]["status"] == "ok" and len(state["switch"]["sent"]) == sent


def test_check_shows_the_port_change_and_touches_nothing(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    result = provision_vendor_ap(inventory, host, check=True)
    assert result.changed and result.data["switch_port"]["status"] == "changed"
    assert "set port swp2 vlan_mode=native-untagged tag=99 trunks=[10,20,99]" in result.diff
    assert state["switch"]["sent"] == [] and state["running"] == before


@pytest.mark.parametrize("failure", ["radio_refuses", "fails"])
def test_a_failed_ap_apply_puts_the_port_back(setup: tuple[Inventory, str, dict[str, Any]], failure: str) -> None:
    inventory, host, state = setup
    state[failure] = True
    result = provision_vendor_ap(inventory, host)
    assert result.status == "failed" and not result.changed
    assert state["switch"]["port"].all_vlans  # back to what it was: no tag, no trunks
    assert state["switch"]["sent"][-1] == ["ovs-vsctl --timeout=30 set port swp2 vlan_mode=[] tag=[] trunks=[]"]
    assert result.data["switch_port"]["status"] == "restored"


@pytest.mark.parametrize("failure, reason", [("radio_refuses", "SSID(s) not on the device"),
                                             ("fails", "commit_config failed: session dropped")])
def test_a_port_that_cannot_be_put_back_is_said_with_the_aps_own_failure(
        setup: tuple[Inventory, str, dict[str, Any]], failure: str, reason: str) -> None:
    inventory, host, state = setup
    state[failure], state["switch"]["undo_fails"] = True, True
    result = provision_vendor_ap(inventory, host)
    assert result.status == "failed" and reason in (result.error or "")
    assert "uplink switch port NOT put back: gewog-barp-sw1: SSH session dropped" in (result.error or "")
    assert result.data["switch_port"]["status"] == "failed"


def test_a_port_that_does_not_take_its_vlans_leaves_the_ap_untouched(
        setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    state["switch"]["port_refuses"] = True
    result = provision_vendor_ap(inventory, host)
    assert result.status == "failed" and "swp2 does not carry trunk VLANs 10,20 native 99" in (result.error or "")
    assert state["running"] == before and "port_when_committed" not in state


def test_a_missing_port_leaves_the_ap_untouched(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    state["switch"]["port"] = PortState(exists=False, backend="ovs")
    result = provision_vendor_ap(inventory, host)
    assert result.status == "failed" and "no port swp2 (uplink of gewog-barp-ap1)" in (result.error or "")
    assert state["running"] == before and state["switch"]["sent"] == []


def test_a_switch_platform_without_the_capability_refuses_before_any_device_is_touched(
        setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    switch = inventory.devices["gewog-barp-sw1"]
    inventory = inventory.model_copy(update={"devices": inventory.devices | {
        switch.name: switch.model_copy(update={"platform": "ios"})}})
    result = provision_vendor_ap(inventory, host)
    assert (result.status, result.error) == (
        "failed", f"{host}: uplink gewog-barp-sw1: platform ios has no switch-port VLAN driver: refused before connecting")
    assert not state["opened"] and not state["switch"]["opened"]
