"""The run ledger: who ran what, when, from which inventory commit, and how each device ended.

Tables of the embedded database (`dzops.state.db`, registered there as one migration):

- `ledger_runs`: one row per run of a command that checks or changes devices (backup, drift,
  provision-wan, provision-ap, user apply/audit, patch, health, onboard, their --check runs too):
  the login user, start and end, the command line (already scrubbed by the caller), the exit code,
  the inventory directory with its git commit and whether its tree was dirty, and the run it retried.
- `ledger_devices`: one row per (unit, device) of a run. A unit is what the command works on and
  retries: a device for most commands, a WAN link for provision-wan (one row per end), a check for
  health. `status` is the device's own, `unit_status` the unit's (they differ only for links).

Everything stored here left dzops already: the CLI scrubs text before it hands a run over, so
the file holds no secret even though it stays private (0600) like the rest of the database.
This module is storage only: no scrubbing, no inventory, no CLI.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Registered in dzops.state.db.MIGRATIONS (one step). Table names carry `ledger_`: the health
# history already owns `runs` and `results`.
TABLES = """
CREATE TABLE ledger_runs (id INTEGER PRIMARY KEY, command TEXT NOT NULL, argv TEXT NOT NULL, user TEXT NOT NULL,
                          started REAL NOT NULL, finished REAL NOT NULL, exit_code INTEGER NOT NULL,
                          check_mode INTEGER NOT NULL DEFAULT 0, inventory TEXT NOT NULL DEFAULT '',
                          git_commit TEXT, git_dirty INTEGER, retry_of INTEGER);
CREATE TABLE ledger_devices (run INTEGER NOT NULL REFERENCES ledger_runs(id) ON DELETE CASCADE,
                             unit TEXT NOT NULL, host TEXT NOT NULL, status TEXT NOT NULL,
                             unit_status TEXT NOT NULL, changed INTEGER NOT NULL DEFAULT 0, error TEXT,
                             diff TEXT NOT NULL DEFAULT '', seconds REAL, PRIMARY KEY (run, unit, host));
