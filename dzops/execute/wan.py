"""provision-wan on devices: preflight, apply both ends, verify within a bound, roll back on failure.

Nothing is changed on any device until every end of a link has answered and shown that its
interface exists. A link whose verification fails is removed again from both ends: a router whose
only changes were failed links gets its saved running config back exactly.

A link with an end whose platform cannot take a config replace (or has no WAN templates) is
refused before any device is touched, both ends alike (`dzops.platforms.refusal`). On platforms
with commit-confirm (NAPALM's IOS, EOS, Junos) the replace is committed with a revert timer and
confirmed only once every link on that device verified or was taken off again: a device that
loses its management path on the way reverts by itself.

Results are checked, never assumed. frr-reload keeps going after a line the daemon rejects and
writes what it managed, so after every apply the running config is read back and compared with the
candidate: an end that did not take the whole candidate failed, and every end on which an apply
was attempted (whatever its outcome) is rolled back when its link fails. A rollback is read back
too: one that did not restore the saved config is reported `failed`, with the lines still left on
the device, never `rolled_back`.

Verification ends with what the WAN is for: from each gewog LAN a changed link serves (its end
farther from HQ), the HQ servers answer ping and their declared TCP services, probed on the gewog
router from its LAN address, so the replies must find their way back to the office. When a server
does not answer, the result names the first hop on the path (from the inventory's WAN graph) that
does not answer either. A link whose goal is not reached is failed and rolled back like any other.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.base import ConfigDiff, NetworkDriver
from dzops.execute.drivers.frr import config_pairs
from dzops.execute.ssh import Progress, credentials, fan_out
from dzops.inventory.models import Inventory
from dzops.models import HostResult, LinkResult
from dzops.plan.wan import (
    GoalCheck,
    Hop,
    WanEnd,
    WanPlan,
    first_failing_hop,
    gewog_behind,
    goal_checks,
    plan_wan,
    wan_ends,
)

log = logging.getLogger(__name__)

MAX_LISTED_LINES = 20  # lines named in a result's error; the whole list is in the host's data


@dataclass
class _Session:
    host: str
    driver: NetworkDriver | None = None
    saved: str = ""
    error: str | None = None
    unreachable: bool = False
    diff: ConfigDiff = field(default_factory=ConfigDiff)
    attempted: bool = False  # an apply was sent: the device may have changed, whatever came back
    interfaces: dict[str, bool] | None = None  # name -> up, where the driver can list them at once
    undone: bool = False  # rolled back and read back equal to its target
    undo_error: str | None = None  # the rollback failed: why, and what is left
    left: tuple[str, ...] = ()  # lines still separating the device from its rollback target
    pending: bool = False  # committed with a revert timer, not confirmed yet


def remaining(driver: NetworkDriver, target: str) -> ConfigDiff:
    """What still separates the device's running config from `target` (empty: nothing).

    The (context, line) pairs decide first; where they differ only by how FRR prints what it was
    given (a rendered candidate), the driver's own compare has the last word.
    """
    running = driver.get_config()
    if config_pairs(running) == config_pairs(target):
        return ConfigDiff()
    return driver.compare_config(target)


def listed(diff: ConfigDiff, limit: int = MAX_LISTED_LINES) -> str:
    """Lines of a diff for a one-line message (removals: on the device; additions: missing).

    >>> listed(ConfigDiff(add=("ip route 10.0.0.0/8 10.1.1.1",), remove=("interface eth1", " ip address 10.9.9.1/30")))
    '- interface eth1 | -  ip address 10.9.9.1/30 | + ip route 10.0.0.0/8 10.1.1.1'
    >>> listed(ConfigDiff(remove=tuple(f"l{i}" for i in range(5))), limit=2)
    '- l0 | - l1 | ... (3 more)'
    """
    lines = diff.text().splitlines()
    shown = " | ".join(lines[:limit])
    return shown + (f" | ... ({len(lines) - limit} more)" if len(lines) > limit else "")


# -- the apply-verify-rollback step provision-wan and drift --remediate share -----------------------

Check = tuple[str, str, Callable[[], bool]]  # (label, the host it runs on, the check)


def await_checks(checks: list[Check], deadline: float, *, last: Check | None = None,
                 subject: str = "") -> tuple[list[str], list[Check]]:
    """Run checks until each has passed once or `deadline` (monotonic) is past: (labels passed, checks failing).

    A check that raises has not passed. `last` is run only in a round where every other check passed
    (the goal counts only once the link itself is up), so a failing `last` means the rest is fine.

    >>> calls = []
    >>> def flaky(): calls.append(1); return len(calls) > 1
    >>> await_checks([("a", "r", flaky)], time.monotonic() + 10, last=("goal", "r", lambda: True))
    (['a', 'goal'], [])
    >>> await_checks([("a", "r", lambda: 1 / 0)], time.monotonic(), last=("goal", "r", lambda: True))[1][0][0]
    'a'
    """
    pending = [*checks, *([last] if last else [])]
    passed: list[str] = []
    while True:
        still: list[Check] = []
        for item in pending:
            label, host, check = item
            if item is last and still:
                still.append(item)
                continue
            try:
                ok = check()
            except Exception as exc:  # noqa: BLE001 - a check that cannot run has not passed
                log.info("%s: check '%s' could not run: %s", subject or host, label, exc)
                ok = False
            (passed.append(label) if ok else still.append(item))
        pending = still
        if not pending or time.monotonic() > deadline:
            return passed, pending
        time.sleep(2)


def link_checks(inventory: Inventory, ends: list[WanEnd], driver: Callable[[str], NetworkDriver | None]) -> list[Check]:
    """A link's checks, from the ends given (the first one pings): each end's interface up, OSPF Full (or the
    static routes) on the first, its pings of the far end and of the far site's LAN. `driver(host)` is each
    end's open driver."""
    checks: list[Check] = []
    for end in ends:
        drv = driver(end.host)
        assert drv is not None
        checks.append((f"{end.host} {end.ifname} is up", end.host,
                       lambda d=drv, e=end: _interface_up(d, e.ifname)))
    near = ends[0]
    drv = driver(near.host)
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
    far_lan = far_lan_address(inventory, near.far_host)
    if far_lan:
        checks.append((f"{near.host} ping {near.far_host} LAN {far_lan}", near.host, lambda: _ping(drv, far_lan)))
    return checks


