"""Several Dzongkhags in one command: `-i` repeated, or a folder of Dzongkhag inventories.

The two shipped samples (inventory/: Punakha, samples/wangdue/: Wangdue Phodrang) are the pair;
copies of them stand in for a broken Dzongkhag and for a Dzongkhag whose names repeat another's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dzops.cli.dzongkhags import expand, worst
from dzops.cli.exit_codes import ExitCode
from tests.inventory.test_checks import dzops

REPO = Path(__file__).resolve().parents[2]
PUNAKHA = REPO / "inventory"
WANGDUE = REPO / "samples" / "wangdue"


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DZOPS_STATE_DIR", str(tmp_path / "state"))


def make(root: Path, layout: dict[str, str]) -> Path:
    """Folders and files from a {relative path: content} table ('/' at the end: an empty folder)."""
    for rel, text in layout.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return root


@pytest.mark.parametrize(("layout", "given", "expected"), [
    pytest.param({"dz/hosts.yml": ""}, ["dz"], ["dz"], id="one-inventory"),
    pytest.param({"all/punakha/hosts.yml": "", "all/wangdue/hosts.yml": "", "all/notes/": ""}, ["all"],
                 ["all/punakha", "all/wangdue"], id="parent-of-dzongkhags"),
    pytest.param({"all/b/hosts.yaml": "", "all/a/hosts": "", "all/.git/hosts.yml": ""}, ["all"],
                 ["all/a", "all/b"], id="parent-sorted-hidden-left-out"),
    pytest.param({"dz/hosts.yml": "", "dz/sub/hosts.yml": ""}, ["dz"], ["dz"], id="inventory-with-a-child-stays-one"),
    pytest.param({"a/hosts.yml": "", "b/hosts.yml": ""}, ["a", "b", "a"], ["a", "b"], id="repeated-once"),
    pytest.param({"empty/": ""}, ["empty"], ["empty"], id="no-inventory-stays-for-the-load-to-report"),
    pytest.param({"all/x/hosts.yml": "", "one/hosts.yml": ""}, ["one", "all"], ["one", "all/x"],
                 id="mixed-order-kept"),
])
def test_expand(layout: dict[str, str], given: list[str], expected: list[str], tmp_path: Path) -> None:
    make(tmp_path, layout)
    assert [str(p.relative_to(tmp_path)) for p in expand(tmp_path / g for g in given)] == expected


@pytest.mark.parametrize(("codes", "expected"), [
    ([0, 0], ExitCode.OK),
    ([0, ExitCode.DRIFT_FOUND], ExitCode.DRIFT_FOUND),
    ([ExitCode.DRIFT_FOUND, ExitCode.HOSTS_FAILED, ExitCode.UNREACHABLE], ExitCode.HOSTS_FAILED),
    ([ExitCode.HOSTS_FAILED, ExitCode.INVALID_INVENTORY], ExitCode.INVALID_INVENTORY),
    ([ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE], ExitCode.ERROR),
])
def test_worst_exit_code(codes: list[int], expected: int) -> None:
    assert worst(codes) == expected


def test_the_two_samples_checked_in_one_command_json(tmp_path: Path) -> None:
    run = dzops(REPO, "-i", str(PUNAKHA), "-i", str(WANGDUE), "--json", "inventory", "check")
    assert run.code == ExitCode.OK, run.text
    data = json.loads(run.stdout)
    assert list(data) == ["inventory", "wangdue"]
    assert [d["exit_code"] for d in data.values()] == [0, 0]
    assert data["inventory"]["output"]["ok"] and data["wangdue"]["output"]["ok"]
    assert data["inventory"]["output"]["hosts"] != data["wangdue"]["output"]["hosts"]  # each its own inventory
    assert data["wangdue"]["inventory"] == str(WANGDUE)


def test_show_per_dzongkhag_text_with_one_summary() -> None:
    run = dzops(REPO, "-i", str(PUNAKHA), "-i", str(WANGDUE), "--limit", "routers", "inventory", "show")
    assert run.code == ExitCode.OK, run.text
    punakha, wangdue = run.stdout.index("== inventory =="), run.stdout.index("== wangdue ==")
    assert punakha < wangdue
    assert "punakha-hq-rtr1" in run.stdout[punakha:wangdue] and "punakha-hq-rtr1" not in run.stdout[wangdue:]
    table = run.stdout[run.stdout.index("DZONGKHAG"):].splitlines()
    assert [line.split()[0] for line in table[1:]] == ["Punakha", "Wangdue"]
    assert all(line.endswith("0 OK") for line in table[1:]), table
    assert "dzops: 2 Dzongkhags, exit 0" in run.stderr


@pytest.mark.parametrize(("limit", "in_punakha", "in_wangdue"), [
    ("punakha-hq-rtr1", ["punakha-hq-rtr1"], None),  # a host of one Dzongkhag: the other is out of scope
    ("routers,!punakha-hq-rtr1", "not:punakha-hq-rtr1", "all"),  # excluding a name absent there excludes nothing
    ("routers:&site_talo", "talo-router", None),  # an intersection with a group absent there leaves nothing there
])
def test_a_limit_is_shared_out_between_dzongkhags(limit: str, in_punakha: object, in_wangdue: object) -> None:
    run = dzops(REPO, "--json", "-i", str(PUNAKHA), "-i", str(WANGDUE), "--limit", limit, "inventory", "show")
    assert run.code == ExitCode.OK, run.text
    data = json.loads(run.stdout)
    punakha, wangdue = (data[k]["output"] for k in ("inventory", "wangdue"))
    assert [d["exit_code"] for d in data.values()] == [0, 0]
    hosts = sorted(punakha["devices"])
    if isinstance(in_punakha, list):
        assert hosts == in_punakha
    elif in_punakha == "not:punakha-hq-rtr1":
        assert hosts and "punakha-hq-rtr1" not in hosts
    else:
        assert hosts == ["gewog-talo-rtr1"]  # the one router of site_talo
    if in_wangdue is None:
        assert wangdue is None  # nothing ran there
        assert "--limit selects no host of wangdue" in run.stderr
    else:
        assert wangdue["devices"] and not any(h.startswith("punakha") for h in wangdue["devices"])


def test_a_limit_that_matches_in_no_dzongkhag_is_refused() -> None:
    run = dzops(REPO, "-i", str(PUNAKHA), "-i", str(WANGDUE), "--limit", "routers,no-such-host", "inventory", "show")
    assert run.code == ExitCode.USAGE, run.text
    assert "no host or group matches 'no-such-host' in any of the inventories" in run.stderr


def test_the_worst_exit_code_wins_and_every_dzongkhag_still_runs(tmp_path: Path) -> None:
    parent = tmp_path / "dzongkhags"
    shutil.copytree(WANGDUE, parent / "broken")
    shutil.copytree(WANGDUE, parent / "wangdue")
    shutil.copytree(PUNAKHA, parent / "punakha")
    bad = parent / "broken" / "host_vars" / "wdp-athang-rtr1.yml"
    bad.write_text(bad.read_text().replace("loopback: 10.60.254.6/32", "loopback: 10.60.254.6/33"))
    run = dzops(tmp_path, "-i", "dzongkhags", "--json", "inventory", "check")
    assert run.code == ExitCode.INVALID_INVENTORY, run.text
    data = json.loads(run.stdout)
    assert {k: v["exit_code"] for k, v in data.items()} == {"broken": 3, "punakha": 0, "wangdue": 0}
    [problem] = data["broken"]["output"]["problems"]
    assert problem["file"] == "dzongkhags/broken/host_vars/wdp-athang-rtr1.yml" and problem["host"] == "wdp-athang-rtr1"


def test_names_and_addresses_may_repeat_across_dzongkhags_not_within_one(tmp_path: Path) -> None:
    shutil.copytree(WANGDUE, tmp_path / "a")
    shutil.copytree(WANGDUE, tmp_path / "b")  # the very same host names and management addresses
    across = dzops(tmp_path, "-i", "a", "-i", "b", "--json", "inventory", "check")
    assert across.code == ExitCode.OK, across.text
    within = tmp_path / "b" / "host_vars"
    rtr = next(within.glob("*-rtr1.yml"))
    other = next(p for p in within.glob("*-sw1.yml"))
    address = next(line for line in rtr.read_text().splitlines() if line.startswith("ansible_host:"))
    other.write_text("\n".join(address if line.startswith("ansible_host:") else line
                               for line in other.read_text().splitlines()) + "\n")
    run = dzops(tmp_path, "-i", "a", "-i", "b", "--json", "inventory", "check")
    data = json.loads(run.stdout)
    assert data["a"]["exit_code"] == 0 and data["b"]["exit_code"] == ExitCode.INVALID_INVENTORY
    assert any("duplicate management address" in p["message"] for p in data["b"]["output"]["problems"])


@pytest.mark.parametrize("command", [["lab", "up", "--prefix", "zz"], ["onboard", "--all"], ["doctor"],
                                     ["scrub", "--platform", "ios"]])
def test_commands_of_one_dzongkhag_refuse_several_in_one_line(command: list[str]) -> None:
    run = dzops(REPO, "-i", str(PUNAKHA), "-i", str(WANGDUE), *command)
    assert run.code == ExitCode.USAGE, run.text
    [line] = run.stderr.strip().splitlines()
    assert "several inventories (-i)" in line and f"`dzops {' '.join(command[:2 if command[0] == 'lab' else 1])}`" in line
    assert "==" not in run.stderr  # refused before any Dzongkhag ran


def test_retry_failed_names_one_ledger_so_several_are_refused() -> None:
    run = dzops(REPO, "-i", str(PUNAKHA), "-i", str(WANGDUE), "backup", "--retry-failed", "1")
    assert run.code == ExitCode.USAGE, run.text
    assert "--retry-failed" in run.stderr and "==" not in run.stderr


def test_dzops_inventory_variable_holds_several_folders(tmp_path: Path) -> None:
    """DZOPS_INVENTORY=a:b, as PATH lists folders (a real process: the variable is read at start)."""
    env = {**os.environ, "DZOPS_INVENTORY": os.pathsep.join((str(PUNAKHA), str(WANGDUE))),
           "DZOPS_STATE_DIR": str(tmp_path / "state")}
    env.pop("DZOPS_VAULT_PASSWORD_FILE", None)
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    proc = subprocess.run([sys.executable, "-m", "dzops", "--json", "inventory", "check"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)) == ["inventory", "wangdue"]
