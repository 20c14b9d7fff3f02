"""What a lab is made of, as plain data: the contract between the inventory adapter and the lab builder.

The builder (`dzops.lab.builder`) knows nothing about Ansible or the inventory models; it only
turns a `LabSpec` into namespaces, links and daemons. `dzops.lab.from_inventory` produces the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

NodeKind = Literal["router", "switch", "server", "ap"]


@dataclass(frozen=True)
class LabInterface:
    """A data-plane interface inside a node (veth end, created by the builder for each link end)."""

    name: str  # the name inside the node, e.g. eth1 or swp2 (<= 15 chars)
    addresses: tuple[str, ...] = ()  # CIDR strings set at factory state (servers only; routers get theirs from FRR)


@dataclass(frozen=True)
class LabNode:
    name: str  # inventory hostname, e.g. gewog-talo-rtr1; also the prompt / UTS hostname
    kind: NodeKind
    mgmt_address: str  # CIDR on the management bridge, e.g. 10.30.0.11/24
    login_user: str
    login_password: str  # plain text, from the Vault; never logged
    interfaces: tuple[LabInterface, ...] = ()
    # Routers and switches: the whole frr.conf written before FRR starts (factory state).
    frr_config: str = ""
    # Access points: hostapd.conf to start with; empty means factory state (hostapd not yet configured).
    hostapd_config: str = ""
    # Servers: the default route off their LAN (Inventory.default_gateway), so a gewog's traffic gets
    # its answer; "" for none. Packages come from the lab repo on the directly connected mgmt network.
    gateway: str = ""
    # A router whose own OS the lab cannot run (ios, routeros, ...) is an FRR stand-in built from the
    # same intent: the platform it stands in for ("" when the node runs the device's own OS).
    stands_in_for: str = ""
    # Servers: the inventory's `services`; postgresql and mariadb run (Debian's packages, a cluster made as
    # their postinst makes it on a real box) and hold the sample `dzongkhag` database.
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabLink:
    a_node: str
    a_interface: str
    b_node: str
    b_interface: str
    bandwidth_kbps: int | None = None  # kbit/s, shaped with tbf on both ends when set
    kind: Literal["wan", "lan"] = "lan"


@dataclass(frozen=True)
class LabSpec:
    prefix: str  # short (<= 6 chars, [a-z0-9]), carried by every namespace, link, bridge and file of this lab
    mgmt_gateway: str  # CIDR put on the root-namespace management bridge: the officer's laptop side
    nodes: tuple[LabNode, ...]
    links: tuple[LabLink, ...]
    state_dir: Path  # per-lab directory for pids, keys, known_hosts, overlays, logs
    smtp_port: int = 8025  # aiosmtpd on 127.0.0.1
    smtp_username: str = ""  # with a username the lab's SMTP server requires AUTH, like a real one
    smtp_password: str = field(default="", repr=False)
    package_repo_port: int = 8079  # HTTP package repository on the mgmt gateway address
    base_image_dir: Path | None = None  # None: the cached image of the current recipe (base_image.default_path)

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)
