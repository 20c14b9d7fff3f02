"""Whole IOS / RouterOS candidates and IOS remediation computed by hier_config.

The "running" side of these tests is a real router's config: the IOS show-run and the RouterOS export
recorded in NAPALM's and napalm-ros' own test suites (tests/fixtures/napalm/README.md). Rendered
candidates are read back by hier_config, a parser dzops does not own, so a template that nests a line
in the wrong block or drops one is caught by something other than a golden file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest
from hier_config import Platform, WorkflowRemediation, get_hconfig

from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Device, Inventory
from dzops.plan.candidates import ios_blocks, ios_candidate, ros_export_lines, routeros_candidate
from dzops.plan.remediation import count_changes, hier_remediation
from dzops.plan.users import Account
from dzops.plan.wan import WanEnd

REPO = Path(__file__).resolve().parents[2]
NAPALM = REPO / "tests" / "fixtures" / "napalm"
RECORDED_IOS = json.loads((NAPALM / "ios" / "get_config" / "expected_result.json").read_text())["running"]
RECORDED_ROS = json.loads((NAPALM / "ros" / "get_config" / "expected_result.json").read_text())["running"]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ karma@punakha.gov.bt"


@lru_cache(maxsize=1)
def sample() -> Inventory:
    return load_inventory(REPO / "inventory")


def vendor_router(platform: str) -> Device:
    """The sample's first router, as if it were a Cisco or MikroTik box (the sample's are all FRR)."""
    inv = sample()
    router = next(d for d in inv.devices.values() if d.function == "routers")
    lan = "GigabitEthernet0/0" if platform == "ios" else "ether5"
    interfaces = {lan: next(iter(router.interfaces.values()))} if router.interfaces else {}
    return router.model_copy(update={"platform": platform, "interfaces": interfaces, "lan_interface": lan})


def wan(platform: str, routing: str = "ospf", vlan: int | None = None) -> WanEnd:
    physical = "GigabitEthernet0/1" if platform == "ios" else "ether1"
    return WanEnd(link="hq-talo", host="hq", interface=physical, vlan=vlan,
                  ifname=f"{physical}.{vlan}" if vlan else physical, address=IPv4Interface("10.30.255.5/30"),
                  description="WAN BT-PNK-0009 Bhutan Telecom 20M to talo eth0", mtu=1500, bandwidth_kbps=20_000,
                  routing=routing, ospf_area=0, far_host="talo", far_address=IPv4Address("10.30.255.6"),
                  far_lan_prefixes=(IPv4Network("10.31.10.0/24"),))


STAFF = [Account("karma", "present", access="full", privilege=15, ssh_keys=(KEY,),
                 password_hash="$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"),
         Account("sonam", "absent")]


def parsed(text: str) -> object:
    return get_hconfig(Platform.CISCO_IOS, text)


def children(config: object, *path: str) -> list[str]:
    node = config
    for text in path:
        node = node.get_child(equals=text)  # type: ignore[attr-defined]
        assert node is not None, f"{path} is not in the parsed candidate"
    return [child.text for child in node.children]  # type: ignore[attr-defined]


# --- IOS candidate ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("routing", "vlan"), [("ospf", None), ("static", None), ("ospf", 120)])
def test_ios_candidate_parses_into_the_intended_blocks(routing: str, vlan: int | None) -> None:
    device = vendor_router("ios")
    end = wan("ios", routing, vlan)
    text = ios_candidate(sample(), device, RECORDED_IOS, ends=[end], accounts=STAFF)
    config = parsed(text)
    wan_lines = children(config, f"interface {end.ifname}")
    assert "description WAN BT-PNK-0009 Bhutan Telecom 20M to talo eth0" in wan_lines
    assert "ip address 10.30.255.5 255.255.255.252" in wan_lines
    assert "no shutdown" not in wan_lines  # a config file never says it; IOS never shows it
    if routing == "ospf":
        assert {"ip ospf network point-to-point", "ip ospf 1 area 0", f"ip ospf cost {end.ospf_cost}"} <= set(wan_lines)
        assert "auto-cost reference-bandwidth 10000" in children(config, "router ospf 1")
        assert "passive-interface GigabitEthernet0/0" in children(config, "router ospf 1")
    else:
        assert config.get_child(equals="ip route 10.31.10.0 255.255.255.0 10.30.255.6") is not None  # type: ignore[attr-defined]
        assert config.get_child(equals="router ospf 1") is None  # type: ignore[attr-defined]
    if vlan:
        assert f"encapsulation dot1Q {vlan}" in wan_lines
        assert config.get_child(equals="interface GigabitEthernet0/1") is not None  # type: ignore[attr-defined]
    assert f"hostname {device.name}" in [c.text for c in config.children]  # type: ignore[attr-defined]
    assert text.endswith("end\n")


def test_ios_candidate_keeps_what_the_inventory_does_not_describe() -> None:
    text = ios_candidate(sample(), vendor_router("ios"), RECORDED_IOS, ends=[wan("ios")], accounts=STAFF)
    recorded = ios_blocks(RECORDED_IOS)
    config = parsed(text)
    # The recorded router's management access, AAA and vty lines survive the replace untouched.
    for header in ("aaa new-model", "ip domain name example.local", "ip vrf MGMT", "line vty 0 4",
                   "interface GigabitEthernet1"):
        block = next(b for b in recorded if b[0] == header)
        assert config.get_child(equals=header) is not None, header  # type: ignore[attr-defined]
        assert children(config, header) == [line.strip() for line in block[1:]], header
    # The management interface in its VRF keeps its address: the replace cannot cut dzops off.
    assert children(config, "interface GigabitEthernet1")[:2] == ["ip vrf forwarding MGMT",
                                                                  "ip address 192.168.35.121 255.255.255.0"]
    # The recorded hostname is owned: replaced, not kept beside the intended one.
    assert "hostname CSR1" not in text.splitlines()


def test_ios_candidate_owns_managed_accounts_and_keeps_others() -> None:
    text = ios_candidate(sample(), vendor_router("ios"), RECORDED_IOS.rstrip() + "\nusername sonam privilege 15 secret 9 $9$x\n",
                         ends=[wan("ios")], accounts=STAFF)
    lines = text.splitlines()
    assert "username karma privilege 15 secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM" in lines
    assert not any(line.startswith("username sonam") for line in lines)  # offboarded: gone after the replace
    assert "username cisco privilege 15 password 0 cisco" in lines  # not an inventory login: kept
    assert children(parsed(text), "ip ssh pubkey-chain", "username karma")[0].startswith("key-hash ssh-ed25519 ")


def test_ios_candidate_is_stable_against_its_own_result() -> None:
    """Replacing with the candidate, then planning again from the result, changes nothing."""
    first = ios_candidate(sample(), vendor_router("ios"), RECORDED_IOS, ends=[wan("ios")], accounts=STAFF)
    second = ios_candidate(sample(), vendor_router("ios"), first, ends=[wan("ios")], accounts=STAFF)
    assert hier_remediation(first, second) == []


# --- IOS remediation ---------------------------------------------------------------------------------------

def test_remediation_from_the_recorded_router_to_its_candidate() -> None:
    end = wan("ios", "static")
    intended = ios_candidate(sample(), vendor_router("ios"), RECORDED_IOS, ends=[end], accounts=STAFF)
    commands = hier_remediation(RECORDED_IOS, intended)
    assert commands[0] == "configure terminal" and commands[-2:] == ["end", "write memory"]
    assert f"hostname {vendor_router('ios').name}" in commands
    assert "ip route 10.31.10.0 255.255.255.0 10.30.255.6" in commands
    # The recorded GigabitEthernet1 (management, in a VRF) is not the inventory's: nothing of it is touched.
    assert "interface GigabitEthernet1" not in commands
    # dzops owns `router ospf 1`: a statically routed router has none left.
    assert "no router ospf 1" in commands
    removals, additions = count_changes(commands)
    assert removals == 1 and additions > 0  # the loopback address is overwritten in place, not removed


@pytest.mark.parametrize(("running", "intended", "expected"), [
    pytest.param("interface Gi0/1\n ip address 10.0.0.1 255.255.255.252\n ip ospf cost 20\n!\n",
                 "interface Gi0/1\n ip address 10.0.0.1 255.255.255.252\n!\n",
                 ["interface Gi0/1", " no ip ospf cost 20", "exit"], id="extra-sub-line"),
    pytest.param("ip route 10.9.0.0 255.255.0.0 10.0.0.2\nip route 10.1.0.0 255.255.0.0 10.0.0.2\n",
                 "ip route 10.1.0.0 255.255.0.0 10.0.0.2\n",
                 ["no ip route 10.9.0.0 255.255.0.0 10.0.0.2"], id="stale-route"),
    pytest.param("interface Gi0/1\n ip ospf cost 20\n!\n", "interface Gi0/1\n ip ospf cost 100\n!\n",
                 ["interface Gi0/1", " ip ospf cost 100", "exit"], id="cost-overwritten-not-removed"),
    pytest.param("interface Gi0/1\n ip ospf 1 area 0\n!\n", "interface Gi0/1\n ip ospf 1 area 1\n!\n",
                 ["interface Gi0/1", " ip ospf 1 area 1", "exit"], id="area-overwritten"),
    pytest.param("hostname old\n", "hostname new\n", ["hostname new"], id="hostname-overwritten"),
    pytest.param("interface Gi0/9\n description gone\n!\n", "",
                 ["no interface Gi0/9"], id="whole-context-removed"),
    pytest.param("router ospf 1\n auto-cost reference-bandwidth 100\n!\n",
                 "router ospf 1\n auto-cost reference-bandwidth 10000\n!\n",
                 ["router ospf 1", " auto-cost reference-bandwidth 10000", "exit"], id="reference-bandwidth"),
])
def test_hier_remediation_cases(running: str, intended: str, expected: list[str]) -> None:
    assert hier_remediation(running, intended, save=False) == ["configure terminal", *expected, "end"]


def test_removals_first_and_the_interface_brought_up_last() -> None:
    commands = hier_remediation("interface Gi0/1\n ip ospf cost 20\n shutdown\n!\n",
                                "interface Gi0/1\n description WAN\n!\n", save=False)
    inside = commands[commands.index("interface Gi0/1") + 1:commands.index("exit")]
    assert inside == [" no ip ospf cost 20", " description WAN", " no shutdown"]


def test_unknown_syntax_is_refused() -> None:
    with pytest.raises(ValueError, match="no hier_config remediation for syntax 'routeros'"):
        hier_remediation("", "", "routeros")


# --- RouterOS candidate ----------------------------------------------------------------------------------

def test_routeros_candidate_keeps_unowned_export_lines_and_owns_the_rest() -> None:
    device = vendor_router("routeros")
    end = wan("routeros")
    text = routeros_candidate(sample(), device, RECORDED_ROS, ends=[end], accounts=STAFF)
    lines = text.splitlines()
    # ether1 is the WAN end now: the recorded address on it goes, the recorded bridge stays.
    assert '/ip address add address=1.1.1.1/24 interface=ether1 comment="some comment with spaces"' not in lines
    assert "/interface bridge auto-mac=yes name=bridge" in lines
    assert f"/system identity set name={device.name}" in lines
    assert any(line.startswith("/ip address add address=10.30.255.5/30 interface=ether1 ") for line in lines)
    assert any(line.startswith("/routing ospf interface-template add interfaces=ether1 area=backbone") for line in lines)
    assert lines.index("/routing ospf instance add name=dzops-v2 version=2") < next(
        i for i, line in enumerate(lines) if line.startswith("/routing ospf interface-template"))
    # Guarded: napalm-ros' reset keeps users, so a bare `/user add` of an existing login would abort the script.
    assert ':if ([:len [/user find where name="karma"]] = 0) do={ /user add name="karma" group=full comment="" } ' \
           'else={ /user set [find where name="karma"] group=full comment="" disabled=no }' in lines
    assert not any(line.startswith("/user add ") for line in lines)
    assert '/user remove [find where name="sonam"]' in lines  # offboarded
    assert not any(line.startswith("#") for line in lines)


def test_routeros_candidate_is_stable_against_its_own_result() -> None:
    device = vendor_router("routeros")
    first = routeros_candidate(sample(), device, RECORDED_ROS, ends=[wan("routeros")], accounts=STAFF)
    second = routeros_candidate(sample(), device, first, ends=[wan("routeros")], accounts=STAFF)
    assert sorted(ros_export_lines(first)) == sorted(ros_export_lines(second))


def test_routeros_static_end_routes_through_the_far_address() -> None:
    text = routeros_candidate(sample(), vendor_router("routeros"), RECORDED_ROS, ends=[wan("routeros", "static")],
                              accounts=[])
    assert '/ip route add dst-address=10.31.10.0/24 gateway=10.30.255.6 comment="WAN BT-PNK-0009 Bhutan Telecom 20M to talo eth0"' in text.splitlines()
    assert "/routing ospf" not in text


def test_a_candidate_with_no_vendor_platform_is_refused() -> None:
    from dzops.plan.candidates import candidate

    frr = next(d for d in sample().devices.values() if d.function == "routers")
    with pytest.raises(ValueError, match="no whole-candidate templates for platform 'frr'"):
        candidate(sample(), frr, "")


def test_owned_ospf_process_loses_its_hand_made_lines_in_context() -> None:
    intended = ios_candidate(sample(), vendor_router("ios"), RECORDED_IOS, ends=[wan("ios")], accounts=STAFF)
    commands = hier_remediation(RECORDED_IOS, intended)
    ospf = commands.index("router ospf 1")
    inside = commands[ospf + 1:commands.index("exit", ospf)]
    assert " no network 10.1.1.0 0.0.0.255 area 0" in inside and " no redistribute connected subnets" in inside
    assert " auto-cost reference-bandwidth 10000" in inside


def test_remediation_workflow_agrees_with_hier_config_itself() -> None:
    """dzops' session holds exactly hier_config's remediation lines, plus the session's own framing."""
    intended = ios_candidate(sample(), vendor_router("ios"), RECORDED_IOS, ends=[wan("ios")], accounts=STAFF)
    ours = [c.strip() for c in hier_remediation(RECORDED_IOS, intended, save=False)[1:-1] if c.strip() != "exit"]
    theirs = [c.text for c in WorkflowRemediation(parsed(RECORDED_IOS), parsed(intended)).remediation_config.all_children_sorted()]
    # Only the `no hostname` differs: IOS overwrites a hostname in place (dzops.plan.remediation.IOS_OVERWRITTEN).
    assert set(theirs) - set(ours) == {"no hostname CSR1"}
    assert set(ours) - set(theirs) == set()


