"""SSH for every driver and collector of the execute layer: one session type, one trust rule.

Logging in is done as Ansible does it, from the same inventory variables: `ansible_host`,
`ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`, an ssh-agent when SSH_AUTH_SOCK is
set, `ansible_password`, and `ansible_become`/`ansible_become_password` for sudo. Keys are tried
before the password.

Host keys are always checked against one known_hosts file (the inventory's, or the lab's with
`--lab`): an unknown key is refused, never learned, so the first connection is as trusted as every
later one (`dzops onboard` is the one door for a new key). A key that differs from known_hosts is
refused with both SHA256 fingerprints, the known one and the offered one, on one line.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dzops.exceptions import AuthenticationFailed, ConnectionFailed, DeviceError, HostKeyMismatch
from dzops.execute import fanout
from dzops.execute.drivers.base import Credentials

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]  # (subject, message) for people, on stderr
FAN_OUT_WORKERS = 10  # the lab notes measure no gain past ~10 concurrent SSH sessions on 2 cores
# sshd refuses more than MaxSessions (10 by default) channels on one connection; threads sharing a
# session (checks of many links on one hub router) queue here instead.
MAX_CHANNELS = 4

T = TypeVar("T")
R = TypeVar("R")


def fan_out(fn: Callable[[T], R], items: Iterable[T], workers: int = FAN_OUT_WORKERS) -> list[R]:
    """fn over items on a bounded thread pool, results in item order.

    >>> fan_out(lambda n: n * n, [1, 2, 3])
    [1, 4, 9]
    """
    return fanout.fan_out(fn, items, forks=workers)


# --- credentials ---------------------------------------------------------------------------------


def key_path(value: Path | str | None, inventory_root: Path | None) -> Path | None:
    """ansible_ssh_private_key_file as a path: `~` expanded, relative paths from the inventory dir.

    >>> key_path("keys/dzops", Path("/srv/inv")), key_path(None, Path("/srv/inv"))
    (PosixPath('/srv/inv/keys/dzops'), None)
    """
    if value is None or str(value) == "":
        return None
    path = Path(os.path.expanduser(str(value)))
    if not path.is_absolute() and inventory_root is not None:
        root = inventory_root.parent if inventory_root.suffix in (".yml", ".yaml") else inventory_root
        path = root / path
    return path


def credentials(inventory: Any, device: Any) -> Credentials:
    """How to log in to a device: the inventory's SSH variables and its known_hosts."""

    def secret(value: Any) -> str:
        return value.get_secret_value() if value is not None else ""

    return Credentials(
        host=device.name, address=str(device.mgmt_address), username=device.username or "",
        password=secret(device.password), known_hosts=inventory.known_hosts,
        port=getattr(device, "port", 22),
        key_file=key_path(getattr(device, "private_key_file", None), getattr(inventory, "root", None)),
        use_agent=bool(os.environ.get("SSH_AUTH_SOCK")),
        become=bool(getattr(device, "become", False)),
        become_password=secret(getattr(device, "become_password", None)),
        login=getattr(device, "router_login", "shell"),
    )


# --- host keys ---------------------------------------------------------------------------------


