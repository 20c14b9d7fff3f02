"""Lab server hosts, package repository and SMTP sink against real namespaces, sshd, apt and aiosmtpd.

Needs root. Builds its own tiny environment (prefix `hs`, 10.252.0.0/24) without the lab builder:
a root bridge, two server namespaces with a management veth each and one data link between them.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import paramiko
import pytest

from dzops.lab import base_image, pkgrepo, servers, smtp
from dzops.lab.spec import LabInterface, LabNode

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

PREFIX = "hs"
BRIDGE = "hs-mgmt"
GATEWAY = "10.252.0.1"
USER = "officer"
PASSWORD = "Tashi-Delek-42"
NODES = (
    LabNode(
        name="hs-srv1", kind="server", mgmt_address="10.252.0.21/24",
        login_user=USER, login_password=PASSWORD,
        interfaces=(LabInterface("eth1", ("192.168.77.1/24",)),),
    ),
    LabNode(
        name="hs-srv2", kind="server", mgmt_address="10.252.0.22/24",
        login_user=USER, login_password=PASSWORD,
        interfaces=(LabInterface("eth1", ("192.168.77.2/24",)),),
    ),
)  # fmt: skip


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class Env:
    state: Path
    known_hosts: Path
    repo_pid: int | None = None
    holders: dict[str, int] = field(default_factory=dict)
    torn_down: bool = False

    def teardown(self) -> None:
        """Idempotent: the last test calls it to check what remains, the fixture again."""
        for name, pid in list(self.holders.items()):
            servers.stop_server(pid, self.state / name)
            del self.holders[name]
        if self.repo_pid:
            pkgrepo.stop(self.repo_pid)
            self.repo_pid = None
        _remove_links()
        self.torn_down = True


def _remove_links() -> None:
    for node in NODES:
        # Deleted explicitly: a deleted netns frees its veths only later, asynchronously.
        subprocess.run(["ip", "link", "del", f"{node.name}-m"], capture_output=True)
        subprocess.run(["ip", "netns", "del", node.name], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def _build_links() -> None:
    _sh("ip", "link", "add", BRIDGE, "type", "bridge")
    _sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    _sh("ip", "link", "set", BRIDGE, "up")
    for node in NODES:
        _sh("ip", "netns", "add", node.name)
        _sh(
            "ip", "link", "add", f"{node.name}-m", "type", "veth", "peer", "name", "mgmt0", "netns", node.name
        )
        _sh("ip", "link", "set", f"{node.name}-m", "master", BRIDGE, "up")
        _sh("ip", "-n", node.name, "addr", "add", node.mgmt_address, "dev", "mgmt0")
        _sh("ip", "-n", node.name, "link", "set", "mgmt0", "up")
    # One direct data link, eth1 <-> eth1, as the builder would create it.
    _sh("ip", "link", "add", "hs-d1", "netns", NODES[0].name, "type", "veth", "peer", "name", "hs-d2",
        "netns", NODES[1].name)  # fmt: skip
    for node, temp in zip(NODES, ("hs-d1", "hs-d2"), strict=True):
        _sh("ip", "-n", node.name, "link", "set", temp, "name", "eth1")


def _host_key(state: Path, name: str) -> Path:
    key = state / f"{name}.key"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
    key.with_suffix(".key.pub").rename(key.with_suffix(".pub"))
    return key


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    _remove_links()  # leftovers of an interrupted earlier run
    state = tmp_path_factory.mktemp(PREFIX)
    environment = Env(state=state, known_hosts=state / "known_hosts")
    try:
        image = base_image.ensure_base_image()
        _build_links()
        port = _free_port(GATEWAY)
        environment.repo_pid = pkgrepo.start(GATEWAY, port, state / "repo")
        lines = []
        for node in NODES:
            key = _host_key(state, node.name)
            lines.append(f"{node.mgmt_address.split('/')[0]} {key.with_suffix('.pub').read_text().strip()}\n")
            environment.holders[node.name] = servers.start_server(
                node, node.name, state / node.name, key, image, f"http://{GATEWAY}:{port}"
            )
        environment.known_hosts.write_text("".join(lines))
        yield environment
    finally:
        environment.teardown()


def _connect(env: Env, node: LabNode, password: str = PASSWORD) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(env.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        node.mgmt_address.split("/")[0], username=node.login_user, password=password,
        look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10,
    )  # fmt: skip
    return client


def _ssh(
    client: paramiko.SSHClient, command: str, stdin: str | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        chan_in.write(stdin)
        chan_in.flush()
    chan_in.channel.shutdown_write()
    out = chan_out.read().decode()
    err = chan_err.read().decode()
    return chan_out.channel.recv_exit_status(), out, err


def _inside(env: Env, node: LabNode, *argv: str) -> subprocess.CompletedProcess[str]:
    argv_full = servers.server_exec_argv(env.holders[node.name], list(argv))
    return subprocess.run(argv_full, capture_output=True, text=True, timeout=60)


def _versions(env: Env, node: LabNode) -> dict[str, str]:
    query = _inside(env, node, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *pkgrepo.lab_packages())
    assert query.returncode == 0, query.stderr
    return dict(line.split() for line in query.stdout.splitlines())


def test_ssh_password_login_and_hostname(env: Env) -> None:
    for node in NODES:
        with _connect(env, node) as client:
            rc, out, _ = _ssh(client, "id -un; hostname; getent passwd $(id -un) | cut -d: -f6,7")
        assert rc == 0
        assert out.split() == [USER, node.name, f"/home/{USER}:/bin/bash"]


def test_wrong_password_is_refused(env: Env) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        _connect(env, NODES[0], password="not-the-password")


def test_password_is_hashed_not_stored(env: Env) -> None:
    shadow = _inside(env, NODES[0], "getent", "shadow", USER).stdout
    assert shadow.split(":")[1].startswith("$")
    assert PASSWORD not in shadow


def test_sudo_needs_and_accepts_the_password(env: Env) -> None:
    with _connect(env, NODES[0]) as client:
        rc, out, err = _ssh(client, "sudo -S -p '' id -u", stdin=PASSWORD + "\n")
        assert (rc, out.strip()) == (0, "0"), err
        rc, _, _ = _ssh(client, "sudo -k; sudo -S -p '' id -u", stdin="wrong\n")
        assert rc != 0


def test_python3_and_python3_apt_import(env: Env) -> None:
    with _connect(env, NODES[1]) as client:
        rc, out, err = _ssh(
            client, "python3 -c 'import apt, apt_pkg, sys; apt_pkg.init(); print(sys.version_info[0])'"
        )
    assert (rc, out.strip()) == (0, "3"), err


def test_hostname_via_exec_argv(env: Env) -> None:
    for node in NODES:
        assert _inside(env, node, "hostname").stdout.strip() == node.name
        assert _inside(env, node, "cat", "/proc/1/cmdline").stdout.startswith("/bin/sh")  # own PID namespace


def test_only_source_is_the_lab_repo(env: Env) -> None:
    sources = _inside(
        env, NODES[0], "sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null"
    )
    assert sources.stdout.strip().splitlines() == [
        f"deb [trusted=yes] http://{GATEWAY}:{_repo_port(env)}/ ./"
    ]


def _repo_port(env: Env) -> int:
    cmdline = Path(f"/proc/{env.repo_pid}/cmdline").read_bytes().split(b"\0")
    return int(cmdline[-2])


def test_data_interface_addresses(env: Env) -> None:
    addrs = _inside(env, NODES[0], "ip", "-4", "-o", "addr", "show", "dev", "eth1").stdout
    assert "192.168.77.1/24" in addrs
    ping = _inside(env, NODES[0], "ping", "-c", "1", "-W", "2", "192.168.77.2")
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_lldp_neighbour_uses_interface_names(env: Env) -> None:
    for node in NODES:
        _inside(env, node, "lldpcli", "-u", servers.LLDPD_SOCKET, "update")
    deadline = time.monotonic() + 15
    neighbours: list[tuple[str, str]] = []
    while time.monotonic() < deadline and not neighbours:
        shown = _inside(
            env, NODES[0], "lldpcli", "-u", servers.LLDPD_SOCKET, "-f", "json0", "show", "neighbors"
        )
        for iface in json.loads(shown.stdout or "{}").get("lldp", [{}])[0].get("interface", []):
            name = iface["chassis"][0]["name"][0]["value"]
            neighbours.append((name, iface["port"][0]["id"][0]["value"]))
        time.sleep(0.5)
    assert ("hs-srv2", "eth1") in neighbours


def test_apt_upgrade_is_real_and_private_per_host(env: Env) -> None:
    expected = pkgrepo.lab_packages()
    assert _versions(env, NODES[0]) == {name: old for name, (old, _) in expected.items()}
    upgrade = (
        "sudo -S -p '' env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get -q update && apt-get -q -y upgrade'"
    )
    with _connect(env, NODES[0]) as client:
        rc, out, err = _ssh(client, upgrade, stdin=PASSWORD + "\n", timeout=180)
    assert rc == 0, out + err
    assert _versions(env, NODES[0]) == {name: new for name, (_, new) in expected.items()}
    for name, (old, new) in expected.items():
        assert _inside(env, NODES[0], "cat", f"/usr/share/{name}/VERSION").stdout.strip() == new
        # srv2 shares the base image but not srv1's upper layer.
        assert _inside(env, NODES[1], "cat", f"/usr/share/{name}/VERSION").stdout.strip() == old
    assert _versions(env, NODES[1]) == {name: old for name, (old, _) in expected.items()}


def test_smtp_roundtrip(tmp_path: Path) -> None:
    port = _free_port("127.0.0.1")
    maildir = tmp_path / "mail"
    pid = smtp.start(port, maildir)
    try:
        msg = EmailMessage()
        msg["From"] = "dzops@lab.invalid"
        msg["To"] = "officer@lab.invalid"
        msg["Subject"] = "Patch report hs"
        msg.set_content("3 packages upgraded\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(msg)
        mails = smtp.read_mail(maildir)
    finally:
        smtp.stop(pid)
    assert [m["Subject"] for m in mails] == ["Patch report hs"]
    assert mails[0].get_content().strip() == "3 packages upgraded"
    assert not _alive(pid)


def test_teardown_leaves_nothing(env: Env) -> None:
    pids = [*env.holders.values(), env.repo_pid]
    env.teardown()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in netns.splitlines() if line.startswith(f"{PREFIX}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f" {PREFIX}-" not in links
    assert str(env.state) not in Path("/proc/mounts").read_text()
    for pid in pids:
        assert not _alive(pid)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            root = os.readlink(proc / "root")
        except OSError:
            continue
        assert str(env.state).encode() not in cmdline, cmdline
        assert not root.startswith(str(env.state)), (proc, root)
    for node in NODES:
        assert not (env.state / node.name / "upper").exists()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
