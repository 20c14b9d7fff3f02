"""`dzops onboard`, and how every command treats an untrusted or unprepared device, through the real CLI.

Devices are SSH servers on loopback (tests/execute/fake_ssh_server.py) at the inventory's
`ansible_host:ansible_port`: a copy of the sample inventory whose management network is moved
to 127.30.0.0/24 (all of 127/8 is loopback), so nothing leaves this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.execute.ssh import fingerprint
from tests.execute.fake_ssh_server import FakeSshServer

REPO = Path(__file__).resolve().parents[2]
ROUTER, AP, SERVER = "gewog-talo-rtr1", "gewog-talo-ap1", "punakha-hq-srv1"
MARKER = 'printf "%s\\n" "$HOME"; cat /etc/dzops/router-access'


@dataclass
class Site:
    inventory: Path
    known_hosts: Path
    servers: dict[str, FakeSshServer]
    keys: dict[str, paramiko.PKey]

    def dzops(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DZOPS_INVENTORY": str(self.inventory), "PYTHONPATH": str(REPO)}
        env.pop("DZOPS_LAB", None)
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=env, capture_output=True, text=True,
                              input=stdin, timeout=120)

    def line_for(self, host: str, key: paramiko.PKey | None = None) -> str:
        server = self.servers[host]
        return f"[{self.address(host)}]:{server.port} {(key or server.host_key).get_name()} " \
               f"{(key or server.host_key).get_base64()}"

    def address(self, host: str) -> str:
        text = (self.inventory / "host_vars" / f"{host}.yml").read_text()
        return next(line.split()[1] for line in text.splitlines() if line.startswith("ansible_host:"))


def _key(tmp: Path, name: str) -> paramiko.PKey:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(tmp / name))


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory", inventory)
    for path in [*inventory.glob("host_vars/*.yml"), inventory / "group_vars/all/dzongkhag.yml"]:
        path.write_text(path.read_text().replace("10.30.0.", "127.30.0."))
    known_hosts = tmp_path / "state" / "known_hosts"
    connection = inventory / "group_vars/all/connection.yml"
    connection.write_text(connection.read_text().replace("/var/lib/dzops/punakha/known_hosts", str(known_hosts)))
    operations = inventory / "group_vars/all/operations.yml"
    operations.write_text(operations.read_text().replace("/var/lib/dzops/punakha", str(tmp_path / "state")))
    from dzops.inventory.loader import load_inventory

    devices = load_inventory(inventory).devices
    password = devices[ROUTER].password.get_secret_value()
    servers: dict[str, FakeSshServer] = {}
    keys = {}
    for host in (ROUTER, AP, SERVER):
        keys[host] = _key(tmp_path, host)
        server = FakeSshServer(host_key=keys[host], username=devices[host].username, password=password,
                               bind=str(devices[host].mgmt_address)).start()
        servers[host] = server
        vars_file = inventory / "host_vars" / f"{host}.yml"
        vars_file.write_text(vars_file.read_text() + f"ansible_port: {server.port}\n")
    yield Site(inventory, known_hosts, servers, keys)
    for server in servers.values():
        server.stop()


def test_router_without_the_role_is_not_onboarded_exit_4(site: Site) -> None:
    site.known_hosts.parent.mkdir(parents=True)
    site.known_hosts.write_text(site.line_for(ROUTER) + "\n")
    site.servers[ROUTER].commands[MARKER] = (1, "/home/dzadmin\n", "cat: /etc/dzops/router-access: No such file\n")
    proc = site.dzops("backup", "--limit", ROUTER, "--json")
    assert proc.returncode == ExitCode.HOSTS_FAILED, proc.stderr
    assert "Traceback" not in proc.stderr
    [device] = json.loads(proc.stdout)["devices"]
    assert device["error"] == f"{ROUTER}: not onboarded: run dzops onboard {ROUTER}"
    assert f"failed: {ROUTER}: not onboarded: run dzops onboard {ROUTER}\n" in proc.stderr


@pytest.mark.parametrize(("command", "host", "code"), [
    (("backup",), ROUTER, ExitCode.HOSTS_FAILED), (("drift",), ROUTER, None),
    (("user", "audit"), ROUTER, ExitCode.HOSTS_FAILED),
    (("user", "audit"), SERVER, ExitCode.HOSTS_FAILED),  # through Ansible and OpenSSH
], ids=["backup", "drift", "user-audit-router", "user-audit-server-ansible"])
def test_every_command_refuses_a_changed_host_key_with_both_fingerprints(site: Site, command, host, code,
                                                                          tmp_path) -> None:
    impostor_known = _key(tmp_path, "old")  # what known_hosts remembers
    site.known_hosts.parent.mkdir(parents=True)
    site.known_hosts.write_text(site.line_for(host, impostor_known) + "\n")
    before = site.known_hosts.read_bytes()
    proc = site.dzops(*command, "--limit", host)
    assert proc.returncode == code if code is not None else proc.returncode not in (0, 1), proc.stderr
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if "HOST KEY CHANGED" in line]
    assert lines, proc.stderr
    assert fingerprint(impostor_known) in lines[0] and fingerprint(site.keys[host]) in lines[0]
    assert "Traceback" not in proc.stderr
    assert site.servers[host].tried == []  # no password was offered to the changed key
    assert site.known_hosts.read_bytes() == before


def test_onboard_accept_new_trusts_and_reports_ready(site: Site) -> None:
    site.servers[AP].commands["true"] = (0, "", "")
    site.servers[AP].commands["sudo -S -p '' true"] = (0, "", "")
    proc = site.dzops("onboard", AP, "--accept-new", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    [device] = json.loads(proc.stdout)["devices"]
    assert device["status"] == "ready" and device["key"] == "added"
    assert device["fingerprint"] == fingerprint(site.keys[AP])
    assert device["checks"]["login"].startswith("ok") and device["checks"]["sudo"] == "admin"
    assert site.known_hosts.read_text() == site.line_for(AP) + "\n"
    again = site.dzops("onboard", AP, "--json")  # known now: no flag needed, nothing written
    assert again.returncode == ExitCode.OK and json.loads(again.stdout)["devices"][0]["key"] == "known"
    assert site.known_hosts.read_text() == site.line_for(AP) + "\n"


def test_onboard_without_confirmation_trusts_nothing(site: Site) -> None:
    proc = site.dzops("onboard", AP)  # stdin is not a terminal: nobody to ask
    assert proc.returncode == ExitCode.HOSTS_FAILED
    assert f"--accept-fingerprint {fingerprint(site.keys[AP])}" in proc.stderr
    assert not site.known_hosts.exists() or site.known_hosts.read_text() == ""
    assert site.servers[AP].tried == []


def test_onboard_refuses_a_changed_key_unless_its_new_fingerprint_is_named(site: Site, tmp_path: Path) -> None:
    old = _key(tmp_path, "old")
    site.known_hosts.parent.mkdir(parents=True)
    site.known_hosts.write_text(f"# keep me\n{site.line_for(AP, old)}\n{site.line_for(ROUTER)}\n")
    refused = site.dzops("onboard", AP, "--accept-new")
    assert refused.returncode == ExitCode.HOSTS_FAILED
    assert fingerprint(old) in refused.stderr and fingerprint(site.keys[AP]) in refused.stderr
    assert site.line_for(AP, old) in site.known_hosts.read_text()
    site.servers[AP].commands["true"] = (0, "", "")
    site.servers[AP].commands["sudo -S -p '' true"] = (1, "", "dzadmin is not in the sudoers file\n")
    replaced = site.dzops("onboard", AP, "--accept-fingerprint", fingerprint(site.keys[AP]), "--json")
    assert replaced.returncode == ExitCode.OK, replaced.stderr
    [device] = json.loads(replaced.stdout)["devices"]
    assert device["key"] == "replaced" and device["checks"]["sudo"] == "none"
    assert site.known_hosts.read_text() == f"# keep me\n{site.line_for(ROUTER)}\n{site.line_for(AP)}\n"


def test_onboard_selects_exactly_one_way(site: Site) -> None:
    proc = site.dzops("onboard", AP, "--site", "talo")
    assert proc.returncode == ExitCode.USAGE and "exactly one" in proc.stderr
    proc = site.dzops("onboard", "--site", "nowhere")
    assert proc.returncode == ExitCode.USAGE and "no site 'nowhere'" in proc.stderr


def test_lab_option_uses_the_labs_known_hosts_not_the_inventorys(site: Site, tmp_path: Path) -> None:
    lab_state = tmp_path / "labstate"
    (lab_state / "zz").mkdir(parents=True)
    (lab_state / "zz" / "known_hosts").write_text(site.line_for(ROUTER) + "\n")
    site.servers[ROUTER].commands[MARKER] = (1, "/home/dzadmin\n", "no marker\n")
    env_lab = {"DZOPS_LAB_STATE": str(lab_state)}
    os.environ.update(env_lab)
    try:
        production = site.dzops("backup", "--limit", ROUTER)  # the inventory's known_hosts lacks the key
        lab = site.dzops("--lab", "zz", "backup", "--limit", ROUTER)
    finally:
        for name in env_lab:
            os.environ.pop(name)
    assert "is not in known_hosts" in production.stderr and str(site.known_hosts) in production.stderr
    assert "not onboarded" in lab.stderr  # got past the host key: the lab's file vouched for it
    assert not site.known_hosts.exists()  # the lab's trust never reaches the inventory's file


@pytest.mark.parametrize(("answer", "trusted"), [("y", True), ("n", False)])
def test_onboard_asks_a_person_at_a_terminal(site: Site, answer: str, trusted: bool) -> None:
    import pexpect

    site.servers[AP].commands["true"] = (0, "", "")
    site.servers[AP].commands["sudo -S -p '' true"] = (0, "", "")
    env = {**os.environ, "DZOPS_INVENTORY": str(site.inventory), "PYTHONPATH": str(REPO)}
    child = pexpect.spawn(sys.executable, ["-m", "dzops", "onboard", AP], env=env, encoding="utf-8", timeout=90)
    child.expect(r"offers ssh-ed25519 host key (SHA256:\S+)\. Is this the key shown at its console\?")
    assert child.match.group(1) == fingerprint(site.keys[AP])  # the person sees the key's fingerprint
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == (ExitCode.OK if trusted else ExitCode.HOSTS_FAILED)
    written = site.known_hosts.read_text() if site.known_hosts.exists() else ""
    assert written == (site.line_for(AP) + "\n" if trusted else "")
