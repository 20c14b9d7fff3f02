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
from tests.execute.test_vendor_ap_uplink import FakeSwitch, switch_state

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
    # The uplink switch (cumulus) answers as an Open vSwitch port (tests/execute/test_vendor_ap_uplink.py).
    monkeypatch.setattr(drivers, "driver_for", lambda platform, creds, **_o: (
        FakeSwitch(creds, switch_state()) if platform == "cumulus" else FakeAp(creds, state)))
    return inventory, ap.name, state


def test_apply_puts_every_ssid_on_and_keeps_the_rest(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    result = provision_vendor_ap(inventory, host)
    assert result.status == "changed", result.error
    for entry in result.data["ssids"]:
        assert entry["ssid"] in state["running"] and entry["vlan"]
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


def test_provision_ap_sends_vendor_aps_through_napalm_and_the_others_to_hostapd(
        setup: tuple[Inventory, str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    import dzops.execute.ap as hostapd_path
    from dzops.execute.vendor_ap import provision_aps
    from dzops.models import HostResult

    inventory, host, state = setup
    others = [h for h, d in inventory.devices.items() if d.function == "access_points" and h != host][:2]
    seen: list[list[str]] = []

    def hostapd_run(_inventory: Inventory, scope: list[str], **_kw: Any) -> list[HostResult]:
        seen.append(scope)
        return [HostResult(host=h, status="ok") for h in scope]

    monkeypatch.setattr(hostapd_path, "provision_ap", hostapd_run)
    scope = [others[0], host, others[1]]
    results = provision_aps(inventory, scope, check=True)
    assert [r.host for r in results] == scope
    assert seen == [[others[0], others[1]]]
    assert results[1].changed and state["platform"] in ("ios", "routeros")


def test_the_cli_shows_a_vendor_ap_check_with_its_ssids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dzops provision-ap --check AP` on an IOS AP: exit 0, its SSIDs listed, nothing applied, no key shown."""
    import sys

    from typer.testing import CliRunner

    import dzops.execute.drivers as drivers
    from dzops.cli.app import main
    from tests.labkit import copy_sample_inventory

    inventory_dir = copy_sample_inventory(tmp_path / "inventory", 93, tmp_path / "state")
    host_vars = inventory_dir / "host_vars" / "gewog-barp-ap1.yml"
    host_vars.write_text(host_vars.read_text().replace("device_role: office-ap\n", "device_role: office-ap\nplatform: ios\n"))
    state: dict[str, Any] = {"running": "hostname gewog-barp-ap1\n!\nend\n", "radio_refuses": False, "platform": "ios"}
    monkeypatch.setattr(drivers, "driver_for", lambda platform, creds, **_o: (
        FakeSwitch(creds, switch_state()) if platform == "cumulus" else FakeAp(creds, state)))
    argv, code = sys.argv, None
    with CliRunner().isolation(env={"DZOPS_INVENTORY": str(inventory_dir)}) as (out, err, _):
        sys.argv = ["dzops", "provision-ap", "--check", "--diff", "gewog-barp-ap1"]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = argv
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert code in (0, None), (stdout, stderr)
    assert "Punakha-Staff" in stdout and "dot11 ssid Punakha-Staff" in stdout, (stdout, stderr)
    assert "Punakha-Staff-Demo-Psk" not in stdout + stderr
    assert state["running"] == "hostname gewog-barp-ap1\n!\nend\n"
