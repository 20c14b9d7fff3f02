"""collect_and_store: each device's scrubbed files reach the repository while the fan-out still runs
(under the repository's lock), the commit follows the last device, and a refused write commits nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dzops.cli.backup import collect_and_store
from dzops.exceptions import AlreadyRunning
from dzops.execute.backup import DeviceBackup
from dzops.report.store import StoreError, device_dir, write_and_commit
from dzops.state import file_lock

SECRET = "S3cret-Vault-Value"


def inventory(tmp_path: Path) -> Any:
    return SimpleNamespace(backup_repository=tmp_path / "backups", root=tmp_path / "inventory")


def fake_collect(repo: Path, configs: dict[str, dict[str, str]], seen: dict[str, Any]):
    """A collector calling `each` per device, as the real one does, and looking at the repository
    right after: what a device's `each` wrote is there before the next device comes in."""

    def collect(_inventory: Any, hosts: list[str], *, each: Any = None, **_: Any) -> list[DeviceBackup]:
        results = []
        for host in hosts:
            backup = DeviceBackup(host=host, site="hq", syntax="frr", files=dict(configs[host]))
            if not configs[host]:
                backup.status, backup.error = "unreachable", f"{host}: cannot reach 10.0.0.9 ({SECRET})"
            each(backup)
            folder = repo / device_dir("hq", host)
            seen[host] = {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else None
            with pytest.raises(AlreadyRunning):  # the run holds the repository while devices come in
                with file_lock(repo, "probe", timeout=0):
                    pass
            results.append(backup)
        return results

    return collect


@pytest.fixture
def no_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dzops.report.scrub.inventory_secrets", lambda _inventory: [SECRET])


@pytest.mark.parametrize(("configs", "committed", "changed"), [
    ({"r1": {"running-config": f"hostname r1\npassword {SECRET}\n"}, "r2": {"running-config": "hostname r2\n"}},
     True, {"r1", "r2"}),
    ({"r1": {"running-config": "hostname r1\n"}, "r2": {}}, True, {"r1"}),  # r2 unreachable: nothing of it written
], ids=["all-reached", "one-unreachable"])
def test_each_device_is_written_scrubbed_as_it_comes_in_then_one_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_vault: None,
        configs: dict[str, dict[str, str]], committed: bool, changed: set[str]) -> None:
    inv = inventory(tmp_path)
    seen: dict[str, Any] = {}
    monkeypatch.setattr("dzops.execute.backup.collect", fake_collect(inv.backup_repository, configs, seen))
    backups, result = collect_and_store(inv, list(configs), kind="backup")
    for host, files in configs.items():
        if files:
            assert seen[host] is not None and SECRET not in seen[host]["running-config"]
            assert seen[host]["running-config"].startswith(f"hostname {host}\n")
        else:
            assert seen[host] is None
    assert (result.commit is not None) == committed and set(result.changed) == changed
    assert all(SECRET not in (b.error or "") for b in backups)
    log = subprocess.run(["git", "-C", str(inv.backup_repository), "log", "--format=%s"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(log) == 1 and log[0].startswith("backup ")

    # the daily case: the same files again write nothing and commit nothing
    again_seen: dict[str, Any] = {}
    monkeypatch.setattr("dzops.execute.backup.collect", fake_collect(inv.backup_repository, configs, again_seen))
    _, again = collect_and_store(inv, list(configs), kind="backup")
    assert again.commit is None and again.changed == {} and again.previous == result.commit


def test_a_refused_write_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_vault: None) -> None:
    inv = inventory(tmp_path)
    write_and_commit(inv.backup_repository, [])  # the repository exists, without a commit
    configs = {"r1": {"running-config": "hostname r1\n"}, "r2": {"../../escape": "x\n"}}
    monkeypatch.setattr("dzops.execute.backup.collect", fake_collect(inv.backup_repository, configs, {}))
    with pytest.raises(StoreError, match="refusing to write"):
        collect_and_store(inv, list(configs), kind="backup")
    head = subprocess.run(["git", "-C", str(inv.backup_repository), "rev-parse", "--verify", "-q", "HEAD"],
                          capture_output=True, text=True)
    assert head.returncode != 0 and not (tmp_path / "escape").exists()


def test_check_writes_nothing_and_takes_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                no_vault: None) -> None:
    inv = inventory(tmp_path)
    first = write_and_commit(inv.backup_repository, [])
    configs = {"r1": {"running-config": "hostname r1\n"}}

    def collect(_inventory: Any, hosts: list[str], *, each: Any = None, **_: Any) -> list[DeviceBackup]:
        backup = DeviceBackup(host="r1", site="hq", syntax="frr", files=dict(configs["r1"]))
        each(backup)
        with file_lock(inv.backup_repository, "probe", timeout=0):  # free: a check holds no lock
            pass
        return [backup]

    monkeypatch.setattr("dzops.execute.backup.collect", collect)
    _, result = collect_and_store(inv, ["r1"], kind="backup", commit=False)
    assert result.commit is None and result.changed == {"r1": [f"{device_dir('hq', 'r1')}/running-config"]}
    assert first.commit is None and not (inv.backup_repository / "hq").exists()
