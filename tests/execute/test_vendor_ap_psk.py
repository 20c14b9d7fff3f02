"""provision-ap on an IOS autonomous AP twice: the second run leaves a WPA key the AP already holds alone.

dzops renders `wpa-psk ascii 0 KEY`; IOS never shows that back: with password encryption it shows
`wpa-psk ascii 7 HEX`. The "running" side here is a real autonomous AP's show-run (a Cisco 1140 on
IOS 12.4 JA, tests/fixtures/ios_ap/README.md), whose SSID `school` holds its key in that type 7
form. The candidate is read back against it by hier_config (a parser dzops does not own): for the
same key nothing of the SSID changes; for another key the key line changes, and what dzops shows
never holds either key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.execute.drivers.napalm import ApplyOutcome
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Device, Inventory, SsidProfile
from dzops.plan.candidates import candidate
from dzops.plan.remediation import hier_remediation

REPO = Path(__file__).resolve().parents[2]
RECORDED = (REPO / "tests" / "fixtures" / "ios_ap" / "show_running_config.txt").read_text()
# What the recorded `wpa-psk ascii 7 003716070C5A1C0D1C701E1D` holds (type 7 is reversible; decoded by hand
# with Cisco's published key table, independently of dzops' decoder).
RECORDED_KEY = "Seahawks123"
SSID = "dot11 ssid school"


@lru_cache(maxsize=1)
def sample() -> Inventory:
    return load_inventory(REPO / "inventory")


def recorded_ap(psk: str) -> tuple[Inventory, Device]:
    """The sample's first AP as the recorded IOS AP: SSID `school` on VLAN 1 with the given key."""
    inventory = sample()
    ap = next(d for d in inventory.devices.values() if d.function == "access_points")
    ap = ap.model_copy(update={"platform": "ios", "ssids": ("school",)})
    profile = SsidProfile(name="school", ssid="school", security="wpa2-psk", psk=SecretStr(psk), vlan=1)
    inventory = inventory.model_copy(update={"devices": inventory.devices | {ap.name: ap},
                                             "ssid_profiles": inventory.ssid_profiles | {"school": profile}})
    return inventory, ap


def section(config: str, header: str) -> str:
    """One top-level block and its indented lines, as IOS's `show running-config | section HEADER` prints it.

    The recorded file is read only this way: it also has `no shutdown` lines at column 0 under its
    interfaces (the form its owner kept it in), which no parser reads as one config.
    """
    lines = config.splitlines()
    start = lines.index(header)
    block = [header]
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        block.append(line)
    return "\n".join(block) + "\n"


def ssid_remediation(psk: str) -> list[str]:
    """hier_config's commands turning the recorded AP's `dot11 ssid school` into the candidate's."""
    inventory, ap = recorded_ap(psk)
    intended = candidate(inventory, ap, RECORDED, parts=["ap"])
    commands = hier_remediation(section(RECORDED, SSID), section(intended, SSID), save=False)
    return [line.strip() for line in commands if line.startswith(" ")]


def test_the_same_key_stored_encrypted_is_not_a_change() -> None:
    changes = ssid_remediation(RECORDED_KEY)
    # Counted, not listed: a failing assertion must not print a key.
    count, on_key = len(changes), sum("wpa-psk" in c for c in changes)
    assert count == 0, f"{count} change(s) to SSID school, {on_key} on its key"


def test_another_key_is_a_change_of_the_key_line_only() -> None:
    changes = ssid_remediation("Seahawks124")
    count = len(changes)
    assert count == 2, f"{count} change(s) to SSID school"
    assert sum(c.startswith("no wpa-psk ascii 7 ") for c in changes) == 1
    assert sum(c.startswith("wpa-psk ascii 0 ") and c.endswith(" Seahawks124") for c in changes) == 1


