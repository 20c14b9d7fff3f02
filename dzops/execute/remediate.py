"""`drift --remediate` on devices: the same safe path as provisioning, for a device's whole config.

Per device: preflight (it answers, its host key is known, the login can compare a candidate, so
the device is onboarded), save the running config, replace it with the whole intended config,
verify (collect again: nothing may differ from intended; the device's WAN links pass the same
checks provision-wan runs), and put the saved config back when anything fails. `check` stops
after the comparison and changes nothing. The checks, the wait for them and the read-back put-back
are provision-wan's own (`dzops.execute.wan`: link_checks, await_checks, put_back), not a copy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from dzops.exceptions import ConnectionFailed, DzopsError
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.base import ConfigDiff, NetworkDriver
from dzops.execute.ssh import Progress, credentials, fan_out
from dzops.execute.wan import Check, await_checks, link_checks, put_back, remaining
from dzops.inventory.models import Inventory
from dzops.models import HostResult
from dzops.plan.wan import WanEnd, wan_ends

log = logging.getLogger(__name__)


@dataclass
class _Device:
    host: str
    intended: str
    driver: NetworkDriver | None = None
    saved: str = ""
    error: str | None = None
    unreachable: bool = False
    diff: ConfigDiff = field(default_factory=ConfigDiff)
    applied: bool = False


class Remediation:
    def __init__(self, inventory: Inventory, intended: dict[str, str], *, check: bool = False,
                 verify_timeout: float = 90.0, progress: Progress | None = None, forks: int = 10) -> None:
        self.inventory = inventory
        self.forks = forks
        self.intended = intended  # host -> whole intended config (only devices that have one)
        self.check = check
        self.verify_timeout = verify_timeout
        self.progress = progress or (lambda _subject, _message: None)
        self.devices = {host: _Device(host, text) for host, text in intended.items()}
        self.peers: dict[str, NetworkDriver | None] = {}  # far ends, read only, for link checks
        self.results = {host: HostResult(host=host) for host in intended}

    def run(self) -> list[HostResult]:
        hosts = sorted(self.devices)
        try:
            fan_out(self._preflight, hosts, self.forks)
            to_change = [h for h in hosts if self.devices[h].error is None and not self.devices[h].diff.empty]
            if not self.check:
                fan_out(self._apply, to_change, self.forks)
                applied = [h for h in to_change if self.devices[h].applied]
                self._open_peers(applied)
                fan_out(self._verify, applied, self.forks)
        finally:
            fan_out(self._close, hosts, self.forks)
            fan_out(lambda d: d.close(), [d for d in self.peers.values() if d is not None], self.forks)
        for host in hosts:
            self._result(host)
        return [self.results[h] for h in hosts]

    # -- phases -------------------------------------------------------------------------------
    def _preflight(self, host: str) -> None:
        device = self.devices[host]
        try:
            driver = driver_for(self.inventory.devices[host].platform,
                                credentials(self.inventory, self.inventory.devices[host]))
            driver.open()
            device.driver = driver
            device.saved = driver.get_config()
            device.diff = driver.compare_config(device.intended)
            self.progress(host, "as intended" if device.diff.empty else
                          ("would change" if self.check else "drifted: remediating"))
        except ConnectionFailed as exc:
            device.error, device.unreachable = str(exc), True
            self.progress(host, f"unreachable: {exc}")
        except DzopsError as exc:  # host key, login or a device that cannot compare: not onboarded
            device.error = f"preflight failed: {exc}"
            self.progress(host, device.error)

    def _apply(self, host: str) -> None:
        device = self.devices[host]
        assert device.driver is not None
        try:
            device.applied = True  # from here on a failure may have changed something: roll back
            device.driver.load_replace_candidate(device.intended)
            self.progress(host, "applied")
        except DzopsError as exc:
            device.error = f"apply failed: {exc}"
            self._rollback(device)

    def _verify(self, host: str) -> None:
        device = self.devices[host]
        if device.error is not None:
            return
        assert device.driver is not None
        result = self.results[host]
        try:
            left = remaining(device.driver, device.intended)  # collected again, not what the driver remembers
        except DzopsError as exc:
            device.error = f"verification failed: cannot collect the config again: {exc}"
            self._rollback(device)
            return
        if not left.empty:
            device.error = f"verification failed: still differs from intended ({len(left.remove)} line(s) to " \
                           f"remove, {len(left.add)} to add)"
            self._rollback(device)
            return
        passed, pending = await_checks(self._link_checks(host), time.monotonic() + self.verify_timeout,
                                       subject=host)
        result.data["checks"] = ["no drift left", *passed]
        if pending:
            device.error = f"verification failed: {pending[0][0]}"
            result.data["failed_check"] = pending[0][0]
            self._rollback(device)
        else:
            self.progress(host, "verified")

    def _rollback(self, device: _Device) -> None:
        result = self.results[device.host]
        driver = device.driver
        if driver is None or not device.applied:
            return
        # Read back: a rollback that left lines behind is a failure to report, not a rollback.
        back = put_back(driver, device.saved, lambda: driver.rollback(device.saved))
        if back.read_error is not None:
            device.error = (f"{device.error}; ROLLBACK FAILED: {back.send_error or 'rollback sent'}; "
                            f"cannot read the config back: {back.read_error}")
        elif not back.left.empty:
            device.error = (f"{device.error}; ROLLBACK FAILED: {back.send_error + '; ' if back.send_error else ''}"
                            f"the saved config is not back ({len(back.left.remove)} line(s) to remove, "
                            f"{len(back.left.add)} to add)")
        else:
            result.data["rolled_back"] = True
            self.progress(device.host, f"{device.error}; rolled back")
            return
        self.progress(device.host, device.error)

    # -- WAN links ------------------------------------------------------------------------------
    def _ends(self, host: str) -> list[tuple[WanEnd, WanEnd]]:
        """(this end, far end) of each of the device's declared WAN links."""
        ends = wan_ends(self.inventory)
        pairs = []
        for end in ends.get(host, []):
            far = next(e for e in ends.get(end.far_host, []) if e.link == end.link)
            pairs.append((end, far))
        return pairs

    def _open_peers(self, hosts: list[str]) -> None:
        wanted = sorted({far.host for h in hosts for _, far in self._ends(h)} - set(self.devices))

        def open_peer(host: str) -> None:
            try:
                driver = driver_for(self.inventory.devices[host].platform,
                                    credentials(self.inventory, self.inventory.devices[host]))
                driver.open()
                self.peers[host] = driver
            except DzopsError as exc:
                log.info("%s: far end not reachable for link checks: %s", host, exc)
                self.peers[host] = None

        fan_out(open_peer, wanted, self.forks)

    def _driver(self, host: str) -> NetworkDriver | None:
        device = self.devices.get(host)
        return device.driver if device is not None else self.peers.get(host)

    def _link_checks(self, host: str) -> list[Check]:
        """provision-wan's own checks for each link that can carry traffic now.

        A link is checked when its far end answers and carries the link (its subnet written back
        by a verified provision-wan, or the far end configured with its intended address): a
        circuit still waiting for its far end is not this device's failure.
        """
        checks: list[Check] = []
        for near, far in self._ends(host):
            far_driver = self._driver(far.host)
            if far_driver is None:
                self.results[host].data.setdefault("not_checked", []).append(
                    f"{near.link}: far end {far.host} not reachable")
                continue
            if self.inventory.wan_link(near.link).subnet is None and not _carries(far_driver, far):
                self.results[host].data.setdefault("not_checked", []).append(
                    f"{near.link}: far end {far.host} not provisioned yet")
                continue
            checks += link_checks(self.inventory, [near, far], self._driver)
        return checks

    # -- results --------------------------------------------------------------------------------
    def _result(self, host: str) -> None:
        device = self.devices[host]
        result = self.results[host]
        result.data["remove"] = list(device.diff.remove)
        result.data["add"] = list(device.diff.add)
        result.diff = device.diff.text()
        result.error = device.error
        if device.error is None:
            result.status = "ok" if device.diff.empty else "changed"
            result.changed = device.applied and not self.check
        elif device.unreachable:
            result.status = "unreachable"
        elif result.data.get("rolled_back"):
            result.status = "rolled_back"
        else:
            result.status = "failed"

    def _close(self, host: str) -> None:
        driver = self.devices[host].driver
        if driver is not None:
            driver.close()


def _carries(driver: NetworkDriver, end: WanEnd) -> bool:
    """Whether the device's running config has this end's interface with its intended address."""
    try:
        running = driver.get_config()
    except DzopsError:
        return False
    lines = running.splitlines()
    try:
        start = lines.index(f"interface {end.ifname}")
    except ValueError:
        return False
    block = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        block.append(line.strip())
    return f"ip address {end.address}" in block


def remediate(inventory: Inventory, intended: dict[str, str], *, check: bool = False,
              verify_timeout: float = 90.0, progress: Progress | None = None, forks: int = 10) -> list[HostResult]:
    """Replace each device's running config with its intended one, verified, rolled back on failure."""
    return Remediation(inventory, intended, check=check, verify_timeout=verify_timeout, progress=progress,
                       forks=forks).run()
