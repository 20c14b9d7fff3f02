"""NAPALM's ios driver through dzops' adapter against a LIVE SSH peer: a fake-switches Cisco IOS on 127.0.0.1.

Proven here against running software (fake-switches 1.5.0, model cisco_2960_24TT_L):
- opening through NAPALM (netmiko cisco_ios, enable with the secret) with host keys checked against
  the inventory's known_hosts only: known key accepted, changed or unknown key refused, no file refused
  before connecting; a wrong password is AuthenticationFailed;
- `get_config` (NAPALM reads `show running-config` and strips its header) and `cli`, with `% ` replies raised;
- a replace where the device has no file system: NAPALM's ios driver needs `dir` (file system
  autodetection), SCP to flash, `show archive config differences` and `configure replace`. The fake
  answers `dir` with "No such command", so compare_config and load_replace_candidate end in one
  DeviceError for this host, with nothing changed on it.

NOT provable here (fake-switches lacks the commands; see test_napalm_recorded.py for what is proven
against recorded real output instead): get_facts (`show interfaces` crashes the fake's session),
get_interfaces_ip, get_lldp_neighbors_detail, the replace itself, commit-confirm and rollback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dzops.exceptions import AuthenticationFailed, DeviceError, HostKeyMismatch
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.napalm import Driver
from tests.execute.test_ios_fake_switch import (  # noqa: F401  (fake_ios is a fixture)
    ENABLE,
    PASSWORD,
    USER,
    credentials,
    fake_host_key_line,
    fake_ios,
)


def napalm_ios(creds: Credentials) -> Driver:
    return Driver(creds, platform="ios", secret=ENABLE)


def test_get_config_over_napalm_is_the_running_config(fake_ios: int) -> None:  # noqa: F811
    with napalm_ios(credentials(fake_ios)) as driver:
        config = driver.get_config()
        assert driver.device.device.check_enable_mode()  # NAPALM entered enable with the secret
    lines = config.splitlines()
    assert "hostname fake-rtr1" in lines
    assert "interface FastEthernet0/1" in lines
    assert not any(line.startswith(("Building configuration", "Current configuration")) for line in lines)


def test_cli_returns_replies_and_raises_on_percent_errors(fake_ios: int) -> None:  # noqa: F811
    with napalm_ios(credentials(fake_ios)) as driver:
        version = driver.cli(["show version"])["show version"]
        assert "Cisco IOS Software" in version
        with pytest.raises(DeviceError, match="Invalid input"):
            driver.cli(["show running-config interface Nonexistent0/9"])


def test_replace_without_a_file_system_is_one_device_error_and_changes_nothing(fake_ios: int) -> None:  # noqa: F811
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


def test_wrong_password_is_authentication_failed(fake_ios: int) -> None:  # noqa: F811
    with pytest.raises(AuthenticationFailed, match="fake-rtr1"):
        napalm_ios(credentials(fake_ios, password="wrong")).open()


def test_changed_host_key_is_refused(fake_ios: int, tmp_path: Path) -> None:  # noqa: F811
    import paramiko

    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{fake_ios} ssh-rsa {paramiko.RSAKey.generate(2048).get_base64()}\n")
    with pytest.raises(HostKeyMismatch, match="fake-rtr1"):
        napalm_ios(credentials(fake_ios, known_hosts=known)).open()


def test_unknown_host_is_refused(fake_ios: int, tmp_path: Path) -> None:  # noqa: F811
    known = tmp_path / "known_hosts"
    known.write_text(fake_host_key_line(fake_ios + 1))
    with pytest.raises(HostKeyMismatch):
        napalm_ios(credentials(fake_ios, known_hosts=known)).open()


def test_no_known_hosts_is_refused_before_connecting(fake_ios: int) -> None:  # noqa: F811
    creds = Credentials(host="fake-rtr1", address="127.0.0.1", username=USER, password=PASSWORD,
                        known_hosts=None, port=fake_ios, timeout=10)
    driver = napalm_ios(creds)
    with pytest.raises(HostKeyMismatch, match="no known_hosts"):
        driver.open()
    assert driver.device is None
