"""NAPALM's ios and napalm-ros' ros drivers through dzops' adapter, against RECORDED output of real devices.

No device of either kind runs here. The replies below are the real outputs NAPALM and napalm-ros keep
in their own test suites (tests/fixtures/napalm/README.md names each source), replayed the way those
suites replay them: an IOS session answers each command with its recorded text, a RouterOS API
answers each path with its recorded rows. The vendor driver code that parses them is NAPALM's own,
unmodified; what is proven is that dzops' adapter drives it and hands back what NAPALM's own tests
expect, and that the configs it returns pass through dzops' scrubber like every other platform's.

The provisioning transaction (commit-confirm, verify, confirm or roll back) is driven through
NAPALM's `mock` driver: it proves dzops' order of calls, not any device's behaviour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from napalm.base.mock import MockDriver
from napalm.ios.ios import IOSDriver
from napalm_ros.ros import ROSDriver

from dzops.exceptions import DeviceError, HostKeyMismatch
from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.napalm import Driver
from dzops.scrub import scrub, syntax_for

FIXTURES = Path(__file__).parents[1] / "fixtures" / "napalm"


def sanitized(command: str) -> str:
    """File name of a recorded reply, as NAPALM's test doubles name them."""
    return re.sub("[^a-zA-Z0-9]", "_", command)[:150]


class RecordedIosSession:
    """netmiko's send_command answered from one recorded test case; an unrecorded command fails loudly."""

    def __init__(self, case: Path) -> None:
        self.case = case
        self.sent: list[str] = []

    def send_command(self, command: str, **_kwargs: Any) -> str:
        self.sent.append(command)
        path = self.case / f"{sanitized(command)}.txt"
        if not path.is_file():
            raise OSError(f"no recorded reply for {command!r} in {self.case.name}")
        return path.read_text()

    def disconnect(self) -> None: ...


class RecordedRosApi:
    """librouteros' Api answered from recorded rows (`{"data": [...]}` per path)."""

    def __init__(self, case: Path) -> None:
        self.case = case

    def _rows(self, command: str) -> list[dict[str, Any]]:
        path = self.case / f"{sanitized(command)}.json"
        if not path.is_file():
            raise OSError(f"no recorded reply for {command!r} in {self.case.name}")
        rows: list[dict[str, Any]] = json.loads(path.read_text())["data"]
        return rows

    def __call__(self, command: str, **_kwargs: Any) -> Iterator[dict[str, Any]]:
        yield from self._rows(command)

    def rawCmd(self, command: str, *_words: str) -> Iterator[dict[str, Any]]:  # noqa: N802 (librouteros' name)
        yield from self._rows(command)

    def path(self, *path: str) -> Any:
        from librouteros.api import Path as ApiPath

        return ApiPath(path="", api=self).join(*path)

    def close(self) -> None: ...


class RecordedSsh:
    """paramiko's exec_command answered from recorded stdout/stderr files."""

    def __init__(self, case: Path) -> None:
        self.case = case

    def connect(self, *_args: Any, **_kwargs: Any) -> None: ...

    def exec_command(self, command: str) -> tuple[Any, Any, Any]:
        from io import BytesIO

        name = sanitized(command)
        out = (self.case / f"ssh_exec_{name}_stdout").read_bytes()
        err = (self.case / f"ssh_exec_{name}_stderr").read_bytes()
        return BytesIO(), BytesIO(out), BytesIO(err)

    def close(self) -> None: ...


def replaying_ios(case: Path) -> type:
    class ReplayedIOS(IOSDriver):
        def open(self) -> None:
            self.device = RecordedIosSession(case)

    return ReplayedIOS


def replaying_ros(case: Path) -> type:
    class ReplayedROS(ROSDriver):
        def open(self) -> None:
            self.api = RecordedRosApi(case)

    return ReplayedROS


@pytest.fixture()
def creds(tmp_path: Path) -> Credentials:
    known = tmp_path / "known_hosts"
    known.write_text("")  # present (the adapter refuses without one); the replays open no SSH session
    return Credentials(host="rec1", address="192.0.2.1", username="dzops", password="not-used", known_hosts=known)


def expected(platform: str, getter: str) -> Any:
    return json.loads((FIXTURES / platform / getter / "expected_result.json").read_text())


