"""What a `--limit` names: hosts, groups or shell patterns, as Ansible's --limit reads them."""

from __future__ import annotations

import fnmatch
from typing import Any

from dzops.exceptions import UsageError


def limit_names(limit: str) -> list[str]:
    """The names of a comma list, blanks dropped.

    >>> limit_names("routers, gewog-talo-*,,")
    ['routers', 'gewog-talo-*']
    """
    return [part.strip() for part in limit.split(",") if part.strip()]


def select_hosts(inventory: Any, limit: str | None) -> list[str]:
    """Hosts named by a --limit (every host without one), in inventory order.

    Each name is a host, a group or a shell pattern over host names; one that matches nothing is a
    usage error, so a typo never silently selects no device.
    """
    if not limit:
        return list(inventory.devices)
    wanted: set[str] = set()
    unknown = []
    for name in limit_names(limit):
        if name in inventory.devices:
            matched = {name}
        elif name in inventory.groups:
            matched = {host for host in inventory.groups[name] if host in inventory.devices}
        else:
            matched = set(fnmatch.filter(inventory.devices, name))
        if not matched:
            unknown.append(name)
        wanted |= matched
    if unknown:
        raise UsageError(f"--limit: no host or group '{', '.join(unknown)}' in the inventory")
    return [host for host in inventory.devices if host in wanted]
