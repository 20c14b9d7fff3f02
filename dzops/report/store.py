"""The git repository of configuration backups: one directory per device, one commit per run.

Layout: `<site>/<host>/<file>` (routers: `running-config`; Linux hosts: their paths under `etc/`).
Only scrubbed text is ever written here. A run commits what changed, with a summary message that
also lists the devices it could not reach; when nothing changed, there is no commit. Unreachable
devices keep their last backup: a device that did not answer has not lost its configuration.

Local git through subprocess: this touches no device, only the officer's own repository.
The repository is owner-only (0700, files 0600): scrubbed configurations still map the network.
A run writes and commits under the repository's lock, so a backup and a drift run never mix
their files into one commit.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dzops.exceptions import DzopsError
from dzops.state import file_lock, private_dir, write_private

AUTHOR = ("dzops", "dzops@localhost")
LOCK_TIMEOUT_S = 600.0  # another run's collection, writes and commit (it holds the lock from its first device in)


class StoreError(DzopsError):
    """The backup repository cannot be read or written."""


@dataclass(frozen=True)
class Snapshot:
    """A device's scrubbed files of one run, or why it has none."""

    host: str
    site: str
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # set: the device was not reached; its stored files stay as they were


@dataclass
class CommitResult:
    commit: str | None  # None: nothing changed, no commit made
    previous: str | None  # HEAD before this run (None: the repository had no commit)
    changed: dict[str, list[str]] = field(default_factory=dict)  # host -> changed files (repo paths)
    message: str = ""


@dataclass(frozen=True)
class FileChange:
    """One file that changed between two commits."""

    host: str
    site: str
    path: str  # inside the device's directory
    status: str  # added | modified | removed
    diff: str  # unified diff, scrubbed text only
    noticed: str  # ISO time of the first commit that recorded the change


