"""provision-ap on IOS and RouterOS APs (dzops.execute.vendor_ap): orchestration around the NAPALM adapter.

The AP is a fake of dzops' adapter holding a running config as text: what is proven is the AP-only
candidate (parsed back by hier_config for IOS), compare for --check, apply verified by the SSIDs in
the running config, rollback when they are missing, and keys scrubbed from what is shown. Radios on a
real IOS or RouterOS AP are not proven on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hier_config import Platform, get_hconfig

from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.execute.drivers.napalm import ApplyOutcome
from dzops.execute.vendor_ap import provision_vendor_ap
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"


class FakeAp:
    def __init__(self, creds: Credentials, state: dict[str, Any]) -> None:
        self.creds, self.state = creds, state

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get_config(self) -> str:
        return str(self.state["running"])

    def compare_config(self, candidate: str) -> ConfigDiff:
        have, want = set(self.state["running"].splitlines()), set(candidate.splitlines())
        return ConfigDiff(add=tuple(sorted(want - have)), remove=tuple(sorted(have - want)))

    def apply(self, candidate: str, verify: Any, revert_in: int = 300) -> ApplyOutcome:
        diff, before = self.compare_config(candidate), self.state["running"]
        self.state["running"] = before if self.state["radio_refuses"] else candidate
        reason = verify()
        if reason:
            self.state["running"] = before
            return ApplyOutcome(diff=diff, committed=True, rolled_back=True, reason=reason)
        return ApplyOutcome(diff=diff, committed=True, confirmed=True)


@pytest.fixture(params=["ios", "routeros"])
def setup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[Inventory, str, dict[str, Any]]:
    import dzops.execute.drivers as drivers

    inventory = load_inventory(SAMPLE)
    ap = next(d for d in inventory.devices.values() if d.function == "access_points")
    inventory = inventory.model_copy(update={"devices": inventory.devices | {
        ap.name: ap.model_copy(update={"platform": request.param})}})
    running = ("hostname old\n!\nusername netadmin privilege 15 secret 9 $9$svc\n!\nend\n" if request.param == "ios"
               else '/system identity set name=old\n/user add name="netadmin" group=full\n')
    state: dict[str, Any] = {"running": running, "radio_refuses": False, "platform": request.param}
    monkeypatch.setattr(drivers, "driver_for", lambda _platform, creds, **_o: FakeAp(creds, state))
    return inventory, ap.name, state


def test_apply_puts_every_ssid_on_and_keeps_the_rest(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    result = provision_vendor_ap(inventory, host)
    assert result.status == "changed", result.error
    for ssid in result.data["ssids"]:
        assert ssid in state["running"]
    assert "netadmin" in state["running"]  # management login: not provision-ap's part
    for profile in inventory.ssid_profiles.values():
        if profile.psk:
            assert profile.psk.get_secret_value() not in result.diff  # keys never shown
    if state["platform"] == "ios":
        config = get_hconfig(Platform.CISCO_IOS, state["running"])
        radio = config.get_child(equals="interface Dot11Radio0")
        assert radio is not None and any(c.text.startswith("ssid ") for c in radio.children)


def test_check_changes_nothing(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    result = provision_vendor_ap(inventory, host, check=True)
    assert result.changed and state["running"] == before


def test_ssids_missing_after_the_commit_roll_back(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    state["radio_refuses"] = True
    result = provision_vendor_ap(inventory, host)
    assert result.status == "failed" and "not on the device" in (result.error or "") and "rolled back" in (result.error or "")
    assert state["running"] == before


def test_an_ap_platform_without_templates_is_refused_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    import dzops.execute.drivers as drivers

    inventory = load_inventory(SAMPLE)
    ap = next(d for d in inventory.devices.values() if d.function == "access_points")
    inventory = inventory.model_copy(update={"devices": inventory.devices | {ap.name: ap.model_copy(update={"platform": "hostapd"})}})
    monkeypatch.setattr(drivers, "driver_for", lambda *_a, **_o: pytest.fail("no device may be opened"))
    result = provision_vendor_ap(inventory, ap.name)
    assert result.status == "failed" and result.error == f"{ap.name}: platform hostapd has no config replace: refused before connecting"
