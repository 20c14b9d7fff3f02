"""Collect every device's configuration in parallel: one SSH connection per device, host keys checked.

- FRR routers: the FRR driver's `get_config()` (an exec channel running `show running-config`);
  when the caller passes an intended config, `compare_config` runs on the same connection, so
  drift needs no second login.
- Linux-based devices (APs, switches, servers): one exec channel running `sudo tar` over the
  platform's key files (globs expanded as root: /etc/sudoers.d is not world-readable), plus a few
  read-only commands. `/etc/shadow` is never on any list.

What comes back is raw text: scrubbing (secrets, volatile lines) is the report layer's job, before
anything is written or shown. A device that cannot be reached is a result, never an exception.
"""

from __future__ import annotations

import io
import logging
import shlex
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError, NotOnboarded
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.base import ConfigDiff
from dzops.execute.fanout import fan_out
from dzops.execute.ssh import FAN_OUT_WORKERS, Progress, connect, credentials
from dzops.inventory.models import Device, Inventory
from dzops.platforms import PLATFORMS

log = logging.getLogger(__name__)


# What a backup of a Linux-based device holds, by platform (data, not code: a platform is a row).
# Globs are expanded by the device's shell, as root.
BACKUP_FILES: dict[str, tuple[str, ...]] = {
    "hostapd": ("/etc/hostapd/*.conf", "/etc/default/hostapd", "/etc/hostname", "/etc/hosts",
                "/etc/ssh/sshd_config", "/etc/network/interfaces"),
    "cumulus": ("/etc/frr/daemons", "/etc/network/interfaces", "/etc/hostname", "/etc/hosts",
                "/etc/ssh/sshd_config"),
    "linux": ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*.conf", "/etc/apt/sources.list",
              "/etc/apt/sources.list.d/*", "/etc/hosts", "/etc/hostname", "/etc/sudoers", "/etc/sudoers.d/*",
              "/etc/passwd", "/etc/group", "/etc/resolv.conf", "/etc/fstab", "/etc/crontab"),
}
# Command outputs stored beside the files, as "<name>" in the device's backup (run with sudo):
# name -> (command, config syntax of its output).
BACKUP_COMMANDS: dict[str, dict[str, tuple[str, str]]] = {
    "cumulus": {"running-config": ("vtysh -c 'show running-config'", "frr")},
}
NEVER_BACKED_UP = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")


@dataclass
class DeviceBackup:
    """One device's collected configuration: file name -> raw text, or why it could not be had."""

    host: str
    site: str
    syntax: str  # config syntax of the files (scrub rules): frr, ios, hostapd, linux
    status: str = "ok"  # ok | unreachable | failed
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    diff: ConfigDiff | None = None  # running -> intended, when an intended config was given
    file_syntax: dict[str, str] = field(default_factory=dict)  # files whose syntax differs from `syntax`

    def syntax_of(self, name: str) -> str:
        return self.file_syntax.get(name, self.syntax)

    @property
    def reachable(self) -> bool:
        return self.status == "ok"



def _file_set(platform: str) -> str:
    return platform if platform in BACKUP_FILES else PLATFORMS[platform].driver




def sudo_command(command: str) -> str:
    """`command` run as root through sudo, reading the password from stdin when sudo asks for one.

    When sudo needs no password it leaves stdin unread, so the command closes it first: the password
    line must never reach the command.

    >>> sudo_command("tar -cf - /etc/hosts")
    "sudo -S -p '' sh -c 'exec 0</dev/null; tar -cf - /etc/hosts'"
    """
    return f"sudo -S -p '' sh -c {shlex.quote('exec 0</dev/null; ' + command)}"


def tar_command(paths: tuple[str, ...]) -> str:
    """tar of the paths that exist (globs expanded by the device's shell, as root), to stdout.

    >>> tar_command(("/etc/hosts", "/etc/sudoers.d/*"))
    'tar -cf - --ignore-failed-read --no-recursion /etc/hosts /etc/sudoers.d/* 2>/dev/null; true'
    """
    safe = [p for p in paths if p not in NEVER_BACKED_UP]
    return f"tar -cf - --ignore-failed-read --no-recursion {' '.join(safe)} 2>/dev/null; true"


def untar(data: bytes) -> dict[str, str]:
    """Regular files of a tar stream: path (without the leading '/') -> text."""
    files: dict[str, str] = {}
    if not data:
        return files
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            if not member.isfile() or member.name.lstrip("/") in {p.lstrip("/") for p in NEVER_BACKED_UP}:
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                files[member.name.lstrip("/")] = handle.read().decode(errors="replace")
    return files