def far_lan_address(inventory: Inventory, host: str) -> str | None:
    device = inventory.devices[host]
    interface = device.interfaces.get(device.lan_interface or "")
    return str(interface.address.ip) if interface and interface.address else None


@dataclass(frozen=True)
class PutBack:
    """What sending a device back to a target config left: read back, never assumed."""

    left: ConfigDiff  # what still separates the device from the target (empty: restored)
    send_error: str | None = None  # the rollback or replace itself failed (it may still have done its work)
    read_error: str | None = None  # the config could not be read back: nothing is known


def put_back(driver: NetworkDriver, target: str, send: Callable[[], object]) -> PutBack:
    """Send the device back (`send`: a rollback or a replace to `target`), then read back what is left."""
    send_error = None
    try:
        send()
    except DeviceError as exc:
        send_error = str(exc)
    try:
        return PutBack(remaining(driver, target), send_error)
    except DeviceError as exc:
        return PutBack(ConfigDiff(), send_error, str(exc))


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
        self.refused: set[str] = set()  # links with an end no driver can apply: never touched
        # Seconds before an unconfirmed commit reverts: verification's bound plus room for the undo,
        # in whole minutes (IOS and Junos count minutes).
        self.revert_in = max(120, -(-int(verify_timeout + 120) // 60) * 60)

    # -- phases -------------------------------------------------------------------------------
    def run(self) -> list[LinkResult]:
        hosts = sorted({end.host for name in self.scope
                        for end in (self.inventory.wan_link(name).a, self.inventory.wan_link(name).b)})
        self.sessions = {h: _Session(h) for h in hosts}
        self.refused = self._refuse_incapable()
        needed = sorted({end.host for name in self.scope if name not in self.refused
                         for end in (self.inventory.wan_link(name).a, self.inventory.wan_link(name).b)})
        try:
            fan_out(self._connect, needed)
            excluded = self._preflight() | self.refused
            plan = plan_wan(self.inventory, self.scope, exclude=excluded, running=self._saved())
            self._unsupported(plan)
            fan_out(lambda h: self._apply(h, plan), plan.hosts())
            self._collect(plan)
            if not self.check:
                failed = self._verify(plan)
                if failed:
                    self._undo(plan, failed)
                self._confirm(plan)
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

    def _refuse_incapable(self) -> set[str]:
        """Links with an end whose platform cannot take a replace of its WAN side; nothing is connected to."""
        from dzops.plan.candidates import CANDIDATE_PLATFORMS
        from dzops.platforms import PLATFORMS, refusal

        refused: set[str] = set()
        for name in self.scope:
            link = self.inventory.wan_link(name)
            for end in (link.a, link.b):
                platform = self.inventory.devices[end.host].platform
                line = refusal(platform, "config_replace", host=end.host)
                if line is None and PLATFORMS[platform].config_syntax != "frr" and platform not in CANDIDATE_PLATFORMS:
                    line = f"{end.host}: platform {platform} has no WAN templates: refused before connecting"
                if line:
                    result = self.results[name]
                    result.status, result.error, result.failed_check = "failed", line, "platform capability"
                    refused.add(name)
                    self.progress(name, f"skipped: {line}")
                    break
        return refused

    def _preflight(self) -> set[str]:
        """Links that cannot be provisioned because an end is unreachable or lacks its interface."""
        excluded: set[str] = set()
        for name in self.scope:
            if name in self.refused:
                continue  # refused before connecting: its ends may never have been opened
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
        candidate = plan.candidates[host]
        try:
            if self.check:
                session.diff = session.driver.compare_config(candidate)
            else:
                session.attempted = True  # from here on the device may change, even if the call fails
                session.diff = self._replace(session, candidate)
                if not session.diff.empty:
                    rest = remaining(session.driver, candidate)
                    if not rest.empty:
                        session.error = (f"{host}: apply incomplete: the device did not take the whole "
                                         f"candidate; still differing: {listed(rest)}")
                        self.progress(host, session.error)
                        return
            self.progress(host, "unchanged" if session.diff.empty else ("would change" if self.check else "applied"))
        except DeviceError as exc:
            session.error = str(exc)
            if session.attempted:
                session.diff = self._applied_so_far(session)
            self.progress(host, f"failed: {exc}")

    def _replace(self, session: _Session, candidate: str) -> ConfigDiff:
        """Replace with a revert timer where the platform has commit-confirm, else a plain replace."""
        from dzops.platforms import PLATFORMS

        driver: Any = session.driver
        if PLATFORMS[self.inventory.devices[session.host].platform].commit_confirm and hasattr(driver, "commit_replace"):
            diff: ConfigDiff = driver.commit_replace(candidate, self.revert_in)
            session.pending = not diff.empty
            return diff
        return driver.load_replace_candidate(candidate)

    def _confirm(self, plan: WanPlan) -> None:
        """Confirm every commit still pending: its links verified, or were taken off again by a plain replace."""
        def confirm(host: str) -> None:
            session = self.sessions[host]
            driver: Any = session.driver
            if not session.pending or driver is None:
                return
            try:
                driver.confirm_commit()
                session.pending = False
                self.progress(host, "commit confirmed")
            except DeviceError as exc:
                # Unconfirmed, the device reverts by itself when the timer runs out: its links are not in place.
                reason = f"{host}: commit not confirmed ({exc}); the device reverts within {self.revert_in} s"
                self.progress(host, reason)
                for name in plan.scope:
                    if any(e.link == name for e in plan.ends.get(host, [])) and self.results[name].status != "rolled_back":
                        self.results[name].status, self.results[name].error = "failed", reason
                        self.results[name].verified = False

        fan_out(confirm, sorted(h for h, s in self.sessions.items() if s.pending))

    @staticmethod
    def _applied_so_far(session: _Session) -> ConfigDiff:
        """What a failed apply changed on the device (saved -> now), for the result; empty if unreadable."""
        assert session.driver is not None
        try:
            back = remaining(session.driver, session.saved)
        except DeviceError:
            return ConfigDiff()
        return ConfigDiff(add=back.remove, remove=back.add)

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
        goals = self._goals(plan, to_verify)

        def verify(name: str) -> None:
            result = self.results[name]
            goal = goals.get(name)
            passed, pending = await_checks(self._checks(ends_by_link[name]), deadline, subject=name,
                                           last=(goal.label, goal.router, goal) if goal else None)
            result.checks.extend(passed)
            if pending:
                label, _host, check = pending[0]
                result.failed_check = label
                result.status, result.error = "failed", f"verification failed: {label}"
                if isinstance(check, _Goal):
                    result.error += f": {check.diagnosis()}"
                failed.add(name)
            else:
                result.verified = True
                self.progress(name, "verified")

        fan_out(verify, to_verify)
        return failed

    def _checks(self, ends: list[WanEnd]) -> list[Check]:
        return link_checks(self.inventory, ends, lambda host: self.sessions[host].driver)

    def _goals(self, plan: WanPlan, links: list[str]) -> dict[str, _Goal]:
        """Link -> the goal check of the gewog it serves; links serving one gewog share one check."""
        checks = goal_checks(self.inventory, plan.allocation)
        every_end = wan_ends(self.inventory, plan.allocation)
        shared: dict[str, _Goal] = {}
        out: dict[str, _Goal] = {}
        for name in links:
            gewog = gewog_behind(self.inventory, name, every_end)
            driver = self.sessions[gewog].driver if gewog in self.sessions else None
            if gewog is None or not checks.get(gewog) or driver is None:
                continue
            if not (getattr(driver, "shell_login", False) and hasattr(driver, "shell")):
                log.info("%s: no shell login on %s: the goal check from its LAN is not run", name, gewog)
                continue
            if gewog not in shared:
                shared[gewog] = _Goal(gewog, checks[gewog], driver)
            out[name] = shared[gewog]
        return out

    # -- undo -----------------------------------------------------------------------------------
    def _undo(self, plan: WanPlan, failed: set[str]) -> None:
        """Take failed links off every end an apply was attempted on; read back what each end holds.

        A router with nothing else changed gets its saved config; one that keeps verified links
        gets its candidate without the failed ones.
        """
        keep = set(plan.scope) - failed
        undo_plan = plan_wan(self.inventory, list(plan.scope), exclude=failed, running=self._saved())

        def undo(host: str) -> None:
            session = self.sessions[host]
            driver = session.driver
            if driver is None or not session.attempted:
                return
            links_here = {e.link for e in plan.ends.get(host, []) if e.link in plan.scope}
            partial = bool(links_here & keep)
            target = undo_plan.candidates[host] if partial else session.saved
            what = "its config without the failed link(s)" if partial else "its saved config"

            def send() -> None:
                if partial:
                    if session.pending:
                        # A replace cannot start while a commit waits for confirmation: keep the verified
                        # links (confirm), then take the failed ones off with a plain replace.
                        driver.confirm_commit()
                        session.pending = False
                    driver.load_replace_candidate(target)
                else:
                    driver.rollback(session.saved)  # NAPALM: a pending commit-confirm is reverted now
                    session.pending = False

            back = put_back(driver, target, send)
            refused = f"rollback to {what} failed: {back.send_error}" if back.send_error else None
            if back.read_error is not None:
                session.undo_error = (f"{refused or f'rollback to {what} sent'}; "
                                      f"cannot read the config back: {back.read_error}")
                self.progress(host, f"ROLLBACK NOT CONFIRMED: {session.undo_error}")
                return
            if back.left.empty:
                session.undone, session.undo_error = True, None
                self.progress(host, "rolled back")
                return
            session.left = back.left.remove + back.left.add
            session.undo_error = (f"{refused or f'rollback to {what} incomplete'}; "
                                  f"left on {host} (diff to {what}): {listed(back.left)}")
            self.progress(host, f"ROLLBACK FAILED: {session.undo_error}")

        # Links excluded before the apply were never on any candidate: their ends need nothing undone.
        hosts = sorted({e.host for name in failed if name in plan.scope
                        for e in (self.inventory.wan_link(name).a, self.inventory.wan_link(name).b)})
        fan_out(undo, hosts)
        for name in failed:
            self._settle(name, plan)

    def _settle(self, name: str, plan: WanPlan) -> None:
        """A failed link's final status: rolled_back only if every end it was applied on reads back restored."""
        result = self.results[name]
        link = self.inventory.wan_link(name)
        touched = [e.host for e in (link.a, link.b)
                   if self.sessions[e.host].attempted and any(w.link == name for w in plan.ends.get(e.host, []))]
        result.changed = False
        if not touched:
            return  # never applied anywhere: its failed/unreachable status stands as it is
        broken = [h for h in touched if not self.sessions[h].undone]
        for host in touched:
            session = self.sessions[host]
            entry = result.hosts.get(host)
            if entry is None:
                continue
            entry.changed = False
            if session.undone:
                entry.status = "rolled_back"
            else:
                entry.status = "failed"
                entry.error = "; ".join(x for x in (session.error, f"ROLLBACK FAILED: {session.undo_error}") if x)
                entry.data["left"] = list(session.left)
        if broken:
            result.status, result.rolled_back = "failed", False
            result.error = "; ".join([result.error or "failed"] + [
                f"ROLLBACK FAILED on {h}: {self.sessions[h].undo_error}" for h in broken])
        else:
            result.status, result.rolled_back = "rolled_back", True

    def _saved(self) -> dict[str, str]:
        return {host: s.saved for host, s in self.sessions.items() if s.saved}

    def _close(self, host: str) -> None:
        driver = self.sessions[host].driver
        if driver is not None:
            driver.close()


# Run on the gewog router by its own python3 (frr-pythontools depends on it): one exec channel
# answers every ping and TCP connect of a goal check, each from the LAN address, each bounded.
GOAL_PROBE = """
import json, socket, subprocess, sys
source, answers = sys.argv[1], {}
for item in sys.argv[2:]:
    kind, _, target = item.partition(":")
    if kind == "ping":
        answers[item] = subprocess.run(["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-w", "3",
                                        "-I", source, target], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL).returncode == 0
    else:
        host, _, port = target.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=3, source_address=(source, 0)).close()
            answers[item] = True
        except OSError:
            answers[item] = False
print(json.dumps(answers))
"""
GOAL_RETRY_SECONDS = 2.0  # links sharing a gewog reuse an attempt this recent instead of probing again


def goal_probe(driver: Any, host: str, source: str, items: list[str]) -> dict[str, bool]:
    """Ask the router which of `ping:ADDR` / `tcp:ADDR:PORT` answer from `source`."""
    out = driver.shell(["python3", "-c", GOAL_PROBE, source, *items])
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise DeviceError(host, f"the goal probe gave no answer: {out.strip()[:200]}")
    return {str(k): bool(v) for k, v in json.loads(lines[-1]).items()}


class _Goal:
    """One gewog's goal check: from its LAN address, every HQ server answers ping and its TCP services.

    Shared by the links that serve the gewog (one probe per attempt, not one per link); once it
    passed it stays passed for the run. `diagnosis()` walks the path when a server does not answer.
    """

    def __init__(self, router: str, checks: list[GoalCheck], driver: Any) -> None:
        self.router, self.checks, self.driver = router, checks, driver
        self.source = str(checks[0].source)
        self.label = f"{router} LAN {self.source} reaches HQ: " + "; ".join(c.label for c in checks)
        self._lock = threading.Lock()
        self._answers: dict[str, bool] = {}
        self._error: str | None = None
        self._passed = False
        self._when = float("-inf")
        self._diagnosis: str | None = None

    def _items(self, check: GoalCheck) -> list[str]:
        return [f"ping:{check.target}", *(f"tcp:{check.target}:{p}" for p in check.ports)]

    def __call__(self) -> bool:
        with self._lock:
            if self._passed or time.monotonic() - self._when < GOAL_RETRY_SECONDS:
                return self._passed
            self._when = time.monotonic()
            try:
                self._answers = goal_probe(self.driver, self.router, self.source,
                                           [item for c in self.checks for item in self._items(c)])
                self._error = None
            except DeviceError as exc:
                self._answers, self._error = {}, str(exc)
            self._passed = self._error is None and all(self._answers.get(i, False)
                                                       for c in self.checks for i in self._items(c))
            return self._passed

    def diagnosis(self) -> str:
        """What does not answer, and for a server that does not answer ping, the first hop that fails."""
        with self._lock:
            if self._diagnosis is None:
                self._diagnosis = self._diagnose()
            return self._diagnosis

    def _diagnose(self) -> str:
        if self._error:
            return f"the check could not run on {self.router}: {self._error}"
        if not self._answers:
            return "not checked: the link's own checks did not pass in time"
        parts = []
        for check in self.checks:
            if not self._answers.get(f"ping:{check.target}", False):
                hop = first_failing_hop(check.path, self._hop_answers)
                where = f"first hop that fails: {hop}" if hop else "every hop answers now"
                parts.append(f"{check.server} {check.target} does not answer ping from {self.source}; {where}")
                continue
            closed = [p for p in check.ports if not self._answers.get(f"tcp:{check.target}:{p}", False)]
            if closed:
                ports = ", ".join(f"tcp/{p}" for p in closed)
                parts.append(f"{check.server} {check.target} answers ping but not {ports} from {self.source}")
        return "; ".join(parts) or "every server answers now"

    def _hop_answers(self, hop: Hop) -> bool:
        try:
            return goal_probe(self.driver, self.router, self.source, [f"ping:{hop.address}"]).get(f"ping:{hop.address}", False)
        except DeviceError:
            return False


def _interface_up(driver: NetworkDriver, ifname: str) -> bool:
    own = getattr(driver, "interface_up", None)
    if own is not None:  # NAPALM platforms: from get_interfaces, whatever the OS prints
        return bool(own(ifname))
    out = driver.cli([f"show interface {ifname}"])[f"show interface {ifname}"]
    return "is up" in out.splitlines()[0] if out else False


def _ospf_full(driver: NetworkDriver, far_address: str) -> bool:
    own = getattr(driver, "ospf_full", None)
    if own is not None:  # NAPALM platforms: each OS's own neighbour listing
        return bool(own(far_address))
    out = driver.cli(["show ip ospf neighbor"])["show ip ospf neighbor"]
    return any(far_address in line.split() and "Full" in line for line in out.splitlines())


_ADDRESS = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d./])")


