"""Scheduled dzops jobs: crontab entries (python-crontab) and the run lock.

Each entry runs `flock -n -E 8 LOCK dzops -i INVENTORY [OPTIONS] schedule run JOB --report-dir DIR
>> LOG 2>&1`, OPTIONS being the global options given to `schedule install` (the vault password
file, --limit, --check, ...), which `schedule run` hands on to the job. cron never
starts a run while the previous one still holds the lock (flock(2)), and `schedule run` itself
takes the same flock(2) lock (dzops.state.job_lock), adopting the descriptor flock(1) hands down,
so a run started by hand (`schedule run`, or `dzops backup`/`dzops drift` themselves) cannot
overlap a cron run either. Entries are tagged with a comment
`dzops:JOB:INVENTORY`; only tagged entries are ever listed or removed.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dzops.exceptions import UsageError
from dzops.state import job_lock, private_dir

JOBS = ("patch", "drift", "backup", "health", "data-backup", "data-backup-check")
# A job that is not a command of its own name: the dzops command line it runs.
JOB_COMMANDS = {"data-backup": ["data-backup", "run"], "data-backup-check": ["data-backup", "check"]}
TAG = "dzops"
ALREADY_RUNNING_CODE = 8  # dzops.cli.exit_codes.ExitCode.ALREADY_RUNNING (execute never imports cli)


@dataclass(frozen=True)
class Entry:
    job: str
    inventory: str
    schedule: str
    command: str
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "inventory": self.inventory, "schedule": self.schedule,
                "command": self.command, "enabled": self.enabled}


def tag(job: str, inventory: Path) -> str:
    """The comment that marks an entry as dzops' own.

    >>> tag("patch", Path("/srv/inv"))
    'dzops:patch:/srv/inv'
    """
    return f"{TAG}:{job}:{inventory}"


def parse_tag(comment: str) -> tuple[str, str] | None:
    """(job, inventory) of a dzops comment, None for anybody else's entry.

    >>> parse_tag("dzops:backup:/srv/inv")
    ('backup', '/srv/inv')
    >>> parse_tag("nightly rsync") is None
    True
    """
    head, _, rest = comment.partition(":")
    job, _, inventory = rest.partition(":")
    return (job, inventory) if head == TAG and job in JOBS and inventory else None


def job_paths(report_dir: Path | None, job: str) -> tuple[Path, Path]:
    """(lock file, log file) of a job: beside the inventory's reports, or under /var/lib/dzops.

    >>> job_paths(Path("/r"), "patch")
    (PosixPath('/r/locks/patch.lock'), PosixPath('/r/logs/patch.log'))
    """
    base = report_dir or Path("/var/lib/dzops")
    return base / "locks" / f"{job}.lock", base / "logs" / f"{job}.log"


def check_job(job: str) -> None:
    if job not in JOBS:
        raise UsageError(f"unknown job '{job}' (jobs: {', '.join(JOBS)})")


def check_cron(expression: str) -> None:
    from crontab import CronSlices

    if not CronSlices.is_valid(expression):
        raise UsageError(f"--cron: '{expression}' is not a cron schedule (e.g. \"0 2 * * 6\")")


def command_line(job: str, inventory: Path, lock: Path, log: Path, dzops: list[str] | None = None,
                 options: list[str] | tuple[str, ...] = (), report_dir: Path | None = None) -> str:
    """The shell command cron runs for a job; `options` are the global options the run gets.

    >>> command_line("patch", Path("/i"), Path("/l/patch.lock"), Path("/g/patch.log"), ["/usr/bin/dzops"])
    'flock -n -E 8 /l/patch.lock /usr/bin/dzops -i /i schedule run patch >> /g/patch.log 2>&1'
    >>> command_line("backup", Path("/i"), Path("/l/b.lock"), Path("/g/b.log"), ["dzops"],
    ...              ["--vault-password-file", "/etc/dzops/vault pass", "--limit", "routers:!site_hq"], Path("/r"))
    "flock -n -E 8 /l/b.lock dzops -i /i --vault-password-file '/etc/dzops/vault pass' --limit 'routers:!site_hq' schedule run backup --report-dir /r >> /g/b.log 2>&1"
    """
    argv = dzops or [sys.executable, "-m", "dzops"]
    inner = [*argv, "-i", str(inventory), *options, "schedule", "run", job,
             *(["--report-dir", str(report_dir)] if report_dir is not None else [])]
    return (f"flock -n -E {ALREADY_RUNNING_CODE} {shlex.quote(str(lock))} {shlex.join(inner)} "
            f">> {shlex.quote(str(log))} 2>&1")


def _crontab(tabfile: Path | None) -> Any:
    from crontab import CronTab

    if tabfile is not None:
        if not tabfile.exists():
            tabfile.parent.mkdir(parents=True, exist_ok=True)
            tabfile.touch()
        return CronTab(tabfile=str(tabfile))
    return CronTab(user=True)


def _entry(job: Any) -> Entry | None:
    tagged = parse_tag(job.comment or "")
    if tagged is None:
        return None
    return Entry(job=tagged[0], inventory=tagged[1], schedule=str(job.slices), command=job.command,
                 enabled=job.is_enabled())


def planned_entry(job: str, cron: str, inventory: Path, report_dir: Path | None,
                  options: list[str] | tuple[str, ...] = ()) -> Entry:
    """The entry `install` would write (nothing is written: --check shows this)."""
    check_job(job)
    check_cron(cron)
    inventory = inventory.resolve()
    lock, log = job_paths(report_dir, job)
    return Entry(job=job, inventory=str(inventory), schedule=cron,
                 command=command_line(job, inventory, lock, log, options=options,
                                      report_dir=report_dir.resolve() if report_dir else None))


def install(job: str, cron: str, inventory: Path, report_dir: Path | None, tabfile: Path | None = None,
            options: list[str] | tuple[str, ...] = ()) -> Entry:
    """Add (or replace) the entry of `job` for this inventory; creates its lock and log directories."""
    planned = planned_entry(job, cron, inventory, report_dir, options)
    lock, log = job_paths(report_dir, job)
    for directory in (lock.parent, log.parent):
        private_dir(directory)  # logs hold run output: the owner's only, like report_dir
    tab = _crontab(tabfile)
    comment = tag(job, Path(planned.inventory))
    tab.remove_all(comment=comment)
    item = tab.new(command=planned.command, comment=comment)
    item.setall(cron)
    tab.write()
    entry = _entry(item)
    assert entry is not None
    return entry


def planned_removal(job: str | None, inventory: Path | None, tabfile: Path | None = None) -> list[Entry]:
    """The entries `remove` would take out (nothing is written)."""
    if job is not None:
        check_job(job)
    return [e for e in entries(tabfile) if (job is None or e.job == job)
            and (inventory is None or e.inventory == str(inventory.resolve()))]


def check_secret_file(path: Path, uid: int | None = None) -> Path:
    """A vault password file cron may use: a regular file owned by the cron user, mode 0600 or 0400.

    Anything looser lets another account read (or swap) the key to every secret of the inventory.
    Returns the absolute path to record.
    """
    import stat

    uid = os.geteuid() if uid is None else uid
    try:
        info = path.stat()
    except OSError as exc:
        raise UsageError(f"--vault-password-file {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"--vault-password-file {path}: not a regular file (a script or vault id is not supported)")
    if info.st_uid != uid:
        raise UsageError(f"--vault-password-file {path}: owned by uid {info.st_uid}, not by the cron user "
                         f"(uid {uid}); chown it")
    if mode not in (0o600, 0o400):
        raise UsageError(f"--vault-password-file {path}: mode {mode:04o}; a scheduled job needs it readable only "
                         f"by its owner: chmod 600 {shlex.quote(str(path))}")
    return path.resolve()


def entries(tabfile: Path | None = None) -> list[Entry]:
    """dzops' own entries, in crontab order."""
    if tabfile is not None and not tabfile.exists():
        return []
    return [e for e in (_entry(job) for job in _crontab(tabfile)) if e is not None]


