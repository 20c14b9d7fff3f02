"""FRRouting over SSH: vtysh commands on exec channels, config replace with FRR's own frr-reload.py.

What the device must offer (as a real FRR box does for its admin, and the lab's routers do):
- an exec channel runs one vtysh command (`show running-config`, `write memory`);
- SFTP into the login user's home directory, to upload a candidate config;
- `frr-reload ARGS` on an exec channel runs `/usr/lib/frr/frr-reload.py ARGS` as root.

Config replace: the candidate is the router's whole intended frr.conf. `frr-reload --test` prints
the lines to delete and add, `frr-reload --reload` applies exactly that delta and writes the
config. Rollback is the same operation with the saved running config as the candidate.
One SSH connection per device and no pty: exec channels are what makes fan-out cheap.
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute.drivers.base import ConfigDiff, Credentials

log = logging.getLogger(__name__)

# sshd refuses more than MaxSessions (10 by default) channels on one connection; checks of many
# links on a hub router share its connection, so they queue here instead.
MAX_CHANNELS = 4

# vtysh prints these before the config; frr-reload reads the config from "frr version" on.
RUNNING_CONFIG_PREAMBLE = ("Building configuration...", "Current configuration:")


def strip_preamble(text: str) -> str:
    """The config part of `show running-config` output.

    >>> strip_preamble("Building configuration...\\n\\nCurrent configuration:\\n!\\nfrr version 8.4.4\\nhostname r1\\n")
    '!\\nfrr version 8.4.4\\nhostname r1\\n'
    """
    lines = text.splitlines(keepends=True)
    while lines and (not lines[0].strip() or lines[0].strip() in RUNNING_CONFIG_PREAMBLE):
        lines.pop(0)
    return "".join(lines)


def error_lines(output: str) -> list[str]:
    """vtysh's error replies; vtysh exits 0 on some of them, so replies are always checked.

    >>> error_lines("hostname r1\\n% Unknown command: shw run\\n")
    ['% Unknown command: shw run']
    """
    return [line for line in output.splitlines() if line.startswith("% ")]


# Lines FRR prints or accepts that carry no configuration of their own.
NOISE = ("!", "end", "exit", "exit-vrf", "exit-vrf-address-family")


def config_pairs(text: str) -> frozenset[tuple[str, str]]:
    r"""A config as (context, line) pairs: order-free, the shape frr-reload compares.

    >>> a = config_pairs("hostname r\ninterface eth0\n ip address 10.0.0.1/30\nexit\n!\n")
    >>> b = config_pairs("!\ninterface eth0\n ip address 10.0.0.1/30\nexit\nhostname r\n")
    >>> a == b, ("interface eth0", "ip address 10.0.0.1/30") in a
    (True, True)
    """
    pairs = set()
    context = ""
    for raw in strip_preamble(text).splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped in NOISE or stripped.startswith("frr version"):
            if stripped in ("exit", "!") and not line.startswith(" "):
                context = ""
            continue
        if line.startswith(" ") and context:
            pairs.add((context, stripped))
        else:
            context = stripped if stripped.startswith(("interface ", "router ", "line ", "route-map ")) else ""
            pairs.add((stripped, ""))
    return frozenset(pairs)


def parse_reload_test(output: str) -> ConfigDiff:
    """Parse `frr-reload.py --test` output into lines to remove and add.

    >>> out = "\\nLines To Delete\\n===============\\nip route 10.0.0.0/8 10.1.1.1\\n\\nLines To Add\\n============\\ninterface eth0\\n ip address 10.9.9.1/30\\ninterface eth0\\n ip ospf area 0\\n"
    >>> d = parse_reload_test(out)
    >>> d.remove, d.add
    (('ip route 10.0.0.0/8 10.1.1.1',), ('interface eth0', ' ip address 10.9.9.1/30', ' ip ospf area 0'))
    """
    add: list[str] = []
    remove: list[str] = []
    target: list[str] | None = None
    context = ""
    for line in output.splitlines():
        if line.strip() == "Lines To Delete":
            target, context = remove, ""
        elif line.strip() == "Lines To Add":
            target, context = add, ""
        elif target is not None and line.strip() and set(line.strip()) != {"="}:
            if not line.startswith(" "):
                # frr-reload repeats the context line before every sub-line; show it once.
                if line == context:
                    continue
                context = line
            target.append(line.rstrip())
    return ConfigDiff(add=tuple(add), remove=tuple(remove))


class Driver:
    """NetworkDriver for FRR (see dzops.execute.drivers.base)."""

    def __init__(self, credentials: Credentials, **_options: Any) -> None:
        self.credentials = credentials
        self._client: Any = None
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)
        self._running: str | None = None  # last running config read, until something changes it
        self._reconnecting = threading.Lock()  # verification threads share one driver per router

    # -- connection ---------------------------------------------------------------------------
    def open(self) -> None:
        from dzops.execute.ssh import connect

        self._client = connect(self.credentials)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _active(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return bool(transport is not None and transport.is_active())

    def _exec(self, command: str) -> tuple[int, str, str]:
        if self._client is None:
            raise DeviceError(self.credentials.host, "not connected")
        import paramiko

        for attempt in (1, 2):
            try:
                with self._channels:
                    _, stdout, stderr = self._client.exec_command(command, timeout=120)
                    out = stdout.read().decode(errors="replace")
                    err = stderr.read().decode(errors="replace")
                    return stdout.channel.recv_exit_status(), out, err
            except (TimeoutError, OSError, paramiko.SSHException) as exc:
                # A busy router's sshd may drop a session; every command sent here is safe to send
                # again (shows, and frr-reload, which converges on the same candidate): reconnect once.
                if attempt == 1 and not self._active():
                    with self._reconnecting:
                        if not self._active():  # another thread may have reconnected meanwhile
                            log.info("%s: SSH session dropped (%s); reconnecting once", self.credentials.host, exc)
                            self.close()
                            self.open()
                    continue
                raise ConnectionFailed(self.credentials.host,
                                       f"'{command}' failed on the SSH connection: {exc}") from None
        raise AssertionError("not reached: the loop returns or raises")

    # -- NetworkDriver ------------------------------------------------------------------------
    def cli(self, commands: list[str]) -> dict[str, str]:
        results = {}
        for command in commands:
            status, out, err = self._exec(command)
            errors = error_lines(out) + error_lines(err)
            if errors or status != 0:
                reason = errors[0] if errors else (err.strip() or f"exit status {status}")
                raise DeviceError(self.credentials.host, f"'{command}' failed: {reason}")
            results[command] = out
        return results

    def get_config(self) -> str:
        self._running = strip_preamble(self.cli(["show running-config"])["show running-config"])
        return self._running

    def _upload(self, text: str) -> str:
        import paramiko

        name = f"dzops-candidate-{uuid.uuid4().hex[:8]}.conf"
        try:
            with self._channels:
                sftp = self._client.open_sftp()
                try:
                    sftp.putfo(io.BytesIO(text.encode()), name)
                finally:
                    sftp.close()
        except (OSError, paramiko.SSHException) as exc:
            raise DeviceError(self.credentials.host, f"cannot upload the candidate config: {exc}") from None
        return name

    def _remove(self, name: str) -> None:
        import paramiko

        try:
            with self._channels:
                sftp = self._client.open_sftp()
                try:
                    sftp.remove(name)
                finally:
                    sftp.close()
        except (OSError, paramiko.SSHException):
            log.debug("%s: could not remove %s", self.credentials.host, name)

    def _reload(self, mode: str, candidate: str) -> str:
        name = self._upload(candidate)
        try:
            status, out, err = self._exec(f"frr-reload {mode} {name}")
        finally:
            self._remove(name)
        if status != 0:
            detail = (err.strip() or out.strip()).splitlines()
            raise DeviceError(self.credentials.host, f"frr-reload {mode} failed: {detail[-1] if detail else status}")
        return out

    def compare_config(self, candidate: str) -> ConfigDiff:
        running = self._running if self._running is not None else self.get_config()
        # Equal as (context, line) sets means frr-reload would find nothing either; it runs a
        # Python process on the router, so it is asked only when something really differs.
        if config_pairs(running) == config_pairs(candidate):
            return ConfigDiff()
        return parse_reload_test(self._reload("--test", candidate))

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        diff = self.compare_config(candidate)
        if not diff.empty:
            self._running = None
            # --reload applies the delta through vtysh and then writes frr.conf itself.
            self._reload("--reload --stdout", candidate)
        return diff

    def interfaces(self) -> dict[str, bool]:
        """Interface name -> operationally up, from one `show interface brief`."""
        out = self.cli(["show interface brief"])["show interface brief"]
        found = {}
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 2 and words[1] in ("up", "down"):
                found[words[0]] = words[1] == "up"
        return found

    def rollback(self, saved: str) -> None:
        self._running = None
        self.load_replace_candidate(saved)

    def save_config(self) -> None:
        self.cli(["write memory"])
