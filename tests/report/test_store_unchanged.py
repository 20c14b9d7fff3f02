"""The daily backup: a device whose files did not change is not rewritten (no fsync, git's stat cache
holds), while a changed or vanished file still lands in the commit."""

from __future__ import annotations

from pathlib import Path

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
