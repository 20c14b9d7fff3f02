"""The health database: migrations in place, WAL, retention, owner-only files."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from dzops.exceptions import DzopsError
from dzops.state import db


def _row(at: float, key: str = "link:hq-talo", status: str = "up") -> db.Row:
    return db.Row(at, key, key.split(":")[0], "talo", status, "", 1.5, 0.0)


def test_a_new_database_is_at_the_current_version_in_wal_mode_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / db.DB_NAME
    with db.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.record_run(conn, 100.0, 101.0, "up", [_row(100.0)])
        assert (tmp_path / "state" / f"{db.DB_NAME}-wal").exists()  # written through the WAL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_old_database_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / db.DB_NAME
    with db.connect(path, target=1) as conn:
        db.record_run(conn, 100.0, 101.0, "down", [_row(100.0, status="down")])
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELECT * FROM alert_state")
    with db.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        assert [r.status for r in db.history(conn, 0)] == ["down"]
        db.set_alert_state(conn, "link:hq-talo", "down", 100.0, 102.0)
        assert db.alert_state(conn) == {"link:hq-talo": ("down", 100.0)}


def test_a_failed_migration_leaves_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / db.DB_NAME
    with db.connect(path, target=1):
        pass
    monkeypatch.setattr(db, "MIGRATIONS", (db.MIGRATIONS[0], "CREATE TABLE ok (a); CREATE TABLE broken ("))
    with pytest.raises(sqlite3.OperationalError), db.connect(path):
        pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'ok'").fetchone() is None
    conn.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / db.DB_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DzopsError, match="newer than this dzops knows"), db.connect(path):
        pass


@pytest.mark.parametrize(("days", "kept"), [(1, [86400 * 10]), (5, [86400 * 6, 86400 * 10]),
                                            (30, [86400 * 1, 86400 * 6, 86400 * 10])])
def test_retention_removes_old_runs_and_their_results(tmp_path: Path, days: int, kept: list[float]) -> None:
    now = 86400 * 10.5
    with db.connect(tmp_path / db.DB_NAME) as conn:
        for at in (86400 * 1, 86400 * 6, 86400 * 10):
            db.record_run(conn, at, at + 1, "up", [_row(at), _row(at, "lan:talo")])
        db.prune(conn, days, now=now)
        assert sorted({r.at for r in db.history(conn, 0)}) == kept
        left = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        assert left == 2 * len(kept)  # results go with their run (foreign key cascade)


def test_history_by_site_and_recent_newest_first(tmp_path: Path) -> None:
    with db.connect(tmp_path / db.DB_NAME) as conn:
        for at, status in ((10.0, "up"), (20.0, "down"), (30.0, "down")):
            db.record_run(conn, at, at + 1, status, [_row(at, status=status),
                                                      db.Row(at, "device:srv", "device", "hq", "up")])
        assert {r.site for r in db.history(conn, 0, site="hq")} == {"hq"}
        assert [r.at for r in db.history(conn, 15.0, site="talo")] == [20.0, 30.0]
        assert db.recent(conn, "link:hq-talo", 2) == [(30.0, "down"), (20.0, "down")]


def test_a_reader_reads_while_a_writer_writes(tmp_path: Path) -> None:
    """WAL: a status page can read the history while a scheduled run holds a write transaction."""
    path = tmp_path / db.DB_NAME
    with db.connect(path) as conn:
        db.record_run(conn, 1.0, 2.0, "up", [_row(1.0)])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO runs (started, finished, status) VALUES (5, 6, 'down')")
    seen: list[int] = []

    def read() -> None:
        with db.connect(path) as reader:
            seen.append(len(db.history(reader, 0)))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(timeout=10)
    writer.execute("ROLLBACK")
    writer.close()
    assert seen == [1]