def remove(job: str | None, inventory: Path | None, tabfile: Path | None = None) -> list[Entry]:
    """Remove dzops' entries (of one job and/or one inventory, else all); others stay untouched."""
    if job is not None:
        check_job(job)
    if tabfile is not None and not tabfile.exists():
        return []
    tab = _crontab(tabfile)
    gone: list[Entry] = []
    for item in list(tab):
        entry = _entry(item)
        if entry is None:
            continue
        if job is not None and entry.job != job:
            continue
        if inventory is not None and entry.inventory != str(inventory.resolve()):
            continue
        tab.remove(item)
        gone.append(entry)
    if gone:
        tab.write()
    return gone


@contextmanager
def run_lock(lock: Path, job: str) -> Iterator[int]:
    """Hold the job's lock (dzops.state.job_lock) for the block; AlreadyRunning at once if another run holds it.

    Yields the locked descriptor: `schedule run` hands it to the job it starts as a child process
    (`pass_fds`), so the child runs under its parent's lock instead of finding it taken.
    """
    with job_lock(lock, job) as fd:
        yield fd


def job_lock_for(report_dir: Path | None, job: str) -> Any:
    """The lock a scheduled run of `job` holds, for the same job started by hand (`dzops backup`, `dzops drift`)."""
    lock, _ = job_paths(report_dir, job)
    return run_lock(lock, job)
