"""`dzops backup` and `dzops drift` take the lock their scheduled runs hold, and run under a lock handed to them.

No device is contacted: the runs stop at the lock, or (handed the lock) at the missing backup
repository, which is checked before anything is collected.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.state import job_lock
from tests.labkit import copy_sample_inventory


@pytest.fixture()
def inventory(tmp_path: Path) -> Path:
    root = copy_sample_inventory(tmp_path / "inventory", 94, tmp_path / "state")
    operations = root / "group_vars/all/operations.yml"
    # Without a backup repository both jobs stop with a usage error right after taking the lock.
    operations.write_text("\n".join(line for line in operations.read_text().splitlines()
                                    if not line.startswith("backup_repository:")) + "\n")
    return root


def lock_of(inventory: Path, job: str) -> Path:
    return inventory.parent / "state" / "reports" / "locks" / f"{job}.lock"


def dzops(inventory: Path, job: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", "-i", str(inventory), job], capture_output=True,
                          text=True, timeout=120, check=False, **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("job", ["backup", "drift"])
def test_a_run_by_hand_refuses_while_the_scheduled_run_holds_the_lock(inventory: Path, job: str) -> None:
    lock = lock_of(inventory, job)
    with job_lock(lock, job):
        proc = dzops(inventory, job)
    assert proc.returncode == ExitCode.ALREADY_RUNNING, proc.stderr
    assert f"{job} is already running (pid {os.getpid()} holds {lock})" in proc.stderr


@pytest.mark.parametrize("job", ["backup", "drift"])
def test_a_run_handed_the_lock_goes_on(inventory: Path, job: str) -> None:
    """`schedule run` passes its locked descriptor; cron's flock(1) leaves its own open in the child."""
    lock = lock_of(inventory, job)
    with job_lock(lock, job) as fd:
        child = dzops(inventory, job, pass_fds=(fd,))
    cron = subprocess.run(["flock", "-n", "-E", "8", str(lock), sys.executable, "-m", "dzops", "-i", str(inventory),
                           job], capture_output=True, text=True, timeout=120, check=False)
    for proc in (child, cron):
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert "backup_repository is not set" in proc.stderr


def test_the_lock_directory_and_file_are_owner_only(inventory: Path) -> None:
    dzops(inventory, "backup")
    lock = lock_of(inventory, "backup")
    assert (lock.parent.stat().st_mode & 0o777, lock.stat().st_mode & 0o777) == (0o700, 0o600)


def test_schedule_install_creates_owner_only_lock_and_log_directories(tmp_path: Path) -> None:
    from dzops.execute import schedule

    reports = tmp_path / "var" / "reports"
    schedule.install("backup", "30 1 * * *", tmp_path, reports, tabfile=tmp_path / "crontab")
    assert {p.name: p.stat().st_mode & 0o777 for p in (reports.parent, reports, reports / "locks", reports / "logs")} \
        == {"var": 0o700, "reports": 0o700, "locks": 0o700, "logs": 0o700}
