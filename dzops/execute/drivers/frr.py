"""FRRouting over SSH, on a stock Debian/Ubuntu FRR box prepared by roles/dz_router_access.

Two kinds of login, as the inventory's `dzops_router_login` says:

- `shell` (the default, a stock box): a normal shell. vtysh commands are `vtysh -c '...'` on exec
  channels; config replace uploads the whole candidate by SFTP to the fixed file
  ~/.dzops/candidate.conf (or rollback.conf) and runs FRR's own
  `sudo -n /usr/lib/frr/frr-reload.py --test|--reload --stdout <that file>`, the only root commands
  the role's sudoers drop-in allows besides the staff account helper. Ping, LLDP and interface facts
  come from the stock programs. The role leaves /etc/dzops/router-access; without it (or when sudo
  asks for a password) the router is reported "not onboarded", never half-used.
- `vtysh` (an appliance whose login lands in vtysh): an exec channel runs vtysh commands. Config
  replace has no root shell there, so the delta is computed here, by this machine's own
  frr-reload.py in --test mode against the fetched running config, and pushed as config commands;
  a push that fails part-way is undone the same way from the saved running config.

vtysh exits 0 on some errors, so every reply is checked for `% ` lines.
One SSH connection per device and no pty: exec channels are what makes fan-out cheap.
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from dzops.exceptions import DeviceError, NotOnboarded
from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.execute.ssh import Session

log = logging.getLogger(__name__)

FRR_RELOAD = "/usr/lib/frr/frr-reload.py"
ACCOUNT_HELPER = "/usr/local/lib/dzops/account"
ACCESS_MARKER = "/etc/dzops/router-access"  # written by roles/dz_router_access: `version=1`
UPLOAD_DIR = ".dzops"  # in the login's home; the role makes it, mode 0700
RELOAD_FILES = ("candidate", "rollback")  # the only two files sudoers lets frr-reload read
# What sudo prints when the drop-in does not allow a command (or is not there at all).
SUDO_REFUSALS = ("a password is required", "is not allowed to execute", "a terminal is required",
                 "not in the sudoers", "no tty present", "sudo: command not found")


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


def reload_blocks(output: str) -> tuple[list[list[str]], list[list[str]]]:
    """`frr-reload.py --test` output as config command blocks (context lines, then the command).

    >>> out = "\\nLines To Delete\\n===============\\ninterface eth0\\n no ip address 10.0.0.1/30\\n\\nLines To Add\\n============\\nno ip route 10.9.0.0/16 blackhole\\ninterface eth0\\n ip address 10.0.0.5/30\\n"
    >>> reload_blocks(out)
    ([['interface eth0', ' no ip address 10.0.0.1/30']], [['no ip route 10.9.0.0/16 blackhole'], ['interface eth0', ' ip address 10.0.0.5/30']])
    """
    deletes: list[list[str]] = []
    adds: list[list[str]] = []
    target: list[list[str]] | None = None
    for line in output.splitlines():
        if line.strip() == "Lines To Delete":
            target = deletes
        elif line.strip() == "Lines To Add":
            target = adds
        elif target is None or not line.strip() or set(line.strip()) == {"="}:
            continue
        elif not line.startswith(" ") or not target:
            target.append([line.rstrip()])
        else:
            target[-1].append(line.rstrip())
    return deletes, adds


def config_script(blocks: list[list[str]]) -> list[str]:
    """vtysh commands applying blocks, each from the top of config mode (contexts never leak).

    >>> config_script([["interface eth0", " ip address 10.0.0.5/30"], ["ip route 10.1.0.0/16 blackhole"]])
    ['configure terminal', 'interface eth0', 'ip address 10.0.0.5/30', 'end', 'configure terminal', 'ip route 10.1.0.0/16 blackhole', 'end']
    """
    commands: list[str] = []
    for block in blocks:
        commands += ["configure terminal", *(line.strip() for line in block), "end"]
    return commands


def shorter(command: str) -> str | None:
    """The `no` command with its last word dropped (FRR refuses some full `no` lines), or None.

    >>> shorter("no ip ospf authentication message-digest"), shorter("no ip")
    ('no ip ospf authentication', None)
    """
    words = command.split()
    return " ".join(words[:-1]) if len(words) > 2 else None


def sudo_refused(text: str) -> bool:
    """Whether sudo said no (no drop-in for this command, or it wants a password).

    >>> sudo_refused("sudo: a password is required\\n"), sudo_refused("frr-reload failed\\n")
    (True, False)
    """
    return "sudo" in text and any(reason in text for reason in SUDO_REFUSALS)


class Driver:
    """NetworkDriver for FRR (see dzops.execute.drivers.base)."""

    def __init__(self, credentials: Credentials, **_options: Any) -> None:
        self.credentials = credentials
        self.session = Session(credentials)
        self.home = ""  # the login's home directory, as the role's sudoers names it
        self._running: str | None = None  # last running config read, until something changes it
        self._replacing = threading.Lock()  # the upload files are fixed: one replace at a time

    @property
    def shell_login(self) -> bool:
        return self.credentials.login != "vtysh"

    @property
    def can_ping(self) -> bool:
        """vtysh's own ping never ends on an exec channel: only a shell login pings."""
        return self.shell_login

    # -- connection ---------------------------------------------------------------------------
    def open(self) -> None:
        self.session.open()
        if self.shell_login:
            try:
                self._check_access()
            except BaseException:
                self.session.close()
                raise

    def _check_access(self) -> None:
        status, out, err = self.session.run(f'printf "%s\\n" "$HOME"; cat {ACCESS_MARKER}')
        lines = out.splitlines()
        self.home = lines[0].strip() if lines else ""
        if status != 0 or not any(line.startswith("version=") for line in lines[1:]):
            raise NotOnboarded(self.credentials.host, f"no {ACCESS_MARKER}: {err.strip()}")

    def access(self) -> dict[str, str]:
        """What the access role left (`version=...`), for onboarding reports."""
        status, out, _ = self.session.run(f"cat {ACCESS_MARKER}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if status == 0 else {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------
    def _vtysh_command(self, commands: list[str]) -> str:
        for command in commands:
            # vtysh splits -c on newlines: one line is one command, never a smuggled second one.
            if "\n" in command or "\r" in command:
                raise DeviceError(self.credentials.host, "a vtysh command must be one line")
        if self.shell_login:
            return "vtysh " + " ".join(f"-c {shlex.quote(c)}" for c in commands)
        return "\n".join(commands)

    def _checked(self, what: str, result: tuple[int, str, str]) -> str:
        status, out, err = result
        errors = error_lines(out) + error_lines(err)
        if errors or status != 0:
            if self.shell_login and sudo_refused(err):
                raise NotOnboarded(self.credentials.host, err.strip())
            reason = errors[0] if errors else ((err.strip() or out.strip()).splitlines() or [f"exit status {status}"])[-1]
            raise DeviceError(self.credentials.host, f"{what} failed: {reason}")
        return out

    def vtysh(self, commands: list[str]) -> str:
        """Several vtysh commands in one vtysh run (one exec channel); their output together."""
        return self._checked(f"'{commands[-1] if commands else ''}'",
                             self.session.run(self._vtysh_command(commands)))

    def cli(self, commands: list[str]) -> dict[str, str]:
        return {command: self.vtysh([command]) for command in commands}

    def shell(self, argv: list[str], stdin: str | None = None) -> str:
        """A stock program on a shell login (quoted word by word); its stdout."""
        if not self.shell_login:
            raise DeviceError(self.credentials.host, f"'{argv[0]}' needs a shell login (dzops_router_login: shell)")
        return self._checked(f"'{' '.join(argv[:3])}'",
                             self.session.run(" ".join(shlex.quote(a) for a in argv), stdin=stdin))

    def ping(self, address: str) -> bool:
        """Two echo requests from the router (stock ping, no sudo); True when any is answered."""
        target = str(ipaddress.ip_address(address))  # never a word ping could read as an option
        status, _, _ = self.session.run(f"ping -n -q -c 2 -i 0.2 -W 1 {target}", timeout=30)
        return status == 0

    def account(self, args: list[str], stdin: str = "") -> tuple[int, str, str]:
        """The role's staff account helper, through sudo -n: (status, stdout, stderr)."""
        if not self.shell_login:
            raise DeviceError(self.credentials.host, "staff accounts need a shell login (dzops_router_login: shell)")
        result = self.session.run(" ".join(shlex.quote(a) for a in ["sudo", "-n", ACCOUNT_HELPER, *args]), stdin=stdin)
        if result[0] != 0 and sudo_refused(result[2]):
            raise NotOnboarded(self.credentials.host, result[2].strip())
        return result

    # -- NetworkDriver ------------------------------------------------------------------------
    def get_config(self) -> str:
        self._running = strip_preamble(self.vtysh(["show running-config"]))
        return self._running

    def interfaces(self) -> dict[str, bool]:
        """Interface name -> operationally up, from one `show interface brief`."""
        found = {}
        for line in self.vtysh(["show interface brief"]).splitlines():
            words = line.split()
            if len(words) >= 2 and words[1] in ("up", "down"):
                found[words[0]] = words[1] == "up"
        return found

    def compare_config(self, candidate: str) -> ConfigDiff:
        running = self._running if self._running is not None else self.get_config()
        # Equal as (context, line) sets means frr-reload would find nothing either; it runs a
        # Python process, so it is asked only when something really differs.
        if config_pairs(running) == config_pairs(candidate):
            return ConfigDiff()
        if self.shell_login:
            with self._replacing:
                return parse_reload_test(self._reload("--test", candidate, "candidate"))
        return parse_reload_test(local_reload_test(self.credentials.host, running, candidate))

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        return self._replace(candidate, "candidate")

    def rollback(self, saved: str) -> None:
        self._running = None
        self._replace(saved, "rollback")

    def save_config(self) -> None:
        self.vtysh(["write memory"])

    # -- config replace -------------------------------------------------------------------------
    def _replace(self, candidate: str, which: str) -> ConfigDiff:
        diff = self.compare_config(candidate)
        if diff.empty:
            return diff
        self._running = None
        if self.shell_login:
            with self._replacing:
                # --reload applies the delta through vtysh and then writes frr.conf itself.
                self._reload("--reload --stdout", candidate, which)
        else:
            self._push(candidate)
        return diff

    def _reload(self, mode: str, text: str, which: str) -> str:
        assert which in RELOAD_FILES
        if not self.home:
            raise NotOnboarded(self.credentials.host, "home directory unknown")
        self.session.upload(f"{UPLOAD_DIR}/{which}.conf", text)
        path = f"{self.home}/{UPLOAD_DIR}/{which}.conf"
        status, out, err = self.session.run(f"sudo -n {FRR_RELOAD} {mode} {shlex.quote(path)}")
        if status != 0:
            if sudo_refused(err):
                raise NotOnboarded(self.credentials.host, err.strip())
            detail = [line for line in (err.strip() or out.strip()).splitlines() if line.strip()]
            raise DeviceError(self.credentials.host, f"frr-reload {mode.split()[0]} failed: "
                                                     f"{detail[-1] if detail else status}")
        return out

    # -- vtysh login: the delta computed here, pushed as config commands ------------------------
    def _push(self, candidate: str) -> None:
        saved = self.get_config()
        try:
            self._apply_delta(saved, candidate)
            left = self._delta(self.get_config(), candidate)
            if left != ([], []):
                # As frr-reload does: a second pass for what the first one's deletions took along.
                self._apply_delta(self.get_config(), candidate)
                if self._delta(self.get_config(), candidate) != ([], []):
                    raise DeviceError(self.credentials.host, "the config does not converge on the candidate")
        except DeviceError as exc:
            try:
                self._apply_delta(self.get_config(), saved)
            except DeviceError as undo:
                raise DeviceError(self.credentials.host, f"{exc}; ROLLBACK FAILED: {undo}") from None
            raise DeviceError(self.credentials.host, f"{exc} (running config restored)") from None
        finally:
            self._running = None

    def _delta(self, running: str, candidate: str) -> tuple[list[list[str]], list[list[str]]]:
        if config_pairs(running) == config_pairs(candidate):
            return [], []
        return reload_blocks(local_reload_test(self.credentials.host, running, candidate))

    def _apply_delta(self, running: str, candidate: str) -> None:
        deletes, adds = self._delta(running, candidate)
        for block in deletes:
            command: str | None = block[-1].strip()
            while command is not None:
                status, out, err = self.session.run(self._vtysh_command(config_script([[*block[:-1], command]])))
                if status == 0 and not error_lines(out + "\n" + err):
                    break
                command = shorter(command)
            if command is None:
                raise DeviceError(self.credentials.host, f"cannot remove '{block[-1].strip()}'")
        if adds:
            self.vtysh(config_script(adds))


def local_reload_test(host: str, running: str, candidate: str) -> str:
    """`frr-reload.py --test --input RUNNING CANDIDATE` on this machine: the delta, no device touched."""
    if not Path(FRR_RELOAD).is_file():
        raise DeviceError(host, f"config replace over a vtysh login needs {FRR_RELOAD} on this machine "
                                "(Debian package frr-pythontools)")
    with tempfile.TemporaryDirectory(prefix="dzops-frr-") as tmp:
        running_file, candidate_file = Path(tmp, "running.conf"), Path(tmp, "candidate.conf")
        running_file.write_text(running)
        candidate_file.write_text(candidate)
        proc = subprocess.run(["python3", FRR_RELOAD, "--test", "--input", str(running_file), str(candidate_file)],
                              capture_output=True, text=True, timeout=120, cwd=tmp)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise DeviceError(host, f"frr-reload --test (on this machine) failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout
