"""One driver module per platform family, found by name through `driver_for`.

A driver has the NAPALM-shaped interface of `dzops.execute.drivers.base.NetworkDriver`. Adding a
vendor means adding a module here (and templates), registered in `dzops.platforms.PLATFORMS`.
"""

from __future__ import annotations

import importlib
from typing import Any

from dzops.execute.drivers.base import Credentials, NetworkDriver
from dzops.platforms import PLATFORMS


def driver_for(platform: str, credentials: Credentials, **options: Any) -> NetworkDriver:
    """An (unopened) driver for a device of this platform."""
    module = importlib.import_module(f"dzops.execute.drivers.{PLATFORMS[platform].driver}")
    driver: NetworkDriver = module.Driver(credentials, **options)
    return driver
