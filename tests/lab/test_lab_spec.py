"""Inventory -> LabSpec (dzops/lab/from_inventory.py): pure, no root, no namespaces.

What the session lab is built from: if these hold, the lab is the sample Dzongkhag's faithful copy.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import pytest
import yaml

from dzops.exceptions import LabError
from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory
from dzops.lab.builder import mgmt_bridge_name
from dzops.lab.from_inventory import DEFAULT_PREFIX, lab_links, lab_prefix, spec_from_inventory
from dzops.lab.netns import IFNAMSIZ
from dzops.lab.spec import LabLink, LabSpec
from dzops.platforms import PLATFORMS
from tests.labkit import SAMPLE

STATE_ROOT = Path("/nonexistent/dzops-spec-test")  # never created: these tests build nothing


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SAMPLE)


@pytest.fixture(scope="module")
def spec(inventory: Inventory) -> LabSpec:
    return spec_from_inventory(inventory, "t1", state_root=STATE_ROOT)


@pytest.fixture(scope="module")
def vault() -> dict[str, str]:
    """The sample vault decrypted with ansible-core directly, independently of dzops' loader."""
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = (SAMPLE / "DEMO-ONLY-vault-password.txt").read_bytes().strip()
    data = (SAMPLE / "group_vars/all/vault.yml").read_bytes()
    plain = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(secret))]).decrypt(data)
    return yaml.safe_load(plain)


def test_every_sample_device_becomes_a_node_of_its_kind(inventory: Inventory, spec: LabSpec) -> None:
    assert {n.name for n in spec.nodes} == set(inventory.devices)
    for node in spec.nodes:
        assert node.kind == PLATFORMS[inventory.devices[node.name].platform].lab_kind, node.name
    assert Counter(n.kind for n in spec.nodes) == {"router": 12, "switch": 12, "server": 2, "ap": 11}


def test_every_cable_becomes_one_lab_link(inventory: Inventory, spec: LabSpec) -> None:
    expected = {LabLink(w.a.host, w.a.interface, w.b.host, w.b.interface, w.bandwidth_kbps, "wan")
                for w in inventory.wan_links}
    expected |= {LabLink(c.a.host, c.a.interface, c.b.host, c.b.interface) for c in inventory.lan_links}
    expected |= {LabLink(d.name, d.uplink.interface, d.uplink.peer, d.uplink.port)
                 for d in inventory.devices.values() if d.uplink is not None}
    assert len(expected) == 11 + 14 + 11
    assert len(spec.links) == len(expected)  # no duplicates
    assert set(spec.links) == expected
    assert set(lab_links(inventory)) == expected


def test_wan_links_are_shaped_and_only_they(inventory: Inventory, spec: LabSpec) -> None:
    wan = [link for link in spec.links if link.kind == "wan"]
    assert sorted((link.a_node, link.bandwidth_kbps) for link in wan) == sorted(
        (w.a.host, w.bandwidth_kbps) for w in inventory.wan_links)
    assert all(link.bandwidth_kbps and link.bandwidth_kbps > 0 for link in wan)
    assert all(link.bandwidth_kbps is None for link in spec.links if link.kind != "wan")
    # the sample has circuits of different speeds, so a constant rate would be caught elsewhere
    assert len({link.bandwidth_kbps for link in wan}) > 1


def test_no_port_is_cabled_twice(spec: LabSpec) -> None:
    ends = Counter(end for link in spec.links
                   for end in ((link.a_node, link.a_interface), (link.b_node, link.b_interface)))
    assert [end for end, count in ends.items() if count > 1] == []


def test_node_interfaces_cover_inventory_and_link_ends(inventory: Inventory, spec: LabSpec) -> None:
    for node in spec.nodes:
        names = [i.name for i in node.interfaces]
        cabled = {end_if for link in spec.links
                  for end_node, end_if in ((link.a_node, link.a_interface), (link.b_node, link.b_interface))
                  if end_node == node.name}
        assert set(names) == set(inventory.devices[node.name].interfaces) | cabled, node.name
        assert len(names) == len(set(names)), node.name
        assert "mgmt0" not in names, node.name  # the builder's own management port


