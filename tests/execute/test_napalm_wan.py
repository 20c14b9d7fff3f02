"""provision-wan with a NAPALM end: the orchestration around the adapter, no device needed.

The IOS end here is a fake of dzops' NAPALM adapter (the methods provision-wan calls, holding a
running config as text), the FRR end the fake FRR router of test_wan_results. What is proven is
provision-wan's order of operations on a commit-confirm platform, and that a link with an end no
driver can apply is refused before either end is opened. NAPALM's own IOS code under the adapter
is proven elsewhere (test_napalm_recorded.py, test_napalm_ios_fake_switch.py); `configure replace`
and its revert timer on a real IOS are not proven on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dzops.exceptions import DeviceError
from dzops.execute import wan
from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory
from tests.execute.test_wan_results import HQ, TALO, FakeNetwork

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
IOS_RUNNING = ("hostname gewog-talo-rtr1\n!\ninterface GigabitEthernet9\n ip vrf forwarding MGMT\n"
               " ip address 192.0.2.10 255.255.255.0\n!\nline vty 0 4\n transport input ssh\n!\nend\n")


def lines_diff(running: str, candidate: str) -> ConfigDiff:
    have = {line for line in running.splitlines() if line.strip() not in ("!", "end", "")}
    want = {line for line in candidate.splitlines() if line.strip() not in ("!", "end", "")}
    return ConfigDiff(add=tuple(sorted(want - have)), remove=tuple(sorted(have - want)))


class FakeIos:
    """The NAPALM adapter's surface as provision-wan uses it, on a running config held as text.

    Its addresses are also published, in CIDR form, where the fake FRR routers look for OSPF
    neighbours, so the FRR end sees the IOS end come up exactly when its config has the address.
    """

    def __init__(self, credentials: Credentials, state: dict[str, Any]) -> None:
        self.credentials, self.state = credentials, state

    def _publish(self) -> None:
        from ipaddress import IPv4Interface

        cidr = [f" ip address {IPv4Interface(f'{w[2]}/{w[3]}')}" for w in
                (line.split() for line in self.state["running"].splitlines()) if w[:2] == ["ip", "address"] and len(w) == 4]
        self.state["net"].running[self.credentials.host] = "\n".join(cidr) + "\n"

    def open(self) -> None:
        self.state["opened"] = True

    def close(self) -> None: ...

    def get_config(self) -> str:
        return str(self.state["running"])

    def interfaces(self) -> dict[str, bool]:
        return {"eth0": True, "eth1": True, "GigabitEthernet9": True}

    def compare_config(self, candidate: str) -> ConfigDiff:
        return lines_diff(self.state["running"], candidate)

    def commit_replace(self, candidate: str, revert_in: int) -> ConfigDiff:
        diff = self.compare_config(candidate)
        self.state["calls"].append(("commit_replace", revert_in))
        self.state["before_commit"], self.state["running"], self.state["pending"] = self.state["running"], candidate, True
        self._publish()
        return diff

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        if self.state["pending"]:  # NAPALM's IOS driver refuses a commit while one waits for confirmation
            raise DeviceError(self.credentials.host, "Configuration session already in progress")
        diff = self.compare_config(candidate)
        self.state["calls"].append(("load_replace_candidate",))
        self.state["running"] = candidate
        self._publish()
        return diff

    def confirm_commit(self) -> None:
        self.state["calls"].append(("confirm_commit",))
        self.state["pending"] = False

    def rollback(self, saved: str | None = None) -> None:
        self.state["calls"].append(("rollback", self.state["pending"]))
        self.state["running"], self.state["pending"] = self.state["before_commit"], False
        self._publish()

    def interface_up(self, ifname: str) -> bool:
        return bool(self.state["link_up"])

    def ospf_full(self, far_address: str) -> bool:
        return bool(self.state["link_up"])

    def route_via(self, prefix: str, via: str) -> bool:
        return True

    def ping(self, address: str) -> bool:
        return bool(self.state["link_up"])

    def cli(self, commands: list[str]) -> dict[str, str]:
        return {command: "" for command in commands}


def with_platform(inventory: Inventory, host: str, platform: str) -> Inventory:
    device = inventory.devices[host]
    return inventory.model_copy(update={"devices": inventory.devices | {host: device.model_copy(update={"platform": platform})}})


@pytest.fixture()
def ios_talo() -> Inventory:
    return with_platform(load_inventory(SAMPLE), TALO, "ios")


@pytest.fixture()
def state() -> dict[str, Any]:
    return {"running": IOS_RUNNING, "pending": False, "calls": [], "link_up": True, "opened": False}


@pytest.fixture()
def frr(ios_talo: Inventory, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    network = FakeNetwork(sorted(ios_talo.devices))
    network.running[TALO] = ""
    state["net"] = network
    opened: list[str] = []

    def driver(platform: str, creds: Credentials, **options: object) -> Any:
        opened.append(creds.host)
        return FakeIos(creds, state) if platform == "ios" else network.driver(platform, creds, **options)

    monkeypatch.setattr(wan, "driver_for", driver)
    network.opened = opened  # type: ignore[attr-defined]
    return network


def test_an_ios_end_is_committed_with_a_revert_timer_and_confirmed_after_verification(
        ios_talo: Inventory, state: dict[str, Any], frr: FakeNetwork) -> None:
    [result] = wan.provision_wan(ios_talo, ["hq-talo"], verify_timeout=1)
    assert (result.status, result.verified, result.rolled_back) == ("changed", True, False), result.error
    kinds = [call[0] for call in state["calls"]]
    assert kinds == ["commit_replace", "confirm_commit"]
    revert_in = state["calls"][0][1]
    assert revert_in % 60 == 0 and revert_in >= 120
    running = state["running"].splitlines()
    # The whole candidate: the WAN end in IOS syntax, the management interface and vty lines kept.
    assert "interface eth0" in running and any(line.startswith(" ip address 10.30.255.") and "255.255.255.25" in line
                                               for line in running)
    assert " ip vrf forwarding MGMT" in running and "line vty 0 4" in running
    assert "ip ospf area" in frr.running[HQ]  # the FRR end took its side too
    assert not state["pending"]


def test_a_failed_verification_reverts_the_pending_commit_and_restores_the_frr_end(
        ios_talo: Inventory, state: dict[str, Any], frr: FakeNetwork) -> None:
    from dzops.execute.drivers.frr import config_pairs

    hq_before = frr.running[HQ]
    state["link_up"] = False
    [result] = wan.provision_wan(ios_talo, ["hq-talo"], verify_timeout=1)
    assert (result.status, result.rolled_back, result.verified) == ("rolled_back", True, False), result.error
    assert ("rollback", True) in state["calls"]  # NAPALM's rollback of a commit still pending: reverted now
    assert ("confirm_commit",) not in state["calls"]
    assert state["running"] == IOS_RUNNING and not state["pending"]
    assert config_pairs(frr.running[HQ]) == config_pairs(hq_before)


def test_check_compares_and_commits_nothing(ios_talo: Inventory, state: dict[str, Any], frr: FakeNetwork) -> None:
    [result] = wan.provision_wan(ios_talo, ["hq-talo"], check=True)
    assert result.status == "changed" and not result.verified
    assert state["calls"] == [] and state["running"] == IOS_RUNNING
    assert "interface eth0" in result.hosts[TALO].diff  # what --diff shows for the IOS end


@pytest.mark.parametrize("platform", ["eos", "junos"])
def test_a_link_with_an_end_that_cannot_be_applied_is_refused_before_either_end_is_opened(
        platform: str, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = with_platform(load_inventory(SAMPLE), TALO, platform)
    opened: list[str] = []

    def driver(_platform: str, creds: Credentials, **_options: object) -> Any:
        opened.append(creds.host)
        raise AssertionError("no device may be opened for a refused link")

    monkeypatch.setattr(wan, "driver_for", driver)
    [result] = wan.provision_wan(inventory, ["hq-talo"], verify_timeout=1)
    assert result.status == "failed" and not result.changed
    assert result.error == f"{TALO}: platform {platform} has no WAN templates: refused before connecting"
    assert opened == []