def _run(client: Any, host: str, command: str, password: str) -> tuple[int, bytes, str]:
    import paramiko

    try:
        stdin, stdout, stderr = client.exec_command(command, timeout=120)
        stdin.write(password + "\n")
        stdin.flush()
        stdin.channel.shutdown_write()
        out = stdout.read()
        err = stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err
    except (TimeoutError, OSError, paramiko.SSHException) as exc:
        raise ConnectionFailed(host, f"command failed on the SSH connection: {exc}") from None


def _collect_linux(inventory: Inventory, device: Device, backup: DeviceBackup) -> None:
    creds = credentials(inventory, device)
    file_set = _file_set(device.platform)
    client = connect(creds)
    try:
        status, out, err = _run(client, device.name, sudo_command(tar_command(BACKUP_FILES[file_set])),
                                creds.sudo_password)
        if status != 0:
            raise DeviceError(device.name, f"reading the configuration files failed: "
                                           f"{err.strip().splitlines()[-1] if err.strip() else status}")
        try:
            backup.files.update(untar(out))
        except tarfile.TarError as exc:
            raise DeviceError(device.name, f"unreadable file archive from the device: {exc}") from None
        for name, (command, syntax) in BACKUP_COMMANDS.get(file_set, {}).items():
            status, out, err = _run(client, device.name, sudo_command(command), creds.sudo_password)
            if status != 0:
                raise DeviceError(device.name, f"'{command}' failed: "
                                               f"{err.strip().splitlines()[-1] if err.strip() else status}")
            backup.files[name] = out.decode(errors="replace")
            backup.file_syntax[name] = syntax
    finally:
        client.close()


def _collect_network(inventory: Inventory, device: Device, backup: DeviceBackup, intended: str | None) -> None:
    driver = driver_for(device.platform, credentials(inventory, device))
    driver.open()
    try:
        backup.files["running-config"] = driver.get_config()
        if intended is not None:
            backup.diff = driver.compare_config(intended)
    finally:
        driver.close()


def collect_one(inventory: Inventory, host: str, intended: str | None = None) -> DeviceBackup:
    """One device's backup; a session dropped after login (a busy device's sshd) is retried once.

    Collection only reads, so repeating it is safe; a device that cannot be reached at all is not retried.
    """
    backup = _collect_once(inventory, host, intended)
    if backup.status == "unreachable" and "on the SSH connection" in (backup.error or ""):
        log.info("%s: session dropped (%s); collecting again", host, backup.error)
        backup = _collect_once(inventory, host, intended)
    return backup


def _collect_once(inventory: Inventory, host: str, intended: str | None) -> DeviceBackup:
    device = inventory.devices[host]
    platform = PLATFORMS[device.platform]
    backup = DeviceBackup(host=host, site=device.site,
                          syntax="linux" if platform.config_syntax == "linux" else platform.config_syntax)
    try:
        if platform.netmiko_device_type and platform.config_syntax not in ("linux", "hostapd"):
            _collect_network(inventory, device, backup, intended)
        else:
            _collect_linux(inventory, device, backup)
    except ConnectionFailed as exc:
        backup.status, backup.error, backup.files = "unreachable", str(exc), {}
    except DeviceError as exc:
        backup.status, backup.error, backup.files = "failed", str(exc), {}
    except Exception as exc:  # noqa: BLE001 - one device's surprise must not end the whole run
        log.debug("%s: collection failed", host, exc_info=True)
        backup.status, backup.error, backup.files = "failed", f"{host}: {type(exc).__name__}: {exc}", {}
    return backup


def prepare_collection() -> None:
    """Import now what `collect` would import at its first login: paramiko without invoke, the FRR
    driver that `config_probe` and `parse_config_probe` read, and the idna codec a connect by
    address loads. For a caller's warm-up thread, beside its inventory load."""
    from dzops.execute.ssh import import_paramiko

    import_paramiko()
    import dzops.execute.drivers.frr  # noqa: F401 - loaded for the first login
    "".encode("idna")


def config_probe(marker: str | None = None) -> str:
    """An FRR shell login's whole backup as one command: the access role's marker, then the running config.

    Nothing runs on a router the role has not prepared (exit 3), as the FRR driver refuses one. The
    marker is read by the shell's own `read` and vtysh replaces the shell (`exec`): no process more
    than a bare `vtysh -c` costs the router.

    >>> print(config_probe("/etc/dzops/router-access"))
    ok=; while IFS= read -r line || [ -n "$line" ]; do case "$line" in version=*) ok=1;; esac; done < /etc/dzops/router-access; [ -n "$ok" ] || exit 3; echo =CONFIG; exec vtysh -c 'show running-config'
    """
    from dzops.execute.drivers.frr import ACCESS_MARKER

    marker = shlex.quote(marker or ACCESS_MARKER)
    return (f'ok=; while IFS= read -r line || [ -n "$line" ]; do case "$line" in version=*) ok=1;; esac; done < {marker}; '
            "[ -n \"$ok\" ] || exit 3; echo =CONFIG; exec vtysh -c 'show running-config'")


