"""Golden files for the IOS and RouterOS WAN templates.

Each case renders hand-made WanEnds and compares with tests/fixtures/golden/<platform>/<case>.txt.
`DZOPS_UPDATE_GOLDEN=1 pytest tests/plan/test_vendor_templates.py` rewrites the files; review the diff
line by line against the vendor's documentation before committing it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from dzops.plan.vendor import wan_config_lines
from dzops.plan.wan import WanEnd

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
UPDATE = os.environ.get("DZOPS_UPDATE_GOLDEN") == "1"

# Interface names differ per vendor; the rest of an end is the same intent.
PHYSICAL = {"ios": "GigabitEthernet0/1", "routeros": "ether2"}


def end(platform: str, **changes: object) -> WanEnd:
    base = WanEnd(
        link="hq-talo", host="hq", interface=PHYSICAL[platform], vlan=None, ifname=PHYSICAL[platform],
        address=IPv4Interface("10.30.255.5/30"),
        description="WAN BT-PNK-0009 Bhutan Telecom 20M to talo eth0",
        mtu=1500, bandwidth_kbps=20_000, routing="ospf", ospf_area=0, far_host="talo",
        far_address=IPv4Address("10.30.255.6"), far_lan_prefixes=(IPv4Network("10.31.10.0/24"),),
    )
    end = replace(base, **changes)  # type: ignore[arg-type]
    if end.vlan and "ifname" not in changes:
        end = replace(end, ifname=f"{end.interface}.{end.vlan}")
    return end


CASES: dict[str, dict[str, object]] = {
    "ospf_30": {},
    "ospf_31": {"address": IPv4Interface("10.30.255.8/31"), "far_address": IPv4Address("10.30.255.9")},
    "static": {"routing": "static",
               "far_lan_prefixes": (IPv4Network("10.31.10.0/24"), IPv4Network("10.31.110.0/24"))},
    "vlan": {"vlan": 120, "description": "WAN DR-PNK-0120 Dhi|Rag 10M to talo eth0.120"},
    "mtu_9000": {"mtu": 9000, "ospf_area": 1, "bandwidth_kbps": 100_000,
                 "description": 'WAN "x$y?" TashiCell 100M to talo eth0'},
}


def golden_check(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with DZOPS_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"rendering differs from {path}"


@pytest.mark.parametrize("platform", ["ios", "routeros"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_wan_link_matches_golden(platform: str, case: str) -> None:
    lines = wan_config_lines(platform, [end(platform, **CASES[case])])
    golden_check(GOLDEN / platform / f"{case}.txt", "\n".join(lines) + "\n")


@pytest.mark.parametrize("platform", ["ios", "routeros"])
def test_no_pipe_reaches_a_description(platform: str) -> None:
    lines = wan_config_lines(platform, [end(platform, **CASES["vlan"])])
    assert not any("|" in line for line in lines)
    assert any("Dhi/Rag" in line for line in lines)


def test_ios_description_has_no_help_key() -> None:
    lines = wan_config_lines("ios", [end("ios", **CASES["mtu_9000"])])
    assert " description WAN \"x$y\" TashiCell 100M to talo eth0" in lines


def test_ios_ospf_process_once_for_many_links() -> None:
    ends = [end("ios"), end("ios", interface="GigabitEthernet0/2", ifname="GigabitEthernet0/2",
                           address=IPv4Interface("10.30.255.9/30"))]
    lines = wan_config_lines("ios", ends)
    assert lines.count("router ospf 1") == 1
    assert lines.count(" ip ospf 1 area 0") == 2


def test_routeros_instance_and_each_area_before_templates() -> None:
    ends = [end("routeros"), end("routeros", interface="ether3", ifname="ether3", ospf_area=1),
            end("routeros", interface="ether4", ifname="ether4", routing="static")]
    lines = wan_config_lines("routeros", ends)
    areas = [line for line in lines if line.startswith("/routing ospf area add")]
    assert [a.split()[4] for a in areas] == ["name=backbone", "name=area1"]
    assert "area-id=0.0.0.1" in areas[1]
    first_template = next(i for i, line in enumerate(lines) if "interface-template" in line)
    assert lines.index(areas[-1]) < first_template
    assert sum("interface-template" in line for line in lines) == 2


def test_static_only_device_gets_no_ospf() -> None:
    for platform in ("ios", "routeros"):
        lines = wan_config_lines(platform, [end(platform, routing="static")])
        assert not any("ospf" in line for line in lines), platform


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="frr"):
        wan_config_lines("frr", [])