CREATE INDEX ledger_devices_host ON ledger_devices(host, run);
CREATE INDEX ledger_runs_started ON ledger_runs(started)
"""

# Statuses that make a unit worth retrying: a device that failed, was not reached, was rolled back,
# refused its host key (onboard), or a health check that found its subject down or degraded.
FAILED = frozenset({"failed", "unreachable", "rolled_back", "refused", "down", "degraded"})


def is_failed(status: str) -> bool:
    """Whether a stored status counts as failed for `--retry-failed`.

    >>> [is_failed(s) for s in ("ok", "changed", "unreachable", "rolled_back", "skipped", "down")]
    [False, False, True, True, False, True]
    """
    return status in FAILED


@dataclass(frozen=True)
class DeviceRecord:
    """One device's outcome within one unit of a run (text already scrubbed)."""

    host: str
    status: str
    unit: str = ""  # the link or check this row belongs to; the host itself when empty
    unit_status: str = ""  # the unit's status; the device's own when empty
    changed: bool = False
    error: str | None = None
    diff: str = ""
    seconds: float | None = None

    def __post_init__(self) -> None:
        # Frozen: the defaults that follow another field are filled through object.__setattr__.
        if not self.unit:
            object.__setattr__(self, "unit", self.host)
        if not self.unit_status:
            object.__setattr__(self, "unit_status", self.status)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """One recorded run; `devices` empty in listings (see `summary` there)."""

    command: str
    argv: str
    user: str
    started: float
    finished: float
    exit_code: int
    check: bool = False
    inventory: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    retry_of: int | None = None
    devices: list[DeviceRecord] = field(default_factory=list)
    id: int | None = None
    summary: dict[str, int] = field(default_factory=dict)  # status -> devices, in listings

    @property
    def seconds(self) -> float:
        return round(self.finished - self.started, 3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = self.seconds
        data["devices"] = [d.to_dict() for d in self.devices]
        return data


def record(conn: sqlite3.Connection, run: RunRecord) -> int:
    """Store one run with all its devices in one transaction; returns its id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        run_id = conn.execute(
            "INSERT INTO ledger_runs (command, argv, user, started, finished, exit_code, check_mode, inventory, "
            "git_commit, git_dirty, retry_of) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (run.command, run.argv, run.user, run.started, run.finished, int(run.exit_code), int(run.check),
             run.inventory, run.git_commit, None if run.git_dirty is None else int(run.git_dirty),
             run.retry_of)).lastrowid
        conn.executemany(
            "INSERT OR REPLACE INTO ledger_devices (run, unit, host, status, unit_status, changed, error, diff, "
            "seconds) VALUES (?,?,?,?,?,?,?,?,?)",
            [(run_id, d.unit, d.host, d.status, d.unit_status, int(d.changed), d.error, d.diff or "", d.seconds)
             for d in run.devices])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert run_id is not None
    return run_id


def prune(conn: sqlite3.Connection, before: float, command: str | None = None) -> int:
    """Remove the runs that started before `before` (only `command`'s, when given) with their
    device rows; returns how many runs went. A `--retry-failed` of one of them is then refused as
    any unknown run is."""
    where, args = "started < ?", [before]
    if command is not None:
        where, args = where + " AND command = ?", [before, command]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"DELETE FROM ledger_devices WHERE run IN (SELECT id FROM ledger_runs WHERE {where})", args)  # noqa: S608 - fixed text
        gone = conn.execute(f"DELETE FROM ledger_runs WHERE {where}", args).rowcount  # noqa: S608 - fixed text
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return gone


_RUN_COLUMNS = ("id, command, argv, user, started, finished, exit_code, check_mode, inventory, git_commit, "
                "git_dirty, retry_of")


def _run(row: tuple[Any, ...]) -> RunRecord:
    run_id, command, argv, user, started, finished, code, check, inventory, commit, dirty, retry_of = row
    return RunRecord(command=command, argv=argv, user=user, started=started, finished=finished, exit_code=code,
                     check=bool(check), inventory=inventory, git_commit=commit,
                     git_dirty=None if dirty is None else bool(dirty), retry_of=retry_of, id=run_id)


def runs(conn: sqlite3.Connection, last: int | None = None, hosts: set[str] | None = None) -> list[RunRecord]:
    """The newest `last` runs (all when None), newest first; with `hosts`, only runs that touched
    one of them, each with a per-status count of its devices (of those hosts only)."""
    query = f"SELECT {_RUN_COLUMNS} FROM ledger_runs"
    args: list[Any] = []
    if hosts is not None:
        marks = ",".join("?" * len(hosts))
        query += f" WHERE id IN (SELECT run FROM ledger_devices WHERE host IN ({marks}))"
        args += sorted(hosts)
    query += " ORDER BY id DESC"
    if last is not None:
        query += " LIMIT ?"
        args.append(last)
    found = [_run(row) for row in conn.execute(query, args)]
    if not found:
        return found
    by_id = {r.id: r for r in found}
    count = ("SELECT run, status, COUNT(DISTINCT host) FROM ledger_devices WHERE run IN "
             f"({','.join('?' * len(by_id))})")
    count_args: list[Any] = list(by_id)
    if hosts is not None:
        count += f" AND host IN ({','.join('?' * len(hosts))})"
        count_args += sorted(hosts)
    for run_id, status, n in conn.execute(count + " GROUP BY run, status", count_args):
        by_id[run_id].summary[status] = n
    return found


def show(conn: sqlite3.Connection, run_id: int, hosts: set[str] | None = None) -> RunRecord | None:
    """One run with its devices (only `hosts` when given), or None when there is no such run."""
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM ledger_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    run = _run(row)
    rows = conn.execute("SELECT unit, host, status, unit_status, changed, error, diff, seconds FROM ledger_devices "
                        "WHERE run = ? ORDER BY rowid", (run_id,)).fetchall()
    run.devices = [DeviceRecord(host=host, status=status, unit=unit, unit_status=unit_status, changed=bool(changed),
                                error=error, diff=diff, seconds=seconds)
                   for unit, host, status, unit_status, changed, error, diff, seconds in rows
                   if hosts is None or host in hosts]
    for d in run.devices:
        run.summary[d.status] = run.summary.get(d.status, 0) + 1
    return run


def failed_units(run: RunRecord) -> tuple[list[str], list[str]]:
    """(units, hosts) of a run that failed, in the run's order: what `--retry-failed` runs again.

    >>> run = RunRecord("provision-wan", "", "u", 0, 1, 4, devices=[
    ...     DeviceRecord("hq", "ok", unit="hq-talo", unit_status="rolled_back"),
    ...     DeviceRecord("talo", "failed", unit="hq-talo", unit_status="rolled_back"),
    ...     DeviceRecord("hq", "ok", unit="hq-guma", unit_status="ok")])
    >>> failed_units(run)
    (['hq-talo'], ['hq', 'talo'])
    """
    units = list(dict.fromkeys(d.unit for d in run.devices if is_failed(d.unit_status)))
    hosts = list(dict.fromkeys(d.host for d in run.devices if d.unit in units and d.host))
    return units, hosts


def login_user() -> str:
    """Who ran dzops: the person behind sudo when there is one, else the process's login name."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return f"uid {os.getuid()}"


def git_state(folder: Path, timeout: float = 5.0) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether the tree has uncommitted changes under `folder`) of the git work tree
    holding `folder`; (None, None) when it is not in one (or git is missing)."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=normal",
                                 "--", "."], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty
