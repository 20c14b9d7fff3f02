"""provision-wan's goal check without a lab: fake FRR routers whose shell login answers the probe.

A fake gewog router answers the goal probe from a table of addresses that do not answer (and
TCP ports that are closed); the run must verify only when the HQ servers answer, roll the link
back when they do not, and name the first hop that fails. The probe program itself is run on
this machine against loopback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dzops.execute import wan
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.frr import config_pairs
from dzops.inventory.loader import load_inventory
from tests.execute.test_wan_results import FakeNetwork, FakeRouter

ROOT = Path(__file__).resolve().parents[2]
HQ, TALO = "punakha-hq-rtr1", "gewog-talo-rtr1"


class ShellRouter(FakeRouter):
    shell_login = True

    def shell(self, argv: list[str], stdin: str | None = None) -> str:
        assert argv[:3] == ["python3", "-c", wan.GOAL_PROBE]
        source, items = argv[3], argv[4:]
        self.net.probes.append((self.host, source, items))
        answers = {}
        for item in items:
            kind, _, target = item.partition(":")
            address = target.rsplit(":", 1)[0] if kind == "tcp" else target
            answers[item] = address not in self.net.silent and target not in self.net.closed
        return json.dumps(answers) + "\n"


class GoalNetwork(FakeNetwork):
    def __init__(self, hosts: list[str]) -> None:
        super().__init__(hosts)
        self.silent: set[str] = set()  # addresses that do not answer ping (nor anything else)
        self.closed: set[str] = set()  # ADDR:PORT not listening
        self.probes: list[tuple[str, str, list[str]]] = []

    def driver(self, _platform: str, creds: Credentials, **_options: object) -> ShellRouter:
        return ShellRouter(creds, self)


def _net(inventory, monkeypatch: pytest.MonkeyPatch) -> GoalNetwork:  # noqa: ANN001
    network = GoalNetwork(sorted(inventory.devices))
    monkeypatch.setattr(wan, "driver_for", network.driver)
    monkeypatch.setattr(wan, "GOAL_RETRY_SECONDS", 0.0)
    return network


@pytest.fixture(scope="module")
def punakha():
    return load_inventory(ROOT / "inventory")


@pytest.fixture(scope="module")
def wangdue():
    return load_inventory(ROOT / "samples" / "wangdue")


def _address(inventory, host: str, interface: str = "eth0") -> str:  # noqa: ANN001
    return str(inventory.devices[host].interfaces[interface].address.ip)


def test_the_goal_is_probed_from_the_gewog_lan_and_passes(punakha, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net(punakha, monkeypatch)
    [result] = wan.provision_wan(punakha, ["hq-talo"], verify_timeout=1)
    assert (result.status, result.verified) == ("changed", True), result.error
    goal = [c for c in result.checks if "reaches HQ" in c]
    assert goal and "punakha-hq-srv1 10.30.1.21 (ping, tcp/22)" in goal[0]
    assert [(host, source) for host, source, _ in net.probes] == [(TALO, _address(punakha, TALO, "eth1"))]
    items = net.probes[0][2]
    assert {"ping:10.30.1.21", "tcp:10.30.1.21:22", "ping:10.30.1.22", "tcp:10.30.1.22:22"} == set(items)


@pytest.mark.parametrize(("silent", "closed", "expected"), [
    ({"10.30.1.21"}, set(), "first hop that fails: punakha-hq-srv1 10.30.1.21 (server)"),
    ({"10.30.1.21", "10.30.1.1"}, set(), "first hop that fails: punakha-hq-rtr1 10.30.1.1 (gateway of punakha-hq-srv1)"),
    ({"10.30.1.21", "10.30.1.1", "10.30.255.33"}, set(), "first hop that fails: punakha-hq-rtr1 10.30.255.33 (WAN hq-talo)"),
    (set(), {"10.30.1.22:22"}, "punakha-hq-web1 10.30.1.22 answers ping but not tcp/22"),
], ids=["server", "gateway", "wan-hop", "service"])
def test_an_unreached_goal_fails_names_what_and_rolls_back(punakha, monkeypatch: pytest.MonkeyPatch,
                                                            silent, closed, expected) -> None:
    net = _net(punakha, monkeypatch)
    net.silent, net.closed = set(silent), set(closed)
    before = {h: config_pairs(net.running[h]) for h in (HQ, TALO)}
    [result] = wan.provision_wan(punakha, ["hq-talo"], verify_timeout=0.5)
    assert (result.status, result.rolled_back, result.verified) == ("rolled_back", True, False), result.error
    assert result.failed_check and "gewog-talo-rtr1 LAN 10.31.9.1 reaches HQ" in result.failed_check
    assert expected in (result.error or "")
    # the link's own checks passed: only the goal failed
    assert any("OSPF neighbour" in c for c in result.checks)
    assert {h: config_pairs(net.running[h]) for h in (HQ, TALO)} == before
    # hops are walked from the gewog LAN, in order, and not beyond the first that fails
    walked = [items for host, _, items in net.probes if len(items) == 1]
    if "first hop" in expected:
        named = expected.split(": ")[1].split()[1]
        assert walked[-1] == [f"ping:{named}"]
        assert all(i[0].removeprefix("ping:") not in silent for i in walked[:-1])


def test_links_serving_one_gewog_share_one_probe(wangdue, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net(wangdue, monkeypatch)
    monkeypatch.setattr(wan, "GOAL_RETRY_SECONDS", 60.0)
    results = wan.provision_wan(wangdue, ["thedtsho-ruebisa", "hq-ruebisa-backup"], verify_timeout=1)
    assert [r.status for r in results] == ["changed", "changed"], [r.error for r in results]
    assert [host for host, _, _ in net.probes] == ["wdp-ruebisa-rtr1"]
    assert all(any("wdp-ruebisa-rtr1 LAN 10.61.4.1 reaches HQ" in c for c in r.checks) for r in results)


def test_a_driver_without_a_shell_login_runs_no_goal(punakha, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net(punakha, monkeypatch)
    monkeypatch.setattr(ShellRouter, "shell_login", False)
    [result] = wan.provision_wan(punakha, ["hq-talo"], verify_timeout=1)
    assert result.verified and not net.probes
    assert not any("reaches HQ" in c for c in result.checks)


def test_the_probe_program_answers_ping_and_tcp_from_a_source_address() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        port = listening.getsockname()[1]
        items = ["ping:127.0.0.1", f"tcp:127.0.0.1:{port}", f"tcp:127.0.0.1:{closed_port}"]
        out = subprocess.run([sys.executable, "-c", wan.GOAL_PROBE, "127.0.0.1", *items],
                             capture_output=True, text=True, timeout=30)
    finally:
        listening.close()
    assert json.loads(out.stdout) == {items[0]: True, items[1]: True, items[2]: False}, out.stderr


def test_a_check_run_probes_nothing_and_changes_nothing(punakha, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net(punakha, monkeypatch)
    net.silent = {"10.30.1.21"}  # a goal that would fail: --check must not even ask
    before = dict(net.running)
    [result] = wan.provision_wan(punakha, ["hq-talo"], check=True, verify_timeout=1)
    assert (result.status, result.verified, result.checks) == ("changed", False, [])
    assert net.probes == [] and net.running == before
