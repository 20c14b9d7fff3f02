"""The session's small hand-made lab (prefix `hc`, 10.251.0.0/24): 3 routers, 1 switch, 2 APs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dzops.lab.spec import LabInterface, LabLink, LabNode, LabSpec

PREFIX = "hc"
STATE_DIR = Path("/tmp/dzops-test-hc/lab")
USER = "netadmin"
PASSWORD = "Lab-pass-123"  # test-only credential of a throwaway lab

# hostapd: one BSS per file (driver=none cannot add secondary BSSes; see dzops.lab.routers).
AP2_HOSTAPD = """driver=none
interface=wlan0
bridge=br0
ctrl_interface=/run/hostapd
ssid=Gewog-Staff
hw_mode=g
channel=6
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=staff-secret-1
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root and builds (or shares) the session's virtual lab")


def _router_conf(name: str, router_id: str, wan: dict[str, str], lan: dict[str, str]) -> str:
    lines = [f"hostname {name}", "!"]
    for ifname, addr in wan.items():
        lines += [
            f"interface {ifname}",
            f" description wan {ifname}",
            f" ip address {addr}",
            " ip ospf network point-to-point",
            " ip ospf hello-interval 1",
            " ip ospf dead-interval 4",
            " ip ospf area 0",
            "!",
        ]
    for ifname, addr in lan.items():
        lines += [f"interface {ifname}", f" ip address {addr}", " ip ospf area 0", " ip ospf passive", "!"]
    lines += ["router ospf", f" ospf router-id {router_id}", "!", "line vty", "!"]
    return "\n".join(lines) + "\n"


def _node(name: str, kind: str, octet: int, ifaces: tuple[str, ...], **kw: str) -> LabNode:
    return LabNode(
        name=name,
        kind=kind,
        mgmt_address=f"10.251.0.{octet}/24",
        login_user=USER,  # type: ignore[arg-type]
        login_password=PASSWORD,
        interfaces=tuple(LabInterface(i) for i in ifaces),
        **kw,
    )


def make_spec() -> LabSpec:
    nodes = (
        _node(
            "hq-rtr1",
            "router",
            11,
            ("eth1", "eth2", "eth3"),
            frr_config=_router_conf(
                "hq-rtr1",
                "10.255.0.1",
                {"eth1": "10.1.1.1/30", "eth2": "10.1.2.1/30"},
                {"eth3": "10.10.0.1/24"},
            ),
        ),
        _node(
            "gw1-rtr1",
            "router",
            12,
            ("eth1", "eth2"),
            frr_config=_router_conf(
                "gw1-rtr1", "10.255.0.2", {"eth1": "10.1.1.2/30"}, {"eth2": "10.20.0.1/24"}
            ),
        ),
        _node(
            "gw2-rtr1",
            "router",
            13,
            ("eth1",),
            frr_config=_router_conf("gw2-rtr1", "10.255.0.3", {"eth1": "10.1.2.2/30"}, {}),
        ),
        _node("gw1-sw1", "switch", 21, ("swp1", "swp2", "swp3", "swp4")),
        _node("gw1-ap1", "ap", 31, ("eth0", "wlan0", "wlan1")),
        _node("gw1-ap2", "ap", 32, ("eth0", "wlan0"), hostapd_config=AP2_HOSTAPD),
    )
    links = (
        LabLink("hq-rtr1", "eth1", "gw1-rtr1", "eth1", bandwidth_mbps=10, kind="wan"),
        LabLink("hq-rtr1", "eth2", "gw2-rtr1", "eth1", bandwidth_mbps=4, kind="wan"),
        LabLink("gw1-rtr1", "eth2", "gw1-sw1", "swp1"),
        LabLink("gw1-sw1", "swp2", "gw1-ap1", "eth0"),
        LabLink("gw1-sw1", "swp3", "gw1-ap2", "eth0"),
    )
    return LabSpec(prefix=PREFIX, mgmt_gateway="10.251.0.1/24", nodes=nodes, links=links, state_dir=STATE_DIR)


@pytest.fixture(scope="session")
def lab_spec() -> LabSpec:
    return make_spec()


@pytest.fixture(scope="session")
def lab(lab_spec: LabSpec) -> Iterator[object]:
    """The running lab, torn down at the end of the session whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from dzops.lab.builder import Lab

    logging.getLogger("dzops").setLevel(logging.DEBUG)
    the_lab = Lab(lab_spec)
    the_lab.down()  # leftovers of an interrupted earlier run
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()
        if STATE_DIR.parent.exists() and not any(STATE_DIR.parent.iterdir()):
            STATE_DIR.parent.rmdir()
