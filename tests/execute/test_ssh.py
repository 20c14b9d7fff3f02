"""SSH as Ansible does it, against a real SSH server on loopback: credentials, host keys, known_hosts.

The server (tests/execute/fake_ssh_server.py) is paramiko's server side with a real host key and
real password/public-key checks, so what is asserted is what a device's sshd would see.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import paramiko
import pytest
from pydantic import SecretStr

from dzops.exceptions import AuthenticationFailed, DeviceError, HostKeyMismatch, NotOnboarded
from dzops.execute.drivers.base import Credentials
from dzops.execute.ssh import (
    add_known_host,
    check_host_key,
    compare_host_key,
    connect,
    credentials,
    fingerprint,
)
from tests.execute.fake_ssh_server import FakeSshServer


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path


@pytest.fixture()
def keys(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(
        host=paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path / "host"))),
        other_host=paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path / "host2"))),
        user=_keygen(tmp_path / "user"), stranger=_keygen(tmp_path / "stranger"),
    )


@pytest.fixture()
def server(keys: SimpleNamespace) -> FakeSshServer:
    fake = FakeSshServer(host_key=keys.host).start()
    yield fake
    fake.stop()


def creds_for(fake: FakeSshServer, known_hosts: Path | None, **changes) -> Credentials:
    base = {"host": "r1", "address": "127.0.0.1", "username": "dzadmin", "password": "", "known_hosts": known_hosts,
            "port": fake.port, "timeout": 5.0}
    return Credentials(**{**base, **changes})


# --- credentials precedence ---------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    id: str
    key: str | None  # "user" (authorized), "stranger" (not authorized), "missing" (no file) or None
    password: str  # what the inventory says
    server_password: str | None  # what the device accepts (None: password auth off)
    tried: tuple[str, ...] | None  # auth methods the device saw, in order; None: refused before connecting
    error: str | None = None


LOGINS = [
    Login("key-only", "user", "", None, ("publickey",)),
    Login("key-preferred-to-password", "user", "secret-pw", "secret-pw", ("publickey",)),
    Login("unauthorized-key-falls-back-to-password", "stranger", "secret-pw", "secret-pw", ("publickey", "password")),
    Login("password-only", None, "secret-pw", "secret-pw", ("password",)),
    Login("wrong-password", None, "nope", "secret-pw", ("password",), "authentication failed for user dzadmin"),
    Login("unauthorized-key-no-password", "stranger", "", "secret-pw", ("publickey",), "by key"),
    Login("missing-key-file", "missing", "secret-pw", "secret-pw", None, "does not exist"),
    Login("nothing-to-log-in-with", None, "", "secret-pw", None, "no way to log in"),
]


@pytest.mark.parametrize("case", LOGINS, ids=lambda c: c.id)
def test_login_methods_and_their_order(case: Login, server: FakeSshServer, keys, tmp_path: Path) -> None:
    server.authorized = [paramiko.Ed25519Key.from_private_key_file(str(keys.user))]
    server.password = case.server_password
    key_file = {"user": keys.user, "stranger": keys.stranger, "missing": tmp_path / "nope", None: None}[case.key]
    creds = creds_for(server, server.write_known_hosts(tmp_path / "known_hosts"), key_file=key_file,
                      password=case.password)
    if case.error:
        with pytest.raises(AuthenticationFailed, match=case.error):
            connect(creds).close()
    else:
        client = connect(creds)
        client.close()
    assert tuple(server.tried) == (case.tried or ())


def test_logins_and_key_scans_send_without_waiting_for_acknowledgements(server: FakeSshServer, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Nagle off on every socket dzops opens to a device (see open_socket)."""
    import socket

    from dzops.execute import ssh

    server.password = "secret-pw"
    creds = creds_for(server, server.write_known_hosts(tmp_path / "known_hosts"), password="secret-pw")
    real = ssh.open_socket
    opened: list[tuple[socket.socket, int]] = []  # each socket with its TCP_NODELAY as handed to paramiko

    def watched(c: Credentials) -> socket.socket:
        sock = real(c)
        opened.append((sock, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return sock

    monkeypatch.setattr(ssh, "open_socket", watched)
    client = connect(creds)
    try:
        assert client.get_transport().sock is opened[0][0]
    finally:
        client.close()
    ssh.check_host_key(creds)
    assert len(opened) == 2 and all(nodelay != 0 for _, nodelay in opened)


@pytest.mark.parametrize(("device", "env", "expected"), [
    (dict(port=2222, private_key_file=Path("keys/dz"), password=SecretStr("pw")), {},
     dict(port=2222, key_file=Path("/inv/keys/dz"), password="pw", use_agent=False, sudo_password="pw")),
    (dict(become=True, become_password=SecretStr("sudo-pw"), password=SecretStr("pw")), {"SSH_AUTH_SOCK": "/tmp/a"},
     dict(port=22, key_file=None, become=True, use_agent=True, sudo_password="sudo-pw")),
    (dict(private_key_file=Path("~/.ssh/id_dz")), {}, dict(key_file=Path("~/.ssh/id_dz").expanduser(), password="")),
    (dict(router_login="vtysh"), {}, dict(login="vtysh")),
], ids=["port-key-password", "become-and-agent", "home-relative-key", "vtysh-login"])
def test_credentials_read_the_inventory_as_ansible_does(device, env, expected, monkeypatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fields = {"name": "r1", "mgmt_address": "10.0.0.1", "username": "dzadmin", "password": None, "port": 22,
              "private_key_file": None, "become": False, "become_password": None, "router_login": "shell", **device}
    creds = credentials(SimpleNamespace(known_hosts=Path("/kh"), root=Path("/inv")), SimpleNamespace(**fields))
    for name, value in expected.items():
        assert getattr(creds, name) == value, name
    assert "pw" not in repr(creds)  # passwords never in a repr (logs, tracebacks)


# --- host keys -------------------------------------------------------------------------------------


def test_fingerprint_is_what_ssh_keygen_prints(keys, tmp_path: Path) -> None:
    listed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "host.pub")], capture_output=True, text=True,
                            check=True).stdout.split()[1]
    assert fingerprint(keys.host) == listed


