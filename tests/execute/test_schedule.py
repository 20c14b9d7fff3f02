"""`dzops schedule`: cron entries in a temporary crontab file (never root's), the flock wrapper and
the run lock; lab tests run two overlapping scheduled patch runs and mail a failed run's report."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.execute.test_patch_lab import private_inventory
from tests.labkit import copy_sample_inventory

FOREIGN = "15 3 * * * /usr/local/bin/nightly-rsync # office file sync\n"


def dzops(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


@pytest.fixture()
def inventory(tmp_path: Path) -> Path:
    return copy_sample_inventory(tmp_path / "inventory", 52, tmp_path / "state")


@pytest.fixture()
def tabfile(tmp_path: Path) -> Path:
    path = tmp_path / "crontab"
    path.write_text(FOREIGN)
    return path


def _env(tabfile: Path) -> dict[str, str]:
    return {**os.environ, "DZOPS_CRONTAB": str(tabfile)}


@pytest.mark.parametrize(("job", "cron"), [
    ("patch", "0 2 * * 6"), ("drift", "0 6 * * 1"), ("backup", "30 1 * * *"),
], ids=["patch", "drift", "backup"])
def test_install_then_list_shows_the_entry(inventory: Path, tabfile: Path, job: str, cron: str) -> None:
    installed = dzops("-i", str(inventory), "schedule", "install", job, "--cron", cron, env=_env(tabfile))
    assert installed.returncode == 0, installed.stderr
    listed = dzops("-i", str(inventory), "schedule", "list", "--json", env=_env(tabfile))
    [entry] = json.loads(listed.stdout)
    assert (entry["job"], entry["schedule"], entry["inventory"]) == (job, cron, str(inventory.resolve()))
    lock = inventory.parent / "state" / "reports" / "locks" / f"{job}.lock"
    assert entry["command"].startswith(f"flock -n -E 8 {lock} ")
    assert f"schedule run {job} >> " in entry["command"] and entry["command"].endswith(f"logs/{job}.log 2>&1")
    line = next(x for x in tabfile.read_text().splitlines() if "dzops:" in x)
    assert line.startswith(f"{cron} flock -n -E 8 ")  # what cron itself reads
    assert FOREIGN.strip() in tabfile.read_text()


def test_reinstall_replaces_and_remove_keeps_foreign_entries(inventory: Path, tabfile: Path) -> None:
    env = _env(tabfile)
    for cron in ("0 2 * * 6", "0 3 * * 0"):
        assert dzops("-i", str(inventory), "schedule", "install", "patch", "--cron", cron, env=env).returncode == 0
    assert dzops("-i", str(inventory), "schedule", "install", "backup", env=env).returncode == 0  # schedules.backup
    entries = json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=env).stdout)
    assert sorted((e["job"], e["schedule"]) for e in entries) == [("backup", "30 1 * * *"), ("patch", "0 3 * * 0")]
    removed = dzops("-i", str(inventory), "schedule", "remove", "--json", env=env)
    assert removed.returncode == 0 and len(json.loads(removed.stdout)) == 2
    assert json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=env).stdout) == []
    assert tabfile.read_text().strip() == FOREIGN.strip()


@pytest.mark.parametrize(("args", "message"), [
    (["install", "reboot", "--cron", "0 2 * * 6"], "unknown job 'reboot'"),
    (["install", "patch", "--cron", "0 25 * * 6"], "is not a cron schedule"),
], ids=["unknown-job", "bad-cron"])
def test_bad_requests_are_one_line_usage_errors(inventory: Path, tabfile: Path, args: list[str], message: str) -> None:
    proc = dzops("-i", str(inventory), "schedule", *args, env=_env(tabfile))
    assert proc.returncode == ExitCode.USAGE and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and tabfile.read_text() == FOREIGN


def test_cron_command_does_not_start_while_the_lock_is_held(inventory: Path, tabfile: Path) -> None:
    assert dzops("-i", str(inventory), "schedule", "install", "patch", env=_env(tabfile)).returncode == 0
    [entry] = json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=_env(tabfile)).stdout)
    lock = inventory.parent / "state" / "reports" / "locks" / "patch.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what the running cron job's flock(1) holds
        proc = subprocess.run(["sh", "-c", entry["command"]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitCode.ALREADY_RUNNING
    assert (inventory.parent / "state" / "reports" / "logs" / "patch.log").read_text() == ""  # dzops never ran


# --- against the lab ---------------------------------------------------------------------------

def _hold_dpkg_lock(lab, node: str) -> None:
    script = ("import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'a'); "
              "fcntl.lockf(f, fcntl.LOCK_EX); open('/run/dz-test-lock.pid', 'w').write(str(__import__('os').getpid())); "
              "time.sleep(600)")
    lab.exec(node, ["sh", "-c", f"setsid python3 -c \"{script}\" </dev/null >/dev/null 2>&1 &"])
    for _ in range(100):
        if lab.exec(node, ["test", "-s", "/run/dz-test-lock.pid"]).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{node}: test lock holder did not start")


def _release_dpkg_lock(lab, node: str) -> None:
    lab.exec(node, ["sh", "-c", "kill $(cat /run/dz-test-lock.pid); rm -f /run/dz-test-lock.pid"])


@pytest.mark.lab
def test_failed_scheduled_run_mails_its_report(punakha_lab, tmp_path: Path) -> None:
    from dzops.lab.smtp import read_mail

    lab, node = punakha_lab.lab, "punakha-hq-srv1"
    inventory = private_inventory(punakha_lab, tmp_path)
    maildir = punakha_lab.state_dir / "mail"
    before = len(read_mail(maildir))
    _hold_dpkg_lock(lab, node)  # apt is busy on the host: the pre-check must fail it, touching nothing
    try:
        proc = dzops("-i", str(inventory), "--limit", node, "schedule", "run", "patch", env=punakha_lab.env())
    finally:
        _release_dpkg_lock(lab, node)
    assert proc.returncode == ExitCode.HOSTS_FAILED, proc.stderr
    assert "failure report mailed" in proc.stderr
    mails = read_mail(maildir)[before:]
    assert [m["Subject"] for m in mails] == ["dzops patch Punakha: FAILED on 1 of 1 host(s)"]
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert f"{node}: failed" in body and "package manager lock held (/var/lib/dpkg/lock-frontend" in body
    reports = sorted((tmp_path / "reports").glob("patch-*.json"))
    assert json.loads(reports[-1].read_text())["hosts"][0]["status"] == "failed"


@pytest.mark.lab
def test_second_overlapping_run_exits_at_once(punakha_lab, tmp_path: Path) -> None:
    node = "punakha-hq-web1"
    env = punakha_lab.env()
    inv = str(private_inventory(punakha_lab, tmp_path))
    first = subprocess.Popen([sys.executable, "-m", "dzops", "-i", inv, "--limit", node, "--check",
                              "schedule", "run", "patch"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert first.stderr is not None
        started = first.stderr.readline()
        assert "schedule run patch: started" in started, started
        second = dzops("-i", inv, "--limit", node, "--check", "schedule", "run", "patch", env=env, timeout=120)
        still_running = first.poll() is None  # the second gave up while the first was mid-run
        first_rest = first.stderr.read()
        assert first.wait(timeout=900) == ExitCode.OK, first_rest
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == ExitCode.ALREADY_RUNNING
    assert (f"dzops: error: patch is already running (pid {first.pid} holds "
            f"{tmp_path / 'reports' / 'locks' / 'patch.lock'})") in second.stderr.splitlines()
    assert "dzops: patch" not in second.stderr  # it never started a patch run
    assert still_running
