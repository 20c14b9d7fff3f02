#!/usr/bin/env python3
"""One backup run of roles/dz_data_backup on the server itself (the `backup` action's one task).

Reads the run's plan (JSON, first argument: the items, repositories, retention, dump settings; no
secret: restic reads the password from RESTIC_PASSWORD_FILE in the environment) and prints the run's
record as one JSON object on stdout. Exit 0 when every item reached every repository.

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
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

# What restic 0.14 says for a repository that does not exist (sftp and local) ...
NO_REPOSITORY = re.compile(r"unable to open config file|does not exist|Is there a repository at the following location")
# ... and when ssh finds nobody at the repository server.
NO_ANSWER = re.compile("|".join(re.escape(s) for s in (
    "ssh: connect to host", "Connection refused", "Connection timed out", "No route to host",
    "Connection closed", "Connection reset", "unable to start the sftp session")))


class RunFailed(Exception):
    """A step that ends the run: its message goes into the record; `unreachable` names a server."""

    def __init__(self, message: str, unreachable: str = "") -> None:
        super().__init__(message)
        self.unreachable = unreachable


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


def open_repository(repo: dict[str, Any]) -> bool:
    """Create the repository only on restic's own "does not exist", never on another error (a
    server down or a wrong password must not be answered by a new, empty repository). True if made."""
    probe = restic(repo, "cat", "config")
    if probe.returncode == 0:
        return False
    if NO_REPOSITORY.search(probe.stderr):
        made = restic(repo, "init")
        if made.returncode != 0:
            raise RunFailed(f"repository {repo['url']}: init: {last_line(made.stderr)}")
        return True
    if repo.get("host") and NO_ANSWER.search(probe.stderr):
        said = next(line.strip() for line in probe.stderr.splitlines() if NO_ANSWER.search(line))
        raise RunFailed(f"repository {repo['url']}: {said[:400]}", unreachable=repo["host"])
    raise RunFailed(f"repository {repo['url']}: {last_line(probe.stderr)}")


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


def back_up(item: dict[str, Any], plan: dict[str, Any], opened: Future[None]) -> list[dict[str, Any]]:
    """Dump (a database: it needs no repository, so it starts at once) and store the item in every
    repository once they are open."""
    if item["kind"] == "database":
        engine, name = (tag.split("=", 1)[1] for tag in item["tags"][2:4])
        dump({"engine": engine, "name": name}, item, plan)
    opened.result()
    made = []
    for repo in plan["repos"]:
        proc = restic(repo, *backup_command(item, repo, plan["host"]))
        if proc.returncode != 0:
            raise RunFailed(f"backup of {item['label']} to {repo['url']}: {last_line(proc.stderr)}")
        made.append(summary(item, repo, proc.stdout))
    return made


def forget_and_prune(plan: dict[str, Any]) -> int:
    """Retention per repository; pruning reads every pack index, so only where forget removed one."""
    retention = plan["retention"]
    total = 0
    for repo in plan["repos"]:
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


def open_repositories(plan: dict[str, Any]) -> None:
    for repo in plan["repos"]:
        open_repository(repo)


def run(plan: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"ok": False, "snapshots": [], "forgotten": 0, "unlocked": False, "seconds": {}}
    started = time.monotonic()
    try:
        os.makedirs(plan["staging"], mode=0o700, exist_ok=True)
        os.chmod(plan["staging"], 0o700)
        # Every item at once: paths (the long uploads) start as soon as the repositories are open,
        # databases are dumped meanwhile and follow as each dump completes.
        with ThreadPoolExecutor(max_workers=1 + len(plan["items"])) as pool:
            opened = pool.submit(open_repositories, plan)
            futures = [pool.submit(back_up, item, plan, opened)
                       for item in sorted(plan["items"], key=lambda item: item["kind"] != "path")]
            errors = []
            for future in [opened, *futures]:
                try:
                    made = future.result()
                except RunFailed as failed:
                    errors.append(failed)
                else:
                    record["snapshots"].extend(made or [])
        if errors:
            raise errors[0]  # the repositories' own error first: it explains the items' failures
        record["seconds"]["backup"] = round(time.monotonic() - started, 2)
        record["forgotten"] = forget_and_prune(plan)
        record["ok"] = True
    except RunFailed as failed:
        record["error"] = str(failed)
        if failed.unreachable:
            record["unreachable"] = failed.unreachable
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
    plan = json.loads(sys.argv[1])
    record = run(plan)
    print(json.dumps(record))
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
