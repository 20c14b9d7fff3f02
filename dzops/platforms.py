"""The platform table: every vendor quirk that can be data lives here, not in commands.

Adding a vendor means a row here, a driver module in `dzops/execute/drivers/` and templates in
`templates/<name>/`.
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
    config_syntax: Literal["frr", "ios", "routeros", "hostapd", "linux"]
    lab_kind: Literal["router", "switch", "server", "ap"] | None  # what the virtual lab builds for it


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        # vtysh behind an SSH login answers like IOS, which is what netmiko's cisco_ios expects.
        Platform("frr", ("routers",), "frr", "cisco_ios", "frr", "router"),
        Platform("cumulus", ("switches",), "cumulus", "linux", "linux", "switch"),
        Platform("ios", ("routers", "switches", "access_points"), "ios", "cisco_ios", "ios", None),
        Platform("routeros", ("routers", "switches", "access_points"), "routeros", "mikrotik_routeros",
                 "routeros", None),
        Platform("hostapd", ("access_points",), "hostapd", "linux", "hostapd", "ap"),
        Platform("debian", ("servers",), "linux", None, "linux", "server"),
        Platform("ubuntu", ("servers",), "linux", None, "linux", None),
        Platform("rhel", ("servers",), "linux", None, "linux", None),
    )
}


def platform_names() -> list[str]:
    """Known platform names, sorted.

    >>> "frr" in platform_names() and "ios" in platform_names()
    True
    """
    return sorted(PLATFORMS)