# --- each command owns only its part -------------------------------------------------------------------

def test_a_users_only_candidate_leaves_routing_and_interfaces_as_they_run() -> None:
    running = RECORDED_IOS.rstrip() + "\nusername sonam privilege 15 secret 9 $9$x\n"
    text = ios_candidate(sample(), vendor_router("ios"), running, accounts=STAFF, parts=["users"])
    commands = hier_remediation(running, text)
    changed = {c.strip() for c in commands}
    assert "no username sonam privilege 15 secret 9 $9$x" in changed  # offboarded staff go
    assert any(c.startswith("username karma privilege 15 secret 9 ") for c in changed)
    # The recorded OSPF process, loopback and interfaces are not this command's business.
    assert not any(c.startswith(("router ospf", "interface", "no router", "no interface")) for c in changed)


def test_a_wan_only_candidate_leaves_the_accounts_as_they_run() -> None:
    running = RECORDED_IOS.rstrip() + "\nusername sonam privilege 15 secret 9 $9$x\n"
    text = ios_candidate(sample(), vendor_router("ios"), running, ends=[wan("ios")], parts=["wan"])
    assert "username sonam privilege 15 secret 9 $9$x" in text.splitlines()
    assert not any(c.strip().startswith(("username", "no username")) for c in hier_remediation(running, text))
    assert "interface GigabitEthernet0/1" in hier_remediation(running, text)


