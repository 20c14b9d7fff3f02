"""`dzops patch` against the lab's Debian servers: real apt, real dpkg, the lab's package repository.

The lab repository offers 1.1 of a few packages whose 1.0 is installed (dzops.lab.pkgrepo). Each
test puts 1.0 back first through the console, so it does not depend on what other tests did, and
again when it ends. Reports go to a private copy of the inventory (report_dir in tmp), so nothing
of ours is left in the lab's state directory.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.execute.patch import NOT_RUN
from dzops.lab.pkgrepo import INSTALLED_VERSION, build_packages, lab_packages

pytestmark = pytest.mark.lab

SRV, WEB = "punakha-hq-srv1", "punakha-hq-web1"
SERVERS = (SRV, WEB)


def private_inventory(handle, dest: Path) -> Path:
    """A copy of the lab inventory whose report_dir is under dest (mail settings unchanged: the
    lab's SMTP server requires the inventory's login, as a real one would)."""
    shutil.copytree(handle.inventory_dir, dest / "inventory")
    ops = dest / "inventory/group_vars/all/operations.yml"
    lines = [f"report_dir: {dest / 'reports'}" if line.startswith("report_dir:") else line
             for line in ops.read_text().splitlines()]
    ops.write_text("\n".join(lines) + "\n")
    return dest / "inventory"


def dzops(inventory: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", "-i", str(inventory), *args], capture_output=True,
                          text=True, env=env, timeout=1200, check=False)


def dpkg_versions(lab, node: str) -> dict[str, str]:
    proc = lab.exec(node, ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *sorted(lab_packages())])
    return dict(line.split("\t") for line in proc.stdout.splitlines())


def reset_to_installed(lab, node: str) -> None:
    """Put the lab packages back to 1.0 (the repository only serves 1.1, so push the 1.0 debs)."""
    if set(dpkg_versions(lab, node).values()) == {INSTALLED_VERSION}:
        return
    with tempfile.TemporaryDirectory(prefix="pt-debs-") as tmp:
        for deb in build_packages(Path(tmp), INSTALLED_VERSION):
            push = lab.exec(node, ["sh", "-c", f"base64 -d > /tmp/{deb.name}"],
                            input=base64.b64encode(deb.read_bytes()).decode())
            assert push.returncode == 0, push.stderr
    install = lab.exec(node, ["sh", "-c", "dpkg -i --force-downgrade /tmp/dz-*_1.0_all.deb && rm -f /tmp/dz-*.deb"])
    assert install.returncode == 0, install.stderr
    assert set(dpkg_versions(lab, node).values()) == {INSTALLED_VERSION}


def mgmt_ip(handle, node: str) -> str:
    return str(handle.inventory().devices[node].mgmt_address)


def stop_sshd(lab, node: str) -> None:
    """Every sshd of the host, sessions included: Ansible's ControlPersist masters would otherwise
    keep the host reachable through a session that outlives the listener."""
    lab.exec(node, ["sh", "-c", 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = sshd ] '
                                '&& kill -9 "${p#/proc/}"; done; rm -f /run/sshd.pid'])


def start_sshd(lab, handle, node: str) -> None:
    lab.exec(node, ["/usr/sbin/sshd", "-E", "/var/log/sshd.log"])
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection((mgmt_ip(handle, node), 22), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def by_host(report: dict) -> dict[str, dict]:
    return {h["host"]: h for h in report["hosts"]}


@pytest.fixture()
def inventory(punakha_lab, tmp_path: Path) -> Path:
    return private_inventory(punakha_lab, tmp_path)


def test_check_lists_exactly_the_lab_upgrades_then_patch_applies_them(punakha_lab, inventory: Path) -> None:
    lab, env = punakha_lab.lab, punakha_lab.env()
    expected = sorted((name, old, new) for name, (old, new) in lab_packages().items())
    for node in SERVERS:
        reset_to_installed(lab, node)
    # A reboot is due on web1; the lab's servers cannot reboot, so the run says so instead (--no-reboot).
    lab.exec(WEB, ["touch", "/var/run/reboot-required"])
    try:
        check = dzops(inventory, "patch", "--check", "--json", "--no-reboot", env=env)
        assert check.returncode == ExitCode.OK, check.stderr
        listed = json.loads(check.stdout)
        after_check = {node: dpkg_versions(lab, node) for node in SERVERS}

        patched = dzops(inventory, "patch", "--json", "--no-reboot", env=env)
        assert patched.returncode == ExitCode.OK, patched.stderr
        report = json.loads(patched.stdout)
        after_patch = {node: dpkg_versions(lab, node) for node in SERVERS}
    finally:
        lab.exec(WEB, ["rm", "-f", "/var/run/reboot-required"])
        for node in SERVERS:
            reset_to_installed(lab, node)

    # --check: exactly the lab packages, from -> to, and dpkg inside each host unchanged.
    assert listed["check"] is True and not listed["stopped"]
    for node in SERVERS:
        host = by_host(listed)[node]
        assert host["status"] == "ok" and not host["changed"]
        assert sorted((p["name"], p["from"], p["to"]) for p in host["data"]["pending"]) == expected
        assert after_check[node] == {name: old for name, old, _ in expected}
    assert by_host(listed)[WEB]["data"]["reboot_pending_before"] is True

    # patch: upgraded inside each host, and the report says from -> to for every package.
    for node in SERVERS:
        host = by_host(report)[node]
        assert host["status"] == "changed", host
        assert sorted((p["name"], p["from"], p["to"]) for p in host["data"]["upgraded"]) == expected
        assert after_patch[node] == {name: new for name, _, new in expected}
    web = by_host(report)[WEB]["data"]
    assert (web["reboot_required"], web["rebooted"], web["reboot_allowed"]) == (True, False, False)
    assert "ok 0, changed 2, failed 0, unreachable 0, not run 0; 6 package(s) upgraded" in patched.stderr

    saved = sorted((inventory.parent / "reports").glob("patch-*.txt"))
    assert [p.name.endswith("-check.txt") for p in saved] == [True, False]  # one report per run
    text = saved[1].read_text()
    for node in SERVERS:
        section = text.split(f"{node}: changed\n", 1)[1].split("\n\n", 1)[0]
        assert [line.strip() for line in section.splitlines() if "->" in line] == \
            [f"{name} {old} -> {new}" for name, old, new in expected]
    assert "REBOOT REQUIRED, not rebooted (reboots disabled for this run)" in text
    assert json.loads(saved[1].with_suffix(".json").read_text()) == report


def test_unreachable_host_and_the_failure_budget(punakha_lab, inventory: Path) -> None:
    lab, env = punakha_lab.lab, punakha_lab.env()
    stop_sshd(lab, SRV)
    try:
        tolerant = dzops(inventory, "patch", "--check", "--json", "--max-fail", "60%", env=env)
        strict = dzops(inventory, "patch", "--check", "--json", "--batch", "1", "--max-fail", "0%", env=env)
    finally:
        start_sshd(lab, punakha_lab, SRV)

    # 1 of 2 hosts down is within 60%: the other host finishes.
    assert tolerant.returncode == ExitCode.UNREACHABLE, tolerant.stderr
    hosts = by_host(json.loads(tolerant.stdout))
    assert hosts[SRV]["status"] == "unreachable" and hosts[SRV]["error"]
    assert hosts[WEB]["status"] == "ok" and "pending" in hosts[WEB]["data"]
    assert "patch stopped" not in tolerant.stderr

    # Batches of 1 and no failure allowed: the first batch fails, the run stops and says so.
    assert strict.returncode == ExitCode.UNREACHABLE, strict.stderr
    report = json.loads(strict.stdout)
    assert report["stopped"] is True and report["batch"] == [1] and report["max_fail"] == 0
    hosts = by_host(report)
    assert hosts[SRV]["status"] == "unreachable"
    assert (hosts[WEB]["status"], hosts[WEB]["error"]) == ("skipped", NOT_RUN)
    assert "dzops: patch stopped: more than 0% of a batch failed; 1 host(s) not run" in strict.stderr