@pytest.mark.parametrize(("known", "state"), [
    ({}, "unknown"), ({"ssh-ed25519": "host"}, "known"), ({"ssh-ed25519": "other_host"}, "changed"),
])
def test_offered_key_against_known_hosts(known, state, keys) -> None:
    check = compare_host_key({t: getattr(keys, k) for t, k in known.items()}, keys.host, "10.0.0.1")
    assert check.state == state and check.offered == fingerprint(keys.host)
    assert check.key_line == f"10.0.0.1 ssh-ed25519 {keys.host.get_base64()}"
    assert check.known == tuple(fingerprint(getattr(keys, k)) for k in known.values())


def test_changed_host_key_is_refused_with_both_fingerprints(server, keys, tmp_path: Path) -> None:
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts", keys.other_host)
    with pytest.raises(HostKeyMismatch) as refused:
        connect(creds_for(server, known_hosts, password="secret-pw"))
    message = str(refused.value)
    assert "\n" not in message and message.startswith("r1: SSH HOST KEY CHANGED")
    assert fingerprint(keys.other_host) in message and fingerprint(keys.host) in message
    assert message.index(fingerprint(keys.other_host)) < message.index(fingerprint(keys.host))  # known, then offered
    assert server.tried == []  # not one credential was offered to the impostor


@pytest.mark.parametrize("known_hosts", ["empty", "missing", "none"])
def test_unknown_host_key_is_refused_never_learned(known_hosts, server, keys, tmp_path: Path) -> None:
    path = {"empty": tmp_path / "kh", "missing": tmp_path / "absent", "none": None}[known_hosts]
    if known_hosts == "empty":
        path.write_text("")
    with pytest.raises(HostKeyMismatch) as refused:
        connect(creds_for(server, path, password="secret-pw"))
    if path is not None:
        assert fingerprint(keys.host) in str(refused.value) and "dzops onboard r1" in str(refused.value)
        assert not path.exists() or path.read_text() == ""  # nothing learned
    assert server.tried == []