@pytest.mark.parametrize("prefix", ["t1", "abcdef"], ids=["short", "longest-allowed"])
def test_interface_names_fit_linux(inventory: Inventory, prefix: str) -> None:
    spec = spec_from_inventory(inventory, prefix, state_root=STATE_ROOT)
    too_long = [(n.name, i.name) for n in spec.nodes for i in n.interfaces if len(i.name) > IFNAMSIZ]
    assert too_long == []
    # root-namespace names carry the prefix: the bridge and the management veth ends
    assert len(mgmt_bridge_name(prefix)) <= IFNAMSIZ
    assert len(f"{prefix}-m{len(spec.nodes) - 1}") <= IFNAMSIZ


def test_management_addresses_and_gateway(inventory: Inventory, spec: LabSpec) -> None:
    pool = inventory.address_pools.management
    assert spec.mgmt_gateway == f"{next(pool.hosts())}/{pool.prefixlen}" == "10.30.0.1/24"
    for node in spec.nodes:
        address = ipaddress.ip_interface(node.mgmt_address)
        assert address.network == pool and address.ip == inventory.devices[node.name].mgmt_address, node.name
    addresses = [ipaddress.ip_interface(n.mgmt_address).ip for n in spec.nodes]
    assert len(set(addresses)) == len(addresses)
    assert ipaddress.ip_interface(spec.mgmt_gateway).ip not in addresses


def test_credentials_come_from_the_vault(inventory: Inventory, spec: LabSpec, vault: dict[str, str]) -> None:
    # compared as booleans: a failing `==` on secrets would print them in the test report
    wrong = []
    for node in spec.nodes:
        key = "vault_server_password" if node.kind == "server" else "vault_network_password"
        user = inventory.devices[node.name].username
        if not (node.login_password == vault[key] and node.login_user == user):
            wrong.append(node.name)
    assert wrong == []
    assert {n.login_user for n in spec.nodes} == {"dzadmin"}
    secrets = {vault["vault_server_password"], vault["vault_network_password"], vault["vault_smtp_password"]}
    # the passwords exist only inside the vault file of the sample, nowhere in clear text
    leaked = [str(p.relative_to(SAMPLE)) for p in SAMPLE.rglob("*") if p.is_file()
              and any(s in p.read_text(errors="replace") for s in secrets)]
    assert leaked == []


def test_factory_state_contents(inventory: Inventory, spec: LabSpec) -> None:
    for node in spec.nodes:
        device = inventory.devices[node.name]
        if node.kind in ("router", "switch"):
            assert f"hostname {node.name}\n" in node.frr_config, node.name
            assert "router ospf" not in node.frr_config, node.name  # WAN routing is dzops' job
            for iface in node.interfaces:
                assert iface.addresses == (), node.name  # FRR owns router addresses
        else:
            assert node.frr_config == "", node.name
        assert node.hostapd_config == "", node.name  # APs start without hostapd running
        if node.kind == "server":
            assert {i.name: i.addresses for i in node.interfaces} == {
                name: (str(i.address),) for name, i in device.interfaces.items() if i.address}
    hq = spec.node("punakha-hq-rtr1").frr_config
    assert " ip address 10.30.1.1/24\n" in hq and " ip address 10.30.254.1/32\n" in hq


def test_state_dir_and_smtp_settings(inventory: Inventory, spec: LabSpec, vault: dict[str, str]) -> None:
    assert spec.prefix == "t1"
    assert spec.state_dir == STATE_ROOT / "t1"
    assert inventory.mail is not None
    assert (spec.smtp_port, spec.smtp_username) == (inventory.mail.smtp_port, inventory.mail.username)
    from_vault = spec.smtp_password == vault["vault_smtp_password"]  # a bool: never print the secret
    assert from_vault and spec.smtp_password
    assert "smtp_password" not in repr(spec)


def test_real_vendor_devices_get_no_twin_and_lose_their_cables(inventory: Inventory) -> None:
    devices = dict(inventory.devices)
    devices["gewog-talo-sw1"] = devices["gewog-talo-sw1"].model_copy(update={"platform": "ios"})
    spec = spec_from_inventory(inventory.model_copy(update={"devices": devices}), "t1", state_root=STATE_ROOT)
    assert "gewog-talo-sw1" not in {n.name for n in spec.nodes}
    assert len(spec.nodes) == len(inventory.devices) - 1
    assert [link for link in spec.links if "gewog-talo-sw1" in (link.a_node, link.b_node)] == []
    assert len(spec.links) == 36 - 2  # its router LAN link and its AP's uplink


