"""Shell completion of hosts, links, sites, users and jobs from the inventory (`dzops --install-completion`).

The shell calls these on TAB, never `--help`: the inventory (the one given by `-i`, else the
default) is loaded inside the callback, so nothing heavy is imported when dzops starts. A TAB
must never print a traceback into the officer's command line: an inventory that cannot be loaded
completes to nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

log = logging.getLogger(__name__)


def _inventory(ctx: typer.Context) -> Any | None:
    params = ctx.find_root().params
    try:
        from dzops.cli.app import default_inventory
        from dzops.inventory.loader import load_inventory

        given = params.get("inventory") or default_inventory()
        directory = given[0] if isinstance(given, list | tuple) else given  # -i may be given more than once
        return load_inventory(Path(directory), params.get("vault_password_file"))
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, completion offers nothing
        log.debug("completion: inventory not loaded: %s", exc)
        return None


def matching(names: Iterable[str], incomplete: str) -> list[str]:
    """The names starting with what has been typed, sorted.

    >>> matching(["hq-talo", "hq-barp", "gewog-barp-ap1"], "hq-")
    ['hq-barp', 'hq-talo']
    """
    return sorted(name for name in names if name.startswith(incomplete))


def hosts(ctx: typer.Context, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    return matching(inventory.devices if inventory else (), incomplete)


def access_points(ctx: typer.Context, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    devices = inventory.devices.values() if inventory else ()
    return matching((d.name for d in devices if d.function == "access_points"), incomplete)


def hosts_and_groups(ctx: typer.Context, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    return matching([*inventory.devices, *inventory.groups] if inventory else (), incomplete)


def links(ctx: typer.Context, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    return matching((link.name for link in inventory.wan_links) if inventory else (), incomplete)


def sites(ctx: typer.Context, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    return matching(inventory.sites if inventory else (), incomplete)


def users(ctx: typer.Context, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    return matching((user.login for user in inventory.users) if inventory else (), incomplete)


def jobs(incomplete: str) -> list[str]:
    from dzops.execute.schedule import JOBS

    return matching(JOBS, incomplete)


def comma_list(choices: Iterable[str], incomplete: str) -> list[str]:
    """Completion of the last item of a comma list, leaving out the items already given.

    >>> comma_list(["svg", "png", "drawio", "mermaid"], "svg,p")
    ['svg,png']
    >>> comma_list(["svg", "png"], "")
    ['png', 'svg']
    """
    given, _, last = incomplete.rpartition(",")
    done = set(given.split(","))
    return [f"{given},{c}" if given else c for c in matching(choices, last) if c not in done]


def diagram_formats(incomplete: str) -> list[str]:
    from dzops.report.diagram import FORMATS

    return comma_list(FORMATS, incomplete)


def link_states(incomplete: str) -> list[str]:
    return matching(("down", "up"), incomplete)