def next_hops(show_route: str) -> set[str]:
    r"""Next-hop addresses in `show ip route PREFIX` output (FRR and IOS), compared whole, never as text.

    The prefix itself (with its /len) and IOS's advertising router (`from A.B.C.D`) are not next hops.

    >>> out = "Routing entry for 10.31.1.0/24\n  Known via \"static\", distance 1, metric 0, best\n  * 10.30.255.13, via eth1, weight 1\n"
    >>> sorted(next_hops(out))
    ['10.30.255.13']
    >>> "10.30.255.1" in next_hops(out)
    False
    >>> sorted(next_hops("  * 10.1.1.2, from 10.1.1.9, 00:00:10 ago, via GigabitEthernet0/1\n"))
    ['10.1.1.2']
    """
    hops = set()
    for line in show_route.splitlines():
        if line.lstrip().startswith("Routing entry for"):
            continue
        for match in _ADDRESS.finditer(line):
            if line[:match.start()].rstrip().endswith("from"):
                continue
            hops.add(match.group(1))
    return hops


def _route_via(driver: NetworkDriver, prefix: str, via: str) -> bool:
    own = getattr(driver, "route_via", None)
    if own is not None:
        return bool(own(prefix, via))
    out = driver.cli([f"show ip route {prefix}"])[f"show ip route {prefix}"]
    return via in next_hops(out)


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