# --- IOS getters against NAPALM's recorded real IOS output ---------------------------------------------

@pytest.mark.parametrize("getter", ["get_facts", "get_interfaces_ip", "get_lldp_neighbors_detail"])
def test_ios_getters_return_what_napalm_expects_from_the_recorded_output(getter: str, creds: Credentials) -> None:
    case = FIXTURES / "ios" / getter
    with Driver(creds, platform="ios", napalm_class=replaying_ios(case)) as driver:
        result = getattr(driver, getter)()
    assert json.loads(json.dumps(result)) == expected("ios", getter)
    assert result  # the recorded devices do have facts, addresses and neighbours


def test_ios_get_facts_reads_the_recorded_commands(creds: Credentials) -> None:
    case = FIXTURES / "ios" / "get_facts"
    with Driver(creds, platform="ios", napalm_class=replaying_ios(case)) as driver:
        facts = driver.get_facts()
        sent = driver.device.device.sent
    assert facts["hostname"] == expected("ios", "get_facts")["hostname"]
    assert "show version" in sent


def test_ios_running_config_is_scrubbed_like_every_platform(creds: Credentials) -> None:
    case = FIXTURES / "ios" / "get_config"
    with Driver(creds, platform="ios", napalm_class=replaying_ios(case)) as driver:
        running = driver.get_config()
    assert running == expected("ios", "get_config")["running"]
    assert "enable password cisco" in running  # the recorded router really carries these secrets
    assert "username cisco privilege 15 password 0 cisco" in running
    clean = scrub(running, syntax_for("ios"))
    assert "enable password cisco" not in clean and "password 0 cisco" not in clean
    assert "hostname CSR1" in clean.splitlines()


def test_an_unrecorded_command_is_a_device_error_for_that_host(creds: Credentials, tmp_path: Path) -> None:
    empty = tmp_path / "empty-case"
    empty.mkdir()
    with Driver(creds, platform="ios", napalm_class=replaying_ios(empty)) as driver:
        with pytest.raises(DeviceError, match="rec1: get_facts failed"):
            driver.get_facts()


# --- RouterOS getters against napalm-ros' recorded real API replies -------------------------------------

@pytest.mark.parametrize("getter", ["get_facts", "get_interfaces_ip", "get_lldp_neighbors_detail"])
def test_ros_getters_return_what_napalm_ros_expects_from_the_recorded_replies(getter: str, creds: Credentials) -> None:
    case = FIXTURES / "ros" / getter
    with Driver(creds, platform="routeros", napalm_class=replaying_ros(case)) as driver:
        result = getattr(driver, getter)()
    assert json.loads(json.dumps(result)) == expected("ros", getter)
    assert result


def test_ros_export_ssh_session_refuses_unknown_host_keys(creds: Credentials) -> None:
    """napalm-ros' own SSH client adds unknown host keys; the adapter swaps it for one that refuses them."""
    import paramiko

    with Driver(creds, platform="routeros", napalm_class=replaying_ros(FIXTURES / "ros" / "get_config")) as driver:
        ssh = driver.device.ssh
        assert isinstance(ssh, paramiko.SSHClient)
        assert isinstance(ssh._policy, paramiko.RejectPolicy)


def test_ros_running_config_from_recorded_export(creds: Credentials) -> None:
    case = FIXTURES / "ros" / "get_config"
    with Driver(creds, platform="routeros", napalm_class=replaying_ros(case)) as driver:
        driver.device.ssh = RecordedSsh(case)  # RouterOS 7.4 exports over SSH (7.13+ over the API)
        running = driver.get_config()
    assert running == expected("ros", "get_config")["running"]
    assert "/ip address add address=1.1.1.1/24 interface=ether1" in running


def test_ros_compare_config_is_computed_against_the_recorded_export(creds: Credentials) -> None:
    """napalm-ros diffs locally (librouteros' compare): the running side is the recorded export."""
    case = FIXTURES / "ros" / "get_config"
    candidate = ("/interface bridge auto-mac=yes name=bridge\n"
                 "/ip address add address=10.30.255.6/30 interface=ether1 comment=\"WAN to hq\"\n")
    with Driver(creds, platform="routeros", napalm_class=replaying_ros(case)) as driver:
        driver.device.ssh = RecordedSsh(case)
        diff = driver.compare_config(candidate)
    assert diff.add == ('/ip address add address=10.30.255.6/30 interface=ether1 comment="WAN to hq"',)
    assert '/ip address add address=1.1.1.1/24 interface=ether1 comment="some comment with spaces"' in diff.remove
    assert "/interface bridge auto-mac=yes name=bridge" not in diff.add + diff.remove


