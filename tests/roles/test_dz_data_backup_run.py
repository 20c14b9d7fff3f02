"""roles/dz_data_backup/files/dz_data_backup_run.py, the backup action's one process and setup's probe,
run as the role runs them (python3 SCRIPT backup|probe JSON, the password on stdin) with stand-ins for
restic and mariadb-dump on PATH that answer as restic 0.14 does and log every call. The lab tests run it against real restic, PostgreSQL and MariaDB;
these cover the branches a lab cannot provoke on demand (a wrong password, a lock left by a killed run).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "dz_data_backup" / "files" / "dz_data_backup_run.py"

# Answers by restic subcommand: (exit code, stdout, stderr); "forget*" answers only the first forget,
# "backup?" every backup until an init was made (a repository that does not exist yet, as several
# items running at once meet it).
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
initialised = any(line.split()[0] == "init" for line in open(os.environ["FAKE_LOG"]))
answer = answers.get(command + "*") if command + "*" in answers and times == 1 else answers.get(command)
if command + "?" in answers and not initialised:
    answer = answers[command + "?"]
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
REFUSED = (1, "", "Fatal: unable to open repository at sftp:dz-repo-web1:/srv/r: dzbackup@10.30.0.22: Permission denied "
                  "(publickey).\nunable to start the sftp session, error: EOF\n")
PASSWORD = b"s3cret-restic-password"


def plan(staging: Path, *, database: bool = False) -> dict:
    items = [{"kind": "path", "label": "/srv/share", "tags": ["dzops", "kind=path", "path=/srv/share"],
              "sources": ["/srv/share"], "excludes": ["*.tmp"], "files": []}]
    if database:
        items.insert(0, {"kind": "database", "label": "mariadb dzongkhag",
                         "tags": ["dzops", "kind=database", "engine=mariadb", "name=dzongkhag"],
                         "sources": [f"{staging}/mariadb-dzongkhag.sql", f"{staging}/mariadb-dzongkhag.sql.sha256"],
                         "excludes": [], "files": ["mariadb-dzongkhag.sql", "mariadb-dzongkhag.sql.sha256"]})
    return {"host": "punakha-hq-srv1", "etc": str(staging.parent / "etc"), "staging": str(staging),
            "postgres_user": "postgres", "mariadb_dump_args": ["--single-transaction"], "items": items,
            "repos": [{"host": "punakha-hq-web1", "kind": "sftp", "user": "dzbackup", "path": "/srv/r",
                       "url": "sftp:dzbackup@10.30.0.22:/srv/r", "args": ["-r", "sftp:dz-repo-punakha-hq-web1:/srv/r"]}],
            "retention": {"daily": 7, "weekly": 4, "monthly": 6}, "sftp_server": "/usr/lib/openssh/sftp-server",
            "check": False}


def run(tmp_path: Path, answers: dict, *, database: bool = False, dump_fails: bool = False,
        check: dict | None = None, ssh_says: str | None = None) -> tuple[dict, list[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
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
    the_plan = {**plan(staging, database=database), "check": check or False}
    if ssh_says is not None:  # ssh asked again, as the script does when restic only says the session ended
        (bin_dir / "ssh").write_text(f"#!/bin/sh\necho '{ssh_says}' >&2\nexit 255\n")
        (bin_dir / "ssh").chmod(0o755)
        the_plan["repos"][0]["ssh"] = [str(bin_dir / "ssh"), "-F", "ssh_config", "dz-repo-punakha-hq-web1"]
    proc = subprocess.run([sys.executable, str(SCRIPT), "backup", json.dumps(the_plan)], input=PASSWORD,
                          capture_output=True, env=env, timeout=60, check=False)
    record = json.loads(proc.stdout)
    assert (proc.returncode == 0) == bool(record.get("ok") or record.get("setup"))
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    log.write_text("")
    return record, calls, staging


@pytest.mark.parametrize(("answers", "calls", "ok", "error", "unreachable"), [
    # the daily case: no init, no prune, no unlock (every restic removed its own lock), no opening step
    ({}, ["backup", "forget"], True, None, None),
    # a repository that does not exist yet is created, and only then; it holds this run's snapshots
    # only, so no retention can remove one: no forget
    ({"backup?": MISSING}, ["backup", "init", "backup"], True, None, None),
    # a server down is never answered by a new repository; it names the repository server
    ({"backup": DOWN}, ["backup", "unlock"], False, "Connection refused", "punakha-hq-web1"),
    ({"backup": WRONG_PASSWORD}, ["backup", "unlock"], False, "wrong password", None),
    # forget found a lock of a killed run: unlock (stale locks only), forget again
    ({"forget*": LOCKED}, ["backup", "forget", "unlock", "forget"], True, None, None),
    # pruning only where forget removed something
    ({"forget": FORGOT_TWO}, ["backup", "forget", "prune"], True, None, None),
    ({"backup": (1, "", "Fatal: unable to save snapshot: sftp: no space left on device\n")},
     ["backup", "unlock"], False, "backup of /srv/share to sftp:dzbackup@10.30.0.22:/srv/r: Fatal: unable to save "
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


def test_two_items_meeting_a_missing_repository_create_it_once(tmp_path: Path) -> None:
    record, made, _ = run(tmp_path, {"backup?": MISSING}, database=True)
    # each item stored once after the init; the one that met the missing repository tried twice
    # (both did, if both started before the init)
    assert record["ok"] and made.count("init") == 1 and made.count("backup") in (3, 4) and "forget" not in made
    assert made.index("init") < max(i for i, call in enumerate(made) if call == "backup")
    assert len(record["snapshots"]) == 2


def _in_place(tmp_path: Path) -> dict:
    """Everything setup makes, as setup leaves it: key, client files (root's, 0600) and the stamp a run
    after setup writes. Returns the check a backup task sends."""
    record, made, _ = run(tmp_path, {})  # a run after setup: no check, writes the stamp
    assert record["ok"] and made == ["backup", "forget"]
    etc = tmp_path / "etc"
    assert (etc / "password").read_bytes() == PASSWORD and (etc / "password").stat().st_mode & 0o777 == 0o600
    (etc / "id_ed25519").write_text("private")
    (etc / "id_ed25519.pub").write_text("ssh-ed25519 AAAA dzops-data-backup@punakha-hq-srv1\n")
    files = {}
    for name, text in (("ssh_config", "Host dz-repo-punakha-hq-web1\n"), ("known_hosts", "10.30.0.22 ssh-ed25519 AAAA\n")):
        (etc / name).write_text(text)
        (etc / name).chmod(0o600)
        files[name] = hashlib.sha1(text.encode()).hexdigest()
    record, _, _ = run(tmp_path, {})  # the stamp names the key now in place
    assert record["ok"]
    return {"packages": [], "files": files}


def test_a_checked_run_backs_up_at_once_when_everything_is_in_place(tmp_path: Path) -> None:
    check = _in_place(tmp_path)
    record, made, _ = run(tmp_path, {}, check=check)
    assert record["ok"] and made == ["backup", "forget"] and "setup" not in record


@pytest.mark.parametrize(("change", "needed"), [
    ("ssh_config", ["ssh_config"]),
    ("stamp", ["repository servers"]),
    ("key", ["backup key"]),
    ("mode", ["known_hosts"]),
])
def test_a_checked_run_names_what_setup_must_do_and_backs_nothing_up(tmp_path: Path, change: str,
                                                                     needed: list[str]) -> None:
    check = _in_place(tmp_path)
    etc = tmp_path / "etc"
    if change == "ssh_config":
        (etc / "ssh_config").write_text("Host elsewhere\n")
    elif change == "stamp":  # what the repository servers were set up for changed (another path)
        check = {**check}
        (etc / "repositories.sha256").write_text("0" * 64)
    elif change == "key":
        (etc / "id_ed25519").unlink()
    else:
        (etc / "known_hosts").chmod(0o644)
    record, made, _ = run(tmp_path, {}, check=check)
    assert record["setup"] == needed and made == [] and "ok" not in record


def test_a_refused_key_sends_a_checked_run_through_setup_and_forgets_the_stamp(tmp_path: Path) -> None:
    check = _in_place(tmp_path)
    record, made, _ = run(tmp_path, {"backup": REFUSED}, check=check)
    assert record["setup"] == ["repository servers (the key was refused)"] and not record["ok"]
    assert not (tmp_path / "etc" / "repositories.sha256").exists()
    assert "Permission denied (publickey)" in record["error"] and made == ["backup", "unlock"]  # never an init: a refused key is not a missing repository
    record, _, _ = run(tmp_path, {}, check=check)
    assert record["setup"] == ["repository servers"]


def test_probe_writes_the_password_only_when_it_differs(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    ask = json.dumps({"etc": str(etc), "files": ["ssh_config"], "packages": ["surely-not-a-package-dzops"]})
    answers = [json.loads(subprocess.run([sys.executable, str(SCRIPT), "probe", ask], input=PASSWORD, capture_output=True,
                                         check=True).stdout) for _ in range(2)]
    assert [a["password_changed"] for a in answers] == [True, False]
    assert answers[0]["missing"] == ["surely-not-a-package-dzops"] and answers[0]["files"] == {"ssh_config": ""}
    assert answers[0]["pubkey"] == "" and (etc / "password").read_bytes() == PASSWORD
    assert etc.stat().st_mode & 0o777 == 0o700


SESSION_ENDED = (1, "", "Fatal: unable to open repository at sftp:dz-repo-web1:/srv/r: unable to start the sftp "
                        "session, error: EOF\n")


@pytest.mark.parametrize(("ssh_said", "setup", "unreachable", "error"), [
    ("dzbackup@10.30.0.22: Permission denied (publickey,password).", ["repository servers (the key was refused)"], None,
     "Permission denied (publickey,password)"),
    ("ssh: connect to host 10.30.0.22 port 22: Connection refused", None, "punakha-hq-web1", "Connection refused"),
    ("Host key verification failed.", None, None, "Host key verification failed."),
])
def test_when_restic_only_says_the_session_ended_ssh_is_asked_why(tmp_path: Path, ssh_said: str, setup: list | None,
                                                                  unreachable: str | None, error: str) -> None:
    check = _in_place(tmp_path)
    record, made, _ = run(tmp_path, {"backup": SESSION_ENDED}, check=check, ssh_says=ssh_said)
    assert not record["ok"] and record.get("setup") == setup and record.get("unreachable") == unreachable
    assert error in record["error"] and "init" not in made
