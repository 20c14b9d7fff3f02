"""`dzops user` against the lab: real key logins with OpenSSH, read-only limits, offboarding, audit.

The tests work on a private copy of the session lab's inventory whose `users` hold only the
accounts made here (so the shared lab never gets the sample's staff), and remove every account
they create before the module ends: the module fixture offboards them again whatever happened.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.labkit import LabHandle

pytestmark = pytest.mark.lab

ADMIN, READONLY, HANDMADE = "uslabadm", "uslabro", "uslabhand"
ARCHIVE_DIR = "/var/backups/dz_users"


@dataclass
class Users:
    handle: LabHandle
    inventory_dir: Path
    keys: dict[str, Path]  # login -> private key file
    servers: dict[str, str]  # name -> address
    routers: dict[str, str]
    known_hosts: Path
    apply: dict  # JSON of the first `dzops user apply`

    def dzops(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = {**self.handle.env(), "DZOPS_INVENTORY": str(self.inventory_dir)}
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    def ssh_argv(self, login: str, address: str, *command: str, tty: bool = False) -> list[str]:
        return ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
                "-o", "ConnectTimeout=30", "-o", "KexAlgorithms=curve25519-sha256",
                *(["-tt"] if tty else []), "-i", str(self.keys[login]), f"{login}@{address}", *command]

    def ssh(self, login: str, address: str, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.ssh_argv(login, address, *command), capture_output=True, text=True,
                              timeout=90, stdin=subprocess.DEVNULL)


def converse(argv: list[str], prompt: str, lines: list[str], timeout: float = 60) -> str:
    """Drive an interactive pty session: wait for `prompt` (a regex) before sending each line."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    seen, deadline = b"", time.monotonic() + timeout
    pending = list(lines)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
            # the prompt after the output of the last line sent: time for the next line
            if pending and len(re.findall(prompt.encode(), seen)) > len(lines) - len(pending):
                proc.stdin.write(pending.pop(0).encode() + b"\n")
                proc.stdin.flush()
    finally:
        proc.kill()
        proc.wait()
    return seen.decode(errors="replace")