def test_missing_credentials_name_the_device(inventory: Inventory) -> None:
    devices = dict(inventory.devices)
    devices["gewog-talo-ap1"] = devices["gewog-talo-ap1"].model_copy(update={"password": None})
    with pytest.raises(LabError, match=r"^gewog-talo-ap1: ansible_user and ansible_password"):
        spec_from_inventory(inventory.model_copy(update={"devices": devices}), "t1", state_root=STATE_ROOT)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("t1", "t1"),
        ("lb", "lb"),
        ("abcdef", "abcdef"),
        ("0", "0"),
        (None, DEFAULT_PREFIX),
        ("", DEFAULT_PREFIX),
        ("abcdefg", LabError),
        ("Bad", LabError),
        ("a-b", LabError),
        ("a_b", LabError),
        ("a b", LabError),
        ("lb/x", LabError),
    ],
    ids=["two", "lb", "six-chars", "digit", "none-default", "empty-default", "seven-chars", "uppercase",
         "dash", "underscore", "space", "slash"],
)
def test_lab_prefix_table(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: object) -> None:
    monkeypatch.delenv("DZOPS_LAB_PREFIX", raising=False)
    if expected is LabError:
        message = rf"^lab prefix '{value}' must be 1-6 lowercase letters or digits$"
        with pytest.raises(LabError, match=message):
            lab_prefix(value)
    else:
        assert lab_prefix(value) == expected


def test_lab_prefix_from_the_environment(monkeypatch: pytest.MonkeyPatch, inventory: Inventory) -> None:
    monkeypatch.setenv("DZOPS_LAB_PREFIX", "env1")
    assert lab_prefix() == "env1"
    assert lab_prefix("arg1") == "arg1"  # an explicit --prefix wins
    monkeypatch.setenv("DZOPS_LAB_PREFIX", "BAD!")
    with pytest.raises(LabError, match="BAD!"):
        spec_from_inventory(inventory, state_root=STATE_ROOT)


# -- the second sample: thin links, an AP on a router port, servers' gateways --------------------------
WANGDUE = SAMPLE.parent / "samples" / "wangdue"


@pytest.fixture(scope="module")
def wangdue() -> Inventory:
    return load_inventory(WANGDUE)


def test_thin_links_are_shaped_in_kbit(wangdue: Inventory) -> None:
    spec = spec_from_inventory(wangdue, "t2", state_root=STATE_ROOT)
    rates = {(link.a_node, link.b_node): link.bandwidth_kbps for link in spec.links if link.kind == "wan"}
    assert rates[("wdp-daga-rtr1", "wdp-athang-rtr1")] == 512  # not rounded to a whole Mbit/s
    assert rates[("wdp-hq-rtr1", "wdp-thedtsho-agg1")] == 100_000


def test_an_ap_on_a_router_port_is_cabled_to_the_router(wangdue: Inventory) -> None:
    spec = spec_from_inventory(wangdue, "t2", state_root=STATE_ROOT)
    assert LabLink("wdp-athang-ap1", "eth0", "wdp-athang-rtr1", "eth1") in spec.links
    assert all(link.b_node for link in spec.links)


@pytest.mark.parametrize(("sample", "server", "gateway"), [
    ("wangdue", "wdp-hq-srv1", "10.60.1.1"),  # declared in its host_vars
    ("punakha", "punakha-hq-srv1", "10.30.1.1"),  # derived: punakha-hq-rtr1's LAN address
])
def test_servers_get_their_default_gateway_and_nothing_else_does(sample: str, server: str, gateway: str,
                                                                inventory: Inventory, wangdue: Inventory) -> None:
    spec = spec_from_inventory({"wangdue": wangdue, "punakha": inventory}[sample], "t2", state_root=STATE_ROOT)
    nodes = {n.name: n for n in spec.nodes}
    assert nodes[server].gateway == gateway
    assert all(not n.gateway for n in spec.nodes if n.kind != "server")
