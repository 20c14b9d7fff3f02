"""The platform table: every vendor quirk that can be data lives here, not in commands.

Adding a vendor means a row here, a driver module in `dzops/execute/drivers/` and templates in
`templates/<name>/`.

Capability columns (config replace, merge, commit-confirm, getters) say what each platform's driver
can really do. Every command asks `refusal(platform, operation)` before it opens a session, so an
operation a platform lacks is refused with one line naming both, before any device is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DeviceFunction = Literal["routers", "switches", "servers", "access_points"]
FUNCTION_GROUPS: tuple[DeviceFunction, ...] = ("routers", "switches", "servers", "access_points")


@dataclass(frozen=True)
class Platform:
    name: str
    functions: tuple[DeviceFunction, ...]  # the function groups a device of this platform may belong to
    driver: str  # module under dzops.execute.drivers
    netmiko_device_type: str | None  # None: managed through Ansible (Linux) or a non-CLI API
    config_syntax: Literal["frr", "ios", "routeros", "hostapd", "linux", "eos", "nxos", "junos"]
    lab_kind: Literal["router", "switch", "server", "ap"] | None  # what the virtual lab builds for it
    # -- capability columns: what the driver really does, read by every command before it connects --
    config_replace: bool = False  # a whole intended config becomes the running one (diff, apply, rollback)
    config_merge: bool = False  # config lines merged into the running config
    # Commit with an automatic revert unless confirmed, *together with a replace*: what provisioning uses.
    commit_confirm: bool = False
    getters: frozenset[str] = frozenset()  # NAPALM getter names the driver answers
    # A switch port's VLANs read and set (port_state, apply_bridge_commands): how provision-ap makes the
    # port an AP plugs into a trunk of its SSIDs' VLANs, for hostapd and vendor APs alike.
    bridge_ports: bool = False
    napalm_driver: str | None = None  # the NAPALM driver name, for platforms dzops reaches through NAPALM


# The getters dzops reads from a device: backup and drift (config), discovery and diagrams (the rest).
NAPALM_GETTERS = frozenset({"get_config", "get_facts", "get_interfaces_ip", "get_lldp_neighbors_detail",
                            "get_interfaces", "get_users"})

PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        # vtysh behind an SSH login answers like IOS, which is what netmiko's cisco_ios expects.
        # No NAPALM driver exists for FRR; frr-reload.py gives it a real replace (no commit-confirm).
        Platform("frr", ("routers",), "frr", "cisco_ios", "frr", "router",
                 config_replace=True, getters=frozenset({"get_config"})),
        # Cumulus switch ports are set with `bridge vlan` commands, not by merging config lines.
        Platform("cumulus", ("switches",), "cumulus", "linux", "linux", "switch", getters=frozenset({"get_config"}),
                 bridge_ports=True),
        # NAPALM ios: replace and commit-confirm need `archive` on the router (configure replace,
        # `configure replace ... revert timer N`); the candidate travels by SCP.
        Platform("ios", ("routers", "switches", "access_points"), "napalm", "cisco_ios", "ios", None,
                 config_replace=True, config_merge=True, commit_confirm=True, getters=NAPALM_GETTERS,
                 napalm_driver="ios"),
        # napalm-ros refuses revert_in with a replace (reset-configuration removes its scheduler job):
        # a RouterOS replace is committed, verified and, when verification fails, rolled back.
        Platform("routeros", ("routers", "switches", "access_points"), "napalm", "mikrotik_routeros",
                 "routeros", None, config_replace=True, config_merge=True, commit_confirm=False,
                 getters=NAPALM_GETTERS, napalm_driver="ros"),
        Platform("eos", ("routers", "switches"), "napalm", "arista_eos", "eos", None,
                 config_replace=True, config_merge=True, commit_confirm=True, getters=NAPALM_GETTERS,
                 napalm_driver="eos"),
        # NAPALM's nxos_ssh has replace and merge but no commit-confirm (revert_in is refused).
        Platform("nxos_ssh", ("routers", "switches"), "napalm", "cisco_nxos", "nxos", None,
                 config_replace=True, config_merge=True, commit_confirm=False, getters=NAPALM_GETTERS,
                 napalm_driver="nxos_ssh"),
        Platform("junos", ("routers", "switches"), "napalm", "juniper_junos", "junos", None,
                 config_replace=True, config_merge=True, commit_confirm=True, getters=NAPALM_GETTERS,
                 napalm_driver="junos"),
        # hostapd APs are configured by whole files (dzops.execute.ap), not by a config replace.
        Platform("hostapd", ("access_points",), "hostapd", "linux", "hostapd", "ap", getters=frozenset({"get_config"})),
        Platform("debian", ("servers",), "linux", None, "linux", "server"),
        Platform("ubuntu", ("servers",), "linux", None, "linux", None),
        Platform("rhel", ("servers",), "linux", None, "linux", None),
    )
}

# Operations a command may need, each mapped to the capability column that allows it.
Operation = Literal["config_replace", "config_merge", "commit_confirm", "bridge_ports", "get_config", "get_facts",
                    "get_interfaces_ip", "get_lldp_neighbors_detail", "get_interfaces", "get_users"]
CAPABILITY_COLUMNS = ("config_replace", "config_merge", "commit_confirm", "bridge_ports")
OPERATION_WORDS: dict[str, str] = {
    "config_replace": "config replace", "config_merge": "config merge", "commit_confirm": "commit-confirm",
    "bridge_ports": "switch-port VLAN driver",
}


def supports(platform: str, operation: Operation) -> bool:
    """Whether the platform's driver can do the operation.

    >>> supports("ios", "commit_confirm"), supports("routeros", "commit_confirm"), supports("frr", "get_facts")
    (True, False, False)
    >>> supports("cumulus", "bridge_ports"), supports("ios", "bridge_ports")
    (True, False)
    >>> supports("no-such-platform", "get_config")
    False
    """
    row = PLATFORMS.get(platform)
    if row is None:
        return False
    if operation in CAPABILITY_COLUMNS:
        return bool(getattr(row, operation))
    return operation in row.getters


def refusal(platform: str, operation: Operation, host: str | None = None) -> str | None:
    """The one line that refuses an operation a platform lacks, or None when it can be done.

    >>> refusal("ios", "config_replace") is None
    True
    >>> refusal("debian", "config_replace", host="ws1")
    'ws1: platform debian has no config replace: refused before connecting'
    >>> refusal("frr", "get_lldp_neighbors_detail")
    'platform frr has no get_lldp_neighbors_detail: refused before connecting'
    >>> refusal("ios", "bridge_ports", host="sw1")
    'sw1: platform ios has no switch-port VLAN driver: refused before connecting'
    """
    if supports(platform, operation):
        return None
    subject = f"{host}: platform {platform}" if host else f"platform {platform}"
    if platform not in PLATFORMS:
        return f"{subject} is unknown: refused before connecting"
    return f"{subject} has no {OPERATION_WORDS.get(operation, operation)}: refused before connecting"


def refusals(hosts: dict[str, str], operations: tuple[Operation, ...]) -> dict[str, str]:
    """Host -> the first refusal among the operations it needs, for hosts (name -> platform) that lack one.

    >>> refusals({"r1": "ios", "srv": "debian"}, ("config_replace",))
    {'srv': 'srv: platform debian has no config replace: refused before connecting'}
    """
    found: dict[str, str] = {}
    for host, platform in hosts.items():
        for operation in operations:
            line = refusal(platform, operation, host=host)
            if line is not None:
                found[host] = line
                break
    return found


def platform_names() -> list[str]:
    """Known platform names, sorted.

    >>> "frr" in platform_names() and "ios" in platform_names()
    True
    """
    return sorted(PLATFORMS)
