"""One driver module per platform family, found by name through `driver_for`.

A driver has the NAPALM-shaped interface of `dzops.execute.drivers.base.NetworkDriver`. Adding a
vendor means adding a module here (and templates), registered in `dzops.platforms.PLATFORMS`; a
vendor NAPALM covers needs only its row (`napalm_driver`): `dzops.execute.drivers.napalm` is the one
adapter for all of them. Each driver class is checked once against what its platform's row promises
(`dzops.execute.drivers.protocols.check_driver`), so the capability columns cannot claim more than
the code does.
"""

from __future__ import annotations

import importlib
from typing import Any

from dzops.execute.drivers.base import Credentials, NetworkDriver
from dzops.platforms import PLATFORMS

_CHECKED: set[str] = set()


def driver_for(platform: str, credentials: Credentials, **options: Any) -> NetworkDriver:
    """An (unopened) driver for a device of this platform."""
    from dzops.execute.drivers.protocols import check_driver

    row = PLATFORMS[platform]
    module = importlib.import_module(f"dzops.execute.drivers.{row.driver}")
    if platform not in _CHECKED:
        check_driver(module.Driver, platform)
        _CHECKED.add(platform)
    if row.napalm_driver is not None:
        options.setdefault("platform", platform)
    driver: NetworkDriver = module.Driver(credentials, **options)
    return driver
