"""Cisco IOS / IOS-XE over SSH with netmiko (`cisco_ios`): merge-style configuration.

IOS takes configuration as lines merged into the running config, so the driver's unit of change is
a list of lines (`load_merge_candidate`). A whole-config replace needs the candidate on flash and
`configure replace`; the driver uses that only to roll back to the checkpoint it copies to flash
itself before every merge (`rollback`).

Error detection: IOS reports a refused line with a reply starting "% " ("% Invalid input detected
at '^' marker.", "% Incomplete command.", "% Ambiguous command"), and netmiko does not treat those
as failures. Every reply is checked; "% Warning: ..." replies (e.g. a /31 on Ethernet) are logged,
not raised.

Tested against fake-switches (a Cisco *switch* simulator): it cannot run `copy` to flash nor
`configure replace`, so `rollback` is exercised only by reading, not against a device.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from dzops.exceptions import AuthenticationFailed, ConnectionFailed, DeviceError, HostKeyMismatch
from dzops.execute.drivers.base import ConfigDiff, Credentials

log = logging.getLogger(__name__)

# "% " with the space: syslog lines such as "%LINK-3-UPDOWN: ..." are not replies to a command.
ERROR_LINE = re.compile(r"^\s*% (?!Warning)\S.*$", re.MULTILINE)
CHECKPOINT = "flash:dzops-checkpoint.cfg"
# Netmiko turns paramiko's host-key refusals into timeouts; these are the texts paramiko uses.
HOST_KEY_TEXTS = ("not found in known_hosts", "does not match")


def error_lines(output: str) -> list[str]:
    """The lines of a device reply that report a refused command.

    >>> error_lines("interface Gi0/9\\n% Invalid input detected at '^' marker.\\n")
    ["% Invalid input detected at '^' marker."]
    >>> error_lines("% Warning: use /31 mask on non point-to-point interface cautiously")
    []
    """
    return [match.group(0).strip() for match in ERROR_LINE.finditer(output)]


def strip_preamble(config: str) -> str:
    """The running config without IOS's 'Building configuration...' / byte-count header.

    >>> strip_preamble("Building configuration...\\n\\nCurrent configuration : 84 bytes\\n!\\nend\\n")
    '!\\nend\\n'
    """
    lines = config.splitlines(keepends=True)
    header = ("Building configuration", "Current configuration")
    while lines and (not lines[0].strip() or lines[0].startswith(header)):
        lines.pop(0)
    return "".join(lines)


def parse_sections(config: str) -> dict[str, set[str]]:
    """Running config as top-level line -> its indented child lines (stripped).

    >>> config = "interface Vlan1\\n description x\\n!\\nip route 10.0.0.0 255.0.0.0 1.1.1.1"
    >>> sorted(parse_sections(config).items())
    [('interface Vlan1', {'description x'}), ('ip route 10.0.0.0 255.0.0.0 1.1.1.1', set())]
    """
    sections: dict[str, set[str]] = {}
    parent: str | None = None
    for raw in config.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.strip() in ("!", "end", "exit"):
            continue
        if line[0].isspace() and parent is not None:
            sections[parent].add(line.strip())
        else:
            parent = line
            sections.setdefault(parent, set())
    return sections


def _present(line: str, existing: set[str]) -> bool:
    # IOS hides defaults: "no shutdown" never appears, only "shutdown" when it is set.
    if line.startswith("no "):
        return line[3:] not in existing
    return line in existing


def merge_diff(running: str, candidate: Iterable[str]) -> ConfigDiff:
    """Which candidate lines the running config lacks (a merge only adds, so nothing is removed).

    A child line counts as present when its section (the top-level line above it) has it; a
    "no X" line counts as present when X is absent. A missing child brings its section header
    along so the result is pushable as it is. Lines are compared as IOS prints them, so write
    templates in IOS's canonical form (full keywords, as `show running-config` shows them).

    >>> running = "interface Vlan120\\n description old\\n ip address 10.0.0.1 255.255.255.252\\n!\\n"
    >>> merge_diff(running, ["interface Vlan120", " description new", " ip address 10.0.0.1 255.255.255.252",
    ...                      " no shutdown", "exit", "ip route 10.1.0.0 255.255.0.0 10.0.0.2"]).add
    ('interface Vlan120', ' description new', 'ip route 10.1.0.0 255.255.0.0 10.0.0.2')
    """
    sections = parse_sections(running)
    add: list[str] = []
    parent: str | None = None
    for raw in candidate:
        line = raw.rstrip()
        if not line.strip() or line.strip() in ("!", "end", "exit"):
            continue
        if line[0].isspace() and parent is not None:
            if not _present(line.strip(), sections.get(parent, set())):
                if parent not in add:
                    add.append(parent)
                add.append(line)
        else:
            parent = line
            if not _present(line, set(sections)):
                add.append(line)
    return ConfigDiff(add=tuple(add))


class Driver:
    """NetworkDriver for Cisco IOS. Options: secret (enable secret; default: the login password)."""

    def __init__(self, credentials: Credentials, secret: str | None = None, **options: Any) -> None:
        self.credentials = credentials
        self._secret = secret if secret is not None else credentials.password
        self._options = options  # passed on to netmiko (e.g. global_delay_factor for slow links)
        self._conn: Any = None
        self._checkpoint: str | None = None

    # --- connection -------------------------------------------------------------------------

    def _connect_params(self) -> dict[str, Any]:
        c = self.credentials
        params: dict[str, Any] = {
            "device_type": "cisco_ios", "host": c.address, "port": c.port, "username": c.username,
            "password": c.password, "secret": self._secret, "conn_timeout": c.timeout,
            "auth_timeout": c.timeout, "banner_timeout": c.timeout,
            # The inventory's key file and an ssh-agent (keys before the password, as Ansible does);
            # never whatever keys happen to be in ~/.ssh of whoever runs dzops.
            "use_keys": c.key_file is not None, "key_file": str(c.key_file) if c.key_file else None,
            "allow_agent": c.use_agent,
        }
        # Only the project's known_hosts counts; ~/.ssh/known_hosts of whoever runs dzops does not.
        params.update(ssh_strict=True, system_host_keys=False, alt_host_keys=True, alt_key_file=str(c.known_hosts))
        return params | self._options

    def open(self) -> None:
        from netmiko import ConnectHandler
        from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

        c = self.credentials
        if c.known_hosts is None:
            raise HostKeyMismatch(c.host, "no known_hosts file in the inventory: host keys cannot be checked")
        if not c.known_hosts.is_file():
            raise HostKeyMismatch(c.host, f"known_hosts file {c.known_hosts} does not exist")
        log.debug("%s: connecting to %s:%s as %s", c.host, c.address, c.port, c.username)
        try:
            self._conn = ConnectHandler(**self._connect_params())
        except NetmikoAuthenticationException as exc:
            raise AuthenticationFailed(c.host, f"login as {c.username} refused") from exc
        except NetmikoTimeoutException as exc:
            if any(text in str(exc) for text in HOST_KEY_TEXTS):
                from dzops.execute.ssh import host_key_error

                raise host_key_error(c) from None  # names both fingerprints, as every driver does
            raise ConnectionFailed(c.host, f"no SSH session with {c.address}:{c.port}: "
                                           f"{str(exc).strip().splitlines()[0]}") from exc
        except (OSError, EOFError) as exc:
            raise ConnectionFailed(c.host, f"SSH to {c.address}:{c.port} failed: {exc}") from exc
        self._enable()

    def _enable(self) -> None:
        if self._conn.check_enable_mode():
            return
        from netmiko.exceptions import ReadTimeout

        try:
            self._conn.enable()
        except (ValueError, ReadTimeout) as exc:  # netmiko's two ways of saying "still not enabled"
            self.close()
            raise AuthenticationFailed(self.credentials.host, "enable secret refused") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:  # a dead session is closed enough
                log.debug("%s: disconnect failed", self.credentials.host, exc_info=True)
            self._conn = None

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise DeviceError(self.credentials.host, "driver is not open")
        return self._conn

    # --- reading ----------------------------------------------------------------------------

    def _check(self, command: str, output: str) -> str:
        errors = error_lines(output)
        if errors:
            raise DeviceError(self.credentials.host, f"{command.strip()!r} refused: {errors[0]}")
        for line in output.splitlines():
            if line.lstrip().startswith("% Warning"):
                log.warning("%s: %r: %s", self.credentials.host, command.strip(), line.strip())
        return output

    def cli(self, commands: list[str]) -> dict[str, str]:
        return {command: self._check(command, self.conn.send_command(command)) for command in commands}

    def get_config(self) -> str:
        return strip_preamble(self.cli(["show running-config"])["show running-config"])

    # --- changing ---------------------------------------------------------------------------

    def compare_config(self, candidate: str | list[str]) -> ConfigDiff:
        """What merging the candidate lines would add; touches nothing (see `merge_diff`)."""
        lines = candidate.splitlines() if isinstance(candidate, str) else candidate
        return merge_diff(self.get_config(), lines)

    def _leave_config_mode(self) -> None:
        try:
            self.conn.exit_config_mode()  # "end"
        except ValueError:
            # CLIs without "end" (fake-switches) leave one mode per "exit".
            for _ in range(4):
                if not self.conn.check_config_mode():
                    break
                self.conn.send_command_timing("exit", last_read=0.5)

    def save_checkpoint(self) -> str:
        """Copy the running config to flash so `rollback` can `configure replace` it."""
        output = self.conn.send_command_timing(f"copy running-config {CHECKPOINT}")
        # IOS asks "Destination filename [..]?" and, if the file exists, "over write? [confirm]".
        for _ in range(3):
            last = output.rstrip().splitlines()[-1] if output.strip() else ""
            if not last.endswith(("?", "[confirm]")):
                break
            output += self.conn.send_command_timing("")
        self._check("copy running-config", output)
        self._checkpoint = CHECKPOINT
        return CHECKPOINT

    def load_merge_candidate(self, lines: list[str], checkpoint: bool = True) -> ConfigDiff:
        """Merge config lines into the running config; returns what they added.

        With checkpoint (the default), the running config is first copied to flash so that
        `rollback` can restore it. The first refused line stops the merge with a DeviceError;
        lines before it stay applied (IOS has no transaction): roll back to undo them.
        """
        from netmiko.exceptions import ConfigInvalidException

        diff = self.compare_config(lines)
        if diff.empty:
            return diff
        if checkpoint:
            self.save_checkpoint()
        try:
            output = self.conn.send_config_set(lines, exit_config_mode=False, cmd_verify=True,
                                               error_pattern=ERROR_LINE.pattern)
        except ConfigInvalidException as exc:
            self._leave_config_mode()
            raise DeviceError(self.credentials.host, str(exc)) from exc
        self._leave_config_mode()
        self._check("configuration", output)
        log.info("%s: merged %d config lines", self.credentials.host, len(diff.add))
        return diff

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        raise DeviceError(self.credentials.host, "the IOS driver merges lines (load_merge_candidate); "
                          "a whole-config replace needs the candidate on flash (SCP), not supported")

    def rollback(self, saved: str) -> None:
        """Restore the checkpoint copied to flash before the last merge with `configure replace`.

        IOS replaces only from a file, so `saved` (the get_config() text from before the change)
        is used to check the result, not as the source. Not exercised by the fake-switches tests.
        """
        if self._checkpoint is None:
            raise DeviceError(self.credentials.host, "no checkpoint on flash to roll back to")
        command = f"configure replace {self._checkpoint} force"
        output = self.conn.send_command_timing(command, read_timeout=120)
        self._check("configure replace", output)
        left = merge_diff(self.get_config(), saved.splitlines())
        if not left.empty:
            raise DeviceError(self.credentials.host, f"rollback left the config differing: {left.text()}")

    def save_config(self) -> None:
        output = self.conn.save_config()  # "write mem"
        self._check("write memory", output)
        if "OK" not in output:
            raise DeviceError(self.credentials.host, f"write memory did not confirm: {output.strip()[-200:]}")
