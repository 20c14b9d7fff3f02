"""Inventory -> LabSpec: which namespaces, links and daemons make the Dzongkhag's virtual copy."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from dzops.exceptions import LabError
from dzops.inventory.models import Inventory
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


def spec_from_inventory(inventory: Inventory, prefix: str | None = None, state_root: Path | None = None,
                        configured: bool = False) -> LabSpec:
    """The lab of an inventory; `configured` starts devices in their intended state instead of factory."""
    prefix = lab_prefix(prefix)
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
            continue  # real-vendor devices (ios, routeros) have no virtual twin here
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