def test_no_known_hosts_refuses_ros_before_connecting(tmp_path: Path) -> None:
    creds = Credentials(host="mk1", address="192.0.2.2", username="dzops", password="x", known_hosts=None)
    driver = Driver(creds, platform="routeros", napalm_class=replaying_ros(FIXTURES / "ros" / "get_facts"))
    with pytest.raises(HostKeyMismatch, match="mk1: no known_hosts"):
        driver.open()
    assert driver.device is None


@pytest.mark.parametrize("platform", ["eos", "junos"])
def test_drivers_without_an_identity_check_are_refused_unless_the_inventory_accepts_it(
        platform: str, creds: Credentials) -> None:
    with pytest.raises(HostKeyMismatch, match=f"NAPALM's {platform} driver cannot check"):
        Driver(creds, platform=platform).open()


# --- the provisioning transaction, driven through NAPALM's mock driver ----------------------------------

DIFF = "!Contextual Config Diffs:\ninterface GigabitEthernet0/1\n +description WAN to hq\n"


def mock_dir(tmp_path: Path, diff: str = DIFF) -> Path:
    path = tmp_path / "mock"
    path.mkdir()
    for name in ("load_replace_candidate", "commit_config", "confirm_commit", "discard_config"):
        (path / f"{name}.1").write_text("{}")
    (path / "compare_config.1").write_text(json.dumps({"diff": diff}))
    return path


def mocked(creds: Credentials, platform: str, path: Path) -> Driver:
    class Mock(MockDriver):
        def __init__(self, hostname: str, username: str, password: str, timeout: int = 60,
                     optional_args: dict[str, Any] | None = None) -> None:
            super().__init__(hostname, username, password, timeout, {"path": str(path)})

    return Driver(creds, platform=platform, napalm_class=Mock)


def test_apply_commits_with_revert_timer_then_confirms_after_verification(creds: Credentials, tmp_path: Path) -> None:
    with mocked(creds, "ios", mock_dir(tmp_path)) as driver:
        outcome = driver.apply("hostname r1\n", verify=lambda: None, revert_in=300)
        calls = dict(driver.device.calls)
        pending = driver.device.has_pending_commit()
    assert outcome.committed and outcome.confirmed and not outcome.rolled_back
    assert outcome.diff.add == ("interface GigabitEthernet0/1", " description WAN to hq")
    assert calls["commit_config"] == 1 and calls["confirm_commit"] == 1
    assert not pending


def test_apply_rolls_back_when_verification_fails(creds: Credentials, tmp_path: Path) -> None:
    with mocked(creds, "ios", mock_dir(tmp_path)) as driver:
        outcome = driver.apply("hostname r1\n", verify=lambda: "OSPF to hq not Full", revert_in=300)
        calls = dict(driver.device.calls)
        pending = driver.device.has_pending_commit()
    assert outcome.rolled_back and not outcome.confirmed and outcome.reason == "OSPF to hq not Full"
    assert "confirm_commit" not in calls
    assert not pending  # NAPALM's rollback of a pending commit-confirm reverts it now


def test_apply_on_routeros_commits_without_revert_timer(creds: Credentials, tmp_path: Path) -> None:
    """napalm-ros refuses revert_in with a replace: the platform row says so and apply obeys it."""
    with mocked(creds, "routeros", mock_dir(tmp_path)) as driver:
        outcome = driver.apply("/system identity set name=r1\n", verify=lambda: None, revert_in=300)
        calls = dict(driver.device.calls)
    assert outcome.confirmed and "confirm_commit" not in calls and calls["commit_config"] == 1