def fingerprint_of(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (what `ssh-keygen -lf` prints).

    >>> fingerprint_of(b"not really a key")
    'SHA256:1ZLTD5Sd93+QFQKUFLJcH8LnruRghGNJ2PLc1ISbefc'
    """
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def fingerprint(key: Any) -> str:
    """The SHA256 fingerprint of a paramiko public key."""
    return fingerprint_of(key.asbytes())


@dataclass(frozen=True)
class HostKeyCheck:
    """A device's offered host key against known_hosts: `known`, `unknown` or `changed`."""

    state: str
    offered: str  # SHA256 fingerprint
    key_type: str
    known: tuple[str, ...] = ()  # fingerprints known_hosts holds for this name
    key_line: str = ""  # the known_hosts line the offered key would be


def compare_host_key(known: dict[str, Any], offered: Any, name: str) -> HostKeyCheck:
    """Classify an offered key against the keys known_hosts has for `name` (type -> key)."""
    line = f"{name} {offered.get_name()} {offered.get_base64()}"
    fingerprints = tuple(fingerprint(k) for k in known.values())
    if not known:
        return HostKeyCheck("unknown", fingerprint(offered), offered.get_name(), (), line)
    same = known.get(offered.get_name())
    state = "known" if same is not None and same.asbytes() == offered.asbytes() else "changed"
    return HostKeyCheck(state, fingerprint(offered), offered.get_name(), fingerprints, line)


def known_keys(known_hosts: Path | None, name: str) -> dict[str, Any]:
    """key type -> key that known_hosts holds for a host name (hashed entries included)."""
    import paramiko

    if known_hosts is None or not Path(known_hosts).is_file():
        return {}
    keys = paramiko.HostKeys(str(known_hosts)).lookup(name)
    return dict(keys) if keys else {}


def changed_key_message(creds: Credentials, known: Iterable[str], offered: str) -> str:
    """The one line every command prints for a host key that changed."""
    return (f"SSH HOST KEY CHANGED for {creds.known_hosts_name}: known_hosts {creds.known_hosts} has "
            f"{', '.join(known)}, the device offers {offered}; refused (a replaced device or an attack): "
            f"check the new key at the device's console, then run `dzops onboard {creds.host} "
            f"--accept-fingerprint {offered}`")


def unknown_key_message(creds: Credentials, offered: str) -> str:
    return (f"SSH host key {offered} of {creds.known_hosts_name} is not in known_hosts {creds.known_hosts}: "
            f"run `dzops onboard {creds.host}`")


class _Refuse:
    """paramiko's missing-host-key policy: refuse, remembering the offered key for the message."""

    def __init__(self) -> None:
        self.offered: Any = None

    def missing_host_key(self, _client: Any, _hostname: str, key: Any) -> None:
        import paramiko

        self.offered = key
        raise paramiko.SSHException("host key not in known_hosts")


def offered_host_key(creds: Credentials, key_types: Iterable[str] = ()) -> Any:
    """The host key a device offers (no login): for onboarding and for precise refusals."""
    import paramiko

    sock = open_socket(creds)
    transport = paramiko.Transport(sock)
    try:
        types = [t for t in key_types if t in transport.get_security_options().key_types]
        if types:  # ask for the type known_hosts has, as OpenSSH and SSHClient do
            transport.get_security_options().key_types = types
        transport.start_client(timeout=creds.timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise ConnectionFailed(creds.host, f"SSH to {creds.address}:{creds.port} failed: {exc}") from None
    finally:
        transport.close()


def check_host_key(creds: Credentials) -> HostKeyCheck:
    """What the device offers now, against known_hosts."""
    known = known_keys(creds.known_hosts, creds.known_hosts_name)
    offered = offered_host_key(creds, known)
    return compare_host_key(known, offered, creds.known_hosts_name)


def host_key_error(creds: Credentials) -> HostKeyMismatch:
    """A HostKeyMismatch naming both fingerprints (for drivers whose library hides the keys)."""
    try:
        found = check_host_key(creds)
    except ConnectionFailed as exc:
        return HostKeyMismatch(creds.host, f"SSH host key of {creds.known_hosts_name} refused ({exc})")
    if found.state == "changed":
        return HostKeyMismatch(creds.host, changed_key_message(creds, found.known, found.offered))
    return HostKeyMismatch(creds.host, unknown_key_message(creds, found.offered))


# What OpenSSH (under Ansible) says when it refuses a host key; it names only the offered key.
OPENSSH_HOST_KEY_TEXTS = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed",
                          "host key is known for", "No ED25519 host key is known", "No ECDSA host key is known",
                          "No RSA host key is known")


def explain_host_key(inventory: Any, host: str, message: str | None) -> str | None:
    """The one-line refusal naming both fingerprints, when OpenSSH refused `host`'s key; else None."""
    if not message or not any(text in message for text in OPENSSH_HOST_KEY_TEXTS):
        return None
    return str(host_key_error(credentials(inventory, inventory.devices[host])))


def add_known_host(known_hosts: Path, line: str, replace_name: str | None = None) -> None:
    """Add one known_hosts line atomically (lock, temp file, rename); other lines stay byte for byte.

    With `replace_name`, that host's existing lines go: only for a change a person confirmed.
    """
    import fcntl

    known_hosts = Path(known_hosts)
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{known_hosts}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = known_hosts.read_bytes() if known_hosts.exists() else b""
            lines = old.splitlines(keepends=True)
            if replace_name is not None:
                lines = [raw for raw in lines if not _names_host(raw.decode(errors="replace"), replace_name)]
            if lines and not lines[-1].endswith(b"\n"):
                lines[-1] += b"\n"
            if (line + "\n").encode() not in lines:
                lines.append((line + "\n").encode())
            fd, tmp = tempfile.mkstemp(prefix=".known_hosts.", dir=known_hosts.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(b"".join(lines))
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, known_hosts)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _names_host(line: str, name: str) -> bool:
    """Whether a known_hosts line is about `name` (plain or hashed host field).

    >>> _names_host("10.0.0.1,r1 ssh-ed25519 AAAA", "10.0.0.1"), _names_host("10.0.0.2 ssh-ed25519 AAAA", "10.0.0.1")
    (True, False)
    """
    import paramiko

    fields = line.split()
    if len(fields) < 3 or line.startswith("#"):
        return False
    hosts = fields[0].split(",")
    if name in hosts:
        return True
    return any(h.startswith("|1|") and paramiko.HostKeys.hash_host(name, h) == h for h in hosts)


# --- connecting --------------------------------------------------------------------------------

_parsed: dict[str, tuple[bytes, Any]] = {}
_parsing = threading.Lock()
_importing = threading.Lock()


def parsed_known_hosts(path: Path) -> Any:
    """paramiko's HostKeys of a known_hosts file, parsed once per content of the file.

    paramiko turns every line into a key object: loading the whole file for each connection made a
    fan-out quadratic in the number of devices (100 routers: half a CPU-second of parsing). The file
    is still read at every login and its digest compared (microseconds): any change, however quick
    or same-sized (a replaced key), is parsed again.
    """
    import paramiko

    digest = hashlib.sha256(Path(path).read_bytes()).digest()
    with _parsing:  # one thread parses, the others wait for its result instead of parsing too
        cached = _parsed.get(str(path))
        if cached is None or cached[0] != digest:
            # A file changing between the digest and this parse is caught by the next login's digest.
            cached = (digest, paramiko.HostKeys(str(path)))
            _parsed[str(path)] = cached
        return cached[1]



def import_paramiko() -> Any:
    """paramiko, imported without `invoke`.

    paramiko.config imports invoke only to run the `Match exec` lines of an ssh_config, and dzops
    logs in from inventory variables, never through an ssh_config: that optional import was a third
    of paramiko's import time (about 0.1 s of a core on every run). Whoever imports paramiko first
    decides; an invoke already imported is left alone.
    """
    with _importing:
        if "paramiko" not in sys.modules and "invoke" not in sys.modules:
            sys.modules["invoke"] = None  # type: ignore[assignment]  # paramiko.config: ImportError, no invoke
            try:
                import paramiko  # noqa: F401
            finally:
                if "invoke" in sys.modules and sys.modules["invoke"] is None:
                    del sys.modules["invoke"]
    import paramiko

    return paramiko


def open_socket(creds: Credentials) -> socket.socket:
    """A TCP connection to the device's SSH port, with Nagle's algorithm off.

    An SSH login is a dialogue of small writes (version, key exchange, service request, password,
    channel, command), several of them back to back. With Nagle on, the kernel holds a small write
    until the last one is acknowledged, and the peer's delayed acknowledgement then costs tens of
    milliseconds, several times per login (OpenSSH turns Nagle off for the same reason). Measured on
    the lab, one router after another: 187 -> 132 ms per backup login; on a WAN with real round
    trips the stalls are longer still. A device that cannot be reached is a ConnectionFailed.
    """
    try:
        sock = socket.create_connection((creds.address, creds.port), timeout=creds.timeout)
    except OSError as exc:
        raise unreachable(creds, exc) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def unreachable(creds: Credentials, exc: BaseException) -> ConnectionFailed:
    """The one refusal for a device the network does not carry us to (refused, timed out, reset)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ConnectionFailed(creds.host, f"cannot reach {creds.address}:{creds.port}: {reason}")


def connect(creds: Credentials) -> Any:
    """An open paramiko client; failures become ConnectionFailed, AuthenticationFailed or HostKeyMismatch."""
    paramiko = import_paramiko()

    if creds.known_hosts is None:
        raise HostKeyMismatch(creds.host, "no known_hosts file in the inventory: host keys cannot be checked")
    if creds.key_file is not None and not creds.key_file.is_file():
        raise AuthenticationFailed(creds.host, f"private key file {creds.key_file} does not exist")
    if creds.key_file is None and not creds.use_agent and not creds.password:
        raise AuthenticationFailed(creds.host, "no way to log in: set ansible_ssh_private_key_file, "
                                               "ansible_password or start an ssh-agent")
    client = paramiko.SSHClient()
    try:
        if Path(creds.known_hosts).exists():
            known = parsed_known_hosts(Path(creds.known_hosts)).lookup(creds.known_hosts_name)
            for key_type, key in (known or {}).items():
                client.get_host_keys().add(creds.known_hosts_name, key_type, key)
    except (OSError, paramiko.SSHException) as exc:
        raise HostKeyMismatch(creds.host, f"cannot read known_hosts {creds.known_hosts}: {exc}") from None
    policy = _Refuse()
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(creds.address, port=creds.port, username=creds.username, password=creds.password or None,
                       key_filename=str(creds.key_file) if creds.key_file else None,
                       allow_agent=creds.use_agent, look_for_keys=False, sock=open_socket(creds),
                       timeout=creds.timeout, banner_timeout=creds.timeout, auth_timeout=creds.timeout)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyMismatch(creds.host, changed_key_message(creds, [fingerprint(exc.expected_key)],
                                                              fingerprint(exc.key))) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        how = "key" if creds.key_file or creds.use_agent else "password"
        detail = f" ({exc})" if isinstance(exc, paramiko.PasswordRequiredException) else ""
        raise AuthenticationFailed(creds.host, f"authentication failed for user {creds.username} "
                                               f"by {how}{' or password' if how == 'key' and creds.password else ''}"
                                               f"{detail}") from None
    except paramiko.SSHException as exc:
        client.close()
        if policy.offered is not None:
            raise HostKeyMismatch(creds.host, unknown_key_message(creds, fingerprint(policy.offered))) from None
        raise ConnectionFailed(creds.host, f"SSH to {creds.address}:{creds.port} failed: {exc}") from None
    except (TimeoutError, OSError, EOFError) as exc:
        client.close()
        raise unreachable(creds, exc) from None
    return client


class Session:
    """One SSH connection to a device; each command on its own exec channel, a few at a time.

    A busy device's sshd sometimes drops a session: commands sent here are safe to send again (reads,
    and config loads that converge on the same file), so a dropped session is reconnected once.
    """

    def __init__(self, creds: Credentials) -> None:
        self.credentials = creds
        self._client: Any = None
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)
        self._reconnecting = threading.Lock()

    @property
    def host(self) -> str:
        return self.credentials.host

    def open(self) -> None:
        self._client = connect(self.credentials)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def active(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return bool(transport is not None and transport.is_active())

    def run(self, command: str, stdin: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of one command; stdin (if any) is sent and closed."""
        if self._client is None:
            raise DeviceError(self.host, "not connected")
        import paramiko

        for attempt in (1, 2):
            try:
                with self._channels:
                    chan_in, stdout, stderr = self._client.exec_command(command, timeout=timeout)
                    if stdin is not None:
                        chan_in.write(stdin)
                    chan_in.channel.shutdown_write()
                    out = stdout.read().decode(errors="replace")
                    err = stderr.read().decode(errors="replace")
                    return stdout.channel.recv_exit_status(), out, err
            except (TimeoutError, OSError, EOFError, paramiko.SSHException) as exc:
                if attempt == 1 and not self.active():
                    self._reconnect(exc)
                    continue
                reason = str(exc) or type(exc).__name__
                raise ConnectionFailed(self.host, f"'{command.split()[0] if command.split() else command}' "
                                                  f"failed on the SSH connection: {reason}") from None
        raise AssertionError("not reached: the loop returns or raises")

    def start(self, command: str, timeout: float = 120) -> Pending:
        """Start one command on its own exec channel and return at once; `Pending.result()` waits for it.

        One thread can then connect to many devices while each one's command (a health run's
        second of pings) runs on its own, instead of a worker waiting on every device in turn.
        """
        if self._client is None:
            raise DeviceError(self.host, "not connected")
        import paramiko

        self._channels.acquire()
        try:
            chan_in, stdout, stderr = self._client.exec_command(command, timeout=timeout)
            chan_in.channel.shutdown_write()
        except (TimeoutError, OSError, EOFError, paramiko.SSHException):
            self._channels.release()
            return Pending(self, command, timeout, None, None)  # result() runs it again (reconnecting once)
        return Pending(self, command, timeout, stdout, stderr)

    @contextmanager
    def interactive(self, width: int = 200) -> Iterator[Any]:
        """A paramiko channel with a pty and the login's shell: for what only a terminal ends (Ctrl-C)."""
        if self._client is None:
            raise DeviceError(self.host, "not connected")
        import paramiko

        with self._channels:
            try:
                channel = self._client.get_transport().open_session(timeout=self.credentials.timeout)
                channel.get_pty(width=width)
                channel.invoke_shell()
            except (TimeoutError, OSError, EOFError, paramiko.SSHException) as exc:
                raise ConnectionFailed(self.host, f"interactive shell failed: {exc or type(exc).__name__}") from None
            try:
                yield channel
            finally:
                channel.close()

    def _reconnect(self, exc: BaseException) -> None:
        with self._reconnecting:
            if not self.active():  # another thread may have reconnected meanwhile
                log.info("%s: SSH session dropped (%s); reconnecting once", self.host, exc or type(exc).__name__)
                self.close()
                self.open()

    def upload(self, path: str, text: str, mode: int = 0o600) -> None:
        """Write a file over SFTP (relative paths are in the login's home directory)."""
        import paramiko

        try:
            with self._channels:
                sftp = self._client.open_sftp()
                try:
                    sftp.putfo(io.BytesIO(text.encode()), path)
                    sftp.chmod(path, mode)
                finally:
                    sftp.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceError(self.host, f"cannot upload {path}: {exc}") from None


