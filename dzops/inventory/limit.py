"""What a `--limit` selects: exactly what it selects for Ansible, by ansible-core's own pattern code.

Ansible's patterns are many small languages at once (comma or colon lists, `&` intersections,
`!` exclusions, `~regex`, shell globs, `[0:2]` subscripts, `@file` lists), so dzops does not
parse them: it hands the limit to an `InventoryManager` holding the loaded inventory's hosts and
groups and reads back the hosts it selects. The one thing dzops adds is strictness: a pattern
that matches no host is a typo, and a typo must never silently run against nothing (or, behind a
`!`, against everything).
"""

from __future__ import annotations

from typing import Any

from dzops.exceptions import UsageError


def limit_names(limit: str) -> list[str]:
    """The single patterns of a limit, split the way Ansible splits them.

    >>> limit_names("routers, gewog-talo-*,,")
    ['routers', 'gewog-talo-*']
    >>> limit_names("routers:&site_talo:!punakha-hq-*")
    ['routers', '&site_talo', '!punakha-hq-*']
    """
    from ansible.inventory.manager import split_host_pattern

    return [str(p) for p in split_host_pattern(limit)]


def _manager(inventory: Any) -> Any:
    """An InventoryManager over the loaded inventory's hosts and groups (nothing parsed again).

    Groups keep their hosts in the order ansible-core listed them when the inventory was loaded,
    so subscripts (`routers[0:2]`) pick the same hosts as `ansible-playbook --limit`.
    """
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=None, parse=False)
    for host in inventory.devices:
        manager.add_host(host, group="all")
    for group, hosts in inventory.groups.items():
        if group in ("all", "ungrouped"):
            continue
        manager.add_group(group)
        for host in hosts:
            if host in inventory.devices:
                manager.add_host(host, group=group)
    return manager


def _matches(manager: Any, pattern: str) -> list[str]:
    """Host names one pattern (its `&`/`!` ignored) matches; ansible's own 'no match' error kept quiet."""
    from ansible import constants
    from ansible.errors import AnsibleError

    saved = constants.HOST_PATTERN_MISMATCH
    constants.HOST_PATTERN_MISMATCH = "ignore"  # dzops reports the unmatched pattern itself, once
    try:
        return [host.name for host in manager._match_one_pattern(pattern)]
    except AnsibleError as exc:  # a subscript past the end, a broken regex
        raise UsageError(f"--limit: {exc.message}") from None
    finally:
        constants.HOST_PATTERN_MISMATCH = saved


def unmatched_patterns(inventory: Any, limit: str) -> list[str]:
    """The limit's patterns (`&`/`!` kept) that match no host of this inventory."""
    from ansible.errors import AnsibleError

    manager = _manager(inventory)
    try:
        manager.subset(limit)
    except AnsibleError as exc:
        raise UsageError(f"--limit: {exc.message}") from None
    return [p for p in manager._subset if p and not set(_matches(manager, p)) & inventory.devices.keys()]


def scoped_limit(limit: str, unmatched: set[str]) -> str | None:
    """The limit one of several Dzongkhags runs with, given its patterns that match none of its hosts;
    None when the limit selects nothing there (that Dzongkhag is out of scope).

    A name or group absent here adds nothing (dropped) and excludes nothing (`!x` dropped); an
    intersection with it (`&x`) leaves nothing. `@file` lists are kept as given.

    >>> scoped_limit("gewog-talo-rtr1,wangdue-hq-rtr1", {"wangdue-hq-rtr1"})
    'gewog-talo-rtr1'
    >>> scoped_limit("routers:!gewog-talo-*", {"!gewog-talo-*"}), scoped_limit("routers:&site_talo", {"&site_talo"})
    ('routers', None)
    >>> scoped_limit("gewog-talo-rtr1", {"gewog-talo-rtr1"}), scoped_limit("@hosts.txt", set())
    (None, '@hosts.txt')
    """
    patterns = limit_names(limit)
    if any(p.startswith("@") for p in patterns):
        return limit
    if any(p in unmatched for p in patterns if p.startswith("&")):
        return None
    kept = [p for p in patterns if p not in unmatched]
    if not any(not p.startswith(("&", "!")) for p in kept):
        return None
    return ",".join(kept)


def select_hosts(inventory: Any, limit: str | None) -> list[str]:
    """Hosts a --limit selects (every host without one), in inventory order.

    A pattern that matches no host of the inventory, an `@file` that cannot be read and a limit
    that leaves no host at all are usage errors.
    """
    if not limit:
        return list(inventory.devices)
    from ansible.errors import AnsibleError

    manager = _manager(inventory)
    try:
        manager.subset(limit)  # reads @file lists exactly as ansible-playbook does
    except AnsibleError as exc:
        raise UsageError(f"--limit: {exc.message}") from None
    patterns = [p for p in manager._subset if p]
    unknown = [p for p in patterns if not set(_matches(manager, p)) & inventory.devices.keys()]
    if unknown:
        raise UsageError(f"--limit: no host or group matches {', '.join(repr(p) for p in unknown)} "
                         "in the inventory")
    from ansible import constants

    saved = constants.HOST_PATTERN_MISMATCH
    constants.HOST_PATTERN_MISMATCH = "ignore"
    try:
        selected = {host.name for host in manager.get_hosts("all")}
    finally:
        constants.HOST_PATTERN_MISMATCH = saved
    hosts = [host for host in inventory.devices if host in selected]
    if not hosts:
        raise UsageError(f"--limit: '{limit}' leaves no host to run on")
    return hosts


def select_among(inventory: Any, limit: str | None, candidates: list[str], refusal: str) -> list[str]:
    """The candidates a --limit selects (all of them without one), in their order.

    `refusal` is the UsageError message when the limit leaves none: it says what the candidates are
    (a limit that names only other hosts is a typo, never a run against nothing).
    """
    if not limit:
        return list(candidates)
    wanted = set(select_hosts(inventory, limit))
    scope = [host for host in candidates if host in wanted]
    if not scope:
        raise UsageError(refusal)
    return scope
