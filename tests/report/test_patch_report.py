"""The patch report: text and JSON from a run's results, one pair of files per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dzops.execute.patch import PatchRun
from dzops.models import HostResult
from dzops.report.patch import render_text, save, subject, summary_line


def _run(check: bool = False, stopped: bool = False) -> PatchRun:
    srv = HostResult(host="srv1", status="changed", changed=True, data={
        "upgraded": [{"name": "dz-motd", "from": "1.0", "to": "1.1"},
                     {"name": "dz-newdep", "from": None, "to": "2.0"}],
        "pending": [{"name": "dz-motd", "from": "1.0", "to": "1.1", "origin": "lab"}],
        "reboot_required": True, "rebooted": False, "reboot_allowed": False})
    web = HostResult(host="web1", status="unreachable", error="Gathering Facts: ssh: connect refused")
    late = HostResult(host="db1", status="skipped", error="not run: the play stopped")
    return PatchRun(started="2025-01-04T02:00:00+06:00", check=check, batch=[1, "25%"], max_fail=10,
                    stopped=stopped, hosts=[srv, web, late])


@pytest.mark.parametrize(("check", "expected"), [
    (False, "  dz-motd 1.0 -> 1.1\n  dz-newdep (none) -> 2.0\n"),
    (True, "  dz-motd 1.0 -> 1.1\n"),
], ids=["upgrade-lists-upgraded", "check-lists-pending"])
def test_text_lists_each_package_from_to(check: bool, expected: str) -> None:
    text = render_text(_run(check=check).to_dict())
    assert f"srv1: changed\n{expected}" in text


@pytest.mark.parametrize(("line", "present"), [
    ("web1: unreachable - Gathering Facts: ssh: connect refused", True),
    ("db1: not run - not run: the play stopped", True),
    ("REBOOT REQUIRED, not rebooted (reboots disabled for this run)", True),
    ("mode: upgrade (all updates); batches 1,25%; max fail 10%", True),
], ids=["unreachable", "not-run", "reboot-gated", "header"])
def test_text_says_what_happened_to_each_host(line: str, present: bool) -> None:
    assert (line in render_text(_run().to_dict())) is present


@pytest.mark.parametrize(("stopped", "tail"), [
    (False, "ok 0, changed 1, failed 0, unreachable 1, not run 1; 2 package(s) upgraded"),
    (True, "ok 0, changed 1, failed 0, unreachable 1, not run 1; 2 package(s) upgraded; run stopped early"),
], ids=["finished", "stopped"])
def test_summary_line(stopped: bool, tail: str) -> None:
    assert summary_line(_run(stopped=stopped).to_dict()) == tail


def test_each_run_gets_its_own_files_and_json_round_trips(tmp_path: Path) -> None:
    first = save(_run().to_dict(), tmp_path / "reports")
    second = save(_run().to_dict(), tmp_path / "reports")
    assert first != second and len(list((tmp_path / "reports").iterdir())) == 4
    data = json.loads(first[0].read_text())
    assert data["hosts"][0]["data"]["upgraded"][0] == {"name": "dz-motd", "from": "1.0", "to": "1.1"}
    assert first[1].read_text() == render_text(data)


@pytest.mark.parametrize(("check", "name_end"), [(True, "-check"), (False, "")], ids=["check", "upgrade"])
def test_check_runs_are_named_apart(tmp_path: Path, check: bool, name_end: str) -> None:
    json_path, _ = save(_run(check=check).to_dict(), tmp_path)
    assert json_path.stem.endswith(name_end) and json_path.stem.startswith("patch-")
    assert json_path.stem.endswith("-check") is check


def test_subject_flags_failures() -> None:
    assert subject(_run().to_dict(), "Punakha") == "dzops patch Punakha: FAILED on 2 of 3 host(s)"
