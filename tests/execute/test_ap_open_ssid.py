"""provision-ap verifies an open SSID by what hostapd_cli shows for one: no key management at all.

(It used to demand `key_mgmt NONE`, which hostapd never prints: every open SSID was rolled back.)
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dzops.execute.ap import ApRun
from dzops.inventory.loader import load_inventory

WANGDUE = Path(__file__).resolve().parents[2] / "samples" / "wangdue"
AP = "wdp-ruebisa-ap1"  # staff (WPA2-PSK) and guest (open)


def hostapd_state(bsses, guest_config):  # noqa: ANN001 - what the hostapd driver reads back
    config = {b.interface: ({"ssid": b.ssid, "key_mgmt": "WPA-PSK"} if b.security != "open" else guest_config(b))
              for b in bsses}
    return SimpleNamespace(status={b.interface: {"state": "ENABLED"} for b in bsses}, config=config,
                           masters={b.interface: b.bridge for b in bsses})


@pytest.mark.parametrize(("guest_config", "passes"), [
    (lambda b: {"bssid": "00:00:00:00:00:00", "ssid": b.ssid, "wps_state": "disabled"}, True),  # hostapd's own reply
    (lambda b: {"ssid": b.ssid, "key_mgmt": "WPA-PSK"}, False),  # a key where none was intended
], ids=["open-as-hostapd-shows-it", "open-ssid-with-a-key"])
def test_an_open_ssid_verifies_by_having_no_key(guest_config, passes: bool) -> None:  # noqa: ANN001
    run = ApRun(load_inventory(WANGDUE), [AP], check=True)
    ap = run.aps[AP]
    run._plan(ap)
    assert not ap.skip and ap.result.data["switch_port"]["switch"] == "wdp-ruebisa-sw1"
    ok, passed, failed = run._bss_ok(ap, hostapd_state(ap.bsses, guest_config))
    assert ok is passes, (passed, failed)
    assert ("wlan1 open, no key" in passed) is passes


def test_an_ap_on_a_router_port_plans_no_switch_port() -> None:
    run = ApRun(load_inventory(WANGDUE), ["wdp-athang-ap1"], check=True)
    ap = run.aps["wdp-athang-ap1"]
    run._plan(ap)
    assert not ap.skip and ap.port is None
    uplink = ap.result.data["switch_port"]
    assert (uplink["status"], uplink["router"], uplink["port"]) == ("not_applicable", "wdp-athang-rtr1", "eth1")
