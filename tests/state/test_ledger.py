"""The run ledger's tables: migration in place, one transaction per run, listings, what a retry picks."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dzops.state import db, ledger
from dzops.state.ledger import DeviceRecord, RunRecord

LEDGER_STEP = db.MIGRATIONS.index(ledger.TABLES)  # the schema version just before the ledger's tables


def _run(command: str, devices: list[DeviceRecord], started: float = 100.0, **kw: object) -> RunRecord:
    return RunRecord(command=command, argv=f"dzops {command}", user="tashi", started=started,
                     finished=started + 2.5, exit_code=int(kw.pop("exit_code", 0)), devices=devices, **kw)  # type: ignore[arg-type]


def test_the_ledger_migration_upgrades_a_health_database_in_place(tmp_path: Path) -> None:
    path = tmp_path / db.DB_NAME
    with db.connect(path, target=LEDGER_STEP) as conn:
        db.record_run(conn, 100.0, 101.0, "up", [db.Row(100.0, "link:hq-talo", "link", "talo", "up")])
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELECT * FROM ledger_runs")
    with db.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        assert [r.key for r in db.history(conn, 0)] == ["link:hq-talo"]  # the health history stays
        assert ledger.record(conn, _run("backup", [DeviceRecord("r1", "ok")])) == 1


ROUND_TRIPS = {
    "host units": [DeviceRecord("r1", "ok", seconds=0.4), DeviceRecord("sw1", "unreachable", error="no route")],
    "link units": [DeviceRecord("hq", "ok", unit="hq-talo", unit_status="rolled_back", diff="+ ip ospf cost 10"),
                   DeviceRecord("talo", "failed", unit="hq-talo", unit_status="rolled_back", error="not Full")],
    "check units": [DeviceRecord("r1", "down", unit="device:r1", error="SSH refused"),
                    DeviceRecord("r1", "up", unit="lan:talo")],
    "no devices": [],
}


@pytest.mark.parametrize("devices", list(ROUND_TRIPS.values()), ids=list(ROUND_TRIPS))
def test_a_run_reads_back_as_it_was_recorded(tmp_path: Path, devices: list[DeviceRecord]) -> None:
    run = _run("provision-wan", devices, check=True, git_commit="a" * 40, git_dirty=True, retry_of=None,
               inventory="/srv/punakha", exit_code=4)
    with db.connect(tmp_path / db.DB_NAME) as conn:
        run_id = ledger.record(conn, run)
        back = ledger.show(conn, run_id)
    assert back is not None
    assert back.devices == devices  # in the order handed over
    assert (back.command, back.user, back.exit_code, back.check, back.git_commit, back.git_dirty, back.seconds) == \
        ("provision-wan", "tashi", 4, True, "a" * 40, True, 2.5)
    assert sum(back.summary.values()) == len(devices)


def test_a_failed_write_leaves_no_half_run(tmp_path: Path) -> None:
    # A device row that breaks a constraint after the run's row went in: the whole run is rolled back.
    with db.connect(tmp_path / db.DB_NAME) as conn:
        with pytest.raises(sqlite3.IntegrityError):
            ledger.record(conn, _run("backup", [DeviceRecord("r1", "ok"), DeviceRecord("r2", None)]))  # type: ignore[arg-type]
        assert conn.execute("SELECT COUNT(*) FROM ledger_runs").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM ledger_devices").fetchone()[0] == 0


@pytest.fixture()
def three_runs(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    with db.connect(tmp_path / db.DB_NAME) as conn:
        ledger.record(conn, _run("backup", [DeviceRecord("r1", "ok"), DeviceRecord("r2", "unreachable")], 100))
        ledger.record(conn, _run("drift", [DeviceRecord("r2", "drifted"), DeviceRecord("sw1", "ok")], 200))
        ledger.record(conn, _run("backup", [DeviceRecord("r2", "ok")], 300, retry_of=1))
        yield conn


@pytest.mark.parametrize(("last", "hosts", "ids", "summaries"), [
    (None, None, [3, 2, 1], [{"ok": 1}, {"drifted": 1, "ok": 1}, {"ok": 1, "unreachable": 1}]),
    (2, None, [3, 2], [{"ok": 1}, {"drifted": 1, "ok": 1}]),
    (None, {"r1"}, [1], [{"ok": 1}]),
    (None, {"sw1", "r1"}, [2, 1], [{"ok": 1}, {"ok": 1}]),  # counts only the devices asked about
    (1, {"r2"}, [3], [{"ok": 1}]),
    (None, {"gone"}, [], []),
], ids=["all", "last-2", "one-host", "two-hosts", "host-and-last", "unknown-host"])
def test_listing_newest_first_by_last_and_host(three_runs: sqlite3.Connection, last: int | None,
                                               hosts: set[str] | None, ids: list[int],
                                               summaries: list[dict[str, int]]) -> None:
    found = ledger.runs(three_runs, last, hosts)
    assert [r.id for r in found] == ids
    assert [r.summary for r in found] == summaries
    assert all(r.devices == [] for r in found)  # a listing carries counts, `show` the devices


@pytest.mark.parametrize(("before", "command", "gone", "left"), [
    (150.0, None, 1, [3, 2]),  # started 100: gone with its two device rows
    (250.0, "backup", 1, [3, 2]),  # drift (200) is not a backup: it stays
    (250.0, None, 2, [3]),
    (100.0, None, 0, [3, 2, 1]),  # strictly before
    (1000.0, "health", 0, [3, 2, 1]),
], ids=["oldest", "one-command", "two", "boundary", "no-such-command"])
def test_prune_removes_old_runs_and_their_devices(three_runs: sqlite3.Connection, before: float,
                                                  command: str | None, gone: int, left: list[int]) -> None:
    assert ledger.prune(three_runs, before, command) == gone
    assert [r.id for r in ledger.runs(three_runs)] == left
    orphans = three_runs.execute("SELECT COUNT(*) FROM ledger_devices WHERE run NOT IN (SELECT id FROM ledger_runs)")
    assert orphans.fetchone()[0] == 0


def test_show_of_an_unknown_run_is_none_and_a_host_filter_keeps_its_devices(three_runs: sqlite3.Connection) -> None:
    assert ledger.show(three_runs, 99) is None
    run = ledger.show(three_runs, 2, {"sw1"})
    assert run is not None and [d.host for d in run.devices] == ["sw1"] and run.retry_of is None
    retried = ledger.show(three_runs, 3)
    assert retried is not None and retried.retry_of == 1


@pytest.mark.parametrize(("devices", "units", "hosts"), [
    ([DeviceRecord("r1", "ok"), DeviceRecord("r2", "changed")], [], []),
    ([DeviceRecord("r1", "failed"), DeviceRecord("r2", "ok"), DeviceRecord("r3", "unreachable")],
     ["r1", "r3"], ["r1", "r3"]),
    ([DeviceRecord("r1", "rolled_back"), DeviceRecord("r2", "skipped")], ["r1"], ["r1"]),
    ([DeviceRecord("ap1", "refused")], ["ap1"], ["ap1"]),
    # a link is retried whole: both ends, even the one that was fine
    ([DeviceRecord("hq", "ok", unit="hq-talo", unit_status="failed"),
      DeviceRecord("talo", "failed", unit="hq-talo", unit_status="failed"),
      DeviceRecord("hq", "ok", unit="hq-guma", unit_status="ok")], ["hq-talo"], ["hq", "talo"]),
    # health: a check down or degraded; its device once
    ([DeviceRecord("r1", "down", unit="device:r1"), DeviceRecord("r1", "degraded", unit="lan:talo"),
      DeviceRecord("srv", "up", unit="device:srv")], ["device:r1", "lan:talo"], ["r1"]),
], ids=["nothing-failed", "failed-and-unreachable", "rolled-back-not-skipped", "onboard-refused", "wan-link",
        "health-checks"])
def test_failed_units_are_what_a_retry_runs_again(devices: list[DeviceRecord], units: list[str],
                                                   hosts: list[str]) -> None:
    assert ledger.failed_units(_run("x", devices)) == (units, hosts)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@x", *args], check=True,
                   capture_output=True)


@pytest.mark.parametrize(("setup", "dirty"), [
    ("none", None), ("clean", False), ("edited", True), ("untracked", True), ("elsewhere", False),
], ids=["not-git", "clean", "edited-file", "untracked-file", "change-outside-the-inventory"])
def test_git_state_of_the_inventory(tmp_path: Path, setup: str, dirty: bool | None) -> None:
    inventory = tmp_path / "repo" / "inventory"
    inventory.mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all: {}\n")
    (tmp_path / "repo" / "notes.txt").write_text("a\n")
    if setup != "none":
        _git(tmp_path / "repo", "init", "-q")
        _git(tmp_path / "repo", "add", ".")
        _git(tmp_path / "repo", "commit", "-qm", "inventory")
    if setup == "edited":
        (inventory / "hosts.yml").write_text("all: {hosts: {r1: {}}}\n")
    elif setup == "untracked":
        (inventory / "host_vars").mkdir()
        (inventory / "host_vars" / "r1.yml").write_text("x: 1\n")
    elif setup == "elsewhere":  # only the inventory's own tree counts
        (tmp_path / "repo" / "notes.txt").write_text("b\n")
    commit, found_dirty = ledger.git_state(inventory)
    assert found_dirty == dirty
    assert (commit is None) == (setup == "none") and (commit is None or len(commit) == 40)


@pytest.mark.parametrize(("env", "expected"), [({"SUDO_USER": "tashi"}, "tashi"), ({"LOGNAME": "pema"}, "pema")],
                         ids=["behind-sudo", "login-name"])
def test_login_user(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("SUDO_USER", "LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ledger.login_user() == expected