def parse_config_probe(host: str, result: tuple[int, str, str]) -> str:
    """The running config from `config_probe`'s answer, or the driver's own refusal.

    >>> parse_config_probe("r1", (0, "=CONFIG\\nBuilding configuration...\\n\\nhostname r1\\n", ""))
    'hostname r1\\n'
    >>> parse_config_probe("r1", (3, "", "bash: /etc/dzops/router-access: No such file or directory"))
    Traceback (most recent call last):
    ...
    dzops.exceptions.NotOnboarded: r1: not onboarded: run dzops onboard r1
    """
    from dzops.execute.drivers.frr import ACCESS_MARKER, error_lines, strip_preamble

    status, out, err = result
    if status == 3 or not out.startswith("=CONFIG\n"):
        raise NotOnboarded(host, f"no {ACCESS_MARKER}: {err.strip()}")
    config = out[len("=CONFIG\n"):]
    errors = error_lines(config) + error_lines(err)
    if errors or status != 0:
        reason = errors[0] if errors else ((err.strip() or config.strip()).splitlines() or [f"exit status {status}"])[-1]
        raise DeviceError(host, f"'show running-config' failed: {reason}")
    return strip_preamble(config)


def _started_probe(inventory: Inventory, host: str) -> tuple[Any, Any] | None:
    """(session, pending probe) for an FRR router on a shell login, or None for every other device.

    Starting the command and reading it later lets the pool log in to the next routers while
    this one's vtysh writes its config: the connects and the routers' work overlap.
    """
    device = inventory.devices[host]
    platform = PLATFORMS[device.platform]
    if platform.driver != "frr" or getattr(device, "router_login", "shell") == "vtysh":
        return None
    from dzops.execute.ssh import Session

    session = Session(credentials(inventory, device))
    session.open()
    try:
        return session, session.start(config_probe(), timeout=120)
    except BaseException:
        session.close()
        raise


def collect(inventory: Inventory, hosts: list[str], *, intended: dict[str, str] | None = None,
            progress: Progress | None = None, workers: int = FAN_OUT_WORKERS,
            each: Callable[[DeviceBackup], None] | None = None) -> list[DeviceBackup]:
    """Every host's configuration, fetched in parallel, in the order of `hosts`.

    `each` runs in the pool on every device's result as soon as it is in (the caller's scrubbing
    then overlaps the other devices' collection instead of following it).

    FRR routers on a shell login (and no intended config to compare) are logged in to and asked in
    one pool, then read in a second: see `_started_probe`. Every other device is collected whole
    in the first pool, as `collect_one` does.
    """
    report = progress or (lambda _host, _message: None)
    intended = intended or {}
    started: dict[str, tuple[Any, Any]] = {}
    waiting: list[str] = []  # started probes not read yet, oldest first
    finished: dict[str, DeviceBackup] = {}
    lock = threading.Lock()

    def done(result: DeviceBackup) -> DeviceBackup:
        if each is not None:
            each(result)
        report(result.host, "collected" if result.reachable else f"{result.status}: {result.error}")
        return result

    def blank(host: str) -> DeviceBackup:
        device = inventory.devices[host]
        return DeviceBackup(host=host, site=device.site, syntax=PLATFORMS[device.platform].config_syntax)

    def first(host: str) -> DeviceBackup | None:
        if host not in intended:
            try:
                probe = _started_probe(inventory, host)
            except ConnectionFailed as exc:  # as _collect_once maps a failed login
                backup = blank(host)
                backup.status, backup.error = "unreachable", str(exc)
                return done(backup)
            except DeviceError as exc:
                backup = blank(host)
                backup.status, backup.error = "failed", str(exc)
                return done(backup)
            if probe is not None:
                with lock:
                    started[host] = probe
                    waiting.append(host)
                read_finished()
                return None
        return done(collect_one(inventory, host, intended.get(host)))

    def read_finished(most: int = 2) -> None:
        """Read a few probes that have already finished, between logins: their reading and
        scrubbing overlap the logins still to come instead of following them all."""
        with lock:
            ready = [h for h in waiting if started[h][1].ready()][:most]
            for host in ready:
                waiting.remove(host)
        for host in ready:
            finished[host] = second(host)

    def second(host: str) -> DeviceBackup:
        session, pending = started[host]
        backup = blank(host)
        try:
            backup.files["running-config"] = parse_config_probe(host, pending.result())
        except ConnectionFailed as exc:
            backup.status, backup.error = "unreachable", str(exc)
        except DeviceError as exc:
            backup.status, backup.error = "failed", str(exc)
        finally:
            session.close()
        return done(backup)

    results = fan_out(first, hosts, forks=workers)
    if waiting:
        finished.update(zip(waiting, fan_out(second, list(waiting), forks=workers), strict=True))
    return [result if result is not None else finished[host] for host, result in zip(hosts, results, strict=True)]
