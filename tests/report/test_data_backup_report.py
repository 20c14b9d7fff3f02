"""The data-backup report: text per action, saved files, and its part of the weekly mail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dzops.report import data_backup as report

NOW = dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC)
BACKUP = {"action": "backup", "started": "2026-12-01T23:00:00+06:00", "hosts": [
    {"host": "punakha-hq-srv1", "status": "changed", "error": None, "data": {
        "ok": True, "repository": "sftp:dzbackup@10.30.0.22:/srv/restic/punakha-hq-srv1",
        "retention": {"daily": 7, "weekly": 4, "monthly": 6}, "forgotten": 3,
        "snapshots": [{"kind": "database", "name": "postgresql dzongkhag", "snapshot": "2952fbdf", "files": 2,
                       "bytes": 3686, "added_bytes": 5530}]}},
    {"host": "punakha-hq-web1", "status": "unreachable", "error": "repository server x unreachable", "data": {}}]}
VERIFY = {"action": "verify", "started": "2026-12-02T04:00:00+06:00", "hosts": [
    {"host": "punakha-hq-srv1", "status": "failed", "error": "verify failed", "data": {
        "check": {"ok": False, "errors": ["Pack ID does not match, want cae1, got 5cec"]},
        "items": [{"kind": "database", "name": "mariadb dzongkhag", "ok": False, "error": "row counts differ",
                   "mismatches": [{"table": "staff", "dump": 4, "restored": 3}]},
                  {"kind": "path", "name": "/srv/share", "ok": True, "snapshot": "5f718947", "files": 3}]}}]}


def test_backup_text_names_each_snapshot_and_the_retention() -> None:
    text = report.render_text(BACKUP, NOW)
    assert "data-backup backup: ok 1, failed 0, unreachable 1; 1 snapshot(s) made" in text
    assert "database postgresql dzongkhag: snapshot 2952fbdf, 2 file(s), 3.6 KiB, 5.4 KiB new" in text
    assert "retention daily 7, weekly 4, monthly 6: 3 old snapshot(s) removed" in text
    assert "punakha-hq-web1: unreachable - repository server x unreachable" in text
    assert report.subject(BACKUP, "Punakha") == "dzops data-backup backup Punakha: FAILED on 1 of 2 server(s)"


def test_verify_text_shows_the_damaged_pack_and_the_rows_that_differ() -> None:
    text = report.render_text(VERIFY, NOW)
    assert "repository check: FAILED\n    Pack ID does not match" in text
    assert "database mariadb dzongkhag: FAILED: row counts differ\n    staff: dump 4 row(s), restored 3" in text
    assert "path /srv/share: restored from 5f718947 and matching (3 file(s))" in text


def test_snapshot_list_shows_age_and_the_newest_size() -> None:
    listing = {"action": "snapshots", "hosts": [{"host": "s", "status": "ok", "data": {"snapshots": [
        {"id": "aaaa1111", "time": "2026-11-30T23:00:00.5Z", "kind": "path", "name": "/srv/share", "newest": False},
        {"id": "bbbb2222", "time": "2026-12-01T23:00:00Z", "kind": "path", "name": "/srv/share", "newest": True,
         "size": 2048}]}}]}
    lines = report.render_text(listing, NOW).splitlines()
    assert [line.split()[:1] + line.split()[2:3] for line in lines if "/srv/share" in line] == [
        ["aaaa1111", "1d"], ["bbbb2222", "30m"]]
    assert lines[-1].endswith("2.0 KiB") and not lines[-2].endswith("KiB")


def test_saved_reports_feed_the_weekly_mail(tmp_path: Path) -> None:
    json_path, text_path = report.save(BACKUP, tmp_path)
    report.save(VERIFY, tmp_path)
    assert json_path.name.startswith("data-backup-backup-") and oct(json_path.stat().st_mode)[-3:] == "600"
    text, html = report.with_latest("drift report\n", "<html><body><p>drift</p></body></html>", tmp_path)
    assert text.startswith("drift report\n\nData backups (newest runs)")
    assert "1 snapshot(s) made" in text and "Pack ID does not match" in text
    assert "<h2>Data backups</h2>" in html and html.endswith("</body></html>")
    assert report.with_latest("t", "h", tmp_path / "none") == ("t", "h")
