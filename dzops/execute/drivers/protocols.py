"""One `typing.Protocol` per driver capability, matching the capability columns of `dzops.platforms`.

A command needs capabilities, not vendors: provisioning needs `ConfigReplace` (and `CommitConfirm`
where the platform has it), backup needs `Getters.get_config`, discovery the other getters. The
platform table says which platform offers which; `check_driver` proves at registration time that a
driver class really has the methods its platform's row promises, so the table cannot claim more
than the code does.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from dzops.execute.drivers.base import ConfigDiff, Credentials


@runtime_checkable
class Connection(Protocol):
    credentials: Credentials

    def open(self) -> None:
        """Connect; raises ConnectionFailed, AuthenticationFailed or HostKeyMismatch."""

    def close(self) -> None: ...


@runtime_checkable
class ConfigReplace(Protocol):
    """A whole intended configuration becomes the running one."""

    def compare_config(self, candidate: str) -> ConfigDiff:
        """What replacing the running config with the candidate would change; changes nothing."""

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        """Make the running config equal to the candidate; returns what changed."""

    def rollback(self, saved: str) -> None:
        """Undo the last change (as the platform defines rollback); `saved` is the config before it."""


@runtime_checkable
class ConfigMerge(Protocol):
    """Configuration lines merged into the running config."""

    def load_merge_candidate(self, lines: list[str]) -> ConfigDiff: ...


@runtime_checkable
class CommitConfirm(Protocol):
    """A replace committed with an automatic revert unless confirmed in time."""

    def commit_replace(self, candidate: str, revert_in: int) -> ConfigDiff:
        """Apply the candidate; the device reverts by itself after revert_in seconds unless confirmed."""

    def confirm_commit(self) -> None: ...

    def has_pending_commit(self) -> bool: ...


@runtime_checkable
class Getters(Protocol):
    """NAPALM-shaped getters: the running config as text, the rest as NAPALM's dictionaries."""

    def get_config(self) -> str: ...

    def get_facts(self) -> dict[str, Any]: ...

    def get_interfaces_ip(self) -> dict[str, Any]: ...

    def get_lldp_neighbors_detail(self) -> dict[str, list[dict[str, Any]]]: ...


@runtime_checkable
class SwitchPortVlans(Protocol):
    """A switch port's VLANs read and set (dzops.execute.drivers.bridge): the uplink of an access point."""

    def port_state(self, port: str) -> Any: ...

    def apply_bridge_commands(self, commands: list[str]) -> None: ...


# Capability column (or getter) of dzops.platforms -> the protocol a driver must satisfy for it.
CAPABILITY_PROTOCOLS: dict[str, type] = {
    "config_replace": ConfigReplace,
    "config_merge": ConfigMerge,
    "commit_confirm": CommitConfirm,
    "bridge_ports": SwitchPortVlans,
}


def missing_methods(driver_class: type, platform: str) -> list[str]:
    """The methods a platform's row promises that the driver class lacks (empty: the row is honest).

    >>> class OnlyConfig:
    ...     def get_config(self): ...
    >>> missing_methods(OnlyConfig, "frr")
    ['compare_config', 'load_replace_candidate', 'rollback']
    """
    from dzops.platforms import PLATFORMS

    row = PLATFORMS[platform]
    wanted: list[str] = []
    for column, protocol in CAPABILITY_PROTOCOLS.items():
        if getattr(row, column):
            wanted += [name for name in _protocol_methods(protocol) if name not in wanted]
    wanted += [name for name in sorted(row.getters) if name not in wanted]
    return [name for name in wanted if not callable(getattr(driver_class, name, None))]


def _protocol_methods(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def check_driver(driver_class: type, platform: str) -> None:
    """Raise TypeError when the driver class lacks a method its platform row promises."""
    missing = missing_methods(driver_class, platform)
    if missing:
        raise TypeError(f"{driver_class.__module__}.{driver_class.__qualname__} is registered for "
                        f"platform {platform} but lacks {', '.join(missing)}")
