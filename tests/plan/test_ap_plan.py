"""AP plan: SSID files, vendor AP configs and uplink trunks (golden files), masking, scope.

Golden files hold the MASKED rendering (a PSK never lands in the repository's fixtures); a
separate test checks the unmasked files carry the real secrets for the device.
`DZOPS_UPDATE_GOLDEN=1 pytest tests/plan/test_ap_plan.py` rewrites them; review line by line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from dzops.exceptions import InventoryError, UsageError
from dzops.inventory.models import Interface, Inventory, Radio, Radius, SsidProfile, Vlan
from dzops.plan import ap

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
UPDATE = os.environ.get("DZOPS_UPDATE_GOLDEN") == "1"
SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
AP = "gewog-talo-ap1"
FAKE = {"staff": "staff-secret-psk-1", "guest": "guest-secret-psk-2", "iot": "iot-sae-secret-3",
        "campus": "radius-shared-secret-4"}


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    """The sample with test secrets and two more profiles: WPA3-SAE hidden on 5 GHz, WPA2-Enterprise."""
    from dzops.inventory.loader import load_inventory

    inv = load_inventory(SAMPLE)
    profiles = {
        "staff": inv.ssid_profiles["staff"].model_copy(update={"psk": SecretStr(FAKE["staff"])}),
        "guest": inv.ssid_profiles["guest"].model_copy(update={"psk": SecretStr(FAKE["guest"])}),
        "iot": SsidProfile(name="iot", ssid="Punakha-IoT", security="wpa3-sae", psk=SecretStr(FAKE["iot"]),
                           vlan=30, hidden=True, band="5ghz"),
        "campus": SsidProfile(name="campus", ssid="Punakha-Campus", security="wpa2-enterprise", vlan=40,
                              radius=Radius(server="10.30.1.20", secret=SecretStr(FAKE["campus"]))),
    }
    vlans = {**inv.vlans, 30: Vlan(id=30, name="iot"), 40: Vlan(id=40, name="campus")}
    return inv.model_copy(update={"ssid_profiles": profiles, "vlans": vlans})


def with_ap(inv: Inventory, **changes: object) -> Inventory:
    devices = dict(inv.devices)
    devices[AP] = devices[AP].model_copy(update=changes)
    return inv.model_copy(update={"devices": devices})


FOUR_RADIOS = {name: Interface() for name in ("eth0", "wlan0", "wlan1", "wlan2", "wlan3")}
CASES: dict[str, dict[str, object]] = {
    "office": {},  # the sample AP: staff + guest (client isolation) on channel 1
    "mixed": {"ssids": ("staff", "iot", "campus"), "interfaces": FOUR_RADIOS},
    "auto_power": {"ssids": ("guest", "iot"), "radio": Radio(channel="auto", power=17)},
}


def device(inv: Inventory, case: str):  # noqa: ANN201
    changes = dict(CASES[case])
    inv = with_ap(inv, **changes) if changes else inv
    return inv, inv.devices[AP]


def golden_check(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with DZOPS_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"rendering differs from {path}"


def no_secret(text: str) -> None:
    for secret in FAKE.values():
        assert secret not in text


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostapd_files_match_golden(inventory: Inventory, case: str) -> None:
    inv, dev = device(inventory, case)
    files = ap.intended_ap_files(inv, dev)
    text = "".join(f"# ==> {path}\n{ap.mask_secrets(content)}" for path, content in files.items())
    no_secret(text)
    golden_check(GOLDEN / "hostapd" / f"ap_{case}.txt", text)


@pytest.mark.parametrize("platform", ["ios", "routeros"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_vendor_ap_config_matches_golden(inventory: Inventory, platform: str, case: str) -> None:
    inv, dev = device(inventory, case)
    [text] = ap.intended_ap_files(inv, dev.model_copy(update={"platform": platform})).values()
    masked = ap.mask_secrets(text)
    no_secret(masked)
    golden_check(GOLDEN / platform / f"ap_{case}.txt", masked)


@pytest.mark.parametrize("platform", ["cumulus", "ios"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_switch_port_trunk_matches_golden(inventory: Inventory, platform: str, case: str) -> None:
    inv, dev = device(inventory, case)
    port = ap.switch_port(inv, dev)
    port = ap.SwitchPort(port.ap, port.switch, port.port, platform, port.vlans)
    golden_check(GOLDEN / platform / f"ap_trunk_{case}.txt", port.config())


@pytest.mark.parametrize(("case", "vids"), [("office", [10, 20, 99]), ("mixed", [10, 30, 40, 99]),
                                            ("auto_power", [20, 30, 99])], ids=["office", "mixed", "auto_power"])
def test_trunk_carries_exactly_ssid_vlans_plus_native_management(inventory: Inventory, case: str,
                                                                 vids: list[int]) -> None:
    inv, dev = device(inventory, case)
    port = ap.switch_port(inv, dev)
    assert port.vids == vids
    assert [v.vid for v in port.vlans if v.native] == [99]


def test_unmasked_files_carry_the_secrets_for_the_device(inventory: Inventory) -> None:
    inv, dev = device(inventory, "mixed")
    files = ap.intended_ap_files(inv, dev)
    assert f"wpa_passphrase={FAKE['staff']}" in files["/etc/hostapd/wlan0.conf"]
    assert f"sae_password={FAKE['iot']}" in files["/etc/hostapd/wlan1.conf"]
    assert f"auth_server_shared_secret={FAKE['campus']}" in files["/etc/hostapd/wlan2.conf"]
    assert files["/etc/default/hostapd"].count("/etc/hostapd/wlan") == 3


@pytest.mark.parametrize(("line", "masked"), [
    ("wpa_passphrase=abcdefgh", "wpa_passphrase=********"),
    ("sae_password=abc def", "sae_password=********"),
    ("auth_server_shared_secret=s3cr3t", "auth_server_shared_secret=********"),
    (" wpa-psk ascii 0 abcdefgh", " wpa-psk ascii 0 ********"),
    ("radius-server host 10.0.0.1 auth-port 1812 key s3cr3t", "radius-server host 10.0.0.1 auth-port 1812 key ********"),
    (" authentication key-management wpa version 2", " authentication key-management wpa version 2"),
    ('add wpa2-pre-shared-key="a b"', "add wpa2-pre-shared-key=********"),
    ("ssid=Office", "ssid=Office"),
], ids=["wpa2", "sae", "radius", "ios", "ios-radius", "ios-key-management", "routeros", "plain"])
def test_mask_secrets(line: str, masked: str) -> None:
    assert ap.mask_secrets(line) == masked


def test_secret_only_change_is_named_never_shown() -> None:
    diff = ap.file_diff("/etc/hostapd/wlan0.conf", "ssid=A\nwpa_passphrase=old-secret-1\n",
                        "ssid=A\nwpa_passphrase=new-secret-2\n")
    assert "old-secret-1" not in diff and "new-secret-2" not in diff
    assert "a secret value changes" in diff


def test_vlan_change_touches_only_that_ssid_file(inventory: Inventory) -> None:
    before = ap.intended_ap_files(inventory, inventory.devices[AP])
    profiles = dict(inventory.ssid_profiles)
    profiles["guest"] = profiles["guest"].model_copy(update={"vlan": 30})
    after_inv = inventory.model_copy(update={"ssid_profiles": profiles})
    after = ap.intended_ap_files(after_inv, after_inv.devices[AP])
    changed = sorted(p for p in before if before[p] != after[p])
    assert changed == ["/etc/hostapd/wlan1.conf"]
    assert "# VLAN 30 (" in after["/etc/hostapd/wlan1.conf"] and "bridge=br0" in after["/etc/hostapd/wlan1.conf"]
    assert ap.switch_port(after_inv, after_inv.devices[AP]).vids == [10, 30, 99]


def test_too_few_radio_interfaces_is_an_inventory_error(inventory: Inventory) -> None:
    inv = with_ap(inventory, ssids=("staff", "guest", "iot"))
    with pytest.raises(InventoryError, match="3 SSID\\(s\\) but has 2 radio interface"):
        ap.intended_ap_files(inv, inv.devices[AP])


@pytest.mark.parametrize(("names", "site", "expected"), [
    (None, None, 11), (["gewog-talo-ap1"], None, 1), (None, "talo", 1), (None, "hq", 0),
], ids=["all", "named", "site", "site-without-ap"])
def test_scope(inventory: Inventory, names: list[str] | None, site: str | None, expected: int) -> None:
    assert len(ap.access_points_in_scope(inventory, names, site)) == expected


@pytest.mark.parametrize("names", [["nope"], ["gewog-talo-sw1"]], ids=["unknown", "not-an-ap"])
def test_scope_rejects_bad_names(inventory: Inventory, names: list[str]) -> None:
    with pytest.raises(UsageError):
        ap.access_points_in_scope(inventory, names)


@pytest.mark.parametrize("psk", ["1234567", "x" * 64], ids=["7-chars", "64-chars"])
def test_psk_length_outside_8_63_is_refused_by_the_model(psk: str) -> None:
    with pytest.raises(ValueError, match="PSK must be 8 to 63 characters"):
        SsidProfile(name="s", ssid="S", security="wpa2-psk", psk=SecretStr(psk), vlan=10)
