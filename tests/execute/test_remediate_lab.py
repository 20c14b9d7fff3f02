"""`dzops drift --remediate` against real FRR routers, and one intent for `lab up --configured` and drift.

On the session's provisioned lab: a change typed at a router's console shows up in drift as the
exact commands that undo it; typed back at the console they restore the router; `--check` changes
nothing; `--remediate` restores it through preflight, replace, verify (WAN links included) and a
second drift is clean; a failed verification rolls back. Then a lab of its own, built with
`lab up --configured`, is reported as free of drift.
Every hand change is undone before its test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.labkit import copy_sample_inventory, lab_leftovers, lab_pids

pytestmark = pytest.mark.lab

ROUTER = "gewog-talo-rtr1"
HAND_CHANGE = ("interface eth1", "description hand edited", "ip ospf cost 20", "exit",
               "ip route 10.99.0.0/16 blackhole")
# What drift must show for HAND_CHANGE: every line of it undone, in the order an officer types them.
EXPECTED = [
    "configure terminal",
    "no ip route 10.99.0.0/16 blackhole",
    "interface eth1",
    " no description",
    " no ip ospf cost 20",
    " description Talo gewog LAN to gewog-talo-sw1 swp1",
    "exit",
    "end",
    "write memory",
]


@dataclass
class Env:
    inventory_dir: Path
    lab: object
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=self.env, capture_output=True, text=True,
                              timeout=600)


def _use_dirs(inventory_dir: Path, repo: Path, reports: Path) -> None:
    path = inventory_dir / "group_vars/all/operations.yml"
    lines = [f"backup_repository: {repo}" if line.startswith("backup_repository:") else
             f"report_dir: {reports}" if line.startswith("report_dir:") else line
             for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def rem(provisioned_lab, tmp_path_factory) -> Env:
    handle = provisioned_lab.handle
    root = tmp_path_factory.mktemp("remediate")
    inventory_dir = root / "inventory"
    shutil.copytree(handle.inventory_dir, inventory_dir)
    _use_dirs(inventory_dir, root / "config-backups", root / "reports")
    return Env(inventory_dir=inventory_dir, lab=handle.lab, env=dict(handle.env(), DZOPS_INVENTORY=str(inventory_dir)))


def _running(lab, node: str) -> str:
    proc = lab.exec(node, ["vtysh", "-c", "show running-config"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _console(lab, node: str, *commands: str) -> None:
    argv = ["vtysh", "-c", "configure terminal"]
    for command in commands:
        argv += ["-c", command.strip()]
    proc = lab.exec(node, argv)
    assert proc.returncode == 0 and "% " not in proc.stdout, proc.stdout + proc.stderr


def _intended_commands(report: dict, host: str) -> list[list[str]]:
    return [f["commands"] for d in report["devices"] if d["host"] == host for f in d["findings"]
            if f["kind"] == "intended"]


@pytest.fixture
def hand_changed(rem: Env) -> Iterator[str]:
    """ROUTER with HAND_CHANGE typed at its console; put back as it was afterwards, whatever happened."""
    before = _running(rem.lab, ROUTER)
    _console(rem.lab, ROUTER, *HAND_CHANGE)
    try:
        yield before
    finally:
        if _running(rem.lab, ROUTER) != before:
            _console(rem.lab, ROUTER, "no ip route 10.99.0.0/16 blackhole", "interface eth1", "no ip ospf cost 20",
                     "description Talo gewog LAN to gewog-talo-sw1 swp1")
        assert _running(rem.lab, ROUTER) == before


def test_drift_shows_the_commands_to_type_and_check_changes_nothing(rem: Env, hand_changed: str) -> None:
    proc = rem.run("drift", "--json", ROUTER)
    assert proc.returncode == ExitCode.DRIFT_FOUND, proc.stderr
    report = json.loads(proc.stdout)
    assert _intended_commands(report, ROUTER) == [EXPECTED]
    text = Path(report["report"]["text"]).read_text()
    assert "\n".join(f"      {c}" for c in EXPECTED) in text
    html = Path(report["report"]["html"]).read_text()
    assert '<span class="del"> no ip ospf cost 20</span>' in html

    changed = _running(rem.lab, ROUTER)
    check = rem.run("drift", "--remediate", "--check", "--json", ROUTER)
    assert check.returncode == ExitCode.DRIFT_FOUND, check.stderr
    [device] = json.loads(check.stdout)["devices"]
    assert device["commands"] == EXPECTED and not device["changed"]
    assert _running(rem.lab, ROUTER) == changed  # --check changed nothing
    plain = rem.run("drift", "--remediate", "--check", ROUTER)
    assert "would change" in plain.stdout and "    no ip route 10.99.0.0/16 blackhole" in plain.stdout


def test_the_commands_typed_at_the_console_restore_the_router(rem: Env, hand_changed: str) -> None:
    check = rem.run("drift", "--remediate", "--check", "--json", ROUTER)
    [device] = json.loads(check.stdout)["devices"]
    # vtysh -c takes one command each; the session's own first line is given by _console.
    _console(rem.lab, ROUTER, *device["commands"][1:])
    assert _running(rem.lab, ROUTER) == hand_changed


def test_remediate_restores_verifies_links_and_a_second_drift_is_clean(rem: Env, hand_changed: str) -> None:
    first = rem.run("drift", "--json")  # the hand change is seen (and becomes the baseline)
    assert first.returncode == ExitCode.DRIFT_FOUND, first.stderr
    assert _intended_commands(json.loads(first.stdout), ROUTER) == [EXPECTED]

    proc = rem.run("drift", "--remediate", "--json", ROUTER)
    assert proc.returncode == ExitCode.OK, proc.stderr
    [device] = json.loads(proc.stdout)["devices"]
    assert (device["status"], device["changed"], device["rolled_back"]) == ("changed", True, False)
    assert device["commands"] == EXPECTED
    assert device["checks"][0] == "no drift left"
    assert f"{ROUTER} OSPF neighbour 10.30.255.33 Full" in device["checks"]
    assert "punakha-hq-rtr1 eth9 is up" in device["checks"]
    assert _running(rem.lab, ROUTER) == hand_changed

    again = rem.run("drift", "--json")
    assert again.returncode == ExitCode.OK, again.stdout[-3000:]
    report = json.loads(again.stdout)
    assert not report["drift"] and report["counts"]["intended"] == 0 and report["counts"]["out_of_band"] == 0

    nothing = rem.run("drift", "--remediate", ROUTER)
    assert nothing.returncode == ExitCode.OK and f"{ROUTER}" in nothing.stdout and " ok" in nothing.stdout


def _ospf_full(lab, node: str, neighbour: str, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lab.exec(node, ["vtysh", "-c", "show ip ospf neighbor"]).stdout
        if any(neighbour in line and "Full" in line for line in out.splitlines()):
            return True
        time.sleep(2)
    return False


def test_a_failed_verification_puts_the_hand_changed_config_back(rem: Env) -> None:
    router, hub_end = "gewog-guma-rtr1", "eth5"  # hq-guma: punakha-hq-rtr1 eth5 <-> guma eth0
    before = _running(rem.lab, router)
    _console(rem.lab, router, "ip route 10.98.0.0/16 blackhole")
    changed = _running(rem.lab, router)
    rem.lab.set_link("punakha-hq-rtr1", hub_end, False)
    try:
        proc = rem.run("drift", "--remediate", "--json", "--verify-timeout", "6", router)
        assert proc.returncode == ExitCode.HOSTS_FAILED, proc.stderr
        [device] = json.loads(proc.stdout)["devices"]
        assert device["status"] == "rolled_back" and device["rolled_back"] and not device["changed"]
        assert device["error"].startswith("verification failed: ") and "ROLLBACK FAILED" not in device["error"]
        assert _running(rem.lab, router) == changed  # the saved config is back, hand change included
    finally:
        rem.lab.set_link("punakha-hq-rtr1", hub_end, True)
        if "ip route 10.98.0.0/16 blackhole" in _running(rem.lab, router):
            _console(rem.lab, router, "no ip route 10.98.0.0/16 blackhole")
    assert _running(rem.lab, router) == before
    from dzops.inventory.loader import load_inventory
    from dzops.plan.wan import wan_ends

    [guma] = wan_ends(load_inventory(rem.inventory_dir))[router]
    assert _ospf_full(rem.lab, "punakha-hq-rtr1", str(guma.address.ip))  # the session lab is whole again


@pytest.mark.parametrize(("args", "message"), [
    (("gewog-talo-sw1",), "gewog-talo-sw1: not remediated: no intended config for switches"),
    (("gewog-talo-ap1", "punakha-hq-srv1"), "punakha-hq-srv1: not remediated: no intended config for servers"),
], ids=["switch", "ap-and-server"])
def test_devices_without_an_intended_config_are_refused(rem: Env, args, message) -> None:
    proc = rem.run("drift", "--remediate", *args)
    assert proc.returncode == ExitCode.USAGE
    assert message in proc.stderr
    assert sum("not remediated" in line for line in proc.stderr.splitlines()) == len(args)


# -- a lab of its own, built --configured -------------------------------------------------------------
def test_lab_up_configured_then_drift_reports_no_drift(tmp_path: Path) -> None:
    # Its own prefix and management network beside the session lab; the sample's subnets are not
    # written back, exactly as shipped.
    prefix = os.environ.get("DZOPS_TEST_LAB_PREFIX", "dzt")[:5] + "c"
    octet = (int(os.environ.get("DZOPS_TEST_LAB_OCTET", "99")) + 100) % 250
    state_root = tmp_path / "state"
    inventory_dir = copy_sample_inventory(tmp_path / "inventory", octet, state_root / prefix)
    _use_dirs(inventory_dir, tmp_path / "config-backups", tmp_path / "reports")
    env = {**os.environ, "DZOPS_INVENTORY": str(inventory_dir), "DZOPS_LAB_PREFIX": prefix,
           "DZOPS_LAB_STATE": str(state_root)}

    def dzops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=env, capture_output=True, text=True,
                              timeout=900)

    pids: set[int] = set()
    try:
        up = dzops("lab", "up", "--configured")
        pids = lab_pids(prefix, state_root / prefix)
        assert up.returncode == ExitCode.OK, up.stderr[-3000:]
        assert "provision-ap 11 access point(s)" in up.stderr
        proc = dzops("drift", "--json")
        report = json.loads(proc.stdout)
        drifted = {d["host"]: [f["title"] for f in d["findings"]] for d in report["devices"] if d["findings"]}
        assert proc.returncode == ExitCode.OK and drifted == {}, drifted
        assert report["counts"]["devices"] == 37
        _typed_fixture_sessions_reach_intended(inventory_dir, prefix, state_root)
    finally:
        pids |= lab_pids(prefix, state_root / prefix)
        dzops("lab", "down")
    assert lab_leftovers(prefix, state_root / prefix, pids) == []


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "remediation"


def _typed_fixture_sessions_reach_intended(inventory_dir: Path, prefix: str, state_root: Path) -> None:
    """Every remediation fixture of this router, typed at a real vtysh, turns its running config
    into its intended one (frr-reload, which found the delta, is the judge of the result)."""
    from dzops.execute.drivers import driver_for
    from dzops.execute.ssh import credentials
    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    inventory = load_inventory(inventory_dir)
    # The console of the lab `lab up` built (found through its state file, as `dzops lab exec` finds
    # it), typed at from here: one interpreter instead of a dzops process per fixture.
    lab = Lab(spec_from_inventory(inventory, prefix, state_root=state_root, configured=True))
    cases = [p for p in sorted(FIXTURES.iterdir()) if f"hostname {ROUTER}\n" in (p / "intended.conf").read_text()]
    assert len(cases) >= 6
    driver = driver_for("frr", credentials(inventory, inventory.devices[ROUTER]))
    driver.open()
    try:
        for case in cases:
            driver.load_replace_candidate((case / "running.conf").read_text())
            commands = (case / "commands.txt").read_text().splitlines()
            argv = ["vtysh"]
            for command in commands:
                argv += ["-c", command.strip()]
            typed = lab.exec(ROUTER, argv)
            assert typed.returncode == 0 and "% " not in typed.stdout, (case.name, typed.stdout, typed.stderr)
            driver.get_config()
            assert driver.compare_config((case / "intended.conf").read_text()).empty, case.name
    finally:
        driver.close()
