"""The intended configuration of each device: what provisioning applies and drift compares with."""

from __future__ import annotations

from dzops.inventory.models import Device, Inventory
from dzops.plan.render import render
from dzops.plan.wan import REFERENCE_BANDWIDTH_MBPS, WanEnd, wan_ends


def frr_config(inventory: Inventory, device: Device, ends: dict[str, list[WanEnd]] | None = None,
               kept: list[str] | None = None) -> str:
    """The whole intended frr.conf of an FRR router or switch.

    `kept` are running-config lines carried over verbatim (links this run must not touch).
    """
    ends = ends if ends is not None else wan_ends(inventory)
    return render("frr", "router", device=device, wan_ends=ends.get(device.name, []), kept=kept or [],
                  reference_bandwidth_mbps=REFERENCE_BANDWIDTH_MBPS)