def test_check_host_key_scans_without_logging_in(server, keys, tmp_path: Path) -> None:
    creds = creds_for(server, server.write_known_hosts(tmp_path / "kh", keys.other_host))
    found = check_host_key(creds)
    assert (found.state, found.offered, found.known) == ("changed", fingerprint(keys.host),
                                                         (fingerprint(keys.other_host),))
    assert server.tried == []


def test_add_known_host_keeps_other_lines_and_replaces_only_when_told(keys, tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("10.0.0.9")
    original = (f"# production routers\n10.0.0.2 ssh-ed25519 {keys.other_host.get_base64()}\n"
                f"{hashed} ssh-ed25519 {keys.other_host.get_base64()}")  # no final newline: kept as is
    path.write_bytes(original.encode())
    add_known_host(path, f"10.0.0.1 ssh-ed25519 {keys.host.get_base64()}")
    text = path.read_text()
    assert text.startswith(original) and text.endswith(f"\n10.0.0.1 ssh-ed25519 {keys.host.get_base64()}\n")
    add_known_host(path, f"10.0.0.1 ssh-ed25519 {keys.host.get_base64()}")
    assert path.read_text() == text  # idempotent
    add_known_host(path, f"10.0.0.9 ssh-ed25519 {keys.host.get_base64()}", replace_name="10.0.0.9")
    lines = path.read_text().splitlines()
    assert not any(line.startswith(hashed) for line in lines)  # the hashed entry of that host went
    assert f"10.0.0.2 ssh-ed25519 {keys.other_host.get_base64()}" in lines and lines[0] == "# production routers"
    assert not list(tmp_path.glob(".known_hosts.*"))  # no temp file left


# --- the FRR driver over a shell login ---------------------------------------------------------------

MARKER = 'printf "%s\\n" "$HOME"; cat /etc/dzops/router-access'


def _frr(server: FakeSshServer, tmp_path: Path):
    from dzops.execute.drivers.frr import Driver

    return Driver(creds_for(server, server.write_known_hosts(tmp_path / "kh"), password="secret-pw"))


def test_router_without_the_role_is_not_onboarded(server, tmp_path: Path) -> None:
    server.commands[MARKER] = (1, "/home/dzadmin\n", "cat: /etc/dzops/router-access: No such file or directory\n")
    with pytest.raises(NotOnboarded) as refused:
        _frr(server, tmp_path).open()
    assert str(refused.value) == "r1: not onboarded: run dzops onboard r1"


def test_onboarded_router_answers_vtysh_and_refuses_sudo_as_not_onboarded(server, tmp_path: Path) -> None:
    server.commands[MARKER] = (0, "/home/dzadmin\nversion=1\nlogin=dzadmin\n", "")
    server.commands["vtysh -c 'show running-config'"] = (
        0, "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\nhostname r1\n", "")
    server.commands["vtysh -c 'show ip route 10.9.9.9'"] = (0, "% Network not in table\n", "")
    server.commands["sudo -n /usr/local/lib/dzops/account list"] = (1, "", "sudo: a password is required\n")
    driver = _frr(server, tmp_path)
    driver.open()
    try:
        assert driver.home == "/home/dzadmin"
        assert driver.get_config() == "!\nfrr version 8.4.4\nhostname r1\n"
        with pytest.raises(DeviceError, match="% Network not in table"):
            driver.cli(["show ip route 10.9.9.9"])
        with pytest.raises(DeviceError, match="one line"):
            driver.cli(["show version\nconfigure terminal"])
        with pytest.raises(NotOnboarded):
            driver.account(["list"])
    finally:
        driver.close()
