"""provision-wan on devices: preflight, apply both ends, verify within a bound, roll back on failure.

Nothing is changed on any device until every end of a link has answered and shown that its
interface exists. A link whose verification fails is removed again from both ends: a router whose
only changes were failed links gets its saved running config back exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.base import ConfigDiff, NetworkDriver
from dzops.execute.ssh import Progress, credentials, fan_out
from dzops.inventory.models import Inventory
from dzops.models import HostResult, LinkResult
from dzops.plan.wan import WanEnd, WanPlan, plan_wan

log = logging.getLogger(__name__)




@dataclass
class _Session:
    host: str
    driver: NetworkDriver | None = None
    saved: str = ""
    error: str | None = None
    unreachable: bool = False
    diff: ConfigDiff = field(default_factory=ConfigDiff)
    applied: bool = False
    interfaces: dict[str, bool] | None = None  # name -> up, where the driver can list them at once




class WanRun:
    def __init__(self, inventory: Inventory, scope: list[str], *, check: bool = False,
                 verify_timeout: float = 90.0, progress: Progress | None = None) -> None:
        self.inventory = inventory
        self.scope = scope
        self.check = check
        self.verify_timeout = verify_timeout
        self.progress = progress or (lambda _subject, _message: None)
        self.sessions: dict[str, _Session] = {}
        self.results = {name: LinkResult(link=name) for name in scope}

    # -- phases -------------------------------------------------------------------------------
    def run(self) -> list[LinkResult]:
        hosts = sorted({end.host for name in self.scope
                        for end in (self.inventory.wan_link(name).a, self.inventory.wan_link(name).b)})
        self.sessions = {h: _Session(h) for h in hosts}
        try:
            fan_out(self._connect, hosts)
            excluded = self._preflight()
            plan = plan_wan(self.inventory, self.scope, exclude=excluded, running=self._saved())
            self._unsupported(plan)
            fan_out(lambda h: self._apply(h, plan), plan.hosts())
            self._collect(plan)
            if not self.check:
                failed = self._verify(plan)
                if failed:
                    self._undo(plan, failed)
        finally:
            fan_out(self._close, hosts)
        return [self.results[name] for name in self.scope]

    def _connect(self, host: str) -> None:
        session = self.sessions[host]
        device = self.inventory.devices[host]
        try:
            driver = driver_for(device.platform, credentials(self.inventory, device))
            driver.open()
            session.driver = driver
            session.saved = driver.get_config()
            if hasattr(driver, "interfaces"):
                session.interfaces = driver.interfaces()
            self.progress(host, "connected")
        except ConnectionFailed as exc:
            session.error, session.unreachable = str(exc), True
        except DeviceError as exc:
            session.error = str(exc)

    def _preflight(self) -> set[str]:
        """Links that cannot be provisioned because an end is unreachable or lacks its interface."""
        excluded: set[str] = set()
        for name in self.scope:
            link = self.inventory.wan_link(name)
            result = self.results[name]
            for end in (link.a, link.b):
                session = self.sessions[end.host]
                if session.error:
                    result.status = "unreachable" if session.unreachable else "failed"
                    result.error = session.error
                    excluded.add(name)
                    break
                if not self._has_interface(session, end.interface):
                    result.status, result.error = "failed", f"{end.host}: no interface {end.interface} on the device"
                    result.failed_check = "interface exists"
                    excluded.add(name)
                    break
        for name in excluded:
            self.progress(name, f"skipped: {self.results[name].error}")
        return excluded

    @staticmethod
    def _has_interface(session: _Session, interface: str) -> bool:
        if session.interfaces is not None:
            return interface in session.interfaces
        assert session.driver is not None
        try:
            session.driver.cli([f"show interface {interface}"])
            return True
        except DeviceError:
            return False

    def _unsupported(self, plan: WanPlan) -> None:
        for name in plan.scope:
            link = self.inventory.wan_link(name)
            for end in (link.a, link.b):
                if end.host not in plan.candidates:
                    platform = self.inventory.devices[end.host].platform
                    self.results[name].status = "failed"
                    self.results[name].error = (f"{end.host}: platform '{platform}' has no config-replace driver yet; "
                                                f"render with `dzops provision-wan --check`")

    def _apply(self, host: str, plan: WanPlan) -> None:
        session = self.sessions[host]
        if session.driver is None:
            return
        try:
            if self.check:
                session.diff = session.driver.compare_config(plan.candidates[host])
            else:
                session.diff = session.driver.load_replace_candidate(plan.candidates[host])
                session.applied = not session.diff.empty
            self.progress(host, "unchanged" if session.diff.empty else ("would change" if self.check else "applied"))
        except DeviceError as exc:
            session.error = str(exc)
            self.progress(host, f"failed: {exc}")

    def _collect(self, plan: WanPlan) -> None:
        for name in plan.scope:
            result = self.results[name]
            result.subnet = str(plan.allocation[name])
            link = self.inventory.wan_link(name)
            for end in (link.a, link.b):
                session = self.sessions[end.host]
                result.hosts[end.host] = HostResult(
                    host=end.host, status="failed" if session.error else ("changed" if not session.diff.empty else "ok"),
                    changed=not session.diff.empty and not self.check, diff=session.diff.text(), error=session.error)
                if session.error and result.status not in ("failed", "unreachable"):
                    result.status, result.error = "failed", session.error
            if result.status not in ("failed", "unreachable"):
                result.changed = any(not self.sessions[e.host].diff.empty for e in (link.a, link.b))
                result.status = "changed" if result.changed else "ok"

    # -- verification ---------------------------------------------------------------------------
    def _verify(self, plan: WanPlan) -> set[str]:
        """Links whose checks did not all pass within the time bound (failed applies included)."""
        to_verify = [n for n in plan.scope if self.results[n].status == "changed"]
        failed = {n for n in plan.scope if self.results[n].status == "failed"}
        ends_by_link: dict[str, list[WanEnd]] = {}
        for host_ends in plan.ends.values():
            for end in host_ends:
                ends_by_link.setdefault(end.link, []).append(end)
        deadline = time.monotonic() + self.verify_timeout

        def verify(name: str) -> None:
            result = self.results[name]
            ends = ends_by_link[name]
            pending = self._checks(ends)
            while True:
                still = []
                for label, host, check in pending:
                    try:
                        ok = check()
                    except Exception as exc:  # noqa: BLE001 - a check that cannot run has not passed
                        log.info("%s: check '%s' could not run: %s", name, label, exc)
                        ok = False
                    (result.checks.append(label) if ok else still.append((label, host, check)))
                pending = still
                if not pending or time.monotonic() > deadline:
                    break
                time.sleep(2)
            if pending:
                result.failed_check = pending[0][0]
                result.status, result.error = "failed", f"verification failed: {pending[0][0]}"
                failed.add(name)
            else:
                result.verified = True
                self.progress(name, "verified")

        fan_out(verify, to_verify)
        return failed

    def _checks(self, ends: list[WanEnd]) -> list[tuple[str, str, Callable[[], bool]]]:
        checks: list[tuple[str, str, Callable[[], bool]]] = []
        for end in ends:
            drv = self.sessions[end.host].driver
            assert drv is not None
            checks.append((f"{end.host} {end.ifname} is up", end.host,
                           lambda d=drv, e=end: _interface_up(d, e.ifname)))
        near = ends[0]
        drv = self.sessions[near.host].driver
        assert drv is not None
        if near.routing == "ospf":
            checks.append((f"{near.host} OSPF neighbour {near.far_address} Full", near.host,
                           lambda: _ospf_full(drv, str(near.far_address))))
        else:
            for prefix in near.far_lan_prefixes:
                checks.append((f"{near.host} route to {prefix} via {near.far_address}", near.host,
                               lambda p=prefix: _route_via(drv, str(p), str(near.far_address))))
        if not getattr(drv, "can_ping", True):
            return checks  # e.g. a vtysh-only login: vtysh's ping never ends on an exec channel
        checks.append((f"{near.host} ping {near.far_host} {near.far_address}", near.host,
                       lambda: _ping(drv, str(near.far_address))))
        far_lan = self._far_lan_address(near.far_host)
        if far_lan:
            checks.append((f"{near.host} ping {near.far_host} LAN {far_lan}", near.host, lambda: _ping(drv, far_lan)))
        return checks

    def _far_lan_address(self, host: str) -> str | None:
        device = self.inventory.devices[host]
        interface = device.interfaces.get(device.lan_interface or "")
        return str(interface.address.ip) if interface and interface.address else None

    # -- undo -----------------------------------------------------------------------------------
    def _undo(self, plan: WanPlan, failed: set[str]) -> None:
        """Remove failed links from both ends; a router with nothing else changed gets its saved config."""
        keep = set(plan.scope) - failed
        undo_plan = plan_wan(self.inventory, list(plan.scope), exclude=failed, running=self._saved())

        def undo(host: str) -> None:
            session = self.sessions[host]
            if session.driver is None or not session.applied:
                return
            links_here = {e.link for e in plan.ends.get(host, []) if e.link in plan.scope}
            try:
                if links_here & keep:
                    session.driver.load_replace_candidate(undo_plan.candidates[host])
                else:
                    session.driver.rollback(session.saved)
                self.progress(host, "rolled back")
            except DeviceError as exc:
                session.error = f"ROLLBACK FAILED: {exc}"
                self.progress(host, session.error)

        hosts = sorted({e.host for name in failed for e in (self.inventory.wan_link(name).a,
                                                             self.inventory.wan_link(name).b)})
        fan_out(undo, hosts)
        for name in failed:
            result = self.results[name]
            result.rolled_back = True
            result.changed = False
            result.status = "rolled_back" if result.status != "unreachable" else result.status
            for host in result.hosts:
                if self.sessions[host].error and "ROLLBACK FAILED" in (self.sessions[host].error or ""):
                    result.error = f"{result.error}; {self.sessions[host].error}"

    def _saved(self) -> dict[str, str]:
        return {host: s.saved for host, s in self.sessions.items() if s.saved}

    def _close(self, host: str) -> None:
        driver = self.sessions[host].driver
        if driver is not None:
            driver.close()


def _interface_up(driver: NetworkDriver, ifname: str) -> bool:
    out = driver.cli([f"show interface {ifname}"])[f"show interface {ifname}"]
    return "is up" in out.splitlines()[0] if out else False


def _ospf_full(driver: NetworkDriver, far_address: str) -> bool:
    out = driver.cli(["show ip ospf neighbor"])["show ip ospf neighbor"]
    return any(far_address in line.split() and "Full" in line for line in out.splitlines())


def _route_via(driver: NetworkDriver, prefix: str, via: str) -> bool:
    out = driver.cli([f"show ip route {prefix}"])[f"show ip route {prefix}"]
    return f"via {via}" in out or via in out


def _ping(driver: NetworkDriver, target: str) -> bool:
    ping = getattr(driver, "ping", None)
    if ping is not None:  # the device's own ping program (FRR on a shell login)
        return bool(ping(target))
    try:
        driver.cli([f"ping {target}"])
        return True
    except DeviceError:
        return False


def provision_wan(inventory: Inventory, scope: list[str], *, check: bool = False, verify_timeout: float = 90.0,
                  progress: Progress | None = None) -> list[LinkResult]:
    return WanRun(inventory, scope, check=check, verify_timeout=verify_timeout, progress=progress).run()
