"""The remediation run's decisions with scripted drivers: what is applied, verified, rolled back.

The lab tests (test_remediate_lab.py) prove it on real FRR; these pin each branch without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute import remediate as remediate_module
from dzops.execute.drivers.base import ConfigDiff
from dzops.inventory.loader import load_inventory
from dzops.plan.wan import intended_router_configs, wan_ends

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
ROUTER = "gewog-talo-rtr1"
HUB = "punakha-hq-rtr1"
HAND = "ip route 10.99.0.0/16 blackhole\n"


@dataclass
class FakeRouter:
    """A router's running config and how it answers; every call is recorded."""

    running: str
    link_up: bool = True
    unreachable: bool = False
    apply_leaves: str = ""  # text an apply leaves behind (a router that rejects a line)
    rollback_leaves: str = ""
    calls: list[str] = field(default_factory=list)


class FakeDriver:
    def __init__(self, router: FakeRouter) -> None:
        self.router = router

    def open(self) -> None:
        if self.router.unreachable:
            raise ConnectionFailed("r", "cannot reach 10.0.0.1:22: timed out")

    def close(self) -> None:
        pass

    def get_config(self) -> str:
        return self.router.running

    def compare_config(self, candidate: str) -> ConfigDiff:
        if candidate == self.router.running:
            return ConfigDiff()
        extra = [line for line in self.router.running.splitlines() if line not in candidate.splitlines()]
        return ConfigDiff(remove=tuple(f"no {x}" for x in extra), add=("! something",) if not extra else ())

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        diff = self.compare_config(candidate)
        self.router.calls.append("replace")
        self.router.running = candidate + self.router.apply_leaves
        return diff

    def rollback(self, saved: str) -> None:
        self.router.calls.append("rollback")
        self.router.running = saved + self.router.rollback_leaves

    def cli(self, commands: list[str]) -> dict[str, str]:
        out = {}
        for command in commands:
            if command.startswith("show interface"):
                out[command] = f"Interface {command.split()[-1]} is {'up' if self.router.link_up else 'down'}\n"
            elif command == "show ip ospf neighbor":
                out[command] = "".join(f"10.30.254.{i} 1 Full/- 30s 10.30.255.{i} eth0:x 0 0 0\n" for i in range(60))
            elif command.startswith("ping"):
                if not self.router.link_up:
                    raise DeviceError("r", "ping failed")
                out[command] = "1 packets received"
        return out


@pytest.fixture
def world(monkeypatch):
    inventory = load_inventory(SAMPLE)
    intended = intended_router_configs(inventory, [ROUTER, HUB])
    routers = {ROUTER: FakeRouter(intended[ROUTER] + HAND), HUB: FakeRouter(intended[HUB])}
    monkeypatch.setattr(remediate_module, "driver_for", lambda platform, creds: FakeDriver(routers[creds.host]))
    return inventory, intended, routers


def _run(world, **options):
    inventory, intended, _ = world
    [result] = remediate_module.remediate(inventory, {ROUTER: intended[ROUTER]}, verify_timeout=0.1, **options)
    return result


def test_check_compares_and_changes_nothing(world) -> None:
    _, _, routers = world
    result = _run(world, check=True)
    assert (result.status, result.changed) == ("changed", False)
    assert result.data["remove"] == [f"no {HAND.strip()}"]
    assert routers[ROUTER].calls == [] and routers[ROUTER].running.endswith(HAND)


def test_drifted_router_is_replaced_and_its_link_verified(world) -> None:
    inventory, intended, routers = world
    result = _run(world)
    assert (result.status, result.changed, result.error) == ("changed", True, None)
    assert routers[ROUTER].calls == ["replace"] and routers[ROUTER].running == intended[ROUTER]
    [end] = wan_ends(inventory)[ROUTER]
    assert result.data["checks"][0] == "no drift left"
    assert f"{HUB} eth9 is up" in result.data["checks"]
    assert f"{ROUTER} OSPF neighbour {end.far_address} Full" in result.data["checks"]
    assert routers[HUB].calls == []  # the far end is only read


def test_router_as_intended_is_left_alone(world) -> None:
    _, intended, routers = world
    routers[ROUTER].running = intended[ROUTER]
    result = _run(world)
    assert (result.status, result.changed) == ("ok", False) and routers[ROUTER].calls == []


@pytest.mark.parametrize(("setup", "status", "error", "calls", "back"), [
    (lambda r: setattr(r[HUB], "link_up", False), "rolled_back", "verification failed: punakha-hq-rtr1 eth9 is up",
     ["replace", "rollback"], True),
    (lambda r: setattr(r[ROUTER], "apply_leaves", "ip route 10.1.0.0/16 blackhole\n"), "rolled_back",
     "verification failed: still differs from intended", ["replace", "rollback"], True),
    (lambda r: (setattr(r[HUB], "link_up", False), setattr(r[ROUTER], "rollback_leaves", "hostname x\n")),
     "failed", "ROLLBACK FAILED: the saved config is not back", ["replace", "rollback"], False),
    (lambda r: setattr(r[ROUTER], "unreachable", True), "unreachable", "cannot reach", [], True),
], ids=["link-check-fails", "apply-leaves-drift", "rollback-not-read-back", "unreachable"])
def test_failures_roll_back_and_say_so(world, setup, status, error, calls, back) -> None:
    _, _, routers = world
    saved = routers[ROUTER].running
    setup(routers)
    result = _run(world)
    assert result.status == status and not result.changed
    assert error in (result.error or "")
    assert routers[ROUTER].calls == calls
    assert (routers[ROUTER].running == saved) is back
    assert bool(result.data.get("rolled_back")) is (status == "rolled_back")


def test_a_far_end_that_does_not_carry_the_link_is_not_checked(world) -> None:
    _, intended, routers = world
    routers[HUB].running = intended[HUB].replace("interface eth9\n", "interface eth99\n")
    routers[HUB].link_up = False  # would fail every check if the link were checked
    result = _run(world)
    assert result.status == "changed"
    assert result.data["checks"] == ["no drift left"]
    assert result.data["not_checked"] == [f"hq-talo: far end {HUB} not provisioned yet"]
