"""Lab routers as stock boxes prepared by roles/dz_router_access: how dzops logs in, trusts, and onboards.

Each test puts the router back as it found it (authorized_keys, marker, sudo group, staff accounts).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.exceptions import AuthenticationFailed
from dzops.execute.ssh import credentials, fingerprint
from tests.labkit import LabHandle

pytestmark = pytest.mark.lab

ROUTER = "gewog-guma-rtr1"
MARKER = "/etc/dzops/router-access"
VTYSH_LOGIN = "vtyadm"  # a `full` staff account: its login shell is vtysh, as on an appliance


@dataclass
class Env:
    handle: LabHandle
    root: Path
    inventory_dir: Path
    login: str

    @property
    def lab(self):  # noqa: ANN201 - dzops.lab.builder.Lab
        return self.handle.lab

    def dzops(self, *args: str, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.handle.env(), "DZOPS_INVENTORY": str(inventory or self.inventory_dir)}
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=env, capture_output=True, text=True,
                              timeout=600)

    def console(self, *argv: str, stdin: str | None = None) -> str:
        proc = self.lab.exec(ROUTER, list(argv), input=stdin)
        assert proc.returncode == 0, (argv, proc.stderr)
        return proc.stdout

    def inventory_copy(self, name: str, known_hosts: Path | None = None) -> Path:
        target = self.root / name
        shutil.copytree(self.inventory_dir, target)
        if known_hosts is not None:
            connection = target / "group_vars/all/connection.yml"
            lines = [f"dzops_known_hosts: {known_hosts}" if line.startswith("dzops_known_hosts:") else line
                     for line in connection.read_text().splitlines()]
            connection.write_text("\n".join(lines) + "\n")
        return target


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dzops-lab", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def env(punakha_lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("router-access")
    inventory_dir = root / "inventory"
    shutil.copytree(punakha_lab.inventory_dir, inventory_dir)
    operations = inventory_dir / "group_vars/all/operations.yml"
    operations.write_text("\n".join(
        f"backup_repository: {root / 'backups'}" if line.startswith("backup_repository:") else
        f"report_dir: {root / 'reports'}" if line.startswith("report_dir:") else line
        for line in operations.read_text().splitlines()) + "\n")
    login = punakha_lab.inventory().devices[ROUTER].username
    yield Env(punakha_lab, root, inventory_dir, login)


def _driver(env: Env, **changes):
    from dzops.execute.drivers.frr import Driver

    inventory = env.handle.inventory()
    device = inventory.devices[ROUTER].model_copy(update=changes)
    return Driver(credentials(inventory, device))


def test_key_only_login_works(env: Env) -> None:
    key = _keygen(env.root / "dzops_key")
    stranger = _keygen(env.root / "stranger_key")
    pub = (env.root / "dzops_key.pub").read_text()
    script = ('set -e; home=$(getent passwd "$1" | cut -d: -f6); install -d -m 0700 -o "$1" -g "$1" "$home/.ssh"; '
              'cp -p "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys.dzops-test" 2>/dev/null || '
              ': > "$home/.ssh/authorized_keys.dzops-test"; cat >> "$home/.ssh/authorized_keys"; '
              'chown "$1:" "$home/.ssh/authorized_keys"; chmod 0600 "$home/.ssh/authorized_keys"')
    env.console("sh", "-c", script, "sh", env.login, stdin=pub)
    try:
        driver = _driver(env, password=None, private_key_file=key)
        assert driver.credentials.password == "" and driver.credentials.key_file == key
        with driver:
            assert f"hostname {ROUTER}" in driver.get_config()  # vtysh over the key login
            assert driver.home.startswith("/")
        with pytest.raises(AuthenticationFailed, match="by key"):
            _driver(env, password=None, private_key_file=stranger).open()  # the key is what let us in
    finally:
        env.console("sh", "-c", 'home=$(getent passwd "$1" | cut -d: -f6); '
                    'mv "$home/.ssh/authorized_keys.dzops-test" "$home/.ssh/authorized_keys"', "sh", env.login)


def test_changed_host_key_is_refused_by_backup_and_drift_with_both_fingerprints(env: Env) -> None:
    inventory = env.handle.inventory()
    address = str(inventory.devices[ROUTER].mgmt_address)
    impostor = paramiko.Ed25519Key.from_private_key_file(str(_keygen(env.root / "impostor")))
    real_line = next(line for line in Path(inventory.known_hosts).read_text().splitlines()
                     if line.split()[0] == address)
    real = paramiko.PKey.from_type_string(real_line.split()[1], base64.b64decode(real_line.split()[2]))
    known_hosts = env.root / "changed_known_hosts"
    known_hosts.write_text(Path(inventory.known_hosts).read_text().replace(
        real_line, f"{address} ssh-ed25519 {impostor.get_base64()}"))
    changed = env.inventory_copy("inventory-changed-key", known_hosts)
    before = known_hosts.read_bytes()
    for command, code in ((("backup", "--limit", ROUTER), ExitCode.HOSTS_FAILED), (("drift", "--limit", ROUTER), None)):
        proc = env.dzops(*command, inventory=changed)
        assert proc.returncode == code if code else proc.returncode not in (0, 1), proc.stderr
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if "HOST KEY CHANGED" in line]
        assert lines, (command, proc.stderr)
        assert fingerprint(impostor) in lines[0] and fingerprint(real) in lines[0]
        assert "Traceback" not in proc.stderr
    assert known_hosts.read_bytes() == before  # refused, never replaced


def test_router_without_the_role_is_not_onboarded(env: Env) -> None:
    env.console("mv", MARKER, f"{MARKER}.away")
    try:
        proc = env.dzops("backup", "--limit", ROUTER, "--json")
    finally:
        env.console("mv", f"{MARKER}.away", MARKER)
    assert proc.returncode == ExitCode.HOSTS_FAILED, proc.stderr
    assert json.loads(proc.stdout)["devices"][0]["error"] == f"{ROUTER}: not onboarded: run dzops onboard {ROUTER}"
    assert f"{ROUTER}: not onboarded: run dzops onboard {ROUTER}\n" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_onboard_accept_new_writes_known_hosts_and_runs_the_role(env: Env) -> None:
    known_hosts = env.root / "fresh" / "known_hosts"
    inventory_dir = env.inventory_copy("inventory-onboard", known_hosts)
    # A router as its admin hands it over: the admin may sudo, dzops' access is not there yet.
    env.console("usermod", "-aG", "sudo", env.login)
    env.console("mv", MARKER, f"{MARKER}.away")
    try:
        proc = env.dzops("onboard", ROUTER, "--accept-new", "--json", inventory=inventory_dir)
        marker = env.lab.exec(ROUTER, ["cat", MARKER])
    finally:
        env.console("gpasswd", "-d", env.login, "sudo")
        env.console("sh", "-c", f"[ -f {MARKER} ] || mv {MARKER}.away {MARKER}; rm -f {MARKER}.away")
    assert proc.returncode == ExitCode.OK, proc.stderr + proc.stdout
    [device] = json.loads(proc.stdout)["devices"]
    assert device["status"] == "ready" and device["key"] == "added", device
    assert device["checks"]["role"] == "applied" and device["checks"]["sudo"] == "admin"
    assert device["checks"]["accounts"] == "ok" and device["checks"]["config replace"] == "ok"
    address = str(env.handle.inventory().devices[ROUTER].mgmt_address)
    lab_line = next(line for line in Path(env.handle.inventory().known_hosts).read_text().splitlines()
                    if line.split()[0] == address)
    assert known_hosts.read_text().splitlines() == [" ".join(lab_line.split()[:3])]
    assert device["fingerprint"] in proc.stderr  # shown to the person
    assert marker.returncode == 0 and "version=1" in marker.stdout  # the role wrote it again


def test_vtysh_login_reads_and_replaces_config(env: Env) -> None:
    key = _keygen(env.root / "vtysh_key")
    env.console("/usr/local/lib/dzops/account", "present", VTYSH_LOGIN, "full", "never", "Vtysh Login",
                stdin=(env.root / "vtysh_key.pub").read_text())
    route = "ip route 10.199.0.0/16 blackhole"
    try:
        driver = _driver(env, username=VTYSH_LOGIN, password=None, private_key_file=key, router_login="vtysh")
        with driver:
            saved = driver.get_config()
            assert f"hostname {ROUTER}" in saved
            diff = driver.load_replace_candidate(saved.rstrip("\n") + f"\n{route}\n")
            assert [line.strip() for line in diff.add] == [route] and not diff.remove
            assert route in env.console("vtysh", "-c", "show running-config")
            driver.rollback(saved)
            assert route not in env.console("vtysh", "-c", "show running-config")
            assert driver.compare_config(saved).empty
        from dzops.execute.discover import discover_device

        inventory = env.handle.inventory()
        device = inventory.devices[ROUTER].model_copy(update={
            "username": VTYSH_LOGIN, "password": None, "private_key_file": key, "router_login": "vtysh"})
        found = discover_device(inventory, device)
        assert found.status == "ok", found.error
        assert found.interfaces["mgmt0"].up and found.facts["os_version"].startswith("FRRouting")
        assert found.lldp == [] and found.facts["uptime_seconds"] is None  # a vtysh login has neither
    finally:
        env.lab.exec(ROUTER, ["vtysh", "-c", "configure terminal", "-c", f"no {route}"])
        env.console("/usr/local/lib/dzops/account", "absent", VTYSH_LOGIN)
