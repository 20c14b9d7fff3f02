"""roles/dz_data_backup without a lab: its filters (doctests and restic JSON read back), the verify
script's row counting, and that the playbook parses (the lab tests run it for real)."""

from __future__ import annotations

import doctest
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "dz_data_backup"


def _load(path: Path, name: str):  # loaded by path, as Ansible loads filter plugins
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTERS = _load(ROLE / "filter_plugins" / "dz_data_backup.py", "dz_data_backup_filters")
VERIFY = _load(ROLE / "files" / "dz_verify_database.py", "dz_verify_database")
RUN = _load(ROLE / "files" / "dz_data_backup_run.py", "dz_data_backup_run")


def test_filter_doctests() -> None:
    result = doctest.testmod(FILTERS)
    assert result.attempted >= 8 and result.failed == 0


def test_backup_summaries_come_from_restic_json_not_text() -> None:
    stdout = ('{"message_type":"status","percent_done":0.5}\n'
              '{"message_type":"summary","files_new":2,"data_added":5530,"total_files_processed":2,'
              '"total_bytes_processed":3686,"total_duration":1.2,"snapshot_id":"2952fbdf0123456789"}\n')
    summary = RUN.summary({"kind": "database", "label": "postgresql dzongkhag", "tags": ["dzops"]},
                          {"url": "sftp:dzbackup@10.30.0.22:/srv/restic/s"}, stdout)
    assert summary == {"kind": "database", "name": "postgresql dzongkhag", "tags": ["dzops"],
                       "repository": "sftp:dzbackup@10.30.0.22:/srv/restic/s", "snapshot": "2952fbdf", "files": 2,
                       "bytes": 3686, "added_bytes": 5530, "seconds": 1.2}


def test_run_and_probe_script_doctests() -> None:
    result = doctest.testmod(RUN)
    assert result.attempted >= 8 and result.failed == 0


def test_snapshot_list_marks_each_items_newest_with_its_size() -> None:
    snaps = ('[{"id":"a1000000","time":"2026-12-01T01:00:00Z","paths":["/srv/share"],"tags":["dzops","kind=path","path=/srv/share"]},'
             '{"id":"b2000000","time":"2026-12-02T01:00:00Z","paths":["/srv/share"],"tags":["dzops","kind=path","path=/srv/share"]},'
             '{"id":"c3000000","time":"2026-12-01T01:00:00Z","paths":["/s/p.dump"],'
             '"tags":["dzops","kind=database","engine=postgresql","name=d"]}]')
    listed = FILTERS.snapshot_list(snaps, [{"item": "b2000000", "stdout": '{"total_size": 2048}'},
                                           {"item": "c3000000", "stdout": '{"total_size": 99}'}])
    assert [(s["id"], s["kind"], s["name"], s["newest"], s["size"]) for s in listed] == [
        ("a1000000", "path", "/srv/share", False, None), ("c3000000", "database", "postgresql d", True, 99),
        ("b2000000", "path", "/srv/share", True, 2048)]


def test_mariadb_dump_rows_are_counted_per_table(tmp_path: Path) -> None:
    dump = tmp_path / "d.sql"
    dump.write_text("CREATE TABLE `gewogs` (\n  `id` int\n);\nINSERT INTO `gewogs` VALUES (1,'Barp',412);\n"
                    "INSERT INTO `gewogs` VALUES (2,'Chhubu',389);\nCREATE TABLE `empty` (\n  `id` int\n);\n")
    assert VERIFY.dump_rows_mariadb(str(dump)) == {"gewogs": 2, "empty": 0}


def test_postgresql_copy_blocks_are_counted_per_table() -> None:
    sql = ["SET x = 1;\n", "COPY public.gewogs (id, name) FROM stdin;\n", "1\tBarp\n", "2\tChhubu\n", "\\.\n",
           'COPY public."Staff" (id) FROM stdin;\n', "\\.\n", "SELECT 1;\n"]
    assert VERIFY.rows_in_copy_sql(sql) == {"public.gewogs": 2, "public.Staff": 0}


def test_playbook_parses() -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check",
                           "-i", str(ROOT / "inventory" / "hosts.yml"), str(ROOT / "playbooks" / "data_backup.yml")],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