def _new_key(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def _offboard(users: Users) -> subprocess.CompletedProcess[str]:
    for login in (ADMIN, READONLY):
        users.dzops("user", "remove", login)
    return users.dzops("user", "apply", "--json")


def _hosts_holding_accounts(users: Users) -> list[str]:
    """Hosts on which either account made here still exists (getent inside each node)."""
    lab = users.handle.lab
    return sorted(name for name in {**users.servers, **users.routers}
                  if lab.exec(name, ["getent", "passwd", ADMIN, READONLY]).stdout.strip())


@pytest.fixture(scope="module")
def users(punakha_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    root = tmp_path_factory.mktemp("users-lab")
    inventory_dir = root / "inventory"
    shutil.copytree(punakha_lab.inventory_dir, inventory_dir)
    users_file = inventory_dir / "group_vars/all/users.yml"
    text = users_file.read_text()
    users_file.write_text(text[:text.index("\nusers:")] + "\nusers: []\n")
    inventory = punakha_lab.inventory()
    keys = {ADMIN: _new_key(root / "admin", "admin@lab"), READONLY: _new_key(root / "ro", "ro@lab")}
    state = Users(
        handle=punakha_lab, inventory_dir=inventory_dir, keys=keys,
        servers={d.name: str(d.mgmt_address) for d in inventory.hosts_in("servers")},
        routers={d.name: str(d.mgmt_address) for d in inventory.hosts_in("routers")},
        known_hosts=inventory.known_hosts, apply={},
    )
    for login, role in ((ADMIN, "admin"), (READONLY, "readonly")):
        added = state.dzops("user", "add", login, "--name", f"Lab {role.title()}", "--email", f"{login}@lab.bt",
                            "--role", role, "--key", f"{keys[login]}.pub")
        assert added.returncode == 0, added.stderr
    applied = state.dzops("user", "apply", "--limit", "servers,routers", "--json")
    try:
        assert applied.returncode == 0, applied.stderr + applied.stdout
        state.apply = json.loads(applied.stdout)
        yield state
    finally:
        # The last test offboards both accounts and proves them gone: a whole `user apply` again is
        # needed only where one is still found (a test that failed half-way).
        if _hosts_holding_accounts(state):
            _offboard(state)
        for server in state.servers:
            punakha_lab.lab.exec(server, ["sh", "-c", f"rm -f {ARCHIVE_DIR}/{ADMIN}-* {ARCHIVE_DIR}/{READONLY}-*; "
                                                      f"rmdir {ARCHIVE_DIR} 2>/dev/null; true"])
    assert _hosts_holding_accounts(state) == []


def test_apply_creates_accounts_everywhere_their_role_reaches(users: Users) -> None:
    hosts = {h["host"]: h for h in users.apply["hosts"]}
    assert set(hosts) == set(users.servers) | set(users.routers)
    for name, host in hosts.items():
        assert host["status"] == "changed", (name, host)
        assert host["data"]["accounts"] == {ADMIN: "created", READONLY: "created"}, name
    again = users.dzops("user", "apply", "--limit", "servers,routers", "--json")
    assert again.returncode == 0, again.stderr
    assert {h["status"] for h in json.loads(again.stdout)["hosts"]} == {"ok"}  # idempotent


def test_keys_log_in_to_every_server_and_router(users: Users) -> None:
    for name, address in users.servers.items():
        for login in (ADMIN, READONLY):
            proc = users.ssh(login, address, "id -un; hostname")
            assert proc.returncode == 0, (name, login, proc.stderr)
            assert proc.stdout.split() == [login, name]
    for name, address in users.routers.items():
        for login in (ADMIN, READONLY):
            proc = users.ssh(login, address, "show running-config")
            assert proc.returncode == 0, (name, login, proc.stderr)
            assert f"hostname {name}" in proc.stdout  # vtysh answered, on the right router
    hq = users.routers["punakha-hq-rtr1"]
    session = converse(users.ssh_argv(ADMIN, hq, tty=True), r"punakha-hq-rtr1(\(config\))?# ",
                       ["configure terminal", "end", "exit"])
    assert "punakha-hq-rtr1(config)# " in session  # a full account lands in vtysh and may configure


def test_readonly_cannot_configure_a_router_or_sudo_on_a_server(users: Users) -> None:
    hq = users.routers["punakha-hq-rtr1"]
    refused = users.ssh(READONLY, hq, "configure terminal")
    assert refused.returncode != 0 and "Not permitted" in refused.stderr
    session = converse(users.ssh_argv(READONLY, hq, tty=True), r"punakha-hq-rtr1> ",
                       ["show version", "configure terminal", "exit"])
    assert "FRRouting" in session and "Not permitted" in session
    assert "(config)" not in session
    smuggled = users.ssh(READONLY, hq, "show version\nconfigure terminal")
    assert "(config)" not in smuggled.stdout + smuggled.stderr  # a newline cannot smuggle a second command
    for name, address in users.servers.items():
        assert users.ssh(READONLY, address, "sudo -n true").returncode != 0, name
        assert users.ssh(ADMIN, address, "sudo -n true").returncode == 0, name  # sudo itself works


def test_audit_reports_an_account_made_by_hand(users: Users) -> None:
    lab = users.handle.lab
    server = sorted(users.servers)[0]
    made = lab.exec(server, ["useradd", "--create-home", "--comment", "Made By Hand", HANDMADE])
    assert made.returncode == 0, made.stderr
    try:
        proc = users.dzops("user", "audit", "--limit", "servers,routers", "--json")
        assert proc.returncode == ExitCode.DRIFT_FOUND, proc.stderr
        findings = json.loads(proc.stdout)["findings"]
        assert {"host": server, "login": HANDMADE, "kind": "unmanaged",
                "detail": "not in the inventory (Made By Hand)"} in findings
        # the inventory's own users are everywhere: nothing missing, and nothing about them
        assert not [f for f in findings if f["login"] in (ADMIN, READONLY)]
    finally:
        lab.exec(server, ["userdel", "--remove", HANDMADE])


SYSTEM_LOGIN = "uslabsys"  # made here with `useradd --system`: a uid below 1000, a name no list reserves
HASH = "$6$uslabSalt$" + "H" * 86  # shaped like a SHA-512 crypt hash


def _account_state(users: Users, server: str) -> str:
    """What the refusals below must leave untouched: the system accounts, their homes, and sudo."""
    return users.handle.lab.exec(server, ["sh", "-c", f"getent passwd backup {SYSTEM_LOGIN}; getent shadow backup; "
                                                      "ls -la /var/backups; cat /etc/sudoers.d/dz_users"]).stdout


def _run_users_play(users: Users, server: str, **kwargs):
    from dzops.execute.ansible import run_playbook

    return run_playbook(users.inventory_dir, "users.yml", limit=server, **kwargs)


def _plan(server: str, present: list[str], absent: list[str]) -> dict:
    accounts = [{"login": login, "comment": "Collides", "ssh_keys": [], "sudo": True, "expires": -1,
                 "password_hash": ""} for login in present]
    return {"dz_users_plan": {server: {"dz_users_present": accounts, "dz_users_absent": absent}},
            "dz_users_mode": "apply", "dz_users_hosts": "all"}


@pytest.mark.parametrize(("present", "absent", "reason"), [
    (["backup"], [], "backup: reserved name"),
    ([], ["backup"], "backup: reserved name"),
    ([SYSTEM_LOGIN], [], f"{SYSTEM_LOGIN}: uid"),
    ([], [SYSTEM_LOGIN], f"{SYSTEM_LOGIN}: uid"),
], ids=["declare-backup", "remove-backup", "declare-system-uid", "remove-system-uid"])
def test_role_refuses_a_login_that_collides_with_a_system_account(users: Users, present: list[str],
                                                                  absent: list[str], reason: str) -> None:
    """Plain Ansible with a plan naming a system account: refused, and the host is left as it was."""
    lab, server = users.handle.lab, sorted(users.servers)[0]
    made = lab.exec(server, ["useradd", "--system", "--create-home", "--home-dir", f"/var/lib/{SYSTEM_LOGIN}",
                             SYSTEM_LOGIN])
    assert made.returncode == 0, made.stderr
    try:
        before = _account_state(users, server)
        assert SYSTEM_LOGIN in before and f"{ADMIN} ALL=" in before
        run = _run_users_play(users, server, extravars=_plan(server, present, absent))
        result = run.hosts[server]
        assert result.status == "failed", result
        assert "Refuse system accounts and reserved names" in (result.error or "") and reason in (result.error or "")
        assert not [e for e in run.host_events(server) if e.task in ("Account", "Sudoers drop-in",
                                                                      "Account removed (sessions ended, home deleted)")]
        assert _account_state(users, server) == before
        assert users.ssh(ADMIN, users.servers[server], "sudo -n true").returncode == 0
    finally:
        lab.exec(server, ["userdel", "--remove", SYSTEM_LOGIN])


def test_plain_ansible_playbook_without_the_plan_removes_no_sudo(users: Users) -> None:
    """`ansible-playbook playbooks/users.yml` as anyone would type it: no dzops extra variables."""
    import ansible_runner

    from dzops.resources import ansible_cfg, playbooks_dir, roles_dir

    before = {server: _account_state(users, server) for server in users.servers}
    private = users.inventory_dir.parent / "plain-run"
    private.mkdir(mode=0o700)
    runner = ansible_runner.run(
        private_data_dir=str(private), playbook=str(playbooks_dir() / "users.yml"),
        inventory=str(users.inventory_dir / "hosts.yml"), quiet=True,
        cmdline=f"--vault-password-file {users.inventory_dir / 'DEMO-ONLY-vault-password.txt'}",
        envvars={"ANSIBLE_CONFIG": str(ansible_cfg()), "ANSIBLE_ROLES_PATH": str(roles_dir()),
                 "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert runner.rc != 0  # refused, loudly
    failed = {e["event_data"]["host"]: e["event_data"]["task"] for e in runner.events
              if e.get("event") == "runner_on_failed"}
    assert failed == {server: "Refuse to run without dzops' plan" for server in users.servers}
    for server, address in users.servers.items():
        assert _account_state(users, server) == before[server]
        assert f"{ADMIN} ALL=" in before[server]
        assert users.ssh(ADMIN, address, "sudo -n true").returncode == 0, server


def test_large_plan_travels_in_a_file_not_on_argv(users: Users) -> None:
    """More than 128 KiB of plan (the most one argv string may hold) with a hash per account."""
    server = sorted(users.servers)[0]
    accounts = [{"login": f"bulk{i:04d}", "comment": f"Bulk {i}", "ssh_keys": [], "sudo": False, "expires": -1,
                 "password_hash": f"{HASH}{i:04d}"} for i in range(1200)]
    extravars = {"dz_users_plan": {server: {"dz_users_present": accounts, "dz_users_absent": []}},
                 "dz_users_mode": "audit", "dz_users_hosts": "all"}
    assert len(json.dumps(extravars)) > 128 * 1024
    import tempfile

    runs = Path(tempfile.mkdtemp(prefix="uslab-runs-"))
    old_tempdir, tempfile.tempdir = tempfile.tempdir, str(runs)
    try:
        run = _run_users_play(users, server, extravars=extravars, keep_artifacts=True)
        (command_file,) = runs.glob("dzops-runner-*/artifacts/*/command")
        argv = " ".join(json.loads(command_file.read_text())["command"])
        leftover = [p for p in runs.rglob("*") if p.is_file() and HASH.encode() in p.read_bytes()]
    finally:
        tempfile.tempdir = old_tempdir
        shutil.rmtree(runs, ignore_errors=True)
    assert run.hosts[server].status == "ok", run.hosts
    assert run.host_events(server, "Accounts on this host")  # the play really ran on the server
    assert HASH not in argv and "bulk0001" not in argv and "env/extravars" in argv
    assert leftover == []  # no copy of the hashes stays in the kept artifacts


def test_remove_then_apply_offboards_everywhere(users: Users) -> None:
    proc = _offboard(users)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["offboarded"]
    everywhere = set(users.servers) | set(users.routers)
    for login in (ADMIN, READONLY):
        assert set(report[login]) == everywhere
        assert {report[login][s] for s in users.servers} == {"removed, home archived"}
        assert {report[login][r] for r in users.routers} == {"removed"}
    for name, address in {**users.servers, **users.routers}.items():
        for login in (ADMIN, READONLY):
            proc = users.ssh(login, address, "show version" if name in users.routers else "true")
            assert proc.returncode == 255 and "Permission denied" in proc.stderr, (name, login, proc.stderr)
    for server in users.servers:
        listing = users.handle.lab.exec(server, ["sh", "-c", f"ls {ARCHIVE_DIR}; ls /home"]).stdout
        assert f"{ADMIN}-" in listing and f"{READONLY}-" in listing  # archived ...
        assert f"\n{ADMIN}\n" not in f"\n{listing}" and f"\n{READONLY}\n" not in f"\n{listing}"  # ... then removed
    again = users.dzops("user", "apply", "--limit", "servers,routers", "--json")
    assert json.loads(again.stdout)["offboarded"] == {ADMIN: {}, READONLY: {}}  # found on no host now
