"""`dzops lab status|exec|link|up` as an officer runs them: a subprocess against the session lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.labkit import LabHandle

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def dzops(handle: LabHandle, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", *args], env=handle.env(), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_status_json_lists_every_node_healthy(punakha_lab: LabHandle) -> None:
    proc = dzops(punakha_lab, "lab", "status", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    status = json.loads(proc.stdout)
    assert status["prefix"] == punakha_lab.lab.prefix and status["healthy"] is True
    nodes = {n["name"]: n for n in status["nodes"]}
    assert set(nodes) == set(punakha_lab.inventory().devices)
    assert [name for name, n in nodes.items() if not (n["healthy"] and n["ssh"])] == []
    assert status["services"] == {"pkgrepo": True, "smtp": True}


def test_exec_runs_at_the_node_console(punakha_lab: LabHandle) -> None:
    proc = dzops(punakha_lab, "lab", "exec", "gewog-talo-rtr1", "--", "vtysh", "-c", "show version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("FRRouting 8.") and "(gewog-talo-rtr1)" in proc.stdout.splitlines()[0]


def _operstate(handle: LabHandle, node: str, iface: str) -> str:
    return handle.lab.exec(node, ["cat", f"/sys/class/net/{iface}/operstate"]).stdout.strip()


def test_link_down_then_up_changes_operstate(punakha_lab: LabHandle) -> None:
    # A server's data port: no OSPF and no hostapd depend on it, only LLDP (re-learnt below).
    node, iface, switch, port = "punakha-hq-srv1", "eth0", "punakha-hq-sw1", "swp2"
    lab = punakha_lab.lab
    assert _operstate(punakha_lab, node, iface) == "up"
    try:
        proc = dzops(punakha_lab, "lab", "link", node, iface, "down")
        assert proc.returncode == 0, proc.stderr
        assert _operstate(punakha_lab, node, iface) == "down"
        assert _operstate(punakha_lab, switch, port) in ("down", "lowerlayerdown")  # the cable's far end
    finally:
        proc = dzops(punakha_lab, "lab", "link", node, iface, "up")
        # An admin-down port loses the routes through it (the kernel's doing, as on a real box): put the
        # server's default route back, so the tests after this one find the lab as it was.
        gateway = str(punakha_lab.inventory().default_gateway(node))
        lab.exec(node, ["ip", "route", "replace", "default", "via", gateway])
    assert proc.returncode == 0, proc.stderr
    assert lab.exec(node, ["ip", "-4", "route", "show", "default"]).stdout.split()[:3] == ["default", "via", gateway]
    deadline = time.monotonic() + 20
    while (_operstate(punakha_lab, node, iface), _operstate(punakha_lab, switch, port)) != ("up", "up") \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (_operstate(punakha_lab, node, iface), _operstate(punakha_lab, switch, port)) == ("up", "up")
    # as found: both ends announce themselves now instead of within 30 s, and see each other again
    for name in (node, switch):
        lab.exec(name, ["lldpcli", "update"])
    deadline = time.monotonic() + 40
    while (port, node, iface) not in lab.lldp_neighbors(switch) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (port, node, iface) in lab.lldp_neighbors(switch)
    assert lab.lldp_neighbors(node) == [(iface, switch, port)]
    # a bad state word is a usage error, and nothing changed
    proc = dzops(punakha_lab, "lab", "link", node, iface, "sideways")
    assert proc.returncode == ExitCode.USAGE and "'up' or 'down'" in proc.stderr
    assert _operstate(punakha_lab, node, iface) == "up"


def test_up_as_non_root_is_a_lab_error(punakha_lab: LabHandle, tmp_path: Path) -> None:
    home = tmp_path / "nobody-home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONPATH": str(REPO),  # dzops from this checkout, whoever runs it
           # the shipped sample (world-readable): Click checks the inventory dir with access(2),
           # which ignores capabilities, and the session's copy sits in a 0700 pytest dir
           "DZOPS_INVENTORY": str(REPO / "inventory"), "DZOPS_LAB_STATE": str(home / "state")}
    # The interpreter lives under root's 0700 home (/root/.pyenv): nobody keeps only
    # CAP_DAC_READ_SEARCH to reach it. Its euid is 65534 all the same, which is what the lab checks,
    # and it cannot write anything of root's.
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
            sys.executable, "-m", "dzops", "lab", "up", "--prefix", f"{punakha_lab.lab.prefix[:5]}x"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, cwd="/")
    assert proc.returncode == ExitCode.LAB_ERROR, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "dzops: error: the virtual lab needs root (network namespaces, mounts): run it with sudo"]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (home / "state").exists()  # it built nothing
