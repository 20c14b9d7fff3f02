"""A health run's device side without a lab: each router's one probe command run by a real bash.

The probe (`router_probe`) is executed by bash on this machine with stand-in `ping` and `vtysh`
programs on PATH that print what iputils ping and FRR print; the SSH session is the only fake. A
vtysh-only login is a scripted terminal that behaves as FRR 8.4's vtysh did in the lab: `ping X`
prints one reply a second until Ctrl-C, then ping's summary and the prompt.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dzops.execute import health
from dzops.execute.ssh import Session
from dzops.inventory.loader import load_inventory
from dzops.plan.health import plan_checks
from tests.labkit import SAMPLE

HQ = "punakha-hq-rtr1"
TALO = "gewog-talo-rtr1"

STUB_PING = """#!/bin/bash
# iputils ping's quiet summary; a target listed in $DZ_DEAD answers nothing
target="${!#}"; wait_s=1
while [ $# -gt 0 ]; do [ "$1" = -W ] && wait_s=$2; shift; done
echo "$DZ_HOST $target -W $wait_s" >> "$DZ_LOG"
if grep -qx "$target" "$DZ_DEAD" 2>/dev/null; then
  printf 'PING %s 56(84) bytes of data.\\n\\n--- %s ping statistics ---\\n' "$target" "$target"
  echo "5 packets transmitted, 0 received, 100% packet loss, time 804ms"; exit 1
fi
printf 'PING %s 56(84) bytes of data.\\n\\n--- %s ping statistics ---\\n' "$target" "$target"
echo "5 packets transmitted, 5 received, 0% packet loss, time 804ms"
echo "rtt min/avg/max/mdev = 0.040/0.250/0.090/0.017 ms"
"""


@dataclass
class Stubs:
    bin: Path
    log: Path
    dead: Path
    marker: Path
    ospf: Path
    missing_marker: set[str] = field(default_factory=set)  # routers the access role never prepared

    def pings(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture()
def stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stubs:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ping").write_text(STUB_PING)
    ospf = tmp_path / "ospf.json"
    (bin_dir / "vtysh").write_text(f"#!/bin/bash\ncat {ospf}\n")
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    marker = tmp_path / "router-access"
    marker.write_text("version=1\n")
    monkeypatch.setattr(health, "ACCESS_MARKER", str(marker))
    return Stubs(bin_dir, tmp_path / "pings.log", tmp_path / "dead", marker, ospf)


class _Done:
    def __init__(self, result: tuple[int, str, str]) -> None:
        self._result = result

    def result(self) -> tuple[int, str, str]:
        return self._result


class VtyshTerminal:
    """FRR 8.4's vtysh on a pty, as measured in the lab (see the module docstring)."""

    def __init__(self, host: str, dead: set[str]) -> None:
        self.prompt = f"{host}# "
        self.dead = dead
        self.sent: list[str] = []
        self.out = "Hello, this is FRRouting (version 8.4.4).\r\n\r\n" + self.prompt
        self.target: str | None = None
        self.started = 0.0
        self.replies = 0
        self.closed = False

    def send(self, data: str) -> None:
        self.sent.append(data)
        if data.startswith("ping "):
            self.target, self.started, self.replies = data.split()[1], time.monotonic(), 0
            self.out += data.replace("\n", "\r\n") + f"PING {self.target} 56(84) bytes of data.\r\n"
        elif data == "\x03" and self.target is not None:
            sent = max(self.replies, int(time.monotonic() - self.started) + 1)
            summary = (f"{sent} packets transmitted, {self.replies} received, "
                       f"{100 - 100 * self.replies // sent}% packet loss, time 4005ms\r\n")
            rtt = "rtt min/avg/max/mdev = 0.030/0.500/0.070/0.010 ms\r\n" if self.replies else ""
            self.out += f"^C\r\n--- {self.target} ping statistics ---\r\n{summary}{rtt}{self.prompt}"
            self.target = None

    def _tick(self) -> None:
        # replies 10 ms apart here (vtysh's real ping: one a second) so the test stays quick
        if self.target is not None and self.target not in self.dead:
            due = int((time.monotonic() - self.started) / 0.01)
            while self.replies < due:
                self.replies += 1
                self.out += f"64 bytes from {self.target}: icmp_seq={self.replies} ttl=64 time=0.5 ms\r\n"

    def recv_ready(self) -> bool:
        self._tick()
        return bool(self.out)

    def recv(self, size: int) -> bytes:
        data, self.out = self.out[:size], self.out[size:]
        return data.encode()

    def exit_status_ready(self) -> bool:
        return False


class FakeSession(Session):
    """The SSH session only: commands run in a local bash with the stub programs first on PATH."""

    def __init__(self, creds: Any, stubs: Stubs, terminals: list[VtyshTerminal]) -> None:
        super().__init__(creds)
        self.stubs, self.terminals = stubs, terminals
        self.started: list[str] = []

    def open(self) -> None:
        self._client = object()

    def close(self) -> None:
        self._client = None

    def run(self, command: str, stdin: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
        if self.host in self.stubs.missing_marker:
            command = command.replace(str(self.stubs.marker), str(self.stubs.marker) + ".absent")
        env = {**os.environ, "PATH": f"{self.stubs.bin}:{os.environ['PATH']}", "DZ_HOST": self.host,
               "DZ_LOG": str(self.stubs.log), "DZ_DEAD": str(self.stubs.dead)}
        proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr

    def start(self, command: str, timeout: float = 120) -> Any:
        self.started.append(command)
        return _Done(self.run(command, timeout=timeout))

    @contextmanager
    def interactive(self, width: int = 200) -> Iterator[Any]:
        dead = set(self.stubs.dead.read_text().split()) if self.stubs.dead.exists() else set()
        terminal = VtyshTerminal(self.host, dead)
        self.terminals.append(terminal)
        yield terminal


class FakeFrr:
    """Stands in for the FRR driver: its session and login kind are what the health run uses."""

    def __init__(self, creds: Any, stubs: Stubs, terminals: list[VtyshTerminal]) -> None:
        self.credentials = creds
        self.session = FakeSession(creds, stubs, terminals)
        self.shell_login = creds.login != "vtysh"

    def open(self) -> None:
        self.session.open()

    def close(self) -> None:
        self.session.close()

    def vtysh(self, commands: list[str]) -> str:
        assert commands == [health.OSPF_NEIGHBOURS]
        return self.session.stubs.ospf.read_text()


@dataclass
class World:
    inventory: Any
    stubs: Stubs
    terminals: list[VtyshTerminal]
    drivers: dict[str, FakeFrr]

    def run(self) -> tuple[dict[str, Any], list[health.Unmeasured]]:
        routers = [d.name for d in self.inventory.hosts_in("routers")]
        checks = [c for c in plan_checks(self.inventory, routers) if c.kind in ("device", "link", "lan")]
        results = health.run_health(self.inventory, checks)
        return {r.key: r for r in results}, results.unmeasured


@pytest.fixture()
def world(stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> World:
    inventory = load_inventory(SAMPLE)
    far_ends = []
    from dzops.plan.wan import end_addresses, wan_allocation

    for subnet in wan_allocation(inventory).values():
        far_ends += [str(end.ip) for end in end_addresses(subnet)]
    # Every far end Full, padded past a pipe's atomic write size: a ping block must not cut through it.
    neighbours = {f"10.99.{i // 250}.{i % 250}": [{"nbrState": "Full/-", "ifaceAddress": f"10.98.{i // 250}.{i % 250}"}]
                  for i in range(200)}
    neighbours.update({f"10.250.254.{i}": [{"nbrState": "Full/-", "ifaceAddress": address}]
                       for i, address in enumerate(far_ends)})
    stubs.ospf.write_text(json.dumps({"neighbors": neighbours}, indent=2))
    assert len(stubs.ospf.read_text()) > 4096
    terminals: list[VtyshTerminal] = []
    drivers: dict[str, FakeFrr] = {}

    def driver_for(platform: str, creds: Any) -> FakeFrr:
        drivers[creds.host] = FakeFrr(creds, stubs, terminals)
        return drivers[creds.host]

    monkeypatch.setattr(health, "driver_for", driver_for)
    monkeypatch.setattr(health, "VTYSH_PATIENCE_S", 0.2)
    return World(inventory, stubs, terminals, drivers)


def _link_ends(inventory: Any, name: str) -> tuple[str, str]:
    from dzops.plan.wan import end_addresses, wan_allocation

    a, b = end_addresses(wan_allocation(inventory)[name])
    return str(a.ip), str(b.ip)


def test_one_probe_per_router_measures_every_link_lan_and_ospf(world: World) -> None:
    results, unmeasured = world.run()
    assert unmeasured == []
    assert {k: r.status for k, r in results.items() if r.status != "up"} == {}
    assert results["link:hq-talo"].rtt_ms == 0.25 and results["link:hq-talo"].loss == 0.0
    talo = world.inventory.devices[TALO]
    assert results["lan:talo"].message.startswith(f"{talo.interfaces[talo.lan_interface].address.ip} answers HQ LAN")
    # One command per router, started at login: its marker check, every ping and the OSPF read together.
    for host, driver in world.drivers.items():
        assert len(driver.session.started) == 1, host
        assert "router-access" in driver.session.started[0] and health.OSPF_NEIGHBOURS in driver.session.started[0]
    hq_pings = [line for line in world.stubs.pings() if line.startswith(HQ + " ")]
    links_and_lans = len(world.inventory.wan_links) + len(world.inventory.wan_links)  # every gewog: one link, one LAN
    assert len(hq_pings) == links_and_lans and all(line.endswith("-W 1") for line in hq_pings)


def test_a_silent_target_is_asked_once_more_alone_before_the_link_is_down(world: World) -> None:
    hq_end, talo_end = _link_ends(world.inventory, "hq-talo")
    world.stubs.dead.write_text(f"{hq_end}\n{talo_end}\n")
    results, _ = world.run()
    assert results["link:hq-talo"].status == "down"
    assert "no echo reply" in results["link:hq-talo"].message
    assert results["link:hq-barp"].status == "up"
    retries = [line for line in world.stubs.pings() if line.endswith("-W 2")]
    # both silent ends were asked again alone (a live target is asked again only if its block went
    # missing, e.g. a fork refused on a machine out of processes: that is what the retry is for)
    assert {f"{HQ} {talo_end} -W 2", f"{TALO} {hq_end} -W 2"} <= set(retries)
    assert len(retries) < len(world.stubs.pings()) // 4  # not a second round for everyone


def test_a_router_without_the_access_role_runs_nothing_and_is_named(world: World) -> None:
    world.stubs.missing_marker.add(TALO)
    results, _ = world.run()
    assert results[f"device:{TALO}"].status == "down"
    assert f"not onboarded: run dzops onboard {TALO}" in results[f"device:{TALO}"].message
    assert not any(line.startswith(TALO + " ") for line in world.stubs.pings())  # no ping ran there
    # HQ's end still answers: the link is degraded, naming why talo's end could not be measured
    assert results["link:hq-talo"].status == "degraded" and "not onboarded" in results["link:hq-talo"].message
    assert results["device:gewog-barp-rtr1"].status == "up"


def test_a_vtysh_login_pings_its_links_from_vtysh_and_reports_the_lan_as_not_measurable(world: World) -> None:
    hq = world.inventory.devices[HQ]
    world.inventory.devices[HQ] = hq.model_copy(update={"router_login": "vtysh"})
    results, unmeasured = world.run()
    links = [f"link:{link.name}" for link in world.inventory.wan_links]
    assert all(results[key].status == "up" for key in links), [results[k].message for k in links]
    gewogs = [world.inventory.devices[link.b.host].site for link in world.inventory.wan_links]
    assert sorted(u.key for u in unmeasured) == sorted(f"lan:{site}" for site in gewogs)
    assert all("not measurable on this login" in u.message for u in unmeasured)
    assert not any(key.startswith("lan:") for key in results)  # never reported as down
    sent = [data for terminal in world.terminals for data in terminal.sent]
    pinged = sorted(data.split()[1] for data in sent if data.startswith("ping "))
    assert pinged == sorted(_link_ends(world.inventory, link.name)[1] for link in world.inventory.wan_links)
    assert sent.count("\x03") == len(pinged)  # every ping ended by Ctrl-C: nothing left running on the router
    assert len(world.terminals) == health.MAX_CHANNELS
    assert not any(line.startswith(HQ + " ") for line in world.stubs.pings())  # no shell ping on a vtysh login


def test_a_vtysh_login_asks_a_silent_link_once_more_then_calls_it_down(world: World) -> None:
    hq = world.inventory.devices[HQ]
    world.inventory.devices[HQ] = hq.model_copy(update={"router_login": "vtysh"})
    hq_end, talo_end = _link_ends(world.inventory, "hq-talo")
    world.stubs.dead.write_text(f"{hq_end}\n{talo_end}\n")
    results, _ = world.run()
    assert results["link:hq-talo"].status == "down" and results["link:hq-barp"].status == "up"
    sent = [data for terminal in world.terminals for data in terminal.sent]
    assert sent.count(f"ping {talo_end}\n") == 2 and sent.count(f"ping {_link_ends(world.inventory, 'hq-barp')[1]}\n") == 1


def test_session_start_runs_commands_side_by_side_and_result_waits_for_each(tmp_path: Path) -> None:
    import paramiko

    from dzops.exceptions import DeviceError
    from dzops.execute.drivers.base import Credentials
    from tests.execute.fake_ssh_server import FakeSshServer

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host")], check=True)
    server = FakeSshServer(host_key=paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "host"))).start()
    try:
        server.commands["probe a"] = (0, "=PING 0\n1 packets transmitted, 1 received\n", "")
        server.commands["probe b"] = (3, "=ACCESS\n", "cat: no such file\n")
        creds = Credentials(host="r1", address="127.0.0.1", username="dzadmin", password="secret-pw",
                            known_hosts=server.write_known_hosts(tmp_path / "kh"), port=server.port, timeout=5.0)
        session = Session(creds)
        with pytest.raises(DeviceError, match="not connected"):
            session.start("probe a")
        with session:
            first, second = session.start("probe a"), session.start("probe b")
            assert second.result() == (3, "=ACCESS\n", "cat: no such file\n")  # any order: each its own channel
            assert first.result() == (0, "=PING 0\n1 packets transmitted, 1 received\n", "")
            # the channels went back: MAX_CHANNELS more can start and finish
            pending = [session.start("probe a") for _ in range(health.MAX_CHANNELS)]
            assert [p.result()[0] for p in pending] == [0] * health.MAX_CHANNELS
        assert server.ran.count("probe a") == 1 + health.MAX_CHANNELS
    finally:
        server.stop()