def _git(repo: Path, *args: str, check: bool = True, input: str | None = None,
         date: str | None = None) -> str:
    env = {**os.environ, **({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}), "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
           "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1],
           "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, input=input,
                          timeout=120)
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise StoreError(f"git {args[0]} in {repo} failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


def ensure_repository(repo: Path) -> None:
    """Create the repository (0700) if it does not exist yet; an existing one is used as it is, made 0700."""
    try:
        private_dir(repo)
    except OSError as exc:
        raise StoreError(f"cannot create the backup repository {repo}: {exc.strerror}") from None
    if (repo / ".git").exists():
        return
    _git(repo, "init", "--quiet", "--initial-branch=main")
    # Commits must succeed on a machine where nobody configured git; identity is per repository.
    _git(repo, "config", "user.name", AUTHOR[0])
    _git(repo, "config", "user.email", AUTHOR[1])


def head(repo: Path) -> str | None:
    if not (repo / ".git").exists():
        return None
    out = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
    return out or None


def device_dir(site: str, host: str) -> str:
    """Repository directory of one device.

    >>> device_dir("talo", "gewog-talo-rtr1")
    'talo/gewog-talo-rtr1'
    """
    return f"{site}/{host}"


def commit_message(kind: str, snapshots: list[Snapshot], changed: dict[str, list[str]], when: dt.datetime) -> str:
    """One line of counts, then what changed and what could not be reached.

    >>> snaps = [Snapshot("r1", "hq", {"running-config": "x"}), Snapshot("r2", "hq", error="r2: cannot reach")]
    >>> print(commit_message("backup", snaps, {"r1": ["hq/r1/running-config"]}, dt.datetime(2026, 1, 5, 1, 30)))
    backup 2026-01-05 01:30: 2 device(s), 1 changed, 1 unreachable
    <BLANKLINE>
    changed:
      r1: hq/r1/running-config
    <BLANKLINE>
    unreachable:
      r2: cannot reach
    """
    unreachable = [s for s in snapshots if s.error]
    lines = [f"{kind} {when:%Y-%m-%d %H:%M}: {len(snapshots)} device(s), {len(changed)} changed, "
             f"{len(unreachable)} unreachable"]
    if changed:
        lines += ["", "changed:"] + [f"  {host}: {', '.join(files)}" for host, files in sorted(changed.items())]
    if unreachable:
        lines += ["", "unreachable:"] + [
            f"  {s.host}: {s.error.removeprefix(s.host + ': ') if s.error else ''}" for s in unreachable]
    return "\n".join(lines)


def write_and_commit(repo: Path, snapshots: list[Snapshot], *, kind: str = "backup",
                     when: dt.datetime | None = None) -> CommitResult:
    """Write the reachable devices' files (replacing their directories) and commit if anything changed."""
    with writing(repo) as run:
        for snap in snapshots:
            run.put(snap)
        return run.commit(snapshots, kind=kind, when=when)


@contextmanager
def writing(repo: Path) -> Iterator[StoreRun]:
    """One run's writes and commit, under the repository's lock from the first `put` to the commit.

    A fan-out puts each device's files as the device comes in (from its worker thread), so the
    comparisons and writes overlap the devices still being collected and only git is left after the
    last one.
    """
    ensure_repository(repo)
    with file_lock(repo, f"backup repository {repo}", timeout=LOCK_TIMEOUT_S):
        yield StoreRun(repo)


class StoreRun:
    """The repository while one run holds its lock (see `writing`)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def put(self, snap: Snapshot) -> None:
        """Write one reachable device's files, replacing its folder, unless it holds them already.

        Safe from several threads at once: each device writes only its own folder.
        """
        if not snap.error:
            _write_device(self.repo, snap)

    def commit(self, snapshots: list[Snapshot], *, kind: str = "backup",
               when: dt.datetime | None = None) -> CommitResult:
        """Commit what the run's puts (or an interrupted earlier run) changed; `snapshots` name the run."""
        return _commit(self.repo, snapshots, kind, when or dt.datetime.now().astimezone())


def _holds_exactly(target: Path, files: dict[str, str]) -> bool:
    """Whether a device's backup folder holds these files, byte for byte, and nothing else."""
    if not target.is_dir():
        return False
    if {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()} != set(files):
        return False
    return all((target / name).read_bytes() == text.encode() for name, text in files.items())


def _head_and_dirty(repo: Path) -> tuple[str | None, bool]:
    """HEAD (None before the first commit) and whether the work tree differs from it, in one git call."""
    out = _git(repo, "status", "--porcelain=v2", "--branch", "--untracked-files=all", "--no-renames")
    previous, dirty = None, False
    for line in out.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            previous = None if oid == "(initial)" else oid
        elif not line.startswith("# "):
            dirty = True
    return previous, dirty


def _write_device(repo: Path, snap: Snapshot) -> None:
    target = repo / device_dir(snap.site, snap.host)
    if _holds_exactly(target, snap.files):
        return  # unchanged (the daily case): not rewritten, so no fsync and git's stat cache holds
    if target.exists():
        shutil.rmtree(target)  # a file gone from the device is gone from its backup
    for name, text in snap.files.items():
        path = target / name
        if not path.resolve().is_relative_to(target.resolve()):
            raise StoreError(f"{snap.host}: refusing to write {name!r} outside {target}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, text)


def _commit(repo: Path, snapshots: list[Snapshot], kind: str, when: dt.datetime) -> CommitResult:
    # The daily case (nothing changed anywhere) is answered by one git call; staging and listing
    # what changed only when something did. HEAD is not moved by the run's puts.
    previous, dirty = _head_and_dirty(repo)
    if not dirty:
        return CommitResult(commit=None, previous=previous, changed={})
    _git(repo, "add", "--all", ".")
    status = _git(repo, "status", "--porcelain", "--no-renames").splitlines()
    changed: dict[str, list[str]] = {}
    owners = {device_dir(s.site, s.host) + "/": s.host for s in snapshots}
    for line in status:
        path = line[3:]
        for prefix, host in owners.items():
            if path.startswith(prefix):
                changed.setdefault(host, []).append(path)
    if not status:
        return CommitResult(commit=None, previous=previous, changed={})
    message = commit_message(kind, snapshots, changed, when)
    # The commit's time is the run's time: that is when the change was noticed.
    _git(repo, "commit", "--quiet", "--no-verify", "-F", "-", input=message, date=when.isoformat())
    return CommitResult(commit=head(repo), previous=previous, changed=changed, message=message)


def commit_time(repo: Path, commit: str) -> str:
    return _git(repo, "show", "-s", "--format=%cI", commit).strip()


def is_commit(repo: Path, commit: str | None) -> bool:
    if not commit or not (repo / ".git").exists():
        return False
    return subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True).returncode == 0


def changes_between(repo: Path, base: str, tip: str, hosts: dict[str, str] | None = None) -> list[FileChange]:
    """Every file changed from `base` to `tip`, with its diff and when a commit first recorded it.

    `hosts` (host -> site) limits the answer to those devices.
    """
    out = _git(repo, "diff", "--name-status", "--no-renames", base, tip)
    changes: list[FileChange] = []
    for line in out.splitlines():
        code, _, path = line.partition("\t")
        parts = path.split("/", 2)
        if len(parts) < 3:
            continue
        site, host, name = parts
        if hosts is not None and hosts.get(host) != site:
            continue
        diff = _git(repo, "diff", "--no-color", "--no-renames", "-U2", base, tip, "--", path)
        first = _git(repo, "log", "--reverse", "--format=%cI", f"{base}..{tip}", "--", path).split()
        changes.append(FileChange(
            host=host, site=site, path=name,
            status={"A": "added", "D": "removed"}.get(code[:1], "modified"),
            diff=_strip_header(diff), noticed=first[0] if first else commit_time(repo, tip)))
    return changes


def _strip_header(diff: str) -> str:
    """A unified diff from its first hunk on (git's `diff --git`, index, ---/+++ lines dropped).

    >>> _strip_header("diff --git a/x b/x\\nindex 1..2 100644\\n--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-a\\n+b\\n")
    '@@ -1 +1 @@\\n-a\\n+b'
    """
    lines = diff.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("@@"):
            return "\n".join(lines[index:])
    return ""
