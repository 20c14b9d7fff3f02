"""Onboarding, device side: trust a device's host key once, then prove dzops can do its work there.

1. `scan_host_keys`: what each device offers, against known_hosts (known, unknown, changed). The CLI
   decides what to trust (a person's confirmation, `--accept-fingerprint`, `--accept-new`);
   `trust` writes that one line atomically. A changed key is only ever replaced for a fingerprint
   the person named.
2. `prepare`: log in with the inventory's credentials (host keys now strict), check the privilege,
   run the platform's access role where it has one (FRR: roles/dz_router_access through
   ansible-runner, become with the admin's password), then check each thing dzops needs there.

Every device ends as one `Readiness`; nothing here raises for a single device.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError, NotOnboarded
from dzops.execute.drivers.base import Credentials
from dzops.execute.ssh import HostKeyCheck, Progress, Session, add_known_host, check_host_key, credentials, fan_out
from dzops.inventory.models import Inventory
from dzops.platforms import PLATFORMS

log = logging.getLogger(__name__)

ROLE_PLAYBOOK = "router_access.yml"
SHELL_SYNTAXES = ("frr", "linux", "hostapd")  # platforms whose login is a shell dzops can probe


@dataclass
class Readiness:
    host: str
    status: str = "ready"  # ready | failed | unreachable | refused (host key not trusted)
    fingerprint: str | None = None
    key: str | None = None  # known | added | replaced | unknown | changed
    checks: dict[str, str] = field(default_factory=dict)  # what was checked -> its outcome
    error: str | None = None
    admin: bool = field(default=False, repr=False)  # general sudo: the role can run
    onboarded: bool = field(default=False, repr=False)

    def fail(self, status: str, error: str) -> None:
        if self.status == "ready":
            self.status, self.error = status, error

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("admin")
        data.pop("onboarded")
        return data


def scan_host_keys(inventory: Inventory, hosts: list[str]) -> dict[str, HostKeyCheck | Readiness]:
    """Each device's offered host key against known_hosts, or why it could not be had."""

    def one(host: str) -> HostKeyCheck | Readiness:
        try:
            return check_host_key(credentials(inventory, inventory.devices[host]))
        except DeviceError as exc:
            return Readiness(host, status="unreachable" if isinstance(exc, ConnectionFailed) else "failed",
                             error=str(exc))

    return dict(zip(hosts, fan_out(one, hosts), strict=True))


def trust(inventory: Inventory, check: HostKeyCheck, replace: bool = False) -> None:
    """Write an accepted host key to known_hosts; `replace` drops the old key of a changed device."""
    assert inventory.known_hosts is not None
    name = check.key_line.split()[0]
    add_known_host(inventory.known_hosts, check.key_line, replace_name=name if replace else None)


# --- login, privilege, role, readiness --------------------------------------------------------


def _kind(inventory: Inventory, host: str) -> str:
    device = inventory.devices[host]
    syntax = PLATFORMS[device.platform].config_syntax
    if syntax == "frr":
        return "frr-vtysh" if device.router_login == "vtysh" else "frr"
    return "shell" if syntax in SHELL_SYNTAXES else "other"


def _sudo_check(session: Session, creds: Credentials) -> bool:
    """Whether the login may run anything as root (what the access role needs)."""
    password = creds.sudo_password
    command = "sudo -S -p '' true" if password else "sudo -n true"
    status, _, _ = session.run(command, stdin=password + "\n" if password else None, timeout=30)
    return status == 0


def _probe(inventory: Inventory, readiness: Readiness) -> None:
    """Log in, and see what privilege the login has (and, on FRR, whether the role ran before)."""
    host = readiness.host
    creds = credentials(inventory, inventory.devices[host])
    kind = _kind(inventory, host)
    if kind == "other":
        platform = inventory.devices[host].platform
        readiness.checks["login"] = f"not checked (no SSH probe for platform {platform})"
        return
    session = Session(creds)
    try:
        session.open()
        if kind == "frr-vtysh":
            status, out, err = session.run("show version", timeout=30)
            if status != 0 or "% " in out + err:
                raise DeviceError(host, f"vtysh login does not answer 'show version': {(err or out).strip()[:200]}")
            readiness.checks["login"] = f"ok ({creds.username}, vtysh)"
            return
        status, _, err = session.run("true", timeout=30)
        if status != 0:
            raise DeviceError(host, f"the login shell does not run commands: {err.strip()[:200]}")
        readiness.checks["login"] = f"ok ({creds.username}, {'key' if creds.key_file or creds.use_agent else 'password'})"
        readiness.admin = _sudo_check(session, creds)
        readiness.checks["sudo"] = "admin" if readiness.admin else "none"
        if kind == "frr":
            status, out, _ = session.run("cat /etc/dzops/router-access", timeout=30)
            readiness.onboarded = status == 0 and "version=" in out
    except ConnectionFailed as exc:
        readiness.fail("unreachable", str(exc))
    except DeviceError as exc:
        readiness.fail("failed", str(exc))
    finally:
        session.close()


