"""One adapter for every NAPALM driver (ios, eos, nxos_ssh, junos, and napalm-ros' ros) behind dzops' driver interface.

NAPALM already knows how each vendor replaces a whole configuration, diffs it, commits it with an
automatic revert and rolls it back; dzops does not re-implement any of that. This module only
- opens the NAPALM driver the platform table names, with host identity checked (below),
- turns NAPALM's text diff into a `ConfigDiff`, its exceptions into dzops' (one host's failure is
  a DeviceError the execute layer turns into a result, never a crash of the run),
- runs the one transaction every provisioning command uses (`apply`): load the whole intended
  candidate, compare, commit (with `revert_in` where the platform has commit-confirm), verify,
  then confirm, or roll back as NAPALM defines it.

Host identity, per NAPALM driver (house rule: never connect to a device whose identity is unchecked):
- ios, nxos_ssh (netmiko over SSH): strict host keys against the inventory's known_hosts only;
- ros: the API session itself has no host key; the SSH session napalm-ros opens for `/export` on
  RouterOS older than 7.13 gets strict host keys here (napalm-ros' own would add unknown keys). The
  API's password travels in clear on port 8728, so the inventory should give `api_tls` (8729);
- eos (eAPI over HTTPS) and junos (NETCONF via PyEZ): NAPALM passes no host-key or certificate
  check, so the adapter refuses them unless the inventory says `insecure_identity: true` for the
  device. That is a limit of NAPALM's options, not of the devices.

Which paths are proven how (see tests/execute/test_napalm_*.py): opening, enable, host-key refusal,
`get_config`, `cli` and the refusal of a replace where the device has no file system are run against
a live SSH peer (fake-switches); the IOS and RouterOS getters against real device output recorded
in NAPALM's and napalm-ros' own test suites; the transaction against NAPALM's `mock` driver.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dzops.exceptions import AuthenticationFailed, ConnectionFailed, DeviceError, HostKeyMismatch
from dzops.execute.drivers.base import ConfigDiff, Credentials
from dzops.platforms import PLATFORMS, Operation, refusal

log = logging.getLogger(__name__)

# NAPALM drivers whose session is netmiko over SSH: known_hosts is enforced through netmiko's options.
NETMIKO_DRIVERS = ("ios", "nxos_ssh")
# NAPALM drivers that offer no way to check the device's identity (see the module docstring).
UNCHECKED_IDENTITY = ("eos", "junos")
# "% " with the space: syslog lines such as "%LINK-3-UPDOWN: ..." are not replies to a command.
IOS_ERROR_LINE = re.compile(r"^\s*% (?!Warning)\S.*$", re.MULTILINE)
# Lines of NAPALM diffs that are headers, not config: unified-diff headers and IOS's notes.
DIFF_NOISE = re.compile(r"^(---|\+\+\+|@@|!)")


def parse_diff(text: str) -> ConfigDiff:
    """NAPALM's compare_config text as a ConfigDiff; a changed sub-line brings its context line along.

    Reads both shapes NAPALM drivers print: IOS's contextual diff (`+`/`-` after the indentation) and
    the unified diff of napalm-ros, eos and junos (`+`/`-` in the first column).

    >>> ios = "!Contextual Config Diffs:\\ninterface GigabitEthernet0/1\\n +description new\\n -description old\\n-ip route 10.9.0.0 255.255.0.0 10.0.0.2\\n+hostname r2"
    >>> d = parse_diff(ios)
    >>> d.add, d.remove
    (('interface GigabitEthernet0/1', ' description new', 'hostname r2'), ('interface GigabitEthernet0/1', ' description old', 'ip route 10.9.0.0 255.255.0.0 10.0.0.2'))
    >>> ros = "--- running\\n+++ candidate\\n@@ -1,2 +1,2 @@\\n /system identity set name=r1\\n-/ip address add address=10.0.0.1/30 interface=ether1\\n+/ip address add address=10.0.0.5/30 interface=ether1"
    >>> parse_diff(ros).add, parse_diff(ros).remove
    (('/ip address add address=10.0.0.5/30 interface=ether1',), ('/ip address add address=10.0.0.1/30 interface=ether1',))
    >>> parse_diff("").empty
    True
    """
    add: list[str] = []
    remove: list[str] = []
    unified = any(raw.startswith("@@") for raw in text.splitlines())
    stack: list[str] = []  # the lines enclosing the current one, outermost first
    for raw in text.splitlines():
        if unified:
            if raw.startswith(("---", "+++", "@@")):
                continue
            mark, line = raw[:1], raw[1:].rstrip()
        else:
            if DIFF_NOISE.match(raw.lstrip()):
                continue
            body = raw.lstrip()
            indent = " " * (len(raw) - len(body))
            mark, line = (body[:1], indent + body[1:].rstrip()) if body[:1] in ("+", "-") else (" ", raw.rstrip())
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        stack = [outer for outer in stack if len(outer) - len(outer.lstrip()) < depth]
        if mark in ("+", "-"):
            target = add if mark == "+" else remove
            target += [outer for outer in stack if outer not in target]
            target.append(line)
        stack.append(line)
    return ConfigDiff(add=tuple(add), remove=tuple(remove))


def error_lines(output: str) -> list[str]:
    """The lines of an IOS-like reply that report a refused command.

    >>> error_lines("% Invalid input detected at '^' marker.\\nok"), error_lines("% Warning: cautiously")
    (["% Invalid input detected at '^' marker."], [])
    """
    return [match.group(0).strip() for match in IOS_ERROR_LINE.finditer(output)]


def config_lines(text: str) -> set[str]:
    """A config as the set of its meaningful lines (comments, banners of byte counts and blanks dropped).

    >>> sorted(config_lines("!\\nhostname r1\\n!\\nend\\n# jan/01/2026 by RouterOS 7.12\\n/system identity set name=r1"))
    ['/system identity set name=r1', 'hostname r1']
    """
    return {line.rstrip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith(("!", "#", "Current configuration", "Building configuration"))
            and line.strip() != "end"}


def discovery_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """NAPALM's get_facts in the shape discovery keeps for every platform (model, serial, vendor, OS, uptime).

    >>> discovery_facts({"vendor": "Cisco", "model": "CSR1000V", "serial_number": "9OSEGKJXRHE", "os_version": "15.5",
    ...                  "uptime": 360.0, "hostname": "CSR1", "fqdn": "", "interface_list": []})
    {'vendor': 'Cisco', 'model': 'CSR1000V', 'serial': '9OSEGKJXRHE', 'os_version': '15.5', 'uptime_seconds': 360}
    """
    uptime = facts.get("uptime")
    return {"vendor": facts.get("vendor", ""), "model": facts.get("model", ""), "serial": facts.get("serial_number", ""),
            "os_version": facts.get("os_version", ""),
            "uptime_seconds": int(uptime) if isinstance(uptime, int | float) and uptime >= 0 else None}


def discovery_interfaces(interfaces: dict[str, Any], interfaces_ip: dict[str, Any]) -> dict[str, tuple[bool, list[str], str | None]]:
    """Interface -> (operationally up, CIDR addresses without link-local IPv6, MAC) from two NAPALM getters.

    >>> discovery_interfaces({"Gi1": {"is_up": True, "mac_address": "AA:BB:CC:00:00:01"}},
    ...                      {"Gi1": {"ipv4": {"10.0.0.1": {"prefix_length": 30}}, "ipv6": {"fe80::1": {"prefix_length": 10}}},
    ...                       "Vlan9": {"ipv4": {"10.9.0.1": {"prefix_length": 24}}}})
    {'Gi1': (True, ['10.0.0.1/30'], 'AA:BB:CC:00:00:01'), 'Vlan9': (False, ['10.9.0.1/24'], None)}
    """
    found: dict[str, tuple[bool, list[str], str | None]] = {}
    for name in sorted(set(interfaces) | set(interfaces_ip)):
        state = interfaces.get(name, {})
        addresses = [f"{address}/{data['prefix_length']}"
                     for family in ("ipv4", "ipv6") for address, data in interfaces_ip.get(name, {}).get(family, {}).items()
                     if not address.lower().startswith("fe80:")]
        found[name] = (bool(state.get("is_up")), addresses, state.get("mac_address") or None)
    return found


def discovery_lldp(neighbors: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(local port, neighbour's system name, neighbour's port) from get_lldp_neighbors_detail, sorted.

    >>> discovery_lldp({"ether3": [{"remote_system_name": "sw", "remote_port": "ether1", "remote_chassis_id": "4C:5E"}]})
    [('ether3', 'sw', 'ether1')]
    """
    return sorted((local, n.get("remote_system_name") or n.get("remote_chassis_id", ""), n.get("remote_port", ""))
                  for local, entries in neighbors.items() for n in entries)


