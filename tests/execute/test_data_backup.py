"""dzops.execute.data_backup without a lab: scope, restore targets, and outcomes read from runner events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dzops.exceptions import UsageError
from dzops.execute import data_backup
from dzops.execute.ansible import PlaybookRun, TaskEvent
from dzops.inventory.loader import load_inventory
from dzops.models import HostResult

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
SRV = "punakha-hq-srv1"


@pytest.fixture(scope="module")
def inventory() -> Any:
    return load_inventory(SAMPLE)


def test_only_servers_with_data_backups_are_in_scope(inventory: Any) -> None:
    assert data_backup.hosts_in_scope(inventory, None) == [SRV]
    assert data_backup.hosts_in_scope(inventory, "servers") == [SRV]
    with pytest.raises(UsageError, match="selects no server with data_backups"):
        data_backup.hosts_in_scope(inventory, "punakha-hq-web1")


@pytest.mark.parametrize(("database", "path", "expected"), [
    ("postgresql:dzongkhag", None, {"kind": "database", "engine": "postgresql", "name": "dzongkhag"}),
    ("mariadb:dzongkhag", None, {"kind": "database", "engine": "mariadb", "name": "dzongkhag"}),
    (None, "/srv/share", {"kind": "path", "item": "/srv/share", "path": "/srv/share"}),
    (None, "/srv/share/forms/leave.txt/", {"kind": "path", "item": "/srv/share", "path": "/srv/share/forms/leave.txt"}),
])
def test_restore_target(inventory: Any, database: str | None, path: str | None, expected: dict[str, str]) -> None:
    assert data_backup.restore_target(inventory, SRV, database, path) == expected


@pytest.mark.parametrize(("host", "database", "path", "message"), [
    (SRV, "dzongkhag", None, "is both postgresql:dzongkhag and mariadb:dzongkhag"),
    (SRV, "payroll", None, "backs up no database 'payroll'"),
    (SRV, None, "/srv/sharex/a", "backs up no path holding '/srv/sharex/a'"),
    (SRV, None, None, "--database NAME or --path PATH"),
    (SRV, "postgresql:dzongkhag", "/srv/share", "--database NAME or --path PATH"),
    ("punakha-hq-web1", "postgresql:dzongkhag", None, "has no data_backups"),
    ("nas9", None, "/srv", "unknown server 'nas9'"),
])
def test_restore_target_refused(inventory: Any, host: str, database: str | None, path: str | None,
                                message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data_backup.restore_target(inventory, host, database, path)


def _event(task: str, status: str, result: dict[str, Any]) -> TaskEvent:
    return TaskEvent(host=SRV, task=task, status=status, result=result)


def test_a_repository_server_that_does_not_answer_makes_the_host_unreachable(inventory: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = _event("Repository account on the repository server", "unreachable", {
        "msg": "All items completed", "unreachable": True,
        "results": [{"unreachable": True, "item": {"kind": "sftp", "host": "punakha-hq-web1"},
                     "msg": "Failed to connect to the host via ssh: Connection refused"}]})
    run = PlaybookRun(playbook="data_backup.yml", status="failed", rc=4,
                      hosts={SRV: HostResult(host=SRV, status="unreachable")}, events=[unreachable])
    seen: dict[str, Any] = {}

    def fake_run_playbook(root: Path, playbook: str, **kwargs: Any) -> PlaybookRun:
        seen.update(kwargs, playbook=playbook)
        return run

    monkeypatch.setattr("dzops.execute.ansible.run_playbook", fake_run_playbook)
    result = data_backup.run_action(inventory, "backup")
    [host] = result.hosts
    assert host.status == "unreachable"
    assert host.error == ("repository server punakha-hq-web1 unreachable (Repository account on the repository "
                          "server): Failed to connect to the host via ssh: Connection refused")
    assert seen["playbook"] == "data_backup.yml" and seen["extravars"] == {"dz_data_backup_action": "backup"}
    assert seen["limit"] == SRV


def test_the_record_of_the_last_event_is_the_host_data(inventory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    record = {"action": "verify", "ok": False, "error": "verify failed: /srv/share",
              "items": [{"kind": "path", "name": "/srv/share", "ok": False}]}
    events = [_event("Record the failure", "ok", {"ansible_facts": {"dz_data_backup_record": record}}),
              _event("Fail after recording", "failed", {"msg": "verify failed: /srv/share"})]
    run = PlaybookRun(playbook="data_backup.yml", status="failed", rc=2,
                      hosts={SRV: HostResult(host=SRV, status="failed", error="x")}, events=events)
    monkeypatch.setattr("dzops.execute.ansible.run_playbook", lambda *a, **k: run)
    [host] = data_backup.run_action(inventory, "verify").hosts
    assert host.status == "failed" and host.data == record and host.error == "verify: verify failed: /srv/share"


def test_restic_finding_no_repository_server_makes_the_host_unreachable(inventory: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    record = {"action": "backup", "ok": False, "unreachable": "punakha-hq-web1",
              "error": "repository sftp:x: subprocess ssh: ssh: connect to host 10.30.0.22 port 22: Connection refused\n"
                       "Fatal: unable to open repository"}
    events = [_event("Record the failure", "ok", {"ansible_facts": {"dz_data_backup_record": record}})]
    run = PlaybookRun(playbook="data_backup.yml", status="failed", rc=2,
                      hosts={SRV: HostResult(host=SRV, status="failed", error="x")}, events=events)
    monkeypatch.setattr("dzops.execute.ansible.run_playbook", lambda *a, **k: run)
    [host] = data_backup.run_action(inventory, "backup").hosts
    assert host.status == "unreachable"
    assert host.error == "repository server punakha-hq-web1 unreachable: Fatal: unable to open repository"


def test_unknown_action_is_refused(inventory: Any) -> None:
    with pytest.raises(UsageError, match="unknown data-backup action 'prune'"):
        data_backup.run_action(inventory, "prune")


@pytest.mark.parametrize(("number", "expected", "message"), [
    (1, {"dz_data_backup_repository_index": 0}, None),
    (2, None, f"--repository 2: {SRV} has 1 repository in its data_backups"),
    (0, None, "--repository: 0 is not a repository number"),
])
def test_repository_number_picks_the_repository_read(inventory: Any, number: int, expected: dict | None,
                                                     message: str | None) -> None:
    if message is None:
        assert data_backup.repository_vars(inventory, [SRV], number) == expected
    else:
        with pytest.raises(UsageError, match=message):
            data_backup.repository_vars(inventory, [SRV], number)


@pytest.mark.parametrize("command", [["verify"], ["restore", SRV, "--path", "/srv/share"]])
def test_a_repository_the_server_lacks_is_refused_before_anything_runs(command: list[str], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "dzops", "data-backup", *command, "--repository", "3"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "DZOPS_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert f"--repository 3: {SRV} has 1 repository" in proc.stderr