def _run_role(inventory: Inventory, results: dict[str, Readiness], progress: Progress) -> None:
    """roles/dz_router_access on every FRR shell router whose login has admin sudo, once per password."""
    from dzops.execute.ansible import run_playbook

    hosts = [h for h, r in results.items() if r.status == "ready" and _kind(inventory, h) == "frr"]
    for host in hosts:
        if not results[host].admin:
            results[host].checks["role"] = ("kept (applied before; the login has no admin sudo to re-run it)"
                                            if results[host].onboarded else "not run")
            if not results[host].onboarded:
                results[host].fail("failed", f"{host}: login {inventory.devices[host].username} has no sudo: the "
                                             "access role needs the router's admin login (ansible_become_password)")
    by_password: dict[str, list[str]] = {}
    for host in (h for h in hosts if results[h].admin):
        creds = credentials(inventory, inventory.devices[host])
        by_password.setdefault(creds.sudo_password, []).append(host)
    for password, group in by_password.items():
        progress("onboard", f"roles/dz_router_access on {len(group)} router(s)")
        try:
            run = run_playbook(inventory.root, ROLE_PLAYBOOK, limit=",".join(group),
                               extravars={"dz_router_access_hosts": "all"}, known_hosts=inventory.known_hosts,
                               become_password=password or None)
        except Exception as exc:  # noqa: BLE001 - ansible not starting is every router's result
            for host in group:
                results[host].fail("failed", f"{host}: roles/dz_router_access did not run: {exc}")
            continue
        for host in group:
            outcome = run.hosts.get(host)
            if outcome is None or outcome.status in ("failed", "unreachable"):
                error = outcome.error if outcome is not None else "no result from ansible"
                results[host].checks["role"] = "failed"
                results[host].fail("failed", f"{host}: roles/dz_router_access: {error}")
            else:
                results[host].checks["role"] = "applied" if outcome.changed else "unchanged"


def _verify(inventory: Inventory, readiness: Readiness) -> None:
    """Each thing dzops does on the device, tried without changing anything."""
    from dzops.execute.drivers.frr import ACCOUNT_HELPER, FRR_RELOAD, UPLOAD_DIR, Driver, local_reload_test

    host = readiness.host
    kind = _kind(inventory, host)
    if readiness.status != "ready" or kind not in ("frr", "frr-vtysh"):
        if kind == "shell" and readiness.status == "ready":
            readiness.checks.setdefault("role", f"none for platform {inventory.devices[host].platform}")
        return
    driver = Driver(credentials(inventory, inventory.devices[host]))
    try:
        driver.open()  # on a shell login this reads the role's marker
        running = driver.get_config()
        readiness.checks["vtysh"] = "ok"
        if kind == "frr-vtysh":
            readiness.checks["role"] = "none (vtysh login)"
            local_reload_test(host, running, running)
            readiness.checks["config replace"] = "ok (delta computed on this machine)"
            return
        status, _, err = driver.account(["list"])
        if status != 0:
            raise DeviceError(host, f"{ACCOUNT_HELPER} list failed: {err.strip()[:200]}")
        readiness.checks["accounts"] = "ok"
        path = f"{driver.home}/{UPLOAD_DIR}/candidate.conf"
        status, _, err = driver.session.run(f"sudo -n -l {FRR_RELOAD} --test {shlex.quote(path)}", timeout=30)
        if status != 0:
            raise NotOnboarded(host, err.strip())
        readiness.checks["config replace"] = "ok"
    except NotOnboarded as exc:
        readiness.fail("failed", str(exc))
    except ConnectionFailed as exc:
        readiness.fail("unreachable", str(exc))
    except DeviceError as exc:
        readiness.fail("failed", str(exc))
    finally:
        driver.close()


def prepare(inventory: Inventory, hosts: list[str], results: dict[str, Readiness] | None = None,
            progress: Progress | None = None) -> list[Readiness]:
    """Login, privilege, access role and readiness of devices whose host key is trusted."""
    progress = progress or (lambda _s, _m: None)
    results = results if results is not None else {h: Readiness(h) for h in hosts}
    fan_out(lambda h: _probe(inventory, results[h]), hosts)
    _run_role(inventory, results, progress)
    fan_out(lambda h: _verify(inventory, results[h]), hosts)
    return [results[h] for h in hosts]
