"""The IOS templates and driver against a real SSH peer: a fake-switches Cisco IOS switch on 127.0.0.1.

fake-switches models a Catalyst *switch*, so only part of a router's WAN config exists there.
Measured with this module (fake-switches 1.5.0, model cisco_2960_24TT_L):
- taken and shown by `show running-config`: `interface VlanN`, `description`, `ip address` on a
  Vlan (SVI) interface, `ip route`, `no shutdown`, `exit`;
- taken silently, never shown: `ip ospf network point-to-point`, `ip ospf 1 area 0`;
- refused with "No such command": `router ospf 1`, `bandwidth`, `mtu`, `encapsulation dot1Q`, `end`;
- refused with "% Invalid input": sub-interfaces (`interface GigabitEthernet0/1.120`), unknown ports;
- crashes the session: `ip address` on a physical port (its ports are layer 2 only);
- no `copy ... flash:` and no `configure replace`, so the driver's rollback cannot be exercised here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from dzops.exceptions import AuthenticationFailed, ConnectionFailed, DeviceError, HostKeyMismatch
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.ios import Driver
from dzops.plan.vendor import wan_config_lines
from dzops.plan.wan import WanEnd

SERVER = Path(__file__).with_name("fake_ios_server.py")
USER, PASSWORD, ENABLE = "netadmin", "Fake-pass-1", "Fake-enable-1"  # throwaway test-only credentials
# Lines of our templates that the fake switch answers with "No such command" (see the docstring).
FAKE_UNSUPPORTED = ("router ospf", " bandwidth ", " mtu ", " encapsulation ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def fake_ios() -> Iterator[int]:
    """A fake IOS switch over SSH in its own process; yields its port and kills it afterwards."""
    port = free_port()
    env = os.environ | {"FAKE_IOS_USER": USER, "FAKE_IOS_PASSWORD": PASSWORD, "FAKE_IOS_ENABLE": ENABLE}
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the reactor listens or the process dies
        assert line.strip() == "listening", f"fake-switches did not start: {line}{proc.stdout.read()}"
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_KNOWN_HOSTS_DIR = tempfile.TemporaryDirectory(prefix="dzops-fake-ios-")


def credentials(port: int, password: str = PASSWORD, known_hosts: Path | None = None) -> Credentials:
    """Credentials whose known_hosts holds the fake switch's real key, unless a test brings its own."""
    if known_hosts is None:
        known_hosts = Path(_KNOWN_HOSTS_DIR.name) / f"known_hosts-{port}"
        known_hosts.write_text(fake_host_key_line(port))
    return Credentials(host="fake-rtr1", address="127.0.0.1", username=USER, password=password,
                       known_hosts=known_hosts, port=port, timeout=10)


def svi_end(vlan: int, routing: str = "static") -> WanEnd:
    """A WAN end on an SVI: the only interface kind the fake switch addresses."""
    base = vlan % 60 * 4  # a /30 per VLAN: Vlan120 -> 10.30.255.0/30
    return WanEnd(
        link=f"hq-x{vlan}", host="fake-rtr1", interface=f"Vlan{vlan}", vlan=None, ifname=f"Vlan{vlan}",
        address=IPv4Interface(f"10.30.255.{base + 1}/30"),
        description=f"WAN BT-PNK-{vlan:04d} Bhutan Telecom 20M to talo eth0", mtu=1500, bandwidth_kbps=20_000,
        routing=routing, ospf_area=0, far_host="talo", far_address=IPv4Address(f"10.30.255.{base + 2}"),
        far_lan_prefixes=(IPv4Network(f"10.31.{vlan}.0/24"),),
    )


def supported(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith(FAKE_UNSUPPORTED)]


# --- the rendered config over plain netmiko ---------------------------------------------------------


def test_rendered_wan_config_lands_in_running_config(fake_ios: int) -> None:
    from netmiko import ConnectHandler

    lines = wan_config_lines("ios", [svi_end(120), svi_end(121, routing="ospf")])
    assert lines[:3] == ["router ospf 1", " auto-cost reference-bandwidth 10000", "exit"]
    # The fake refuses "router ospf 1", so the "exit" after it would leave configuration mode: skip it.
    lines = ["router ospf 1"] + lines[3:]
    conn = ConnectHandler(device_type="cisco_ios", host="127.0.0.1", port=fake_ios, username=USER,
                          password=PASSWORD, secret=ENABLE)
    try:
        conn.enable()
        assert conn.check_enable_mode()
        conn.config_mode()
        replies = {line: conn.send_command_timing(line, last_read=0.3) for line in lines}
        while conn.check_config_mode():  # the fake has no "end"
            conn.send_command_timing("exit", last_read=0.3)
        vlan120 = conn.send_command("show running-config interface Vlan120")
        vlan121 = conn.send_command("show running-config interface Vlan121")
        running = conn.send_command("show running-config")
    finally:
        conn.disconnect()

    rejected = {line for line, reply in replies.items() if "No such command" in reply}
    assert rejected == {"router ospf 1", " bandwidth 20000"}
    assert " description WAN BT-PNK-0120 Bhutan Telecom 20M to talo eth0" in vlan120.splitlines()
    assert " ip address 10.30.255.1 255.255.255.252" in vlan120.splitlines()
    assert " ip address 10.30.255.5 255.255.255.252" in vlan121.splitlines()
    assert "ip route 10.31.120.0 255.255.255.0 10.30.255.2" in running.splitlines()
    assert "ip route 10.31.121.0" not in running  # the OSPF end has no static route


# --- the driver -----------------------------------------------------------------------------------


