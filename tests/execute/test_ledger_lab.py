"""The run ledger against the lab: a real backup run is recorded device by device, and
`--retry-failed` after one router went unreachable backs up that router alone.

The runs use a private copy of the lab's inventory whose backup repository and report directory
(and so the database beside it) live in this module's temp dir.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.execute.test_backup_drift_lab import _set_operations

pytestmark = pytest.mark.lab

ROUTER = "gewog-talo-rtr1"


@dataclass
class Env:
    inventory_dir: Path
    lab: Any
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=self.env, capture_output=True, text=True,
                              timeout=600, check=False)

    def json(self, *args: str) -> Any:
        proc = self.run(*args, "--json")
        assert proc.returncode == ExitCode.OK, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def env(punakha_lab, tmp_path_factory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("ledger")
    inventory_dir = root / "inventory"
    shutil.copytree(punakha_lab.inventory_dir, inventory_dir)
    _set_operations(inventory_dir, root / "config-backups", root / "state" / "reports")
    yield Env(inventory_dir, punakha_lab.lab, dict(punakha_lab.env(), DZOPS_INVENTORY=str(inventory_dir)))


def test_a_backup_is_recorded_per_device_and_retry_failed_backs_up_only_the_unreachable_router(env: Env) -> None:
    first = env.run("backup", "--json")
    assert first.returncode == ExitCode.OK, first.stderr
    backed_up = {d["host"] for d in json.loads(first.stdout)["devices"]}
    [listed] = env.json("runs")
    assert (listed["command"], listed["exit_code"], listed["summary"]) == ("backup", 0, {"ok": len(backed_up)})
    shown = env.json("runs", "show", str(listed["id"]))
    assert {d["host"]: d["status"] for d in shown["devices"]} == {h: "ok" for h in backed_up}
    assert all(d["seconds"] is not None and d["seconds"] > 0 for d in shown["devices"])  # each device was timed
    assert len(backed_up) > 30  # the whole sample: routers, switches, APs, servers

    env.lab.stop_daemon(ROUTER, "sshd")
    try:
        broken = env.run("--limit", "routers", "backup", "--json")
    finally:
        env.lab.start_daemon(ROUTER, "sshd")
    assert broken.returncode == ExitCode.UNREACHABLE, broken.stderr
    routers = {d["host"]: d["status"] for d in json.loads(broken.stdout)["devices"]}
    assert routers[ROUTER] == "unreachable" and len(routers) > 2
    assert {status for host, status in routers.items() if host != ROUTER} == {"ok"}
    failed_run = env.json("runs")[0]
    assert failed_run["summary"] == {"ok": len(routers) - 1, "unreachable": 1}
    recorded = env.json("runs", "show", str(failed_run["id"]))
    assert {d["host"]: d["status"] for d in recorded["devices"]} == routers
    [row] = [d for d in recorded["devices"] if d["host"] == ROUTER]
    assert "cannot reach" in row["error"] or "SSH" in row["error"]
    assert f"--retry-failed {failed_run['id']}` runs again on its 1 failed unit(s)" in broken.stderr

    retry = env.run("backup", "--retry-failed", str(failed_run["id"]), "--json")
    assert retry.returncode == ExitCode.OK, retry.stderr
    assert [(d["host"], d["status"]) for d in json.loads(retry.stdout)["devices"]] == [(ROUTER, "ok")]
    newest = env.json("runs")[0]
    assert newest["retry_of"] == failed_run["id"] and newest["summary"] == {"ok": 1}
