"""user apply on IOS and RouterOS: the orchestration around the NAPALM adapter, no device needed.

The device here is a fake of dzops' adapter holding a running config as text (proving user apply's
own steps: users-only candidate, compare for --check, apply with get_users as verification, rollback
when the accounts are not as intended, secrets scrubbed from what is shown). NAPALM's get_users and
replace on real devices are not proven here (see README: what is proven where).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dzops.execute import users as users_module
from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.execute.drivers.napalm import ApplyOutcome
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
RUNNING = ("hostname {host}\n!\nusername sonam privilege 15 secret 9 $9$old$hash\nusername netadmin privilege 15 secret 9 $9$svc\n"
           "!\ninterface GigabitEthernet9\n ip address 192.0.2.10 255.255.255.0\n!\nend\n")


class FakeAdapter:
    def __init__(self, creds: Credentials, state: dict[str, Any]) -> None:
        self.creds, self.state = creds, state

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get_config(self) -> str:
        return str(self.state["running"])

    def get_users(self) -> dict[str, Any]:
        return {w[1]: {} for w in (line.split() for line in self.state["running"].splitlines()) if w[:1] == ["username"]}

    def compare_config(self, candidate: str) -> ConfigDiff:
        have, want = set(self.state["running"].splitlines()), set(candidate.splitlines())
        return ConfigDiff(add=tuple(sorted(want - have - {"!", "end"})), remove=tuple(sorted(have - want - {"!", "end"})))

    def apply(self, candidate: str, verify: Any, revert_in: int = 300) -> ApplyOutcome:
        diff = self.compare_config(candidate)
        before = self.state["running"]
        self.state["running"] = candidate if not self.state["device_ignores"] else before
        reason = verify()
        if reason:
            self.state["running"] = before
            return ApplyOutcome(diff=diff, committed=True, rolled_back=True, reason=reason)
        return ApplyOutcome(diff=diff, committed=True, confirmed=True)


@pytest.fixture()
def setup(monkeypatch: pytest.MonkeyPatch) -> tuple[Inventory, str, dict[str, Any]]:
    import dzops.execute.drivers as drivers

    inventory = load_inventory(SAMPLE)
    router = next(d for d in inventory.devices.values() if d.function == "routers")
    inventory = inventory.model_copy(update={"devices": inventory.devices | {
        router.name: router.model_copy(update={"platform": "ios"})}})
    state: dict[str, Any] = {"running": RUNNING.format(host=router.name), "device_ignores": False}
    monkeypatch.setattr(drivers, "driver_for", lambda _platform, creds, **_o: FakeAdapter(creds, state))
    return inventory, router.name, state


def test_apply_replaces_only_the_accounts_and_keeps_the_rest(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    [result] = users_module.apply_users(inventory, [host])
    assert result.status == "changed", result.error
    running = state["running"].splitlines()
    managed_present = [a.login for a in users_module.plan_users(inventory, [host])[host] if a.state == "present"]
    assert managed_present and all(any(line.startswith(f"username {login} ") or line == f"username {login}"
                                       for line in running) for login in managed_present)
    assert "username netadmin privilege 15 secret 9 $9$svc" in running  # dzops' own login: not staff, kept
    assert "interface GigabitEthernet9" in running  # not this command's part
    assert "$9$" not in result.diff  # hashes scrubbed from what is shown


def test_check_compares_and_changes_nothing(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    [result] = users_module.apply_users(inventory, [host], check=True)
    assert state["running"] == before
    assert result.changed and any(a.startswith("would") for a in result.data["accounts"].values())


def test_accounts_not_as_intended_are_rolled_back_and_failed(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    before = state["running"]
    state["device_ignores"] = True
    [result] = users_module.apply_users(inventory, [host])
    assert result.status == "failed" and "rolled back" in (result.error or "")
    assert "missing" in (result.error or "")
    assert state["running"] == before


def test_audit_reads_get_users_and_names_unmanaged_and_offboarded(setup: tuple[Inventory, str, dict[str, Any]]) -> None:
    inventory, host, state = setup
    state["running"] += "username visitor privilege 1\n"
    findings, [result] = users_module.audit_users(inventory, [host])
    assert result.status == "ok", result.error
    kinds = {(f.login, f.kind) for f in findings if f.host == host}
    assert ("visitor", "unmanaged") in kinds
    plan = {a.login: a for a in users_module.plan_users(inventory, [host])[host]}
    if plan.get("sonam") and plan["sonam"].state == "absent":
        assert ("sonam", "unwanted") in kinds
    assert {login for login, kind in kinds if kind == "missing"} == {a.login for a in plan.values()
                                                                       if a.state == "present" and a.login != "sonam"}