def test_driver_for_ios_is_the_napalm_adapter_now(fake_ios: int) -> None:
    """IOS goes through NAPALM (dzops.execute.drivers.napalm); this merge driver is no longer registered."""
    from dzops.execute.drivers.napalm import Driver as NapalmDriver

    driver = driver_for("ios", credentials(fake_ios))
    assert isinstance(driver, NapalmDriver) and not isinstance(driver, Driver)


def test_open_enables_and_get_config_strips_preamble(fake_ios: int) -> None:
    with Driver(credentials(fake_ios), secret=ENABLE) as driver:
        assert driver.conn.check_enable_mode()
        config = driver.get_config()
    assert config.splitlines()[0] == "version 12.1"
    assert "hostname fake-rtr1" in config.splitlines()
    assert "Building configuration" not in config


def test_merge_adds_then_is_idempotent(fake_ios: int) -> None:
    all_lines = wan_config_lines("ios", [svi_end(130)])
    lines = supported(all_lines)
    with Driver(credentials(fake_ios), secret=ENABLE) as driver:
        before = driver.compare_config(lines)
        assert "interface Vlan130" in before.add and " ip address 10.30.255.41 255.255.255.252" in before.add
        merged = driver.load_merge_candidate(lines, checkpoint=False)  # no flash on the fake
        assert merged == before
        assert driver.compare_config(lines).empty
        assert driver.load_merge_candidate(lines, checkpoint=False).empty  # nothing left to send
        # What the fake dropped is exactly what compare_config still reports.
        assert driver.compare_config(all_lines).add == ("interface Vlan130", " bandwidth 20000")
        shown = driver.cli(["show running-config interface Vlan130"])["show running-config interface Vlan130"]
    assert " description WAN BT-PNK-0130 Bhutan Telecom 20M to talo eth0" in shown.splitlines()


def test_merge_stops_at_refused_line_and_leaves_config_mode(fake_ios: int) -> None:
    lines = ["interface Vlan140", " description before the error", "exit",
             "interface Nonexistent0/9", " description never", "exit"]
    with Driver(credentials(fake_ios), secret=ENABLE) as driver:
        with pytest.raises(DeviceError, match=r"Nonexistent0/9.*Invalid input"):
            driver.load_merge_candidate(lines, checkpoint=False)
        assert not driver.conn.check_config_mode()
        # IOS has no transaction: the lines before the error stay.
        assert " description before the error" in driver.get_config().splitlines()


def test_cli_raises_on_percent_error(fake_ios: int) -> None:
    with Driver(credentials(fake_ios), secret=ENABLE) as driver:
        with pytest.raises(DeviceError, match="Invalid input"):
            driver.cli(["show running-config interface Nonexistent0/9"])
        out = driver.cli(["show running-config interface GigabitEthernet0/1"])
    assert "interface GigabitEthernet0/1" in out["show running-config interface GigabitEthernet0/1"]


def test_save_config(fake_ios: int) -> None:
    with Driver(credentials(fake_ios), secret=ENABLE) as driver:
        driver.save_config()  # raises unless the device confirms with OK
        assert driver.conn.check_enable_mode()


def test_rollback_needs_a_checkpoint(fake_ios: int) -> None:
    with Driver(credentials(fake_ios), secret=ENABLE) as driver:
        with pytest.raises(DeviceError, match="no checkpoint"):
            driver.rollback(driver.get_config())


def test_wrong_password_is_authentication_failed(fake_ios: int) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationFailed, match="fake-rtr1"):
        Driver(credentials(fake_ios, password="wrong"), secret=ENABLE).open()
    assert time.monotonic() - started < 30


def test_wrong_enable_secret_is_authentication_failed(fake_ios: int) -> None:
    driver = Driver(credentials(fake_ios), secret="not-the-secret")
    with pytest.raises(AuthenticationFailed, match="enable"):
        driver.open()
    assert driver._conn is None  # the half-open session was closed


def test_closed_port_is_connection_failed() -> None:
    with pytest.raises(ConnectionFailed):
        Driver(credentials(free_port())).open()


def fake_host_key_line(port: int) -> str:
    from fake_switches.transports.ssh_service import getRSAKeys

    key_type, key_b64 = getRSAKeys()[0].split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {key_b64}\n"


def test_known_host_key_is_accepted(fake_ios: int, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(fake_host_key_line(fake_ios))
    with Driver(credentials(fake_ios, known_hosts=known), secret=ENABLE) as driver:
        assert "hostname fake-rtr1" in driver.get_config()


def test_changed_host_key_is_refused(fake_ios: int, tmp_path: Path) -> None:
    import paramiko

    other = paramiko.RSAKey.generate(2048)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{fake_ios} ssh-rsa {other.get_base64()}\n")
    with pytest.raises(HostKeyMismatch):
        Driver(credentials(fake_ios, known_hosts=known), secret=ENABLE).open()


def test_unknown_host_is_refused(fake_ios: int, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(fake_host_key_line(fake_ios + 1))  # a key for another port only
    with pytest.raises(HostKeyMismatch):
        Driver(credentials(fake_ios, known_hosts=known), secret=ENABLE).open()


def test_no_known_hosts_is_refused_before_connecting(fake_ios: int) -> None:
    creds = Credentials(host="fake-rtr1", address="127.0.0.1", username=USER, password=PASSWORD,
                        known_hosts=None, port=fake_ios, timeout=10)
    with pytest.raises(HostKeyMismatch, match="no known_hosts"):
        Driver(creds, secret=ENABLE).open()
