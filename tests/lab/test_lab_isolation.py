"""A login on a lab node never reaches the machine running the lab; stale PIDs are never trusted.

Each node kind is tried with the inventory's own credentials, as a curious trainee would: become
root inside the node where the kind allows it, then write into the machine's /root and read the
machine's /etc/shadow. Both must fail (the node has its own root filesystem and shadow file).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from dzops.exceptions import LabError
from dzops.inventory.models import Inventory
from dzops.lab import netns
from dzops.lab.builder import LOCK_FILE, Lab
from dzops.lab.spec import LabSpec
from tests.labkit import LabHandle

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
# One node of each kind, and how its login becomes root inside the node (if it can at all).
KINDS = {
    "punakha-hq-rtr1": "none",  # the role took the login out of group sudo
    "punakha-hq-sw1": "sudo -n",  # Cumulus-like: passwordless sudo
    "gewog-talo-ap1": "sudo -n",
    "punakha-hq-web1": "sudo -S -p ''",  # a Debian server: the admin's password on stdin
}


def _ssh(lab: Lab, inventory: Inventory, name: str) -> paramiko.SSHClient:
    device = inventory.devices[name]
    assert device.password is not None
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(str(device.mgmt_address), username=device.username,
                   password=device.password.get_secret_value(), allow_agent=False, look_for_keys=False,
                   timeout=20, banner_timeout=30, auth_timeout=30)
    return client


def _run(client: paramiko.SSHClient, command: str, stdin: str = "") -> tuple[int, str, str]:
    chan_in, out, err = client.exec_command(command, timeout=60)
    chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    text_out, text_err = out.read().decode(), err.read().decode()
    return out.channel.recv_exit_status(), text_out, text_err


@pytest.mark.parametrize("node", sorted(KINDS))
def test_a_login_cannot_write_the_machines_root_nor_read_its_shadow(punakha_lab: LabHandle, node: str) -> None:
    lab, inventory = punakha_lab.lab, punakha_lab.inventory()
    assert node in inventory.devices
    machine_shadow = Path("/etc/shadow").read_text()
    machine_root_line = next(line for line in machine_shadow.splitlines() if line.startswith("root:"))
    marker = f"dz-escape-{os.getpid()}-{node}"
    become = KINDS[node]
    password = inventory.devices[node].password.get_secret_value()  # type: ignore[union-attr]
    attempts = [
        f"touch /root/{marker}",  # the node's /root, if anything
        f"touch /proc/1/root/root/{marker}",  # PID 1 is the node's own init, never the machine's
        f"mkdir -p /tmp/m && mount -t ext4 /dev/sda1 /tmp/m && touch /tmp/m/root/{marker}",
        f"mknod /tmp/{marker}-disk b 8 0 && ls -l /tmp/{marker}-disk",
        "cat /etc/shadow",
        "cat /proc/1/root/etc/shadow",
    ]
    outputs = []
    with _ssh(lab, inventory, node) as client:
        for attempt in attempts:
            # without a way to root the login tries as itself; with one, as root of the node
            command = attempt if become == "none" else f"{become} sh -c {_quote(attempt)}"
            stdin = password + "\n" if "-S" in become else ""
            outputs.append(_run(client, command, stdin))
            assert not Path(f"/root/{marker}").exists(), (node, attempt)
        if become == "none":
            rc, _, err = _run(client, "sudo -n cat /etc/shadow")
            assert rc != 0 and "password is required" in err
    text = "\n".join(out + err for _, out, err in outputs)
    assert machine_root_line not in text or machine_root_line in _node_shadow(lab, node), node
    assert machine_shadow not in text
    # mounting and device nodes are refused even to root inside (capability bounding set)
    assert outputs[2][0] != 0 and outputs[3][0] != 0, (node, outputs[2], outputs[3])
    if become != "none":
        # root of the node reads the node's own shadow: the inventory's login is in it, the machine's
        # accounts are not
        rc, shadow, _ = outputs[4]
        assert rc == 0 and f"\n{inventory.devices[node].username}:" in f"\n{shadow}"
        assert shadow == _node_shadow(lab, node) and shadow != machine_shadow
        lab.exec(node, ["rm", "-f", f"/root/{marker}"])


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _node_shadow(lab: Lab, node: str) -> str:
    return lab.exec(node, ["cat", "/etc/shadow"]).stdout


def test_router_login_cannot_bend_frr_reload(punakha_lab: LabHandle) -> None:
    lab, inventory = punakha_lab.lab, punakha_lab.inventory()
    node = "gewog-talo-rtr1"
    with _ssh(lab, inventory, node) as client:
        # an uploaded "vtysh" run as root via --bindir, or any file read via --input: refused by sudo
        assert _run(client, "mkdir -p /tmp/bin && printf '#!/bin/sh\\nid > /tmp/pwned\\n' > /tmp/bin/vtysh "
                            "&& chmod +x /tmp/bin/vtysh")[0] == 0
        for words in ("--bindir /tmp --test x", "--bindir /tmp/bin --test ~/.dzops/candidate.conf",
                      "--input /etc/shadow", "--input /etc/shadow --test ~/.dzops/candidate.conf"):
            rc, out, err = _run(client, f"sudo -n /usr/lib/frr/frr-reload.py {words}")
            assert rc != 0 and "password is required" in err, (words, out, err)
        assert _run(client, "test -e /tmp/pwned")[0] != 0
        _run(client, "rm -rf /tmp/bin")


def test_recorded_pids_with_a_wrong_start_time_are_refused(punakha_lab: LabHandle, tmp_path: Path) -> None:
    real = punakha_lab.lab
    state = json.loads(real.state_path.read_text())
    node = "punakha-hq-rtr1"
    holder = state["nodes"][node]["holder"]
    assert netns.checked_pid(holder, "test") == holder["pid"]
    for stale in ({**holder, "start": holder["start"] + 1}, {**holder, "boot": "0" * 32},
                  {**holder, "pid": 999_999_999}):
        with pytest.raises(LabError, match="gone or is another process now"):
            netns.checked_pid(stale, "test")
    # A state file whose record names the live holder with a wrong start time (as after a reboot
    # that reused the number): exec, link and daemon control refuse, and down() signals nothing.
    fake_dir = tmp_path / "state" / "dzfake"
    fake_dir.mkdir(parents=True)
    node_state = {**state["nodes"][node], "holder": {**holder, "start": holder["start"] + 1},
                  "node_dir": str(fake_dir / "nodes" / node)}
    (fake_dir / "state.json").write_text(json.dumps({
        "prefix": "dzfake", "boot_id": netns.boot_id(), "netns": [], "root_links": [], "bridges": [],
        "nodes": {node: node_state}, "services": {}}))
    fake = Lab(LabSpec(prefix="dzfake", mgmt_gateway="10.254.254.1/24", nodes=real.spec.nodes, links=(),
                       state_dir=fake_dir))
    for action in (lambda: fake.exec(node, ["true"]), lambda: fake.set_link(node, "eth0", False),
                   lambda: fake.stop_daemon(node, "ospfd")):
        with pytest.raises(LabError, match=f"lab node {node}: recorded process {holder['pid']} is gone"):
            action()
    assert fake.status().node(node).holder_alive is False
    fake.down()
    assert not fake_dir.exists()
    assert netns.record_matches(holder)  # the real holder was never signalled
    assert real.status().node(node).healthy


def test_one_lock_per_prefix(punakha_lab: LabHandle, tmp_path: Path) -> None:
    state_dir = tmp_path / "state" / "dzlock"
    state_dir.mkdir(parents=True)
    spec = LabSpec(prefix="dzlock", mgmt_gateway="10.254.253.1/24", nodes=(), links=(), state_dir=state_dir)
    with open(state_dir / LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another `dzops lab up` of this prefix at work
        for action in (Lab(spec).down, Lab(spec).up):
            with pytest.raises(LabError, match="is being built or removed by another process"):
                action()
    Lab(spec).down()  # free again: removes its (empty) state dir
    assert not state_dir.exists()


def test_lab_up_leaves_the_inventorys_known_hosts_byte_identical(punakha_lab: LabHandle, tmp_path: Path) -> None:
    inventory_dir = tmp_path / "inventory"
    subprocess.run(["cp", "-a", str(punakha_lab.inventory_dir), str(inventory_dir)], check=True)
    production = tmp_path / "production_known_hosts"
    production.write_bytes(b"10.30.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProductionKeyOfTheRealRouter0000000\n")
    before = production.read_bytes()
    connection = inventory_dir / "group_vars/all/connection.yml"
    connection.write_text(connection.read_text().replace(str(punakha_lab.lab.known_hosts_path), str(production)))
    assert str(production) in connection.read_text()
    env = {**punakha_lab.env(), "DZOPS_INVENTORY": str(inventory_dir)}
    # the session lab is up: `lab up` only checks it (and would have rewritten known_hosts before)
    proc = subprocess.run([sys.executable, "-m", "dzops", "lab", "up"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert production.read_bytes() == before
    assert punakha_lab.lab.known_hosts_path.read_text().count("ssh-ed25519") == len(punakha_lab.inventory().devices)