class RecordedAp:
    """dzops' adapter over the recorded AP: compare is hier_config's remediation of the SSID, apply commits nothing."""

    def __init__(self, creds: Credentials, seen: dict[str, Any]) -> None:
        self.creds, self.seen = creds, seen

    def open(self) -> None: ...

    def close(self) -> None: ...

    def get_config(self) -> str:
        return RECORDED

    def compare_config(self, intended: str) -> ConfigDiff:
        self.seen["candidate"] = intended
        return ConfigDiff(add=tuple(hier_remediation(section(RECORDED, SSID), section(intended, SSID), save=False)))

    def apply(self, intended: str, verify: Any, revert_in: int = 300) -> ApplyOutcome:
        raise AssertionError("check mode must not apply")


@pytest.mark.parametrize("psk, key_line_shown", [(RECORDED_KEY, False), ("Seahawks124", True)])
def test_provision_ap_check_on_the_recorded_ap(monkeypatch: pytest.MonkeyPatch, psk: str, key_line_shown: bool) -> None:
    import dzops.execute.drivers as drivers
    from dzops.execute.vendor_ap import provision_vendor_ap

    inventory, ap = recorded_ap(psk)
    # An AP straight on a router port: no switch port is part of this test.
    ap = ap.model_copy(update={"uplink": ap.uplink.model_copy(update={"switch": None, "router": "gewog-barp-rtr1"})})
    inventory = inventory.model_copy(update={"devices": inventory.devices | {ap.name: ap}})
    seen: dict[str, Any] = {}
    monkeypatch.setattr(drivers, "driver_for", lambda _platform, creds, **_o: RecordedAp(creds, seen))
    result = provision_vendor_ap(inventory, ap.name, check=True)
    assert result.error is None and result.status in ("ok", "changed")
    assert ("wpa-psk ascii 0 <removed>" in result.diff) is key_line_shown
    assert psk not in result.diff and RECORDED_KEY not in result.diff and "003716070C5A1C0D1C701E1D" not in result.diff
    # Unchanged key: the candidate carries the AP's own stored form and no key in clear.
    assert (" wpa-psk ascii 7 003716070C5A1C0D1C701E1D" in seen["candidate"].splitlines()) is not key_line_shown


# (type 7 as real configs show it, its clear text as the config's owner or another project's test suite states it)
TYPE7_PAIRS = [
    ("1511021F0725", "cisco"),  # Metasploit's Cisco config parser spec
    ("123A0C041104", "Cisco"),  # an autonomous AP's show-run, annotated "this password is: Cisco"
    ("091E5D584A0D20370E4D400C0D", "2s13hWEe!$FF"),  # a STIG checker's tests: the TACACS key they expect
]


@pytest.mark.parametrize("stored, clear", TYPE7_PAIRS)
def test_type7_decodes_as_others_decode_it(stored: str, clear: str) -> None:
    from dzops.plan.candidates import ios_type7_decode

    assert ios_type7_decode(stored) == clear


# A router's real show-run line: `radius-server host 10.0.1.2 auth-port 1812 acct-port 1813 key 7 151A0E0008257A767B`.
RADIUS_SHOWN = "radius-server host 10.0.1.2 auth-port 1812 acct-port 1813 key 7 151A0E0008257A767B"


@pytest.mark.parametrize("typed, kept", [
    ("radius-server host 10.0.1.2 auth-port 1812 acct-port 1813 key hello123", True),
    ("radius-server host 10.0.1.2 auth-port 1812 acct-port 1813 key hello124", False),  # another key
    ("radius-server host 10.0.1.3 auth-port 1812 acct-port 1813 key hello123", False),  # another server
])
def test_a_radius_key_shown_in_type_7_is_kept_in_its_stored_form(typed: str, kept: bool) -> None:
    from dzops.plan.candidates import ios_stored_secrets

    out = ios_stored_secrets(f"hostname ap1\n{typed}\nend\n", f"hostname ap1\n!\n{RADIUS_SHOWN}\n!\nend\n")
    assert (RADIUS_SHOWN in out.splitlines()) is kept
    assert (typed in out.splitlines()) is not kept
