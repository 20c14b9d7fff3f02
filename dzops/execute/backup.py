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
from dataclasses import dataclass, field
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError
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


def collect(inventory: Inventory, hosts: list[str], *, intended: dict[str, str] | None = None,
            progress: Progress | None = None, workers: int = FAN_OUT_WORKERS) -> list[DeviceBackup]:
    """Every host's configuration, fetched in parallel, in the order of `hosts`."""
    report = progress or (lambda _host, _message: None)
    intended = intended or {}

    def one(host: str) -> DeviceBackup:
        result = collect_one(inventory, host, intended.get(host))
        report(host, "collected" if result.reachable else f"{result.status}: {result.error}")
        return result

    return fan_out(one, hosts, forks=workers)
