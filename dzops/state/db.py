"""The embedded SQLite database beside report_dir: health history and alert state.

One file, `<report_dir>/../dzops.sqlite` (beside the reports, in the same private state folder),
in WAL mode so a status page can be read while a scheduled run writes. Its schema is versioned
with SQLite's `user_version`; `MIGRATIONS[n]` takes a database from version n to n+1, each in one
transaction, so an old file is upgraded in place and a crash mid-migration leaves the old version.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dzops.state.files import PRIVATE_FILE, private_dir
from dzops.state.ledger import TABLES as LEDGER_TABLES

DB_NAME = "dzops.sqlite"
BUSY_TIMEOUT_S = 30.0  # another run writing: SQLite waits for its lock this long

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: one row per run, one row per check result of a run
    """
    CREATE TABLE runs (id INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL NOT NULL,
                       status TEXT NOT NULL);
    CREATE TABLE results (run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                          key TEXT NOT NULL, kind TEXT NOT NULL, site TEXT NOT NULL, status TEXT NOT NULL,
                          message TEXT NOT NULL DEFAULT '', rtt_ms REAL, loss REAL,
                          PRIMARY KEY (run, key));
    CREATE INDEX results_key ON results(key, run);
    CREATE INDEX runs_started ON runs(started);
    """,
    # 1 -> 2: what was last alerted per subject (flap suppression needs the confirmed state)
    """
    CREATE TABLE alert_state (key TEXT PRIMARY KEY, status TEXT NOT NULL, since REAL NOT NULL,
                              alerted REAL NOT NULL);
    """,
    # 2 -> 3: the run ledger (`dzops runs`, --retry-failed): see dzops.state.ledger
    LEDGER_TABLES,
)
SCHEMA_VERSION = len(MIGRATIONS)


def db_path(report_dir: Path) -> Path:
    """Where the database of an inventory lives: beside report_dir, never inside what gets mailed.

    >>> db_path(Path("/var/lib/dzops/punakha/reports"))
    PosixPath('/var/lib/dzops/punakha/dzops.sqlite')
    """
    return Path(report_dir).parent / DB_NAME


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to `target`, one transaction per step; returns the version reached."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        from dzops.exceptions import DzopsError

        raise DzopsError(f"database schema version {version} is newer than this dzops knows "
                         f"({SCHEMA_VERSION}): upgrade dzops")
    while version < target:
        script = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1
    return version


@contextmanager
def connect(path: Path, *, target: int = SCHEMA_VERSION) -> Iterator[sqlite3.Connection]:
    """An open, migrated connection in WAL mode; the file and its folder owner-only."""
    path = Path(path)
    private_dir(path.parent)
    new = not path.exists()
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if new:
            path.chmod(PRIVATE_FILE)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, target)
        yield conn
    finally:
        conn.close()
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            extra.chmod(PRIVATE_FILE)


@dataclass(frozen=True)
class Row:
    """One stored check result, with its run's time."""

    at: float
    key: str
    kind: str
    site: str
    status: str
    message: str = ""
    rtt_ms: float | None = None
    loss: float | None = None


def record_run(conn: sqlite3.Connection, started: float, finished: float, status: str,
               results: Iterable[Row]) -> int:
    """Store one run and its results atomically; returns the run id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        run = conn.execute("INSERT INTO runs (started, finished, status) VALUES (?, ?, ?)",
                           (started, finished, status)).lastrowid
        conn.executemany(
            "INSERT INTO results (run, key, kind, site, status, message, rtt_ms, loss) VALUES (?,?,?,?,?,?,?,?)",
            [(run, r.key, r.kind, r.site, r.status, r.message, r.rtt_ms, r.loss) for r in results])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert run is not None
    return run


def prune(conn: sqlite3.Connection, retention_days: int, now: float | None = None) -> int:
    """Remove runs older than the retention; returns how many runs went."""
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    cur = conn.execute("DELETE FROM runs WHERE started < ?", (cutoff,))
    return cur.rowcount


def history(conn: sqlite3.Connection, since: float, site: str | None = None) -> list[Row]:
    """Every stored result from `since` on, oldest first (one site's only with `site`)."""
    query = ("SELECT runs.started, key, kind, site, results.status, message, rtt_ms, loss FROM results "
             "JOIN runs ON runs.id = results.run WHERE runs.started >= ?")
    args: list[object] = [since]
    if site is not None:
        query += " AND site = ?"
        args.append(site)
    rows = conn.execute(query + " ORDER BY runs.started, key", args).fetchall()
    return [Row(*row) for row in rows]


def recent(conn: sqlite3.Connection, key: str, count: int) -> list[tuple[float, str]]:
    """The last `count` (time, status) of one subject, newest first."""
    return conn.execute("SELECT runs.started, results.status FROM results JOIN runs ON runs.id = results.run "
                        "WHERE key = ? ORDER BY runs.started DESC LIMIT ?", (key, count)).fetchall()


def alert_state(conn: sqlite3.Connection) -> dict[str, tuple[str, float]]:
    """Subject -> (confirmed status, since when), as last alerted."""
    return {k: (s, since) for k, s, since in conn.execute("SELECT key, status, since FROM alert_state")}


def set_alert_state(conn: sqlite3.Connection, key: str, status: str, since: float, alerted: float) -> None:
    conn.execute("INSERT INTO alert_state (key, status, since, alerted) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET status=excluded.status, since=excluded.since, "
                 "alerted=excluded.alerted", (key, status, since, alerted))
