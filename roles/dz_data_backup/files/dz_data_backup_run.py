#!/usr/bin/env python3
"""roles/dz_data_backup on the server itself: the setup probe of every action, and the backup.

    python3 dz_data_backup_run.py probe ASK     (setup.yml: what is in place; the password file made right)
    python3 dz_data_backup_run.py backup PLAN   (backup.yml: the whole backup run)

Both read the repository password on standard input (the role passes it as the task's stdin: never
an argument, which ps would show, never a log line) and make the private directory (root, 0700) and
the password file (root, 0600, written only when its content differs) right; restic then reads the
password through RESTIC_PASSWORD_FILE. Each prints one JSON object on stdout.

`backup` with "check" in its plan runs only if everything setup would do is in place already: the
packages, the key, the client files (by their sha1) and the repository servers' side (a stamp this
script writes after a run that followed setup, over the repositories and the key line). Otherwise it
prints {"setup": [what differs]} and backs nothing up: the role then runs its setup and this script
again. So on an unchanged server the whole backup is one task, and setup costs round trips only when
something changed, or when a repository server refuses the key.

Why one script and not one Ansible task per step: each task costs a round trip and a module start,
and the steps depend on each other's timing, not only their order. Here every path's `restic backup`
starts at once, while the databases are still being dumped; each dump goes to its repositories as
soon as it is complete. restic allows concurrent backups into one repository (they take shared
locks). Retention, prune and `restic unlock` follow in the same process.

Python 3 standard library only: it runs with the interpreter Ansible already needs on the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# What restic 0.14 says, before it reads any key, for a repository that does not exist (sftp and local) ...
NO_REPOSITORY = re.compile(r"unable to open config file|Is there a repository at the following location")
# ... and when ssh finds nobody at the repository server.
NO_ANSWER = re.compile("|".join(re.escape(s) for s in (
    "ssh: connect to host", "Connection refused", "Connection timed out", "No route to host",
    "Connection closed", "Connection reset", "unable to start the sftp session")))
# ... and when the repository server turns the key away (its account or authorized_keys line is gone).
REFUSED = re.compile(r"Permission denied \(publickey")
STAMP = "repositories.sha256"


class RunFailed(Exception):
    """A step that ends the run: its message goes into the record; `unreachable` names a server."""

    def __init__(self, message: str, unreachable: str = "", refused: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.refused = refused


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON object of restic's --json output; other lines ignored.

    >>> json_lines('{"message_type":"status"}\\nnot json\\n[{"remove": null}]')
    [{'message_type': 'status'}, {'remove': None}]
    """
    out: list[dict[str, Any]] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            out.extend(value if isinstance(value, list) else [value])
    return out


def summary(item: dict[str, Any], repo: dict[str, Any], stdout: str) -> dict[str, Any]:
    """One snapshot made, from `restic backup --json` (its summary line), as dzops reports it.

    >>> s = summary({"kind": "path", "label": "/s", "tags": ["dzops"]}, {"url": "/r"},
    ...             '{"message_type":"summary","snapshot_id":"2952fbdf0123","total_files_processed":2,'
    ...             '"total_bytes_processed":30,"data_added":40,"total_duration":1.5}')
    >>> s["snapshot"], s["files"], s["bytes"], s["added_bytes"], s["seconds"]
    ('2952fbdf', 2, 30, 40, 1.5)
    """
    found = next((j for j in json_lines(stdout) if j.get("message_type") == "summary"), {})
    return {"kind": item.get("kind"), "name": item.get("label"), "tags": item.get("tags", []),
            "repository": repo.get("url"), "snapshot": str(found.get("snapshot_id", ""))[:8],
            "files": found.get("total_files_processed", 0), "bytes": found.get("total_bytes_processed", 0),
            "added_bytes": found.get("data_added", 0), "seconds": found.get("total_duration", 0)}


def removed(stdout: str) -> int:
    """Snapshots `restic forget --json` removed, all groups.

    >>> removed('[{"keep": [{}], "remove": [{}, {}]}, {"keep": [{}], "remove": null}]')
    2
    """
    return sum(len(group.get("remove") or []) for group in json_lines(stdout))


def last_line(text: str, limit: int = 400) -> str:
    """The last meaningful line of an error output (restic puts the reason last).

    >>> last_line("repository locked\\nFatal: unable to create lock\\n")
    'Fatal: unable to create lock'
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return (lines[-1] if lines else "failed")[:limit]


def restic(repo: dict[str, Any], *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["restic", *repo["args"], *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


class Repositories:
    """Creates a repository the first time a backup finds restic's own "does not exist", once, whichever
    item met it first; never on another error (a server down or a wrong password must not be answered
    by a new, empty repository). No separate opening step: that would cost each run a restic start and
    its key derivation (about a second) before the first byte is stored."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: set[str] = set()

    def create(self, repo: dict[str, Any]) -> None:
        with self.lock:
            if repo["url"] in self.made:
                return
            made = restic(repo, "init")
            if made.returncode != 0:
                raise RunFailed(f"repository {repo['url']}: init: {last_line(made.stderr)}")
            self.made.add(repo["url"])


def ssh_says(repo: dict[str, Any], stderr: str) -> str:
    """restic's error, or ssh's own reason when restic only says the sftp session ended: restic
    relays ssh's complaint (refused key, connection refused, host key) only if it arrives before restic
    exits, so ssh is asked once more, the same way, to run nothing (the key's forced SFTP server
    ends at once on an empty stdin)."""
    if not repo.get("ssh") or "unable to start the sftp session" not in stderr or REFUSED.search(stderr):
        return stderr
    try:
        proc = subprocess.run([*repo["ssh"], "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return stderr + "\nssh: Connection timed out"
    return proc.stderr if proc.returncode != 0 and proc.stderr.strip() else stderr


def failure(repo: dict[str, Any], what: str, stderr: str) -> RunFailed:
    """A restic failure as the record tells it: a repository server nobody answers for is named (ssh
    turning the key away also ends the sftp session: that server did answer)."""
    stderr = ssh_says(repo, stderr)
    refused = bool(repo.get("host") and REFUSED.search(stderr))
    if repo.get("host") and NO_ANSWER.search(stderr) and not refused:
        said = next(line.strip() for line in stderr.splitlines() if NO_ANSWER.search(line))
        return RunFailed(f"repository {repo['url']}: {said[:400]}", unreachable=repo["host"])
    if refused:  # ssh's own line says why; restic's last one only that the session ended
        said = next(line.strip() for line in stderr.splitlines() if REFUSED.search(line))
        return RunFailed(f"{what}: {said[:400]}", refused=True)
    return RunFailed(f"{what}: {last_line(stderr)}")


def dump_command(db: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """pg_dump -Fc and mariadb-dump --single-transaction: each reads one consistent snapshot of a
    database that stays in use.

    >>> dump_command({"engine": "postgresql", "name": "d"}, {"postgres_user": "postgres"})
    ['runuser', '-u', 'postgres', '--', 'pg_dump', '-Fc', '--no-password', 'd']
    >>> dump_command({"engine": "mariadb", "name": "d"}, {"mariadb_dump_args": ["--single-transaction"]})
    ['mariadb-dump', '--single-transaction', 'd']
    """
    if db["engine"] == "postgresql":
        return ["runuser", "-u", plan["postgres_user"], "--", "pg_dump", "-Fc", "--no-password", db["name"]]
    return ["mariadb-dump", *plan["mariadb_dump_args"], db["name"]]


def dump(db: dict[str, Any], item: dict[str, Any], plan: dict[str, Any]) -> None:
    """The dump goes to a temporary name first and is renamed when complete, with its sha256 beside
    it: a failed dump never replaces a good one, and restic never stores half a file."""
    staging = plan["staging"]
    dump_file, sum_file = (os.path.join(staging, name) for name in item["files"])
    partial = dump_file + ".tmp"
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        proc = subprocess.Popen(dump_command(db, plan), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        for block in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            digest.update(block)
            out.write(block)
        error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            os.unlink(partial)
            raise RunFailed(f"dump of {item['label']}: {last_line(error)}")
    with open(sum_file, "w", encoding="utf-8") as out:  # the format `sha256sum --check` reads
        out.write(f"{digest.hexdigest()}  {os.path.basename(dump_file)}\n")
    os.replace(partial, dump_file)


def backup_command(item: dict[str, Any], repo: dict[str, Any], host: str) -> list[str]:
    """One snapshot per item, tagged with its kind and name: retention groups by them
    (forget --group-by host,tags) and restore finds the newest of each.

    >>> backup_command({"tags": ["dzops", "kind=path", "path=/s"], "excludes": ["*.tmp"], "sources": ["/s"]},
    ...                {"args": ["-r", "/r"]}, "srv1")
    ['backup', '--json', '--host', 'srv1', '--tag', 'dzops,kind=path,path=/s', '--exclude=*.tmp', '/s']
    """
    return (["backup", "--json", "--host", host, "--tag", ",".join(item["tags"])]
            + [f"--exclude={pattern}" for pattern in item["excludes"]] + list(item["sources"]))


def back_up(item: dict[str, Any], plan: dict[str, Any], repositories: Repositories) -> list[dict[str, Any]]:
    """Dump (a database) and store the item in every repository, creating one that does not exist."""
    if item["kind"] == "database":
        engine, name = (tag.split("=", 1)[1] for tag in item["tags"][2:4])
        dump({"engine": engine, "name": name}, item, plan)
    made = []
    for repo in plan["repos"]:
        proc = restic(repo, *backup_command(item, repo, plan["host"]))
        if proc.returncode != 0 and NO_REPOSITORY.search(proc.stderr):
            repositories.create(repo)
            proc = restic(repo, *backup_command(item, repo, plan["host"]))
        if proc.returncode != 0:
            raise failure(repo, f"backup of {item['label']} to {repo['url']}", proc.stderr)
        made.append(summary(item, repo, proc.stdout))
    return made


def forget_and_prune(plan: dict[str, Any], created: set[str]) -> int:
    """Retention per repository; pruning reads every pack index, so only where forget removed one.
    A repository this run created holds one snapshot per item, this run's: no policy removes a
    group's newest, so forget is not started there."""
    retention = plan["retention"]
    total = 0
    for repo in plan["repos"]:
        if repo["url"] in created:
            continue
        proc = restic(repo, "forget", "--json", "--host", plan["host"], "--tag", "dzops", "--group-by", "host,tags",
                      "--keep-daily", str(retention.get("daily", 0)), "--keep-weekly", str(retention.get("weekly", 0)),
                      "--keep-monthly", str(retention.get("monthly", 0)))
        if proc.returncode != 0 and "locked" in proc.stderr:
            # forget needs the repository alone: a lock left by a run that was killed (stale) goes,
            # a live one stays, and forget is tried once more.
            restic(repo, "unlock", timeout=120)
            proc = restic(repo, *proc.args[1 + len(repo["args"]):])
        if proc.returncode != 0:
            raise RunFailed(f"forget in {repo['url']}: {last_line(proc.stderr)}")
        count = removed(proc.stdout)
        if count:
            pruned = restic(repo, "prune")
            if pruned.returncode != 0:
                raise RunFailed(f"prune in {repo['url']}: {last_line(pruned.stderr)}")
        total += count
    return total


def owned_by_root(path: str, mode: int) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == 0 and info.st_gid == 0 and stat.S_IMODE(info.st_mode) == mode


def installed(packages: list[str]) -> set[str]:
    """Those of `packages` installed, by name or as a virtual package an installed one provides
    (Debian's postgresql-client-15 provides postgresql-client, as apt counts it)."""
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Provides}\n"],
                          capture_output=True, text=True, check=False)
    names = set()
    for line in proc.stdout.splitlines():
        status, _, rest = line.partition("|")
        if status.strip() != "ii":
            continue
        package, _, provides = rest.partition("|")
        names.add(package)
        names.update(entry.split()[0] for entry in provides.split(",") if entry.strip())
    return names & set(packages)


def private_directory(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chown(path, 0, 0)
    os.chmod(path, 0o700)


def password_in_place(etc: str, password: bytes) -> bool:
    """The private directory and the password file made right; True when the file was (re)written."""
    private_directory(etc)
    return write_if_changed(os.path.join(etc, "password"), password)


def missing(packages: list[str]) -> list[str]:
    """Those of `packages` not installed, in their order."""
    have = installed(packages) if packages else set()
    return [p for p in packages if p not in have]


def write_if_changed(path: str, content: bytes) -> bool:
    """True when the file was (re)written: missing, another content, owner or mode. Through a
    temporary file renamed over it, so restic never reads half a password."""
    if owned_by_root(path, 0o600):
        with open(path, "rb") as handle:
            if handle.read() == content:
                return False
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return True


def file_sha1(path: str) -> str:
    """The sha1 of a client file that is root's and 0600; "" for any other (setup writes it again)."""
    if not owned_by_root(path, 0o600):
        return ""
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read()).hexdigest()


def public_key(etc: str) -> str:
    if not os.path.exists(os.path.join(etc, "id_ed25519")):
        return ""
    try:
        with open(os.path.join(etc, "id_ed25519.pub"), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def access_stamp(plan: dict[str, Any], pubkey: str) -> str:
    """What the repository servers were set up for: each SFTP repository (server, account, path) and
    the key line its authorized_keys holds. A change to any of them sends the run through setup.

    >>> a = access_stamp({"sftp_server": "/s", "repos": [{"host": "w", "user": "u", "path": "/r", "kind": "sftp"}]}, "k")
    >>> a == access_stamp({"sftp_server": "/s", "repos": [{"host": "w", "user": "u", "path": "/r2", "kind": "sftp"}]}, "k")
    False
    """
    sftp = sorted((r["host"], r["user"], r["path"]) for r in plan["repos"] if r.get("kind") == "sftp")
    line = f'restrict,command="{plan.get("sftp_server", "")}" {pubkey}'
    return hashlib.sha256(json.dumps([sftp, line]).encode()).hexdigest()


def setup_needed(plan: dict[str, Any]) -> list[str]:
    """What of setup is not in place (empty: the backup can run without it)."""
    check, etc = plan["check"], plan["etc"]
    needed = []
    if missing(check.get("packages") or []):
        needed.append("packages")
    for repo in plan["repos"]:
        if repo.get("kind") == "local" and not owned_by_root(repo["path"], 0o700):
            needed.append(f"repository directory {repo['path']}")
    if any(repo.get("kind") == "sftp" for repo in plan["repos"]):
        pubkey = public_key(etc)
        if not pubkey:
            needed.append("backup key")
        needed += [name for name, digest in sorted(check.get("files", {}).items())
                   if file_sha1(os.path.join(etc, name)) != digest]
        try:
            with open(os.path.join(etc, STAMP), encoding="utf-8") as handle:
                stamp = handle.read().strip()
        except OSError:
            stamp = ""
        if pubkey and stamp != access_stamp(plan, pubkey):
            needed.append("repository servers")
    return needed


def probe(ask: dict[str, Any], password: bytes) -> dict[str, Any]:
    """setup.yml's one task: the password file made right, and what else is in place."""
    etc = ask["etc"]
    password_changed = password_in_place(etc, password)
    return {"missing": missing(ask.get("packages") or []), "password_changed": password_changed,
            "pubkey": public_key(etc), "files": {name: file_sha1(os.path.join(etc, name)) for name in ask.get("files") or []}}


def run(plan: dict[str, Any], password: bytes) -> dict[str, Any]:
    etc = plan["etc"]
    password_changed = password_in_place(etc, password)
    if plan.get("check"):
        needed = setup_needed(plan)
        if needed:
            return {"setup": needed, "password_changed": password_changed}
    record: dict[str, Any] = {"ok": False, "snapshots": [], "forgotten": 0, "unlocked": False, "seconds": {},
                              "password_changed": password_changed}
    started = time.monotonic()
    repositories = Repositories()
    try:
        os.makedirs(plan["staging"], mode=0o700, exist_ok=True)
        os.chmod(plan["staging"], 0o700)
        # Every item at once: paths (the long uploads) start at once, databases are dumped meanwhile
        # and follow as each dump completes. restic's shared locks let backups into one repository
        # run side by side.
        with ThreadPoolExecutor(max_workers=len(plan["items"]) or 1) as pool:
            futures = [pool.submit(back_up, item, plan, repositories)
                       for item in sorted(plan["items"], key=lambda item: item["kind"] != "path")]
            errors = []
            for future in futures:
                try:
                    record["snapshots"].extend(future.result())
                except RunFailed as failed:
                    errors.append(failed)
        if errors:  # a repository server nobody answers for explains the other failures: it comes first
            raise sorted(errors, key=lambda failed: not failed.unreachable)[0]
        record["seconds"]["backup"] = round(time.monotonic() - started, 2)
        record["forgotten"] = forget_and_prune(plan, repositories.made)
        record["ok"] = True
        if any(repo.get("kind") == "sftp" for repo in plan["repos"]) and not plan.get("check"):
            # This run followed setup and every repository server took the key: remember for what.
            write_if_changed(os.path.join(etc, STAMP), access_stamp(plan, public_key(etc)).encode())
    except RunFailed as failed:
        record["error"] = str(failed)
        if failed.unreachable:
            record["unreachable"] = failed.unreachable
        if failed.refused and plan.get("check"):
            # A repository server no longer takes the key: setup puts its side back, then a new run.
            stamp = os.path.join(etc, STAMP)
            if os.path.exists(stamp):
                os.unlink(stamp)
            record["setup"] = ["repository servers (the key was refused)"]
    finally:
        for item in plan["items"]:
            for name in item.get("files", []):
                for path in (os.path.join(plan["staging"], name), os.path.join(plan["staging"], name + ".tmp")):
                    if os.path.exists(path):
                        os.unlink(path)
        # Every restic that exited normally removed its own lock. After a failure (a restic killed by
        # a dropped connection, say) `restic unlock` removes the stale ones, never a live one.
        record["unlocked"] = record["ok"] or all(
            restic(repo, "unlock", timeout=120).returncode == 0 for repo in plan["repos"])
        record["seconds"]["total"] = round(time.monotonic() - started, 2)
    return record


def main() -> int:
    mode, argument = sys.argv[1], json.loads(sys.argv[2])
    password = sys.stdin.buffer.read()
    if mode == "probe":
        print(json.dumps(probe(argument, password)))
        return 0
    record = run(argument, password)
    print(json.dumps(record))
    return 0 if record.get("ok") or record.get("setup") else 1


if __name__ == "__main__":
    sys.exit(main())
