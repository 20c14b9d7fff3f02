"""The configuration a device has before dzops provisions it (what the lab starts from)."""

from __future__ import annotations

from dzops.inventory.models import Device
from dzops.plan.render import render


def factory_frr_config(device: Device) -> str:
    """frr.conf of a router or switch at factory state: hostname, loopback, the site LAN address."""
    return render("frr", "router", device=device, wan_ends=[])
