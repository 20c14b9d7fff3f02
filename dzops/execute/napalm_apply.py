"""How a command's work on one NAPALM-platform device begins and ends (user apply, provision-ap).

One place for what every such command does around its own work: open the device's driver (a failure
is the host's result, "unreachable" when the device did not answer), then the work returns the
ConfigDiff it compared or applied; the diff is shown scrubbed as the platform's config (a candidate
carries keys and hashes), a non-empty diff on a host still "ok" makes it "changed", and a DeviceError
on the way is the host's result, never a crash of the run. The driver is closed whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute.drivers.base import ConfigDiff
from dzops.inventory.models import Inventory
from dzops.models import HostResult, Status


def failure_status(exc: DeviceError) -> Status:
    """A device that did not answer is unreachable; any other device error failed the host.

    >>> failure_status(ConnectionFailed("r1", "timed out")), failure_status(DeviceError("r1", "refused"))
    ('unreachable', 'failed')
    """
    return "unreachable" if isinstance(exc, ConnectionFailed) else "failed"


def apply_on_device(inventory: Inventory, host: str, result: HostResult, work: Callable[[Any], ConfigDiff]) -> HostResult:
    """Open the host's driver, run `work(driver)` and end the way every NAPALM apply ends (module docstring).

    `work` may set `result.status`/`error` itself (a rolled-back apply is "failed" with its reason);
    the diff it returns is still shown, and only a host left "ok" becomes "changed".
    """
    from dzops.execute.drivers import driver_for
    from dzops.execute.ssh import credentials
    from dzops.scrub import scrub_secrets, syntax_for

    device = inventory.devices[host]
    driver: Any = driver_for(device.platform, credentials(inventory, device))
    try:
        driver.open()
    except DeviceError as exc:
        return HostResult(host=host, status=failure_status(exc), error=str(exc))
    try:
        diff = work(driver)
        result.diff = scrub_secrets(diff.text(), syntax_for(device.platform))
        result.changed = not diff.empty and result.status == "ok"
        if result.changed:
            result.status = "changed"
    except DeviceError as exc:
        result.status, result.error = failure_status(exc), str(exc)
    finally:
        driver.close()
    return result
