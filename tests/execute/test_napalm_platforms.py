"""The platform table's capability columns are honest about the NAPALM drivers behind them, and an
operation a platform lacks is refused with one line naming both, before any driver is opened."""

from __future__ import annotations

import pytest
from napalm import get_network_driver
from napalm.base import NetworkDriver as NapalmBase

from dzops.execute.drivers.base import Credentials
from dzops.execute.drivers.napalm import Driver
from dzops.execute.drivers.protocols import check_driver, missing_methods
from dzops.platforms import PLATFORMS, refusal, refusals, supports

NAPALM_PLATFORMS = sorted(name for name, row in PLATFORMS.items() if row.napalm_driver)


def test_every_vendor_platform_of_the_issue_goes_through_napalm() -> None:
    assert {PLATFORMS[p].napalm_driver for p in NAPALM_PLATFORMS} == {"ios", "eos", "nxos_ssh", "junos", "ros"}


@pytest.mark.parametrize("platform", NAPALM_PLATFORMS)
def test_the_adapter_has_every_method_its_rows_promise(platform: str) -> None:
    assert missing_methods(Driver, platform) == []
    check_driver(Driver, platform)


@pytest.mark.parametrize("platform", NAPALM_PLATFORMS)
def test_napalm_really_implements_the_getters_the_row_lists(platform: str) -> None:
    """A getter NAPALM's base class leaves as NotImplementedError must not be in the row."""
    napalm_class = get_network_driver(PLATFORMS[platform].napalm_driver)
    for getter in PLATFORMS[platform].getters:
        assert getattr(napalm_class, getter) is not getattr(NapalmBase, getter), f"{platform}: {getter}"


def test_platforms_without_commit_confirm_are_those_whose_napalm_driver_refuses_revert_in() -> None:
    """NAPALM's own code is run (no device needed): nxos_ssh refuses revert_in outright, napalm-ros
    refuses it together with a replace. The rows say commit_confirm=False for exactly these."""
    from napalm.base.exceptions import CommitConfirmException

    nxos = get_network_driver("nxos_ssh")("192.0.2.1", "u", "p")
    with pytest.raises(NotImplementedError):
        nxos.commit_config(revert_in=60)

    ros_class = get_network_driver("ros")

    class NothingPending(ros_class):  # type: ignore[misc, valid-type]
        def has_pending_commit(self) -> bool:
            return False

    ros = NothingPending("192.0.2.2", "u", "p")
    ros.load_replace_candidate(config="/system identity set name=r1\n")
    with pytest.raises(CommitConfirmException, match="not supported with a replace"):
        ros.commit_config(revert_in=60)

    assert {p for p in NAPALM_PLATFORMS if not PLATFORMS[p].commit_confirm} == {"nxos_ssh", "routeros"}


def test_a_driver_missing_a_promised_method_is_caught() -> None:
    class MergeOnly:
        def load_merge_candidate(self, lines: list[str]) -> None: ...

        def get_config(self) -> str:
            return ""

    with pytest.raises(TypeError, match="platform ios but lacks compare_config, load_replace_candidate, rollback"):
        check_driver(MergeOnly, "ios")


@pytest.mark.parametrize(("platform", "operation", "line"), [
    ("ios", "config_replace", None),
    ("ios", "commit_confirm", None),
    ("routeros", "commit_confirm", "r1: platform routeros has no commit-confirm: refused before connecting"),
    ("nxos_ssh", "commit_confirm", "r1: platform nxos_ssh has no commit-confirm: refused before connecting"),
    ("frr", "get_lldp_neighbors_detail",
     "r1: platform frr has no get_lldp_neighbors_detail: refused before connecting"),
    ("cumulus", "config_replace", "r1: platform cumulus has no config replace: refused before connecting"),
    ("debian", "get_config", "r1: platform debian has no get_config: refused before connecting"),
    ("vyos", "get_config", "r1: platform vyos is unknown: refused before connecting"),
])
def test_refusal_is_one_line_naming_platform_and_operation(platform: str, operation: str, line: str | None) -> None:
    assert refusal(platform, operation, host="r1") == line  # type: ignore[arg-type]
    assert supports(platform, operation) is (line is None)  # type: ignore[arg-type]
    if line:
        assert "\n" not in line and platform in line


def test_refusals_name_only_the_hosts_that_lack_an_operation() -> None:
    found = refusals({"hq": "frr", "talo": "ios", "mk": "routeros"}, ("config_replace", "commit_confirm"))
    assert found == {"hq": "hq: platform frr has no commit-confirm: refused before connecting",
                     "mk": "mk: platform routeros has no commit-confirm: refused before connecting"}


def test_an_operation_the_platform_lacks_is_refused_before_the_device_is_opened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The adapter checks the row before calling NAPALM: no session is needed to be refused."""
    from dzops.exceptions import DeviceError

    known = tmp_path / "known_hosts"
    known.write_text("")
    driver = Driver(Credentials("sw1", "192.0.2.9", "dzops", "x", known_hosts=known), platform="nxos_ssh")
    with pytest.raises(DeviceError, match="sw1: platform nxos_ssh has no commit-confirm"):
        driver.commit_replace("hostname sw1\n", revert_in=300)
    assert driver.device is None


@pytest.mark.parametrize("platform", sorted(name for name, row in PLATFORMS.items() if row.netmiko_device_type))
def test_every_registered_driver_has_what_its_row_promises(platform: str) -> None:
    """driver_for checks each class against its row; every network platform's must pass."""
    from dzops.execute.drivers import driver_for

    known = Credentials("r1", "192.0.2.1", "dzops", "x")
    driver = driver_for(platform, known)
    assert missing_methods(type(driver), platform) == []
    if PLATFORMS[platform].napalm_driver:
        assert isinstance(driver, Driver) and driver.platform == platform
