"""The job plays (playbooks/job_*.yml, through ansible-runner as AWX runs them) against the provisioned
lab give the same per-device results as the `dzops` command line: one implementation, two front doors.

Each front door works on its own copy of the lab's inventory (its own backup repository and report
directory), so neither run sees the other's commits, drift baseline or health history. The one
hand-made change (a static route on a gewog router) is undone before its test ends.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.collection.common import Run, runner

pytestmark = pytest.mark.lab

ROUTER = "gewog-talo-rtr1"
HAND_ROUTE = "ip route 10.98.0.0/16 blackhole"


@dataclass
class Door:
    """One front door's private copy of the lab inventory."""

    inventory: Path
    repo: Path
    reports: Path


@dataclass
class Doors:
    cli: Door
    play: Door
    lab: object
    env: dict[str, str]
    tmp: Path

    def dzops(self, *args: str) -> tuple[int, object]:
        """`dzops --json ARGS` on the CLI's copy: (exit code, its JSON)."""
        env = dict(self.env, DZOPS_INVENTORY=str(self.cli.inventory))
        proc = subprocess.run([sys.executable, "-m", "dzops", "--json", *args], env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.stdout.strip(), proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def job(self, job: str, cmdline: str = "", **extravars: object) -> Run:
        """playbooks/job_JOB.yml on the play's copy, through ansible-runner."""
        folder = self.tmp / f"{job}-{len(list(self.tmp.glob(f'{job}-*')))}"
        folder.mkdir()
        return runner(folder, playbook=f"playbooks/job_{job}.yml", cmdline=cmdline,
                      extravars={"dzops_inventories": [str(self.play.inventory)], **extravars})


def _door(root: Path, source: Path) -> Door:
    inventory, repo, reports = root / "inventory", root / "config-backups", root / "reports"
    shutil.copytree(source, inventory)
    operations = inventory / "group_vars/all/operations.yml"
    lines = [f"backup_repository: {repo}" if line.startswith("backup_repository:")
             else f"report_dir: {reports}" if line.startswith("report_dir:") else line
             for line in operations.read_text().splitlines()]
    operations.write_text("\n".join(lines) + "\n")
    return Door(inventory, repo, reports)


@pytest.fixture(scope="module")
def doors(provisioned_lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    handle = provisioned_lab.handle
    root = tmp_path_factory.mktemp("collection-lab")
    yield Doors(cli=_door(root / "cli", handle.inventory_dir), play=_door(root / "play", handle.inventory_dir),
                lab=handle.lab, env=handle.env(), tmp=root)


def _files(repo: Path) -> dict[str, str]:
    """Every file of the repository's HEAD with its blob id."""
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "HEAD"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}


def test_backup_play_commits_what_the_cli_commits(doors: Doors) -> None:
    code, cli = doors.dzops("backup")
    play = doors.job("backup")
    result = play.only
    assert code == ExitCode.OK and play.rc == 0, play.stdout[-3000:]
    cli_rows = {d["host"]: (d["status"], sorted(d["files"]), bool(d["changed"])) for d in cli["devices"]}
    play_rows = {d["host"]: (d["status"], sorted(d["files"]), d["changed"]) for d in result["devices"]}
    assert play_rows == cli_rows and len(play_rows) == 37
    assert result["changed"] is True and not result["failed"]
    head = subprocess.run(["git", "-C", str(doors.play.repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert result["commit"] == head and result["repository"] == str(doors.play.repo)
    # The same scrubbed files, byte for byte, in both repositories.
    assert _files(doors.play.repo) == _files(doors.cli.repo)

    # A second run: nothing changed, so the task is ok and not changed, and no commit is made.
    again = doors.job("backup").only
    assert again["changed"] is False and again["commit"] is None
    assert {d["host"] for d in again["devices"] if d["changed"]} == set()


def test_drift_play_reports_the_hand_made_change_as_the_cli_does(doors: Doors) -> None:
    lab = doors.lab
    console = lab.exec(ROUTER, ["vtysh", "-c", "conf t", "-c", HAND_ROUTE])
    assert console.returncode == 0, console.stderr
    try:
        code, cli = doors.dzops("drift")
        play = doors.job("drift")
        result = play.only
        assert code == ExitCode.DRIFT_FOUND and play.rc == 2, play.stdout[-3000:]  # fails on drift, as exit 6 does
        assert "drifted" in result, result
        assert result["failed"] is True and result["drifted"] == [ROUTER] and result["changed"] is False
        assert result["msg"] == f"drift on 1 device(s): {ROUTER}"

        def rows(report: dict) -> dict:
            return {d["host"]: (d["status"], d["drifted"], sorted((f["kind"], f.get("path") or "") for f in d["findings"]))
                    for d in report["devices"]}

        assert rows(result) == rows(cli)
        assert Path(result["report"]["html"]).is_relative_to(doors.play.reports)

        # drift --remediate in check mode (with diff): the same commands, nothing changed on the router.
        code, cli_fix = doors.dzops("--check", "drift", "--remediate", ROUTER)
        check = doors.job("drift", cmdline="--check --diff", dzops_remediate=True, dzops_hosts=[ROUTER]).only
        assert code == ExitCode.DRIFT_FOUND and not check["failed"], check
        [cli_row] = cli_fix["devices"]
        [play_row] = check["devices"]
        assert play_row["commands"] == cli_row["commands"] and f"no {HAND_ROUTE}" in play_row["commands"]
        assert check["changed"] is True and play_row["changed"] is True
        assert check["diff"] == [{"prepared": f"--- {ROUTER}\n" + "\n".join(cli_row["commands"])}]
        assert HAND_ROUTE in lab.exec(ROUTER, ["vtysh", "-c", "show running-config"]).stdout
    finally:
        lab.exec(ROUTER, ["vtysh", "-c", "conf t", "-c", f"no {HAND_ROUTE}"])
    assert HAND_ROUTE not in lab.exec(ROUTER, ["vtysh", "-c", "show running-config"]).stdout


def test_health_play_finds_what_the_cli_finds_and_records_the_run(doors: Doors) -> None:
    code, cli = doors.dzops("health")
    play = doors.job("health", dzops_fail_on_findings=False)
    result = play.only
    assert play.rc == 0 and not result["failed"] and result["changed"] is False
    cli_states = {r["key"]: r["status"] for r in cli["results"]}
    play_states = {c["key"]: c["status"] for c in result["checks"]}
    assert play_states == cli_states
    assert {f["key"] for f in result["findings"]} == {f["key"] for f in cli["findings"]}
    assert code == (ExitCode.HEALTH_DEGRADED if cli["findings"] else ExitCode.OK)
    assert result["status"] == cli["status"]
    # Not check mode: the play's run is stored in its copy's history, check by check.
    from dzops.state.db import db_path

    with sqlite3.connect(db_path(doors.play.reports)) as conn:
        stored = dict(conn.execute("SELECT key, status FROM results WHERE run = (SELECT max(id) FROM runs)"))
    assert stored == play_states


def test_provision_wan_check_play_matches_the_cli_and_changes_nothing(doors: Doors) -> None:
    code, cli = doors.dzops("--check", "provision-wan", "--all")
    play = doors.job("provision_wan", cmdline="--check --diff")
    result = play.only
    assert code == ExitCode.OK and play.rc == 0, play.stdout[-3000:]
    assert {r["link"]: (r["status"], r["changed"]) for r in result["links"]} == {
        r["link"]: (r["status"], r["changed"] or any(h["diff"] for h in r["hosts"].values())) for r in cli}
    cli_diffs = {name: h["diff"] for r in cli for name, h in r["hosts"].items()}
    assert {d["host"]: d["diff"] for d in result["devices"]} == cli_diffs
    assert result["changed"] is any(cli_diffs.values())
    assert result["diff"] == [{"prepared": f"--- {h}\n{text}"} for h, text in cli_diffs.items() if text]


def test_provision_ap_check_play_matches_the_cli(doors: Doors) -> None:
    code, cli = doors.dzops("--check", "provision-ap", "--all")
    play = doors.job("provision_ap", cmdline="--check")
    result = play.only
    assert code == ExitCode.OK and play.rc == 0, play.stdout[-3000:]
    assert {d["host"]: (d["status"], d["changed"], d["ssids"]) for d in result["devices"]} == {
        r["host"]: (r["status"], r["changed"] or bool(r["diff"]), r["data"]["ssids"]) for r in cli}
    assert "diff" not in result  # no --diff given
