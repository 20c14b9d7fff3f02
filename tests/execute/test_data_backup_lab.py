"""`dzops data-backup` against the lab: real PostgreSQL and MariaDB on punakha-hq-srv1, restic over
SFTP to punakha-hq-web1, the lab's SMTP server for mail.

The tests run in order on one repository (each leaves the databases and files as it found them).
Every CLI run goes through the console entry point in a subprocess with a private copy of the lab
inventory (report_dir in this module's temp dir); every output is kept for the secrets test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode

pytestmark = pytest.mark.lab

SRV, REPO_HOST = "punakha-hq-srv1", "punakha-hq-web1"
REPO = "/srv/restic/punakha-hq-srv1"
PASSWORD = "Restic-Demo-Repo-2026"  # the sample vault's vault_data_backup_password
SCAN = "/srv/share/forms/scan-0001.pdf"
ITEMS = {("database", "postgresql dzongkhag"), ("database", "mariadb dzongkhag"), ("path", "/srv/share")}


@dataclass
class Env:
    inventory_dir: Path
    reports: Path
    maildir: Path
    lab: object
    env: dict[str, str]
    captured: list[str] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "dzops", "-i", str(self.inventory_dir), *args], env=self.env,
                              capture_output=True, text=True, timeout=900, check=False)
        self.captured += [proc.stdout, proc.stderr]
        return proc

    def console(self, node: str, script: str) -> str:
        proc = self.lab.exec(node, ["sh", "-c", script])  # type: ignore[attr-defined]
        assert proc.returncode == 0, (script, proc.stderr)
        self.captured += [proc.stdout, proc.stderr]
        return proc.stdout


@pytest.fixture(scope="module")
def db(punakha_lab, tmp_path_factory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("data-backup")
    inventory_dir = root / "inventory"
    shutil.copytree(punakha_lab.inventory_dir, inventory_dir)
    reports = root / "reports"
    ops = inventory_dir / "group_vars/all/operations.yml"
    ops.write_text("\n".join(f"report_dir: {reports}" if line.startswith("report_dir:") else line
                             for line in ops.read_text().splitlines()) + "\n")
    yield Env(inventory_dir=inventory_dir, reports=reports, maildir=punakha_lab.state_dir / "mail",
              lab=punakha_lab.lab, env=punakha_lab.env())


def psql(env: Env, sql: str) -> str:
    return env.console(SRV, f"runuser -u postgres -- psql -Atq -v ON_ERROR_STOP=1 -d dzongkhag -c {_quote(sql)}").strip()


def mariadb(env: Env, sql: str) -> str:
    return env.console(SRV, f"mariadb -N -B dzongkhag -e {_quote(sql)}").strip()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def snapshots(env: Env) -> list[dict]:
    proc = env.run("data-backup", "list", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    return host["data"]["snapshots"]


def test_backup_makes_one_snapshot_per_database_and_path(db: Env) -> None:
    proc = db.run("data-backup", "run", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    made = host["data"]["snapshots"]
    assert {(s["kind"], s["name"]) for s in made} == ITEMS
    assert all(len(s["snapshot"]) == 8 and s["bytes"] > 0 for s in made)
    listed = snapshots(db)
    assert {(s["kind"], s["name"]) for s in listed} == ITEMS
    newest = [s for s in listed if s["newest"]]
    assert len(newest) == 3 and all(s["size"] > 0 for s in newest)
    text = db.run("data-backup", "list")
    assert "ago" in text.stdout and "/srv/share" in text.stdout
    # the repository lives on the other server, owned by its SFTP-only account
    owner = db.console(REPO_HOST, f"stat -c %U:%a {REPO}").strip()
    assert owner == "dzbackup:700"
    assert db.console(SRV, "stat -c %a /etc/dzops/data-backup/password").strip() == "600"


def test_an_unchanged_server_backs_up_in_one_task_and_a_refused_key_is_put_back(db: Env) -> None:
    proc = db.run("data-backup", "run")
    assert proc.returncode == ExitCode.OK, proc.stderr
    # set up by the run before: the backup's one task, no setup step, no delegated probe
    assert "Dump, back up to every repository" in proc.stderr
    assert "What is in place on each repository server" not in proc.stderr, proc.stderr
    # someone removes the backup key on the repository server: the run notices the refusal, sets the
    # key up again (real ssh, real restic) and backs up
    keys = "/var/lib/dzbackup/.ssh/authorized_keys"
    db.console(REPO_HOST, f"sed -i '/ dzops-data-backup@{SRV}$/d' {keys}")
    again = db.run("data-backup", "run", "--json")
    assert again.returncode == ExitCode.OK, again.stderr
    assert db.console(REPO_HOST, f"grep -c ' dzops-data-backup@{SRV}$' {keys}").strip() == "1"
    [host] = json.loads(again.stdout)["hosts"]
    assert {(s["kind"], s["name"]) for s in host["data"]["snapshots"]} == ITEMS


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_row_written_backed_up_table_dropped_restored_in_place(db: Env, engine: str) -> None:
    query = psql if engine == "postgresql" else mariadb
    query(db, "INSERT INTO staff VALUES (99, 'Tshering Yangzom', 'Records Clerk', 3)")
    try:
        backup = db.run("data-backup", "run")
        assert backup.returncode == ExitCode.OK, backup.stderr
        query(db, "DROP TABLE staff")
        restore = db.run("data-backup", "restore", SRV, "--database", f"{engine}:dzongkhag", "--in-place", "--yes")
        assert restore.returncode == ExitCode.OK, restore.stderr
        assert "IN PLACE" in restore.stdout
        assert query(db, "SELECT name FROM staff WHERE id = 99") == "Tshering Yangzom"
        assert query(db, "SELECT count(*) FROM staff") == "5"
    finally:
        query(db, "DELETE FROM staff WHERE id = 99")


def test_restore_without_in_place_leaves_live_data_alone(db: Env) -> None:
    mariadb(db, "UPDATE gewogs SET households = 1 WHERE id = 1")
    try:
        proc = db.run("data-backup", "restore", SRV, "--database", "mariadb:dzongkhag", "--to", "/var/tmp/dz-restore")
        assert proc.returncode == ExitCode.OK, proc.stderr
        assert mariadb(db, "SELECT households FROM gewogs WHERE id = 1") == "1"  # live data untouched
        dump = db.console(SRV, "cat /var/tmp/dz-restore/mariadb-dzongkhag.sql")
        assert "INSERT INTO `gewogs` VALUES (1,'Barp',412);" in dump
    finally:
        mariadb(db, "UPDATE gewogs SET households = 412 WHERE id = 1")
        db.console(SRV, "rm -rf /var/tmp/dz-restore")


def test_deleted_file_restored_byte_identical(db: Env) -> None:
    before = db.console(SRV, f"sha256sum {SCAN}").split()[0]
    db.console(SRV, f"rm {SCAN}")
    proc = db.run("data-backup", "restore", SRV, "--path", SCAN, "--in-place", "--yes")
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert db.console(SRV, f"sha256sum {SCAN}").split()[0] == before


def test_in_place_without_yes_asks_and_a_no_restores_nothing(db: Env) -> None:
    proc = subprocess.run([sys.executable, "-m", "dzops", "-i", str(db.inventory_dir), "data-backup", "restore", SRV,
                           "--path", SCAN, "--in-place"], env=db.env, input="n\n", capture_output=True, text=True,
                          timeout=300, check=False)
    db.captured += [proc.stdout, proc.stderr]
    assert proc.returncode == ExitCode.OK and "Overwrite the live" in proc.stderr and "nothing restored" in proc.stderr


def test_retention_keeps_one_snapshot_per_day_of_each_item(db: Env) -> None:
    # keep-daily keeps the newest snapshot of each day: earlier ones of today are forgotten and pruned
    proc = db.run("data-backup", "run", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    assert host["data"]["forgotten"] >= 3 and host["data"]["retention"] == {"daily": 7, "weekly": 4, "monthly": 6}
    listed = snapshots(db)
    assert sorted((s["kind"], s["name"]) for s in listed) == sorted(ITEMS)
    assert {s["id"] for s in listed} == {s["snapshot"] for s in host["data"]["snapshots"]}


def test_verify_restores_into_scratch_and_compares(db: Env) -> None:
    proc = db.run("data-backup", "verify", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    items = {(i["kind"], i["name"]): i for i in host["data"]["items"]}
    assert set(items) == ITEMS and all(i["ok"] for i in items.values())
    assert items["database", "postgresql dzongkhag"]["rows"] == 19 and items["database", "mariadb dzongkhag"]["tables"] == 3
    assert items["path", "/srv/share"]["files"] == 3
    # the scratch databases and directory are gone again
    assert "dzverify" not in psql(db, "SELECT string_agg(datname, ',') FROM pg_database")
    assert "dzverify" not in mariadb(db, "SHOW DATABASES")
    assert db.console(SRV, "ls /var/tmp").find("dzops-verify") == -1


def test_repository_server_down_fails_cleanly_with_exit_5_and_a_mail(db: Env) -> None:
    from dzops.lab.smtp import read_mail

    mails_before = len(read_mail(db.maildir))
    db.lab.stop_daemon(REPO_HOST, "sshd")  # type: ignore[attr-defined]
    try:
        proc = db.run("schedule", "run", "data-backup")
    finally:
        db.lab.start_daemon(REPO_HOST, "sshd")  # type: ignore[attr-defined]
    assert proc.returncode == ExitCode.UNREACHABLE, (proc.stdout, proc.stderr)
    assert "repository server punakha-hq-web1 unreachable" in proc.stdout + proc.stderr
    mails = read_mail(db.maildir)[mails_before:]
    assert len(mails) == 1 and "data-backup" in mails[0]["Subject"] and "FAILED" in mails[0]["Subject"]
    assert list((db.reports / "schedule-failures").glob("data-backup-*.txt"))
    # no restic lock left behind: the next run finds the repository free and succeeds
    assert db.console(REPO_HOST, f"ls -A {REPO}/locks").strip() == ""
    again = db.run("data-backup", "run")
    assert again.returncode == ExitCode.OK, again.stderr
    assert db.console(REPO_HOST, f"ls -A {REPO}/locks").strip() == ""


def test_verify_detects_a_corrupted_pack(db: Env) -> None:
    pack = db.console(REPO_HOST, f"ls -S {REPO}/data/*/* | head -1").strip()
    db.console(REPO_HOST, f"printf XXXXXXXXXXXXXXXX | dd of={pack} bs=1 seek=64 conv=notrunc 2>/dev/null")
    proc = db.run("data-backup", "verify")
    assert proc.returncode == ExitCode.HOSTS_FAILED, proc.stdout
    assert "repository check: FAILED" in proc.stdout and "Pack ID does not match" in proc.stdout
    check = db.run("data-backup", "check")
    assert check.returncode == ExitCode.HOSTS_FAILED and "Pack ID does not match" in check.stdout


def test_the_repository_password_appears_in_no_output(db: Env) -> None:
    assert db.captured, "the tests above ran dzops"
    leaked = [text for text in db.captured if PASSWORD in text]
    assert not leaked, leaked[0][:300]
    for path in db.reports.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path
    from dzops.lab.smtp import read_mail

    for mail in read_mail(db.maildir):
        assert PASSWORD not in mail.as_string()
    # and never on a process list or in the server's logs: only in its 0600 password file
    found = db.console(SRV, f"grep -rl {_quote(PASSWORD)} /etc /var/log /root /tmp 2>/dev/null || true").split()
    assert found == ["/etc/dzops/data-backup/password"], found
