"""Atomic writes and private modes: a crash mid-write leaves the old file, nobody else reads ours."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dzops.state import atomic_write, private_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_the_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old\n")
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_write_keeps_an_existing_files_mode_and_makes_new_files_private(tmp_path: Path) -> None:
    shared = tmp_path / "wan_links.yml"
    shared.write_text("x")
    shared.chmod(0o644)
    atomic_write(shared, "y")
    fresh = atomic_write(tmp_path / "new.json", b"{}")
    assert (mode(shared), mode(fresh)) == (0o644, 0o600)
    assert mode(write_private(shared, "z")) == 0o600


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync"], ids=["rename", "fsync"])
def test_a_crash_mid_write_leaves_the_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      failing: str) -> None:
    target = tmp_path / "drift-state.json"
    target.write_text('{"hosts": {"r1": "abc"}}\n')

    def crash(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C at the worst moment

    monkeypatch.setattr(failing, crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, '{"hosts": {}}\n')
    monkeypatch.undo()
    assert target.read_text() == '{"hosts": {"r1": "abc"}}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["drift-state.json"]


def test_private_dir_creates_missing_parents_0700_and_tightens_the_target(tmp_path: Path) -> None:
    shared = tmp_path / "srv"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    reports = private_dir(shared / "dzops" / "reports")
    assert (mode(shared), mode(shared / "dzops"), mode(reports)) == (0o755, 0o700, 0o700)
    open_reports = tmp_path / "open"
    open_reports.mkdir()
    open_reports.chmod(0o755)
    assert mode(private_dir(open_reports)) == 0o700


def test_private_dir_ignores_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        made = private_dir(tmp_path / "outbox")
    finally:
        os.umask(old)
    assert mode(made) == 0o700


def test_a_symlinked_file_stays_a_link_and_an_owned_file_keeps_its_owner(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "wan_links.yml"
    target.write_text("old\n")
    link = tmp_path / "wan_links.yml"
    link.symlink_to(target)
    atomic_write(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    if os.geteuid() == 0:  # root rewriting somebody else's file leaves it theirs
        os.chown(target, 1000, 1000)
        atomic_write(target, "newer\n")
        assert (target.stat().st_uid, target.stat().st_gid) == (1000, 1000)
