"""The backup repository is owner-only and one run at a time writes and commits into it."""

from __future__ import annotations

import stat
import subprocess
import threading
from pathlib import Path

from dzops.report import store
from dzops.report.store import Snapshot, write_and_commit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_repository_is_0700_and_its_files_0600(tmp_path: Path) -> None:
    repo = tmp_path / "lib" / "config-backups"
    write_and_commit(repo, [Snapshot("r1", "hq", {"running-config": "hostname r1\n"})])
    saved = repo / "hq" / "r1" / "running-config"
    assert (mode(tmp_path / "lib"), mode(repo), mode(saved)) == (0o700, 0o700, 0o600)
    assert saved.read_text() == "hostname r1\n"


def test_an_existing_world_readable_repository_is_tightened(tmp_path: Path) -> None:
    repo = tmp_path / "config-backups"
    repo.mkdir()
    repo.chmod(0o755)
    write_and_commit(repo, [Snapshot("r1", "hq", {"running-config": "x\n"})])
    assert mode(repo) == 0o700


def test_two_runs_at_once_never_mix_into_one_commit(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "config-backups"
    write_and_commit(repo, [Snapshot("r0", "hq", {"running-config": "seed\n"})], kind="seed")
    real_git = store._git
    seen_add = threading.Barrier(2, timeout=5)

    def slow_git(repo_: Path, *args: str, **kwargs: object) -> str:
        if args and args[0] == "add":
            try:
                seen_add.wait(timeout=1)  # without the lock both runs would stage before either commits
            except threading.BrokenBarrierError:
                pass
        return real_git(repo_, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_git", slow_git)
    runs = [threading.Thread(target=write_and_commit, args=(repo, [Snapshot(h, "hq", {"running-config": f"{h}\n"})]),
                             kwargs={"kind": kind})
            for h, kind in (("r1", "backup"), ("r2", "drift"))]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    files_by_kind = {}
    for line in git(repo, "log", "--format=%H %s").splitlines():
        commit, kind = line.split()[:2]
        files_by_kind[kind] = git(repo, "show", "--name-only", "--format=", commit).split()
    assert files_by_kind["backup"] == ["hq/r1/running-config"]
    assert files_by_kind["drift"] == ["hq/r2/running-config"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_patch_reports_land_in_a_0700_report_dir_as_0600_files(tmp_path: Path) -> None:
    from dzops.report.patch import save
    from tests.report.test_patch_report import _run

    reports = tmp_path / "var" / "reports"
    json_path, text_path = save(_run().to_dict(), reports)
    assert (mode(tmp_path / "var"), mode(reports), mode(json_path), mode(text_path)) == (0o700, 0o700, 0o600, 0o600)
