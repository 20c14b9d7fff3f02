"""Advisory locks: write-backs never interleave, a job never runs twice, a child inherits its parent's lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dzops.exceptions import AlreadyRunning
from dzops.state import file_lock, job_lock

CHILD = """
import sys
from dzops.state import job_lock
from dzops.exceptions import AlreadyRunning
try:
    with job_lock(sys.argv[1], "drift"):
        print("locked")
except AlreadyRunning as exc:
    print(exc)
    sys.exit(8)
"""


def test_threads_under_one_file_lock_never_lose_an_update(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")

    def bump() -> None:
        with file_lock(tmp_path, "counter", timeout=30):
            value = int(counter.read_text())
            time.sleep(0.01)  # read-modify-write with a window another writer would fall into
            counter.write_text(str(value + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "8"


def test_a_busy_file_lock_says_what_is_locked_after_its_timeout(tmp_path: Path) -> None:
    lock = tmp_path / "inventory.lock"
    with file_lock(lock, "inventory write-back"):
        started = time.monotonic()
        with pytest.raises(AlreadyRunning, match=r"inventory write-back: .*inventory.lock is locked"):
            with file_lock(lock, "inventory write-back", timeout=0.2):
                pass
        assert time.monotonic() - started >= 0.2
    assert lock.stat().st_mode & 0o777 == 0o600


def test_a_job_lock_held_elsewhere_refuses_at_once_naming_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "drift.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom dzops.state import job_lock\n"
                               "with job_lock(sys.argv[1], 'drift'):\n print('held', flush=True); time.sleep(30)",
                               str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning, match=rf"drift is already running \(pid {holder.pid} holds {lock}\)"):
            with job_lock(lock, "drift"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with job_lock(lock, "drift"):  # free again once the holder is gone
        assert lock.read_text() == f"{__import__('os').getpid()}\n"


def test_a_job_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    lock = tmp_path / "backup.lock"
    with job_lock(lock, "backup") as outer, job_lock(lock, "backup") as inner:
        assert inner == outer


def test_a_child_handed_the_descriptor_runs_and_a_stranger_does_not(tmp_path: Path) -> None:
    lock = tmp_path / "drift.lock"
    with job_lock(lock, "drift") as fd:
        child = subprocess.run([sys.executable, "-c", CHILD, str(lock)], pass_fds=(fd,), capture_output=True,
                               text=True, timeout=60)
        stranger = subprocess.run([sys.executable, "-c", CHILD, str(lock)], capture_output=True, text=True,
                                  timeout=60)
    assert (child.returncode, child.stdout.strip()) == (0, "locked"), child.stderr
    assert stranger.returncode == 8 and "drift is already running" in stranger.stdout


def test_a_run_under_cron_flock_adopts_the_lock_flock_holds(tmp_path: Path) -> None:
    """cron runs `flock -n -E 8 LOCK dzops schedule run JOB`: the run inside must not lock itself out."""
    lock = tmp_path / "drift.lock"
    under_cron = subprocess.run(["flock", "-n", "-E", "8", str(lock), sys.executable, "-c", CHILD, str(lock)],
                                capture_output=True, text=True, timeout=60)
    assert (under_cron.returncode, under_cron.stdout.strip()) == (0, "locked"), under_cron.stderr
    with job_lock(lock, "drift"):
        busy = subprocess.run(["flock", "-n", "-E", "8", str(lock), "true"], timeout=60)
    assert busy.returncode == 8
