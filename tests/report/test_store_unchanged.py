"""The daily backup: a device whose files did not change is not rewritten (no fsync, git's stat cache
holds), while a changed or vanished file still lands in the commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dzops.report.store import Snapshot, device_dir, write_and_commit


def test_unchanged_devices_are_left_untouched_and_changes_still_commit(tmp_path: Path) -> None:
    repo = tmp_path / "backups"
    first = [Snapshot("r1", "hq", {"running-config": "hostname r1\n"}),
             Snapshot("r2", "hq", {"running-config": "hostname r2\n", "etc/hosts": "127.0.0.1 r2\n"})]
    assert write_and_commit(repo, first).commit is not None
    r1 = repo / device_dir("hq", "r1") / "running-config"
    before = r1.stat()

    again = write_and_commit(repo, first)
    assert again.commit is None and again.changed == {}
    assert r1.stat().st_ino == before.st_ino and r1.stat().st_mtime_ns == before.st_mtime_ns  # not rewritten

    # r2 lost a file on the device and changed another: both show in the commit; r1 stays untouched
    later = [first[0], Snapshot("r2", "hq", {"running-config": "hostname r2-new\n"})]
    result = write_and_commit(repo, later)
    assert result.commit is not None
    assert sorted(result.changed["r2"]) == sorted([f"{device_dir('hq', 'r2')}/running-config",
                                                   f"{device_dir('hq', 'r2')}/etc/hosts"])
    assert "r1" not in result.changed and r1.stat().st_ino == before.st_ino
    assert not (repo / device_dir("hq", "r2") / "etc/hosts").exists()


@pytest.mark.parametrize("leftover", ["new file", "edited file", "deleted file"])
def test_a_run_with_nothing_new_still_commits_what_an_interrupted_run_left(tmp_path: Path, leftover: str) -> None:
    """The daily case asks git once (HEAD and state together); a work tree left dirty by a run that
    died before its commit is still committed by the next, as `git add --all` always did."""
    repo = tmp_path / "backups"
    snaps = [Snapshot("r1", "hq", {"running-config": "hostname r1\n"}),
             Snapshot("r2", "hq", {"running-config": "hostname r2\n"})]
    first = write_and_commit(repo, snaps)
    assert write_and_commit(repo, snaps).commit is None  # nothing changed: no commit
    # r9 vanished from the inventory since, its folder stays as last committed; what a killed run left there:
    (repo / "hq/r9").mkdir()
    stale = repo / "hq/r9/running-config"
    stale.write_text("hostname r9\n")
    write_and_commit(repo, snaps)  # commits r9's file (an untracked leftover)
    {"new file": lambda: (repo / "hq/r9/extra").write_text("x\n"),
     "edited file": lambda: stale.write_text("hostname r9-edited\n"),
     "deleted file": stale.unlink}[leftover]()
    result = write_and_commit(repo, snaps)
    assert result.commit is not None and result.previous not in (None, first.commit)
    assert result.changed == {}  # no device of this run changed
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == ""
