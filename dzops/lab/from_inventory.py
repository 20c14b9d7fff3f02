"""Inventory -> LabSpec: which namespaces, links and daemons make the Dzongkhag's virtual copy."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from dzops.exceptions import LabError
from dzops.inventory.models import Device, Inventory, LinkEnd
from dzops.lab.spec import LabInterface, LabLink, LabNode, LabSpec
from dzops.plan.factory import factory_frr_config
from dzops.platforms import PLATFORMS

DEFAULT_PREFIX = "dz"
STATE_ROOT = Path(os.environ.get("DZOPS_LAB_STATE", "/var/lib/dzops/lab"))


def lab_prefix(value: str | None = None) -> str:
    """The lab's name prefix: short, so interface names stay within Linux's 15 characters.

    >>> lab_prefix("t1")
    't1'
    >>> lab_prefix("Bad-Prefix")
    Traceback (most recent call last):
    ...
    dzops.exceptions.LabError: lab prefix 'Bad-Prefix' must be 1-6 lowercase letters or digits
    """
    prefix = value or os.environ.get("DZOPS_LAB_PREFIX") or DEFAULT_PREFIX
    if not re.fullmatch(r"[a-z0-9]{1,6}", prefix):
        raise LabError(f"lab prefix '{prefix}' must be 1-6 lowercase letters or digits")
    return prefix


def lab_links(inventory: Inventory) -> list[LabLink]:
    """Every cable of the inventory: WAN circuits, campus links and AP uplinks."""
    links = [LabLink(w.a.host, w.a.interface, w.b.host, w.b.interface, w.bandwidth_kbps, "wan")
             for w in inventory.wan_links]
    links += [LabLink(c.a.host, c.a.interface, c.b.host, c.b.interface) for c in inventory.lan_links]
    for device in inventory.devices.values():
        if device.uplink is not None:
            links.append(LabLink(device.name, device.uplink.interface, device.uplink.peer, device.uplink.port))
    return links


# What the lab runs for a router whose own OS it cannot run (ios, routeros, ...): FRR, the one
# router OS it has, fed the same vendor-neutral intent (links, addresses, OSPF, LAN, loopback).
STANDIN_PLATFORM = "frr"


def stands_in_for(device: Device) -> str | None:
    """The platform a router's lab node stands in for, or None when the lab runs the router's own OS.

    >>> from ipaddress import IPv4Address
    >>> def router(platform):
    ...     return Device(name="r1", site="s", function="routers", platform=platform, device_role="r",
    ...                   mgmt_address=IPv4Address("10.0.0.1"))
    >>> stands_in_for(router("ios")), stands_in_for(router("routeros")), stands_in_for(router("frr"))
    ('ios', 'routeros', None)
    """
    platform = PLATFORMS.get(device.platform)
    if device.function != "routers" or platform is None or platform.lab_kind is not None:
        return None
    return device.platform


def linux_ifname(name: str) -> str:
    """The lab's name for a device's interface: Linux refuses '/' and ':' in interface names.

    >>> linux_ifname("eth1"), linux_ifname("Gi0/0/1"), linux_ifname("ether2"), linux_ifname("Gi0/1.120")
    ('eth1', 'Gi0-0-1', 'ether2', 'Gi0-1.120')
    """
    return name.replace("/", "-").replace(":", "-")


def lab_inventory(inventory: Inventory) -> Inventory:
    """The inventory as the lab realises it: every router it builds a stand-in for is an FRR router
    (platform frr, Linux interface names) here, so whatever talks to the lab (`--lab`) drives that
    node as the FRR box it is, with the very addresses, links and OSPF the real router is meant to have.

    Idempotent; an inventory without stand-ins comes back as it is.
    """
    standins = {d.name for d in inventory.devices.values() if stands_in_for(d)}
    if not standins:
        return inventory
    devices = {}
    for name, device in inventory.devices.items():
        if name in standins:
            device = device.model_copy(update={
                "platform": STANDIN_PLATFORM,
                "interfaces": {linux_ifname(i): v for i, v in device.interfaces.items()},
                "lan_interface": linux_ifname(device.lan_interface) if device.lan_interface else None,
            })
            if len(device.interfaces) != len(inventory.devices[name].interfaces):
                raise LabError(f"{name}: two interfaces get the same lab name {sorted(device.interfaces)}")
        elif device.uplink is not None and device.uplink.peer in standins:
            device = device.model_copy(update={"uplink": device.uplink.model_copy(
                update={"port": linux_ifname(device.uplink.port)})})
        devices[name] = device

    def end(link_end: LinkEnd) -> LinkEnd:
        if link_end.host not in standins:
            return link_end
        return link_end.model_copy(update={"interface": linux_ifname(link_end.interface)})

    return inventory.model_copy(update={
        "devices": devices,
        "wan_links": tuple(w.model_copy(update={"a": end(w.a), "b": end(w.b)}) for w in inventory.wan_links),
        "lan_links": tuple(c.model_copy(update={"a": end(c.a), "b": end(c.b)}) for c in inventory.lan_links),
    })


def spec_from_inventory(inventory: Inventory, prefix: str | None = None, state_root: Path | None = None,
                        configured: bool = False) -> LabSpec:
    """The lab of an inventory; `configured` starts devices in their intended state instead of factory.

    A router whose OS the lab cannot run gets an FRR stand-in (`lab_inventory`); its node records
    the platform it stands in for.
    """
    prefix = lab_prefix(prefix)
    declared = {d.name: stands_in_for(d) for d in inventory.devices.values()}
    inventory = lab_inventory(inventory)
    links = lab_links(inventory)
    link_ifaces: dict[str, set[str]] = defaultdict(set)
    for link in links:
        link_ifaces[link.a_node].add(link.a_interface)
        link_ifaces[link.b_node].add(link.b_interface)
    pool = inventory.address_pools.management
    nodes = []
    for device in inventory.devices.values():
        platform = PLATFORMS.get(device.platform)
        if platform is None or platform.lab_kind is None:
            continue  # switches and APs of other vendors (ios, routeros) have no virtual twin here
        if device.username is None or device.password is None:
            raise LabError(f"{device.name}: ansible_user and ansible_password are needed to build its lab twin")
        names = sorted(set(device.interfaces) | link_ifaces[device.name])
        interfaces = tuple(
            LabInterface(name, (str(device.interfaces[name].address),)
                         if platform.lab_kind == "server" and name in device.interfaces
                         and device.interfaces[name].address else ())
            for name in names
        )
        nodes.append(LabNode(
            name=device.name,
            kind=platform.lab_kind,
            mgmt_address=f"{device.mgmt_address}/{pool.prefixlen}",
            login_user=device.username,
            login_password=device.password.get_secret_value(),
            interfaces=interfaces,
            frr_config=_frr_config(inventory, device.name, configured) if platform.lab_kind in ("router", "switch")
            else "",
            gateway=str(inventory.default_gateway(device.name) or "") if platform.lab_kind == "server" else "",
            stands_in_for=declared.get(device.name) or "",
            services=tuple(device.services) if platform.lab_kind == "server" else (),
        ))
    known = {n.name for n in nodes}
    links = [link for link in links if link.a_node in known and link.b_node in known]
    gateway = next(pool.hosts())
    mail = inventory.mail
    smtp_port = mail.smtp_port if mail else 8025
    return LabSpec(
        prefix=prefix,
        mgmt_gateway=f"{gateway}/{pool.prefixlen}",
        nodes=tuple(nodes),
        links=tuple(links),
        state_dir=(state_root or STATE_ROOT) / prefix,
        smtp_port=smtp_port,
        smtp_username=(mail.username or "") if mail else "",
        smtp_password=mail.password.get_secret_value() if mail and mail.password else "",
    )


def _frr_config(inventory: Inventory, host: str, configured: bool) -> str:
    device = inventory.devices[host]
    if configured:
        from dzops.plan import intended  # noqa: PLC0415 - grows with each provisioning capability

        return intended.frr_config(inventory, device)
    return factory_frr_config(device)