def test_a_wan_only_routeros_candidate_keeps_accounts() -> None:
    running = RECORDED_ROS.rstrip() + '\n/user add name="sonam" group=full\n'
    text = routeros_candidate(sample(), vendor_router("routeros"), running, ends=[wan("routeros")], parts=["wan"])
    assert '/user add name="sonam" group=full' in text.splitlines()
    users_only = routeros_candidate(sample(), vendor_router("routeros"), running, accounts=STAFF, parts=["users"])
    assert '/user add name="sonam" group=full' not in users_only.splitlines()
    assert '/user remove [find where name="sonam"]' in users_only.splitlines()
    assert '/ip address add address=1.1.1.1/24 interface=ether1 comment="some comment with spaces"' in users_only.splitlines()


# --- drift of a NAPALM device, from its (scrubbed) backup ------------------------------------------------

@pytest.mark.parametrize("platform", ["ios", "routeros"])
def test_drift_finding_from_a_scrubbed_backup_shows_no_secret_and_settles(platform: str) -> None:
    from dzops.report.drift import candidate_finding
    from dzops.report.scrub import scrub

    device = vendor_router(platform)
    inventory = sample().model_copy(update={"devices": sample().devices | {device.name: device}})
    running = scrub(RECORDED_IOS if platform == "ios" else RECORDED_ROS, platform)
    finding = candidate_finding(inventory, device.name, device.site, running, platform)
    assert finding is not None and finding.kind == "intended"
    assert "cisco" not in finding.detail.replace("cisco-", "")  # the recorded router's passwords never show
    if platform == "ios":
        assert finding.commands[0] == "configure terminal" and f"hostname {device.name}" in finding.commands
        assert " no network 10.1.1.0 0.0.0.255 area 0" in finding.commands
    else:
        assert f"+ /system identity set name={device.name}" in finding.detail.splitlines()
    # Once the device runs its candidate, drift finds nothing.
    from dzops.plan.candidates import candidate

    settled = scrub(candidate(inventory, device, running), platform)
    assert candidate_finding(inventory, device.name, device.site, settled, platform) is None
