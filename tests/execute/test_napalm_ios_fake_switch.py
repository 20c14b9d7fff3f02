"""Cisco IOS through NAPALM's ios driver and dzops' adapter against a LIVE SSH peer: fake-switches on 127.0.0.1.

The only IOS-speaking software that runs here is fake-switches (1.5.0, model cisco_2960_24TT_L, a
Catalyst *switch* simulator). What it proves, measured with this module:
- opening through NAPALM (netmiko cisco_ios, enable with the secret) with host keys checked against
  the inventory's known_hosts only: known key accepted, changed or unknown key refused, no file refused
  before connecting; a wrong password or enable secret is AuthenticationFailed, a closed port
  ConnectionFailed;
- `get_config` (NAPALM reads `show running-config` and strips its header) and `cli`, with `% ` replies raised;
- dzops' IOS WAN template, typed over the netmiko session NAPALM uses, lands in the running config
  as rendered: read back through the adapter's get_config and parsed by hier_config (a parser dzops
  does not own), each rendered interface and route is there with its lines, and nothing else is;
- a replace where the device has no file system: NAPALM's ios driver needs `dir` (file system
  autodetection), SCP to flash, `show archive config differences` and `configure replace`. The fake
  answers `dir` with "No such command", so compare_config and load_replace_candidate end in one
  DeviceError for this host, with nothing changed on it.

What the fake does with the template's lines: `interface VlanN`, `description`, `ip address` on an
SVI, `ip route`, `no shutdown`, `exit` are taken and shown; `ip ospf network point-to-point`,
`ip ospf 1 area 0` and `ip ospf cost` are taken silently and never shown; `router ospf 1`,
`bandwidth`, `mtu`, `encapsulation dot1Q` and `end` are refused ("No such command"); sub-interfaces
and unknown ports "% Invalid input"; `ip address` on a physical port crashes the session (its ports
are layer 2 only).

NOT provable here (fake-switches lacks the commands; see test_napalm_recorded.py for what is proven
against recorded real output instead): get_facts (`show interfaces` crashes the fake's session),
get_interfaces_ip, get_lldp_neighbors_detail, merge (SCP to flash), the replace itself,
commit-confirm and rollback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest
from hier_config import Platform, get_hconfig

from dzops.exceptions import AuthenticationFailed, ConnectionFailed, DeviceError, HostKeyMismatch
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.napalm import Driver
from dzops.plan.candidates import ios_candidate_text
from dzops.plan.vendor import wan_config_lines
from dzops.plan.wan import WanEnd

SERVER = Path(__file__).with_name("fake_ios_server.py")
USER, PASSWORD, ENABLE = "netadmin", "Fake-pass-1", "Fake-enable-1"  # throwaway test-only credentials
# Lines of our templates that the fake switch answers with "No such command" (see the docstring).
FAKE_UNSUPPORTED = ("router ospf", " bandwidth ", " mtu ", " encapsulation ")
# Lines the fake takes without a word and never shows.
FAKE_SILENT = (" ip ospf ",)


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


def fake_host_key_line(port: int) -> str:
    from fake_switches.transports.ssh_service import getRSAKeys

    key_type, key_b64 = getRSAKeys()[0].split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {key_b64}\n"


def napalm_ios(creds: Credentials) -> Driver:
    return Driver(creds, platform="ios", secret=ENABLE)


def test_get_config_over_napalm_is_the_running_config(fake_ios: int) -> None:
    with napalm_ios(credentials(fake_ios)) as driver:
        config = driver.get_config()
        assert driver.device.device.check_enable_mode()  # NAPALM entered enable with the secret
    lines = config.splitlines()
    assert "hostname fake-rtr1" in lines
    assert "interface FastEthernet0/1" in lines
    assert not any(line.startswith(("Building configuration", "Current configuration")) for line in lines)


def test_the_netmiko_session_runs_with_nagle_off(fake_ios: int) -> None:
    """netmiko's own socket would hold each small write of the CLI dialogue for the last one's ACK."""
    with napalm_ios(credentials(fake_ios)) as driver:
        sock = driver.device.device.remote_conn.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_cli_returns_replies_and_raises_on_percent_errors(fake_ios: int) -> None:
    with napalm_ios(credentials(fake_ios)) as driver:
        version = driver.cli(["show version"])["show version"]
        assert "Cisco IOS Software" in version
        with pytest.raises(DeviceError, match="Invalid input"):
            driver.cli(["show running-config interface Nonexistent0/9"])


def test_replace_without_a_file_system_is_one_device_error_and_changes_nothing(fake_ios: int) -> None:
    candidate = "hostname fake-rtr1\ninterface Vlan150\n description never applied\n!\nend\n"
    with napalm_ios(credentials(fake_ios)) as driver:
        before = driver.get_config()
        with pytest.raises(DeviceError, match="fake-rtr1: .*load_replace_candidate failed"):
            driver.compare_config(candidate)
        with pytest.raises(DeviceError, match="fake-rtr1: "):
            driver.load_replace_candidate(candidate)
    with napalm_ios(credentials(fake_ios)) as driver:
        assert driver.get_config() == before
        assert "Vlan150" not in driver.get_config()


def test_wrong_password_is_authentication_failed(fake_ios: int) -> None:
    with pytest.raises(AuthenticationFailed, match="fake-rtr1"):
        napalm_ios(credentials(fake_ios, password="wrong")).open()


def test_changed_host_key_is_refused(fake_ios: int, tmp_path: Path) -> None:
    import paramiko

    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{fake_ios} ssh-rsa {paramiko.RSAKey.generate(2048).get_base64()}\n")
    with pytest.raises(HostKeyMismatch, match="fake-rtr1"):
        napalm_ios(credentials(fake_ios, known_hosts=known)).open()


def test_unknown_host_is_refused(fake_ios: int, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(fake_host_key_line(fake_ios + 1))
    with pytest.raises(HostKeyMismatch):
        napalm_ios(credentials(fake_ios, known_hosts=known)).open()


def test_no_known_hosts_is_refused_before_connecting(fake_ios: int) -> None:
    creds = Credentials(host="fake-rtr1", address="127.0.0.1", username=USER, password=PASSWORD,
                        known_hosts=None, port=fake_ios, timeout=10)
    driver = napalm_ios(creds)
    with pytest.raises(HostKeyMismatch, match="no known_hosts"):
        driver.open()
    assert driver.device is None


def test_driver_for_ios_is_the_napalm_adapter(fake_ios: int) -> None:
    assert isinstance(driver_for("ios", credentials(fake_ios)), Driver)


def test_rendered_wan_template_lands_as_rendered(fake_ios: int) -> None:
    """The WAN template typed over NAPALM's own netmiko session, read back by the adapter, parsed by hier_config."""
    rendered = wan_config_lines("ios", [svi_end(120), svi_end(121, routing="ospf")])
    assert rendered[:3] == ["router ospf 1", " auto-cost reference-bandwidth 10000", "exit"]
    typed = rendered[3:]  # the fake has no `router ospf`: its block would leave configuration mode
    with napalm_ios(credentials(fake_ios)) as driver:
        session = driver.device.device  # the netmiko connection NAPALM opened (enable, host key checked)
        session.config_mode()
        replies = {line: session.send_command_timing(line, last_read=0.3) for line in typed}
        while session.check_config_mode():  # the fake has no `end`
            session.send_command_timing("exit", last_read=0.3)
        running = get_hconfig(Platform.CISCO_IOS, driver.get_config())
    refused = {line for line, reply in replies.items() if "No such command" in reply or "% " in reply}
    assert refused == {" bandwidth 20000"}
    intended = get_hconfig(Platform.CISCO_IOS, ios_candidate_text("\n".join(supported(typed))))
    compared = 0
    for block in intended.children:
        shown = running.get_child(equals=block.text)
        assert shown is not None, f"{block.text!r} not in the running config"
        want = {c.text for c in block.children if not c.text.startswith(FAKE_SILENT[0].strip())}
        assert {c.text for c in shown.children} == want, block.text
        compared += 1
    assert compared == 3  # two interfaces and the static route of the static end
    assert running.get_child(equals="ip route 10.31.121.0 255.255.255.0 10.30.255.6") is None  # OSPF end: no route


def test_wrong_enable_secret_is_authentication_failed(fake_ios: int) -> None:
    driver = Driver(credentials(fake_ios), platform="ios", secret="not-the-secret")
    with pytest.raises(AuthenticationFailed, match="fake-rtr1"):
        driver.open()
    assert driver.device is None


def test_closed_port_is_connection_failed() -> None:
    with pytest.raises(ConnectionFailed, match="fake-rtr1"):
        napalm_ios(credentials(free_port())).open()