def test_apply_with_nothing_to_change_commits_nothing(creds: Credentials, tmp_path: Path) -> None:
    with mocked(creds, "ios", mock_dir(tmp_path, diff="")) as driver:
        outcome = driver.apply("hostname r1\n", verify=lambda: "never asked", revert_in=300)
        calls = dict(driver.device.calls)
    assert outcome.diff.empty and outcome.confirmed and not outcome.committed
    assert "commit_config" not in calls and calls["discard_config"] == 1


def test_commit_confirm_is_refused_where_the_platform_lacks_it_before_loading(creds: Credentials,
                                                                              tmp_path: Path) -> None:
    with mocked(creds, "nxos_ssh", mock_dir(tmp_path)) as driver:
        with pytest.raises(DeviceError, match="rec1: platform nxos_ssh has no commit-confirm"):
            driver.commit_replace("hostname r1\n", revert_in=300)
        assert "load_replace_candidate" not in driver.device.calls


def test_ros_ping_reads_the_recorded_api_reply(creds: Credentials) -> None:
    """provision-wan's ping check on RouterOS is napalm-ros' ping: answered here by a recorded v7 reply."""
    case = FIXTURES / "ros" / "ping"
    with Driver(creds, platform="routeros", napalm_class=replaying_ros(case)) as driver:
        assert driver.ping("8.8.8.8") is True
    assert expected("ros", "ping")["success"]["packet_loss"] < expected("ros", "ping")["success"]["probes_sent"]


# --- discovery from NAPALM getters (the shapes dzops.execute.discover keeps) ----------------------------

@pytest.mark.parametrize("platform", ["ios", "ros"])
def test_discovery_shapes_from_recorded_getter_output(platform: str) -> None:
    from dzops.execute.drivers.napalm import discovery_facts, discovery_interfaces, discovery_lldp

    lldp = discovery_lldp(expected(platform, "get_lldp_neighbors_detail"))
    interfaces = discovery_interfaces({}, expected(platform, "get_interfaces_ip"))
    facts = discovery_facts(expected(platform, "get_facts"))
    if platform == "ios":
        assert lldp == [("FastEthernet4", "twb-sf-hpsw1", "15")]
        assert interfaces["Vlan20"][1] == ["172.29.50.3/27", "2002::1/64"]  # the link-local address is left out
        assert facts["vendor"] == "Cisco" and facts["uptime_seconds"] and facts["serial"]
    else:
        assert ("ether3", "sw", "ether1") in lldp
        assert all(addresses for _, addresses, _ in interfaces.values())
        assert facts["vendor"] == "MikroTik" and facts["uptime_seconds"] == 90


def test_ios_discovery_through_napalm_getters_on_recorded_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """discover on an IOS device: NAPALM's getters replayed from one recorded router's outputs.

    `show interfaces` (get_interfaces) is not among the recordings: that getter fails for the device,
    is kept as a warning, and discovery goes on with the others, as it does for a command on FRR.
    """
    import shutil

    import dzops.execute.drivers as drivers
    from dzops.execute.discover import discover_device
    from dzops.inventory.loader import load_inventory

    case = tmp_path / "ios-router"
    case.mkdir()
    for getter in ("get_facts", "get_interfaces_ip", "get_lldp_neighbors_detail"):
        for path in (FIXTURES / "ios" / getter).glob("*.txt"):
            shutil.copy(path, case / path.name)
    known = tmp_path / "known_hosts"
    known.write_text("")
    real = drivers.driver_for

    def driver_for(platform: str, creds: Credentials, **options: Any) -> Any:
        return real(platform, replace(creds, known_hosts=known), napalm_class=replaying_ios(case), **options)

    monkeypatch.setattr(drivers, "driver_for", driver_for)
    inventory = load_inventory(Path(__file__).resolve().parents[2] / "inventory")
    router = next(d for d in inventory.devices.values() if d.function == "routers")
    found = discover_device(inventory, router.model_copy(update={"platform": "ios"}))
    assert found.status == "ok", found.error
    assert [(n.interface, n.system, n.port) for n in found.lldp] == [("FastEthernet4", "twb-sf-hpsw1", "15")]
    assert found.interfaces["Vlan20"].addresses == ["172.29.50.3/27", "2002::1/64"]
    assert found.facts["vendor"] == "Cisco" and found.facts["os_version"]
    assert any("get_interfaces failed" in w for w in found.warnings)