@dataclass(frozen=True)
class ApplyOutcome:
    """What one `apply` did on one device; the execute layer turns it into a HostResult."""

    diff: ConfigDiff
    committed: bool = False  # the candidate became the running config (perhaps only until the revert)
    confirmed: bool = False  # a commit-confirm was confirmed (or a plain commit verified)
    rolled_back: bool = False  # verification failed and the device went back
    reason: str = ""  # why it was not confirmed


class Driver:
    """dzops' driver interface over one NAPALM driver.

    Options: `platform` (a row of dzops.platforms with a napalm_driver), `secret` (IOS enable secret,
    default the login password), `optional_args` (passed to NAPALM as they are), `api_tls` (RouterOS
    API over TLS), `insecure_identity` (eos, junos: see the module docstring), `napalm_class` (a
    NAPALM driver class to use instead of the registered one: NAPALM's mock driver, replays).
    """

    def __init__(self, credentials: Credentials, platform: str = "ios", secret: str | None = None,
                 optional_args: dict[str, Any] | None = None, api_tls: bool = False,
                 insecure_identity: bool = False, napalm_class: type | None = None, **_options: Any) -> None:
        row = PLATFORMS[platform]
        if row.napalm_driver is None:
            raise ValueError(f"platform {platform} is not reached through NAPALM")
        self.credentials = credentials
        self.platform = platform
        self.napalm_name = row.napalm_driver
        # Ansible's become password is the enable secret of a network device; else the login password.
        self._secret = secret if secret is not None else (getattr(credentials, "become_password", "") or credentials.password)
        self._optional_args = dict(optional_args or {})
        self._api_tls = api_tls
        self._insecure_identity = insecure_identity
        self._napalm_class = napalm_class
        self.device: Any = None  # the open NAPALM driver

    # -- connection -------------------------------------------------------------------------------

    def _napalm_args(self) -> dict[str, Any]:
        c = self.credentials
        args: dict[str, Any] = {}
        if self.napalm_name in NETMIKO_DRIVERS:
            args.update(port=c.port, secret=self._secret, conn_timeout=c.timeout, auth_timeout=c.timeout,
                        banner_timeout=c.timeout,
                        # Only the inventory's known_hosts counts, never the invoking user's ~/.ssh.
                        ssh_strict=True, system_host_keys=False, alt_host_keys=True,
                        alt_key_file=str(c.known_hosts))
            key_file = getattr(c, "key_file", None)
            args.update(use_keys=key_file is not None, allow_agent=bool(getattr(c, "use_agent", False)))
            if key_file is not None:
                args["key_file"] = str(key_file)
            if self.napalm_name == "ios":
                # Full interface names (GigabitEthernet0/1, not Gi0/1), as the inventory writes them:
                # discovery matches LLDP ports and interfaces against the inventory's links by name.
                args.setdefault("canonical_int", True)
        elif self.napalm_name == "ros":
            args.update(ssh_port=c.port, paramiko_look_for_keys=False, paramiko_allow_agent=False)
            if self._api_tls:
                import ssl

                args["ssl_wrapper"] = ssl.create_default_context().wrap_socket
        return args | self._optional_args

    def _identity_refusal(self) -> str | None:
        c = self.credentials
        if self.napalm_name in UNCHECKED_IDENTITY and not self._insecure_identity:
            return (f"NAPALM's {self.napalm_name} driver cannot check the device's identity "
                    "(set insecure_identity: true for this device to accept that)")
        if self.napalm_name in (*NETMIKO_DRIVERS, "ros"):
            if c.known_hosts is None:
                return "no known_hosts file in the inventory: host keys cannot be checked"
            if not c.known_hosts.is_file():
                return f"known_hosts file {c.known_hosts} does not exist"
        return None

    def _napalm_class_for(self) -> type:
        if self._napalm_class is not None:
            return self._napalm_class
        from napalm import get_network_driver

        return get_network_driver(self.napalm_name)  # type: ignore[no-any-return]

    def open(self) -> None:
        c = self.credentials
        refused = self._identity_refusal()
        if refused:
            raise HostKeyMismatch(c.host, refused)

        log.debug("%s: NAPALM %s to %s:%s as %s", c.host, self.napalm_name, c.address, c.port, c.username)
        args = self._napalm_args()
        if self.napalm_name in NETMIKO_DRIVERS and self._napalm_class is None and "sock" not in args:
            from dzops.execute.ssh import open_socket

            # netmiko would open its own socket with Nagle on; a CLI session is all small writes
            # (see open_socket). Unreachable is the same ConnectionFailed as every other login's.
            # A napalm_class (a replay) brings no netmiko and no network.
            args["sock"] = open_socket(c)
        device = self._napalm_class_for()(c.address, c.username, c.password, timeout=int(c.timeout),
                                          optional_args=args)
        try:
            device.open()
        except Exception as exc:  # netmiko and librouteros raise their own kinds; classified by text
            if "sock" in args:
                args["sock"].close()
            raise self._connect_error(exc) from exc
        self.device = device
        if self.napalm_name == "ros":
            self._strict_ros_ssh()

    def _connect_error(self, exc: BaseException) -> DeviceError:
        c = self.credentials
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        # NAPALM wraps netmiko's exception in "Cannot connect to HOST": the reason is further down the chain.
        chain: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None and cause not in chain:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        text = "\n".join(f"{type(e).__name__}: {e}" for e in chain)
        if "not found in known_hosts" in text or "does not match" in text or "BadHostKey" in text:
            return HostKeyMismatch(c.host, f"SSH host key of {c.address}:{c.port} is unknown or changed "
                                           f"(checked against {c.known_hosts})")
        if "authentication" in text.lower() or "enable" in first.lower():
            return AuthenticationFailed(c.host, f"login as {c.username} refused")
        return ConnectionFailed(c.host, f"no NAPALM {self.napalm_name} session with {c.address}: {first}")

    def _strict_ros_ssh(self) -> None:
        """Replace napalm-ros' SSH client (which adds unknown host keys) by one that refuses them."""
        import paramiko

        client = paramiko.SSHClient()
        assert self.credentials.known_hosts is not None  # checked in open()
        client.load_host_keys(str(self.credentials.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.device.ssh = client

    def close(self) -> None:
        if self.device is not None:
            try:
                self.device.close()
            except Exception:  # a dead session is closed enough
                log.debug("%s: NAPALM close failed", self.credentials.host, exc_info=True)
            self.device = None

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ------------------------------------------------------------------------------------

    def _require(self, operation: Operation) -> None:
        line = refusal(self.platform, operation, host=self.credentials.host)
        if line:
            raise DeviceError(self.credentials.host, line.split(": ", 1)[1])

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        if self.device is None:
            raise DeviceError(self.credentials.host, "driver is not open")
        from napalm.base.exceptions import NapalmException

        try:
            return call()
        except NotImplementedError as exc:
            raise DeviceError(self.credentials.host, f"{what}: NAPALM {self.napalm_name} does not implement it "
                                                     f"({exc})") from exc
        except (NapalmException, OSError, EOFError, ValueError, KeyError) as exc:
            text = str(exc).strip().splitlines()
            raise DeviceError(self.credentials.host, f"{what} failed: {text[0] if text else type(exc).__name__}") from exc
        except Exception as exc:  # netmiko's ReadTimeout, librouteros' traps: one host's failure, not a crash
            text = str(exc).strip().splitlines()
            raise DeviceError(self.credentials.host,
                              f"{what} failed: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")) from exc

    def cli(self, commands: list[str]) -> dict[str, str]:
        """Show commands; an IOS-like `% ` error reply raises DeviceError."""
        replies: dict[str, str] = self._call("cli", lambda: self.device.cli(commands))
        for command, reply in replies.items():
            errors = error_lines(reply)
            if errors:
                raise DeviceError(self.credentials.host, f"{command!r} refused: {errors[0]}")
        return replies

    # -- getters (scrubbed by whoever writes or prints them, like every platform's) ----------------

    def get_config(self) -> str:
        self._require("get_config")
        configs = self._call("get_config", lambda: self.device.get_config(retrieve="running"))
        return str(configs["running"])

    def get_facts(self) -> dict[str, Any]:
        self._require("get_facts")
        return dict(self._call("get_facts", self.device.get_facts))

    def get_interfaces(self) -> dict[str, Any]:
        self._require("get_interfaces")
        return dict(self._call("get_interfaces", self.device.get_interfaces))

    def get_interfaces_ip(self) -> dict[str, Any]:
        self._require("get_interfaces_ip")
        return dict(self._call("get_interfaces_ip", self.device.get_interfaces_ip))

    def get_lldp_neighbors_detail(self) -> dict[str, list[dict[str, Any]]]:
        self._require("get_lldp_neighbors_detail")
        return dict(self._call("get_lldp_neighbors_detail", self.device.get_lldp_neighbors_detail))

    def get_users(self) -> dict[str, Any]:
        self._require("get_users")
        return dict(self._call("get_users", self.device.get_users))

    def interfaces(self) -> dict[str, bool]:
        """Interface name -> operationally up (what WAN verification reads on every platform)."""
        return {name: bool(data.get("is_up")) for name, data in self.get_interfaces().items()}

    # -- verification (what provision-wan checks after a commit) ---------------------------------------
    # Not proven here against a device or a recorded transcript: no NAPALM getter covers OSPF
    # neighbour state, so it is read from each OS's CLI (IOS `show ip ospf neighbor`, RouterOS v7
    # `/routing/ospf/neighbor` through napalm-ros' script runner).

    def interface_up(self, ifname: str) -> bool:
        return self.interfaces().get(ifname, False)

    def ping(self, address: str) -> bool:
        """The device's own ping through NAPALM; True when any echo came back."""
        reply = self._call("ping", lambda: self.device.ping(address, count=3, timeout=2))
        success = reply.get("success") if isinstance(reply, dict) else None
        return bool(success) and int(success.get("packet_loss", 0)) < int(success.get("probes_sent", 0))

    def ospf_full(self, far_address: str) -> bool:
        if self.napalm_name == "ros":
            script = (f":foreach n in=[/routing/ospf/neighbor/find where address={far_address}] "
                      "do={:put [/routing/ospf/neighbor/get $n state]}")
            return "full" in self.cli([script])[script].lower()
        out = self.cli(["show ip ospf neighbor"])["show ip ospf neighbor"]
        return any(far_address in line.split() and "FULL" in line.upper() for line in out.splitlines())

    def route_via(self, prefix: str, via: str) -> bool:
        if self.napalm_name == "ros":
            script = f":foreach r in=[/ip/route/find where dst-address={prefix} active] do={{:put [/ip/route/get $r gateway]}}"
            return via in self.cli([script])[script].split()
        network = prefix.split("/")[0]
        out = self.cli([f"show ip route {network}"])[f"show ip route {network}"]
        return via in out

    # -- configuration ----------------------------------------------------------------------------

    def _load_and_compare(self, candidate: str) -> ConfigDiff:
        self._call("load_replace_candidate", lambda: self.device.load_replace_candidate(config=candidate))
        return parse_diff(self._call("compare_config", self.device.compare_config) or "")

    def _discard(self) -> None:
        try:
            self.device.discard_config()
        except Exception:  # nothing was committed; a stale candidate file is harmless
            log.debug("%s: discard_config failed", self.credentials.host, exc_info=True)

    def compare_config(self, candidate: str) -> ConfigDiff:
        """What replacing the running config with the candidate would change; commits nothing."""
        self._require("config_replace")
        try:
            return self._load_and_compare(candidate)
        finally:
            self._discard()

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        """Replace the running config by the candidate and commit (no revert timer); returns the diff."""
        self._require("config_replace")
        diff = self._load_and_compare(candidate)
        if diff.empty:
            self._discard()
            return diff
        self._call("commit_config", self.device.commit_config)
        return diff

    def load_merge_candidate(self, lines: list[str]) -> ConfigDiff:
        self._require("config_merge")
        self._call("load_merge_candidate", lambda: self.device.load_merge_candidate(config="\n".join(lines) + "\n"))
        diff = parse_diff(self._call("compare_config", self.device.compare_config) or "")
        if diff.empty:
            self._discard()
            return diff
        self._call("commit_config", self.device.commit_config)
        return diff

    def commit_replace(self, candidate: str, revert_in: int) -> ConfigDiff:
        """Replace with commit-confirm: the device reverts by itself after revert_in seconds unless confirmed."""
        self._require("config_replace")
        self._require("commit_confirm")
        diff = self._load_and_compare(candidate)
        if diff.empty:
            self._discard()
            return diff
        self._call("commit_config", lambda: self.device.commit_config(revert_in=revert_in))
        return diff

    def confirm_commit(self) -> None:
        self._call("confirm_commit", self.device.confirm_commit)

    def has_pending_commit(self) -> bool:
        return bool(self._call("has_pending_commit", self.device.has_pending_commit))

    def rollback(self, saved: str | None = None) -> None:
        """NAPALM's rollback: revert a pending commit-confirm, else restore what the last commit replaced.

        With `saved` (the running config from before the change), the result is read back and
        must hold the same lines; otherwise DeviceError says which are left.
        """
        self._call("rollback", self.device.rollback)
        if saved is not None:
            now = config_lines(self.get_config())
            before = config_lines(saved)
            if now != before:
                left = sorted(now - before)[:3] + [f"(missing) {line}" for line in sorted(before - now)[:3]]
                raise DeviceError(self.credentials.host, "rollback left the config differing: " + "; ".join(left))

    def save_config(self) -> None:
        """NAPALM's commits persist by themselves (IOS writes memory after a confirmed commit)."""

    def apply(self, candidate: str, verify: Callable[[], str | None], revert_in: int = 300) -> ApplyOutcome:
        """The provisioning transaction: replace, verify, then confirm or go back.

        `verify` returns None when the device does what the inventory intends, else the reason.
        Where the platform has commit-confirm the commit carries `revert_in` (seconds): a device that
        lost its management path reverts by itself. Elsewhere (RouterOS) a plain commit is made and a
        failed verification rolls back through NAPALM's snapshot.
        """
        self._require("config_replace")
        confirm = PLATFORMS[self.platform].commit_confirm
        if confirm:
            diff = self.commit_replace(candidate, revert_in)
        else:
            diff = self.load_replace_candidate(candidate)
        if diff.empty:
            return ApplyOutcome(diff=diff, confirmed=True)
        reason = verify()
        if reason is None:
            if confirm:
                self.confirm_commit()
            return ApplyOutcome(diff=diff, committed=True, confirmed=True)
        log.warning("%s: verification failed (%s); rolling back", self.credentials.host, reason)
        self.rollback()
        return ApplyOutcome(diff=diff, committed=True, rolled_back=True, reason=reason)
