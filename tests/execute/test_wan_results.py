"""provision-wan's results are honest: checked against a fake FRR network, no lab needed.

The fake routers keep a running config as text and change it the way FRR does: a replace can
take only part of the candidate (frr-reload goes on after a rejected line), and a rollback can
fail. The run must read every change back, roll back every end it touched, and never call a
router `rolled_back` that is not back where it started.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dzops.cli.exit_codes import ExitCode
from dzops.exceptions import DeviceError
from dzops.execute import wan
from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.execute.drivers.frr import config_pairs
from dzops.inventory.loader import load_inventory
from tests.labkit import copy_sample_inventory

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
HQ, TALO = "punakha-hq-rtr1", "gewog-talo-rtr1"


def factory(host: str) -> str:
    return (f"frr version 8.4.4\nfrr defaults traditional\nhostname {host}\nservice integrated-vtysh-config\n!\n"
            f"interface lo\n ip address 10.30.254.{sum(map(ord, host)) % 250}/32\nexit\n!\nend\n")


def pairs_diff(running: str, target: str) -> ConfigDiff:
    have, want = config_pairs(running), config_pairs(target)

    def lines(pairs: set[tuple[str, str]]) -> tuple[str, ...]:
        return tuple(sorted(f"{ctx}\n {line}" if line else ctx for ctx, line in pairs))

    return ConfigDiff(add=lines(want - have), remove=lines(have - want))


class FakeNetwork:
    """Every fake router's running config, and how each one misbehaves."""

    def __init__(self, hosts: list[str]) -> None:
        self.running = {h: factory(h) for h in hosts}
        self.rejects: dict[str, str] = {}  # host -> regex of candidate lines the router refuses
        self.reject_raises: set[str] = set()  # hosts whose refusing replace also reports an error
        self.rollback_breaks: set[str] = set()  # hosts whose rollback dies before it changes anything

    def driver(self, _platform: str, creds: Credentials, **_options: object) -> FakeRouter:
        return FakeRouter(creds, self)


class FakeRouter:
    def __init__(self, credentials: Credentials, net: FakeNetwork) -> None:
        self.credentials, self.net, self.host = credentials, net, credentials.host

    def open(self) -> None: ...

    def close(self) -> None: ...

    def interfaces(self) -> dict[str, bool]:
        return {f"eth{i}": True for i in range(16)}

    def get_config(self) -> str:
        return self.net.running[self.host]

    def compare_config(self, candidate: str) -> ConfigDiff:
        return pairs_diff(self.net.running[self.host], candidate)

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        diff = self.compare_config(candidate)
        refused = self.net.rejects.get(self.host)
        kept = []
        for line in candidate.splitlines():
            if refused and re.search(refused, line) and line.startswith(" "):
                continue  # the daemon said no; frr-reload goes on with the next line
            kept.append(line)
        self.net.running[self.host] = "\n".join(kept) + "\n"
        if refused and self.host in self.net.reject_raises:
            raise DeviceError(self.host, "frr-reload --reload --stdout failed: vtysh (exec file) exited with status 13")
        return diff

    def rollback(self, saved: str) -> None:
        if self.host in self.net.rollback_breaks:
            raise DeviceError(self.host, "'frr-reload --reload' failed on the SSH connection: Socket is closed")
        self.load_replace_candidate(saved)

    def save_config(self) -> None: ...

    def cli(self, commands: list[str]) -> dict[str, str]:
        out = {}
        for command in commands:
            if command.startswith("show interface "):
                out[command] = f"Interface {command.split()[-1]} is up, line protocol is up\n"
            elif command == "show ip ospf neighbor":
                addresses = {m for cfg in self.net.running.values()
                             for m in re.findall(r"ip address (\d+\.\d+\.\d+\.\d+)/", cfg)}
                out[command] = "".join(f"10.30.254.1 1 Full/- 1.0s 35s {a} eth1:x 0 0 0\n" for a in addresses)
            else:
                out[command] = ""
        return out


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(SAMPLE)


@pytest.fixture()
def net(inventory, monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    network = FakeNetwork(sorted(inventory.devices))
    monkeypatch.setattr(wan, "driver_for", network.driver)
    return network


def test_a_clean_apply_is_verified_and_kept(inventory, net: FakeNetwork) -> None:
    [result] = wan.provision_wan(inventory, ["hq-talo"], verify_timeout=1)
    assert (result.status, result.verified, result.rolled_back) == ("changed", True, False), result.error
    assert "ip ospf area" in net.running[TALO]


@pytest.mark.parametrize("raises", [False, True], ids=["frr-reload-exit-0", "frr-reload-error"])
def test_a_partly_taken_candidate_fails_and_both_ends_are_restored(inventory, net: FakeNetwork,
                                                                   raises: bool) -> None:
    before = dict(net.running)
    net.rejects[TALO] = r"ip ospf area"
    if raises:
        net.reject_raises.add(TALO)
    [result] = wan.provision_wan(inventory, ["hq-talo"], verify_timeout=1)
    assert (result.status, result.rolled_back, result.changed, result.verified) == ("rolled_back", True, False, False)
    talo = result.hosts[TALO]
    assert talo.status == "rolled_back" and not talo.changed
    expected = "frr-reload --reload --stdout failed" if raises else "apply incomplete"
    assert expected in (result.error or "") and expected in (talo.error or "")
    if not raises:
        assert "ip ospf area" in (talo.error or "")  # the line the router did not take is named
    assert "ip address 10.30.255." in talo.diff  # what the failed apply had changed is shown
    assert result.hosts[HQ].status == "rolled_back"
    assert {h: config_pairs(net.running[h]) for h in (HQ, TALO)} == {h: config_pairs(before[h]) for h in (HQ, TALO)}


def test_a_failed_rollback_is_failed_and_names_what_is_left(inventory, net: FakeNetwork) -> None:
    net.rejects[TALO] = r"ip ospf area"
    net.rollback_breaks.add(TALO)
    [result] = wan.provision_wan(inventory, ["hq-talo"], verify_timeout=1)
    assert (result.status, result.rolled_back) == ("failed", False)
    assert f"ROLLBACK FAILED on {TALO}" in (result.error or "")
    talo = result.hosts[TALO]
    assert talo.status == "failed" and "Socket is closed" in (talo.error or "")
    left = talo.data["left"]
    assert left and any("ip address 10.30.255." in line for line in left)  # the WAN address is still there
    assert f"left on {TALO}" in (result.error or "") and "ip address 10.30.255." in (result.error or "")
    assert result.hosts[HQ].status == "rolled_back"  # the end that did restore says so


def test_the_cli_exits_4_when_a_rollback_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dzops.cli.app import main

    inventory_dir = copy_sample_inventory(tmp_path / "inventory", 94, tmp_path / "state")
    network = FakeNetwork(sorted(load_inventory(inventory_dir).devices))
    network.rejects[TALO] = r"ip ospf area"
    network.rollback_breaks.add(TALO)
    monkeypatch.setattr(wan, "driver_for", network.driver)
    code = None
    argv = sys.argv
    with CliRunner().isolation(env={"DZOPS_INVENTORY": str(inventory_dir)}) as (out, err, _):
        sys.argv = ["dzops", "provision-wan", "--verify-timeout", "1", "hq-talo"]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = argv
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert code == ExitCode.HOSTS_FAILED, stderr
    assert stdout.split()[:2] == ["hq-talo", "failed"] and f"ROLLBACK FAILED on {TALO}" in stdout, (stdout, stderr)
    assert "subnet: 10.30.255." not in (inventory_dir / "group_vars/all/wan_links.yml").read_text()


@pytest.mark.parametrize(("output", "via", "expected"), [
    ("Routing entry for 10.31.9.0/24\n  Known via \"static\", distance 1, metric 0, best\n"
     "  * 10.30.255.13, via eth1, weight 1\n", "10.30.255.1", False),
    ("Routing entry for 10.31.9.0/24\n  * 10.30.255.13, via eth1, weight 1\n", "10.30.255.13", True),
    ("Routing entry for 10.30.255.0/30\n  * directly connected, eth1\n", "10.30.255.0", False),
    ("  * 10.1.1.2, from 10.1.1.9, 00:00:10 ago, via GigabitEthernet0/1\n", "10.1.1.9", False),
    ("  * 110.30.255.1, via eth1\n", "10.30.255.1", False),
], ids=["prefix-of-another-hop", "exact-hop", "prefix-is-no-hop", "ios-from-is-no-hop", "suffix-of-another-hop"])
def test_route_checks_compare_next_hops_exactly(output: str, via: str, expected: bool) -> None:
    class Shows:
        def cli(self, commands: list[str]) -> dict[str, str]:
            return {commands[0]: output}

    assert wan._route_via(Shows(), "10.31.9.0/24", via) is expected  # type: ignore[arg-type]


class _Restorable:
    """A device sent back to `saved`: its send may fail loudly, do only part, or the read back may fail."""

    def __init__(self, saved: str, *, restores: bool, raises: bool, unreadable: bool) -> None:
        self.saved, self.restores, self.raises, self.unreadable = saved, restores, raises, unreadable
        self.running = saved + "ip route 10.9.0.0/16 blackhole\n"

    def send(self) -> None:
        if self.restores:
            self.running = self.saved
        if self.raises:
            raise DeviceError("r", "'frr-reload --reload' failed: exit status 1")

    def get_config(self) -> str:
        if self.unreadable:
            raise DeviceError("r", "cannot reach 10.0.0.1:22: timed out")
        return self.running

    def compare_config(self, target: str) -> ConfigDiff:
        return pairs_diff(self.running, target)


@pytest.mark.parametrize(("restores", "raises", "unreadable", "left", "send_error", "read_error"), [
    (True, False, False, (), False, False),
    (True, True, False, (), True, False),  # said it failed, did its work: what is read back counts
    (False, False, False, ("ip route 10.9.0.0/16 blackhole",), False, False),  # quiet and incomplete
    (False, True, True, (), True, True),  # nothing is known: neither restored nor named as left
], ids=["restored", "error-but-restored", "left-behind", "unreadable"])
def test_put_back_reads_back_what_is_left(restores: bool, raises: bool, unreadable: bool, left: tuple[str, ...],
                                          send_error: bool, read_error: bool) -> None:
    device = _Restorable(factory(TALO), restores=restores, raises=raises, unreadable=unreadable)
    back = wan.put_back(device, device.saved, device.send)  # type: ignore[arg-type]
    assert back.left.remove == left and back.left.add == ()
    assert (back.send_error is not None, back.read_error is not None) == (send_error, read_error)
