"""Masked, JSON-ready views of the inventory for people and scripts."""

from __future__ import annotations

from typing import Any

from dzops.inventory.models import Inventory

MASK = "********"


def masked_inventory(inventory: Inventory) -> dict[str, Any]:
    """The whole inventory as plain data; SecretStr values dump as a fixed mask."""
    data = inventory.model_dump(mode="json")
    return _mask(data)


def masked_host(inventory: Inventory, host: str) -> dict[str, Any]:
    return _mask(inventory.devices[host].model_dump(mode="json"))


def _mask(value: Any) -> Any:
    # model_dump(mode="json") already renders SecretStr as '**********'; normalise to one mask so
    # the length of a secret never shows either.
    if isinstance(value, dict):
        return {k: (MASK if v == "**********" else _mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value