class Pending:
    """A command started by `Session.start`: call `result()` once for (exit status, stdout, stderr)."""

    def __init__(self, session: Session, command: str, timeout: float, stdout: Any, stderr: Any) -> None:
        self.session, self.command, self.timeout = session, command, timeout
        self._stdout, self._stderr = stdout, stderr

    def ready(self) -> bool:
        """Whether the command has finished, so `result()` will not wait (never blocks)."""
        return self._stdout is not None and self._stdout.channel.exit_status_ready()

    def result(self) -> tuple[int, str, str]:
        import paramiko

        if self._stdout is None:  # the start itself failed: run it the ordinary way
            return self.session.run(self.command, timeout=self.timeout)
        try:
            out = self._stdout.read().decode(errors="replace")
            err = self._stderr.read().decode(errors="replace")
            return self._stdout.channel.recv_exit_status(), out, err
        except (TimeoutError, OSError, EOFError, paramiko.SSHException):
            if self.session.active():
                raise ConnectionFailed(self.session.host, f"'{self.command.split()[0]}' timed out "
                                                          f"after {self.timeout:.0f} s") from None
            return self.session.run(self.command, timeout=self.timeout)  # dropped: reconnect once, as run() does
        finally:
            self._stdout.channel.close()
            self.session._channels.release()
