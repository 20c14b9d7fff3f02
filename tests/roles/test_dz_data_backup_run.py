"""roles/dz_data_backup/files/dz_data_backup_run.py, the backup action's one process, run as the role
runs it (python3 SCRIPT PLAN) with stand-ins for restic and mariadb-dump on PATH that answer as
restic 0.14 does and log every call. The lab tests run it against real restic, PostgreSQL and MariaDB;
these cover the branches a lab cannot provoke on demand (a wrong password, a lock left by a killed run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "dz_data_backup" / "files" / "dz_data_backup_run.py"

# Answers by restic subcommand: (exit code, stdout, stderr); "forget*" answers only the first forget.
FAKE_RESTIC = r'''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
while args and args[0] in ("-r", "-o"):
    args = args[2:]
command = args[0]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join([command] + args[1:]) + "\n")
answers = json.loads(os.environ["FAKE_ANSWERS"])
times = sum(1 for line in open(os.environ["FAKE_LOG"]) if line.split()[0] == command)
answer = answers.get(command + "*") if command + "*" in answers and times == 1 else answers.get(command)
code, out, err = answer or (0, "", "")
if command == "backup" and answer is None:
    out = json.dumps({"message_type": "summary", "snapshot_id": "abcdef0123456789", "total_files_processed": 1,
                      "total_bytes_processed": 10, "data_added": 10, "total_duration": 0.1})
sys.stdout.write(out); sys.stderr.write(err); sys.exit(code)
'''

FAKE_DUMP = r'''#!/bin/sh
if [ -n "$FAKE_DUMP_FAIL" ]; then echo "partial row" ; echo "mariadb-dump: Got error: 1049: Unknown database" >&2; exit 2; fi
echo "INSERT INTO t VALUES (1);"
'''

DOWN = (1, "", "Fatal: unable to open repository at sftp:dz-repo-web1:/srv/r: ssh: connect to host 10.30.0.22 "
              "port 22: Connection refused\nunable to start the sftp session, error: EOF\n")
MISSING = (1, "", "Fatal: unable to open config file: Lstat: file does not exist\n"
                  "Is there a repository at the following location?\n")
WRONG_PASSWORD = (1, "", "Fatal: wrong password or no key found\n")
LOCKED = (1, "", "unable to create lock in backend: repository is already locked exclusively by PID 4242 on "
                 "punakha-hq-srv1 by root (UID 0, GID 0)\n")
FORGOT_TWO = (0, '[{"keep": [{}], "remove": [{}, {}]}]', "")


def plan(staging: Path, *, database: bool = False) -> dict:
    items = [{"kind": "path", "label": "/srv/share", "tags": ["dzops", "kind=path", "path=/srv/share"],
              "sources": ["/srv/share"], "excludes": ["*.tmp"], "files": []}]
    if database:
        items.insert(0, {"kind": "database", "label": "mariadb dzongkhag",
                         "tags": ["dzops", "kind=database", "engine=mariadb", "name=dzongkhag"],
                         "sources": [f"{staging}/mariadb-dzongkhag.sql", f"{staging}/mariadb-dzongkhag.sql.sha256"],
                         "excludes": [], "files": ["mariadb-dzongkhag.sql", "mariadb-dzongkhag.sql.sha256"]})
    return {"host": "punakha-hq-srv1", "staging": str(staging), "postgres_user": "postgres",
            "mariadb_dump_args": ["--single-transaction"], "items": items,
            "repos": [{"host": "punakha-hq-web1", "url": "sftp:dzbackup@10.30.0.22:/srv/r",
                       "args": ["-r", "sftp:dz-repo-punakha-hq-web1:/srv/r"]}],
            "retention": {"daily": 7, "weekly": 4, "monthly": 6}}


def run(tmp_path: Path, answers: dict, *, database: bool = False, dump_fails: bool = False) -> tuple[dict, list[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("restic", FAKE_RESTIC.replace("#!/usr/bin/env python3", f"#!{sys.executable}")),
                       ("mariadb-dump", FAKE_DUMP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    staging = tmp_path / "staging"
    log = tmp_path / "calls.log"
    log.touch()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log), "FAKE_ANSWERS": json.dumps(answers)}
    if dump_fails:
        env["FAKE_DUMP_FAIL"] = "1"
    proc = subprocess.run([sys.executable, str(SCRIPT), json.dumps(plan(staging, database=database))],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    record = json.loads(proc.stdout)
    assert (proc.returncode == 0) == record["ok"]
    return record, [line.split()[0] for line in log.read_text().splitlines()], staging


@pytest.mark.parametrize(("answers", "calls", "ok", "error", "unreachable"), [
    # the daily case: no init, no prune, no unlock (every restic removed its own lock)
    ({}, ["cat", "backup", "forget"], True, None, None),
    # a repository that does not exist yet is created, and only then
    ({"cat": MISSING}, ["cat", "init", "backup", "forget"], True, None, None),
    # a server down is never answered by a new repository; it names the repository server
    ({"cat": DOWN}, ["cat", "unlock"], False, "Connection refused", "punakha-hq-web1"),
    ({"cat": WRONG_PASSWORD}, ["cat", "unlock"], False, "wrong password", None),
    # forget found a lock of a killed run: unlock (stale locks only), forget again
    ({"forget*": LOCKED}, ["cat", "backup", "forget", "unlock", "forget"], True, None, None),
    # pruning only where forget removed something
    ({"forget": FORGOT_TWO}, ["cat", "backup", "forget", "prune"], True, None, None),
    ({"backup": (1, "", "Fatal: unable to save snapshot: sftp: no space left on device\n")},
     ["cat", "backup", "unlock"], False, "backup of /srv/share to sftp:dzbackup@10.30.0.22:/srv/r: Fatal: unable to save "
     "snapshot: sftp: no space left on device", None),
])
def test_run_steps(tmp_path: Path, answers: dict, calls: list[str], ok: bool, error: str | None,
                   unreachable: str | None) -> None:
    record, made, _ = run(tmp_path, answers)
    assert made == calls
    assert record["ok"] is ok
    if error is None:
        assert "error" not in record and record["snapshots"][0]["snapshot"] == "abcdef01"
        assert record["forgotten"] == (2 if answers.get("forget") == FORGOT_TWO else 0)
    else:
        assert error in record["error"]
    assert record.get("unreachable") == unreachable


def test_a_database_dump_lands_with_its_checksum_and_leaves_staging_empty(tmp_path: Path) -> None:
    record, made, staging = run(tmp_path, {}, database=True)
    assert record["ok"] and made.count("backup") == 2
    assert {s["name"] for s in record["snapshots"]} == {"mariadb dzongkhag", "/srv/share"}
    assert list(staging.iterdir()) == []  # the dumps live in the repository now


def test_a_failed_dump_leaves_no_partial_file_and_fails_the_run(tmp_path: Path) -> None:
    record, made, staging = run(tmp_path, {}, database=True, dump_fails=True)
    assert not record["ok"]
    assert record["error"] == "dump of mariadb dzongkhag: mariadb-dump: Got error: 1049: Unknown database"
    assert list(staging.iterdir()) == []
    # the path item was still stored; the failed run then cleared stale locks
    assert made.count("backup") == 1 and made[-1] == "unlock" and "forget" not in made
