"""`dzops runs`, `dzops runs show` and `--retry-failed`, in-process on a private copy of the sample.

The execute layer is the option contract test's spies (tests/cli/test_option_contract.py), made
to fail on the units a test names: what a run records, and what a retry sends to the spies, is
then exactly observable. The database is the one beside the copy's report_dir.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.models import HostResult, LinkResult
from dzops.state.ledger import FAILED
from tests.cli.test_option_contract import LIMIT, TALO, World, dzops, world, world_root, world_template  # noqa: F401 - fixtures

TALO_RTR, TALO_SW = "gewog-talo-rtr1", "gewog-talo-sw1"


def _vault_values(w: World) -> list[str]:
    import yaml
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(w.vault_file.read_bytes().strip()))])
    values = [str(v) for v in yaml.safe_load(vault.decrypt((w.inventory / "group_vars/all/vault.yml")
                                                           .read_bytes())).values()]
    assert len(values) >= 5
    return values


def _db(w: World) -> Path:
    return w.root / "state" / "dzops.sqlite"  # beside report_dir (state/reports) of the copy


@pytest.fixture()
def failing(world: World, monkeypatch: pytest.MonkeyPatch) -> set[str]:  # noqa: F811 - the imported fixture
    """Units (hosts, links, check keys) the spies report as failed; a test fills it before a run."""
    from dzops.execute import ap, backup, health, patch, users, wan
    from dzops.execute.backup import DeviceBackup
    from dzops.plan.health import Result

    fail: set[str] = set()
    secrets = _vault_values(world)
    leak = " ".join(secrets)  # every failure quotes every vault value: the ledger must keep none

    def status(unit: str, bad: str = "failed") -> str:
        return bad if unit in fail else "ok"

    def collect(inventory: Any, hosts: list[str], *, intended: Any = None, progress: Any = None,
                workers: int = 10, each: Any = None) -> list[Any]:
        world.calls.append(("collect", {"hosts": list(hosts)}))
        out = []
        for h in hosts:
            if progress:
                progress(h, "unreachable" if h in fail else "collected")
            out.append(DeviceBackup(host=h, site=inventory.devices[h].site, syntax="linux",
                                    status=status(h, "unreachable"),
                                    error=f"{h}: login refused for {leak}" if h in fail else None,
                                    files={} if h in fail else {"etc/hostname": h + "\n"}))
            if each is not None:  # the caller's per-device step (scrubbing), as the real collector runs it
                each(out[-1])
        return out

    def provision_wan(inventory: Any, scope: list[str], *, check: bool = False, **kwargs: Any) -> list[Any]:
        world.calls.append(("provision_wan", {"scope": list(scope)}))
        out = []
        for name in scope:
            link = inventory.wan_link(name)
            hosts = {h: HostResult(host=h, status=status(name), diff=f"+ ip ospf authentication-key {secrets[0]}",
                                   error=f"verify: {leak}" if name in fail else None)
                     for h in (link.a.host, link.b.host)}
            out.append(LinkResult(link=name, status=status(name, "rolled_back"), hosts=hosts))
        return out

    def provision_ap(inventory: Any, scope: list[str], *, check: bool = False, **kwargs: Any) -> list[Any]:
        world.calls.append(("provision_ap", {"scope": list(scope)}))
        return [HostResult(host=h, status=status(h), diff=f"+wpa_passphrase={secrets[2]}\n+ {leak}") for h in scope]

    def apply_users(inventory: Any, hosts: list[str], *, check: bool = False, **kwargs: Any) -> list[Any]:
        world.calls.append(("apply_users", {"hosts": list(hosts)}))
        return [HostResult(host=h, status=status(h), diff=f"username ops secret 0 {secrets[0]}") for h in hosts]

    def audit_users(inventory: Any, hosts: list[str], **kwargs: Any) -> Any:
        world.calls.append(("audit_users", {"hosts": list(hosts)}))
        return [], [HostResult(host=h, status=status(h, "unreachable")) for h in hosts]

    def run_patch(inventory: Any, *, limit: str | None = None, check: bool = False, **kwargs: Any) -> Any:
        scope = patch.hosts_in_scope(inventory, limit)
        world.calls.append(("run_patch", {"hosts": scope}))
        return patch.PatchRun(started="2026-12-01T10:00:00+06:00", finished="2026-12-01T10:01:00+06:00",
                              check=check, hosts=[HostResult(host=h, status=status(h)) for h in scope])

    def run_health(inventory: Any, checks: list[Any], progress: Any = None) -> list[Any]:
        world.calls.append(("run_health", {"hosts": sorted({c.host for c in checks if c.host}),
                                           "keys": [c.key for c in checks]}))
        return [Result(c.key, c.kind, c.site, "down" if c.key in fail else "up",
                       f"no answer ({leak})" if c.key in fail else "") for c in checks]

    from dzops.execute import onboard

    def prepare(inventory: Any, hosts: list[str], results: Any = None, **kwargs: Any) -> Any:
        world.calls.append(("onboard.prepare", {"hosts": list(hosts)}))
        for h in hosts:
            if h in fail:
                results[h].fail("failed", f"sudo refused the password {leak}")
        return results

    monkeypatch.setattr(backup, "collect", collect)
    monkeypatch.setattr(wan, "provision_wan", provision_wan)
    monkeypatch.setattr(ap, "provision_ap", provision_ap)
    monkeypatch.setattr(users, "apply_users", apply_users)
    monkeypatch.setattr(users, "audit_users", audit_users)
    monkeypatch.setattr(patch, "run_patch", run_patch)
    monkeypatch.setattr(health, "run_health", run_health)
    from dzops.execute import data_backup

    def run_action(inventory: Any, action: str, *, hosts: list[str] | None = None, **kwargs: Any) -> Any:
        scope = hosts or data_backup.hosts_in_scope(inventory, kwargs.get("limit"))
        world.calls.append(("data_backup.run_action", {"hosts": list(scope)}))
        return data_backup.DataBackupRun(action=action, started="2026-12-01T23:00:00+06:00", hosts=[
            HostResult(host=h, status=status(h, "unreachable"), error=f"sftp: {leak}" if h in fail else None)
            for h in scope])

    monkeypatch.setattr(onboard, "prepare", prepare)
    monkeypatch.setattr(data_backup, "run_action", run_action)
    return fail


def _runs(w: World, *args: str) -> Any:
    run = dzops(w, *args, "--json")
    assert run.code == ExitCode.OK, run.stderr
    return json.loads(run.stdout)


def _seen(w: World, spy: str) -> list[str]:
    [call] = w.called(spy)
    return call.get("hosts", call.get("scope", []))


# command -> (its arguments, the spy that sees the units, the units made to fail, what the retry
# must send to the spy, exit code of the failing run); a retry that finds them back exits 0 (drift's
# first run also finds drift: the spies' configurations are not the routers' intended ones)
RETRIES: dict[str, tuple[list[str], str, set[str], list[str], int]] = {
    "backup": (["backup"], "collect", {TALO_RTR, "gewog-guma-ap1"}, ["gewog-guma-ap1", TALO_RTR],
               ExitCode.UNREACHABLE),
    "drift": (["drift"], "collect", {TALO_SW}, [TALO_SW], ExitCode.DRIFT_FOUND),
    "user apply": (["user", "apply"], "apply_users", {TALO_RTR, "punakha-hq-srv1"}, ["punakha-hq-srv1", TALO_RTR],
                   ExitCode.HOSTS_FAILED),
    "user audit": (["user", "audit"], "audit_users", {TALO_SW}, [TALO_SW], ExitCode.UNREACHABLE),
    "patch": (["patch"], "run_patch", {"punakha-hq-web1"}, ["punakha-hq-web1"], ExitCode.HOSTS_FAILED),
    "provision-wan": (["provision-wan", "--all"], "provision_wan", {"hq-guma", "hq-talo"}, ["hq-guma", "hq-talo"],
                      ExitCode.HOSTS_FAILED),
    "provision-ap": (["provision-ap", "--all"], "provision_ap", {"gewog-talo-ap1"}, ["gewog-talo-ap1"],
                     ExitCode.HOSTS_FAILED),
    "onboard": (["onboard", "--all", "--accept-new"], "onboard.prepare", {TALO_RTR}, [TALO_RTR],
                ExitCode.HOSTS_FAILED),
    # the sample's one server with data_backups: its run recorded, the retry sends it alone
    "data-backup run": (["data-backup", "run"], "data_backup.run_action", {"punakha-hq-srv1"}, ["punakha-hq-srv1"],
                        ExitCode.UNREACHABLE),
}


def _order(w: World, command: str, units: list[str]) -> list[str]:
    """`units` in the order the command walks them (inventory order)."""
    from dzops.inventory.loader import load_inventory

    inventory = load_inventory(w.inventory, w.vault_file)
    every = [link.name for link in inventory.wan_links] if command == "provision-wan" else list(inventory.devices)
    return [u for u in every if u in units]


@pytest.mark.parametrize("command", list(RETRIES))
def test_retry_failed_runs_again_on_exactly_the_failed_units(world: World, failing: set[str],  # noqa: F811
                                                              command: str) -> None:
    args, spy, fail, expected, code = RETRIES[command]
    failing.update(fail)
    first = dzops(world, *args)
    assert first.code == code, first.stderr
    [listed] = _runs(world, "runs")
    assert (listed["command"], listed["exit_code"], listed["id"]) == (command, code, 1)
    assert f"--retry-failed 1` runs again on its {len(fail)} failed unit(s)" in first.stderr
    recorded = _runs(world, "runs", "show", "1")
    failed_rows = {d["unit"] for d in recorded["devices"] if d["unit_status"] in FAILED}
    assert failed_rows == fail

    world.calls.clear()
    failing.clear()  # the devices are back
    again = dzops(world, *args, "--retry-failed", "1")
    assert again.code == ExitCode.OK, again.stderr
    assert _seen(world, spy) == _order(world, command, expected)
    retry = _runs(world, "runs", "show", "2")
    assert retry["retry_of"] == 1 and {d["unit"] for d in retry["devices"]} == fail


def test_retry_failed_with_limit_is_the_intersection(world: World, failing: set[str]) -> None:  # noqa: F811
    failing.update({TALO_RTR, "gewog-guma-rtr1", TALO_SW})
    assert dzops(world, "backup").code == ExitCode.UNREACHABLE
    world.calls.clear()
    run = dzops(world, "--limit", LIMIT, "backup", "--retry-failed", "1")
    assert run.code == ExitCode.UNREACHABLE, run.stderr  # still failing: the spies were not told otherwise
    assert _seen(world, "collect") == [TALO_RTR, TALO_SW]
    world.calls.clear()
    outside = dzops(world, "--limit", "gewog-barp-*", "backup", "--retry-failed", "1")
    assert outside.code == ExitCode.USAGE and not world.calls
    [line] = outside.stderr.strip().splitlines()
    assert "none of the run's 3 failed host(s) is in the limit" in line


def test_health_retry_checks_the_devices_of_the_failed_checks(world: World, failing: set[str]) -> None:  # noqa: F811
    failing.update({f"device:{TALO_RTR}", "lan:guma"})
    assert dzops(world, "health").code == ExitCode.HEALTH_DEGRADED
    world.calls.clear()
    failing.clear()
    run = dzops(world, "health", "--retry-failed", "1")
    assert run.code == ExitCode.OK, run.stderr
    [call] = world.called("run_health")
    # the router behind each failed check (a site's LAN belongs to its router), and nothing else
    assert {TALO_RTR, "gewog-guma-rtr1"} <= set(call["hosts"])
    assert not [h for h in call["hosts"] if not h.startswith(("gewog-talo-rtr1", "gewog-guma-rtr1", "punakha-hq-rtr1"))]


@pytest.mark.parametrize(("key", "owner"), [
    (f"device:{TALO_RTR}", TALO_RTR),
    ("link:hq-talo", TALO_RTR),  # measured from HQ, about the gewog it connects
    ("lan:talo", TALO_RTR),
    ("resources:punakha-hq-web1", "punakha-hq-web1"),
    ("ap:gewog-talo-ap1", "gewog-talo-ap1"),
], ids=["device", "link", "lan", "resources", "ap"])
def test_a_health_check_is_recorded_under_the_device_it_is_about(world: World, key: str, owner: str) -> None:  # noqa: F811
    from dzops.cli.runs import health_records
    from dzops.inventory.loader import load_inventory
    from dzops.plan.health import Result, plan_checks

    inventory = load_inventory(world.inventory, world.vault_file)
    checks = plan_checks(inventory)
    [check] = [c for c in checks if c.key == key]
    [record] = health_records(inventory, checks, [Result(key, check.kind, check.site, "down", "no answer")])
    assert (record.unit, record.host, record.status, record.error) == (key, owner, "down", "no answer")


def test_a_service_check_is_recorded_under_its_server(world: World) -> None:  # noqa: F811
    from dzops.cli.runs import health_records
    from dzops.inventory.loader import load_inventory
    from dzops.plan.health import Result, plan_checks

    inventory = load_inventory(world.inventory, world.vault_file)
    checks = [c for c in plan_checks(inventory) if c.kind == "service"]
    assert checks
    records = health_records(inventory, checks, [Result(c.key, c.kind, c.site, "up") for c in checks])
    for r in records:
        assert r.unit.startswith(f"service:{r.host}:") and inventory.devices[r.host].function == "servers", r


@pytest.mark.parametrize(("first", "retry", "message"), [
    (None, ["backup", "--retry-failed", "7"], "no run ledger for this inventory yet"),
    (["backup"], ["backup", "--retry-failed", "7"], "no run 7 in the ledger"),
    (["backup"], ["user", "audit", "--retry-failed", "1"], "run 1 was `dzops backup`, not `dzops user audit`"),
    (["provision-ap", "--all"], ["provision-wan", "--retry-failed", "1"], "run 1 was `dzops provision-ap`"),
], ids=["no-ledger", "unknown-id", "other-command", "other-fan-out"])
def test_retry_of_an_unknown_run_or_another_command_is_refused(world: World, failing: set[str],  # noqa: F811
                                                                first: list[str] | None, retry: list[str],
                                                                message: str) -> None:
    failing.add(TALO_RTR)
    if first is not None:
        dzops(world, *first)
    world.calls.clear()
    run = dzops(world, *retry)
    assert run.code == ExitCode.USAGE
    [line] = run.stderr.strip().splitlines()
    assert message in line
    assert not world.calls  # nothing ran


def test_retry_of_a_run_without_failures_does_nothing(world: World, failing: set[str]) -> None:  # noqa: F811
    assert dzops(world, "backup").code == ExitCode.OK
    world.calls.clear()
    run = dzops(world, "backup", "--retry-failed", "1")
    assert run.code == ExitCode.OK and "run 1 has no failed unit: nothing to retry" in run.stderr
    assert not world.calls and len(_runs(world, "runs")) == 1


def test_runs_older_than_the_retention_leave_when_the_next_run_is_written(world: World,  # noqa: F811
                                                                           failing: set[str]) -> None:
    import time

    from dzops.state import db, ledger

    operations = world.inventory / "group_vars/all/operations.yml"
    operations.write_text(operations.read_text().replace("dzops_ledger_retention_days: 730",
                                                         "dzops_ledger_retention_days: 100"))
    day = 86400.0
    now = time.time()
    _db(world).parent.mkdir(parents=True, exist_ok=True)
    with db.connect(_db(world)) as conn:  # health.retention_days is 90 in the sample
        for command, age in (("backup", 101), ("backup", 95), ("health", 91), ("health", 29)):
            ledger.record(conn, ledger.RunRecord(command=command, argv=f"dzops {command}", user="tashi",
                                                 started=now - age * day, finished=now - age * day + 1,
                                                 exit_code=0, devices=[ledger.DeviceRecord(TALO_RTR, "ok")]))
    assert dzops(world, "backup").code == ExitCode.OK
    kept = [(r["command"], round((now - r["started"]) / day)) for r in _runs(world, "runs")]
    assert kept == [("backup", 0), ("health", 29), ("backup", 95)]


@pytest.mark.parametrize("value", ["0", "36501", "two years", "1.5"])
def test_a_bad_ledger_retention_is_named_at_its_line(world: World, value: str) -> None:  # noqa: F811
    operations = world.inventory / "group_vars/all/operations.yml"
    lines = operations.read_text().splitlines()
    [at] = [n for n, line in enumerate(lines, start=1) if line.startswith("dzops_ledger_retention_days:")]
    lines[at - 1] = f"dzops_ledger_retention_days: {value}"
    operations.write_text("\n".join(lines) + "\n")
    run = dzops(world, "inventory", "check")
    assert run.code == ExitCode.INVALID_INVENTORY
    assert f"operations.yml:{at}: dzops_ledger_retention_days: must be a whole number of days" in run.stdout


def test_a_run_records_who_what_commit_and_each_device(world: World, failing: set[str]) -> None:  # noqa: F811
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(world.inventory), "-c", "user.name=t", "-c", "user.email=t@x", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "sample")
    failing.add(TALO_RTR)
    dzops(world, "--limit", LIMIT, "backup")
    (world.inventory / "hosts.yml").write_text((world.inventory / "hosts.yml").read_text() + "\n# edited\n")
    dzops(world, "--check", "--limit", LIMIT, "backup")
    newest, oldest = _runs(world, "runs")
    head = git("rev-parse", "HEAD")
    assert (oldest["git_commit"], oldest["git_dirty"], oldest["check"]) == (head, False, False)
    assert (newest["git_commit"], newest["git_dirty"], newest["check"]) == (head, True, True)
    assert oldest["user"] and oldest["argv"] == f"dzops -i {world.inventory} --limit 'gewog-talo-*' backup"
    assert oldest["summary"] == {"ok": 2, "unreachable": 1} and oldest["finished"] >= oldest["started"]
    shown = _runs(world, "runs", "show", str(oldest["id"]))
    assert {d["host"]: d["status"] for d in shown["devices"]} == {
        TALO_RTR: "unreachable", TALO_SW: "ok", "gewog-talo-ap1": "ok"}
    assert all(d["seconds"] is not None and d["seconds"] >= 0 for d in shown["devices"])  # per-device durations
    text = dzops(world, "runs")
    assert text.code == ExitCode.OK and "backup --check" in text.stdout and head[:7] + "+dirty" in text.stdout


@pytest.mark.parametrize(("args", "ids"), [
    ([], [3, 2, 1]),
    (["--last", "2"], [3, 2]),
    (["--host", "punakha-hq-srv1"], [2]),
    (["--limit", "gewog-guma-*,gewog-talo-*"], [3, 1]),
    (["--limit", LIMIT, "--host", TALO_SW], [3]),
    (["--limit", LIMIT, "--host", "punakha-hq-srv1"], []),
], ids=["all", "last", "host", "limit", "limit-and-host", "limit-excludes-host"])
def test_runs_filters(world: World, failing: set[str], args: list[str], ids: list[int]) -> None:  # noqa: F811
    dzops(world, "--limit", "gewog-guma-*", "backup")
    dzops(world, "user", "audit", "--limit", "punakha-hq-srv1")
    dzops(world, "--limit", LIMIT, "backup")
    limit = args[args.index("--limit"):args.index("--limit") + 2] if "--limit" in args else []
    rest = [a for a in args if a not in limit]
    found = _runs(world, *limit, "runs", *rest)
    assert [r["id"] for r in found] == ids


def test_runs_show_limit_keeps_those_devices_and_text_shows_errors(world: World, failing: set[str]) -> None:  # noqa: F811
    failing.add(TALO_RTR)
    dzops(world, "backup")
    shown = _runs(world, "--limit", TALO_RTR, "runs", "show", "1")
    assert [d["host"] for d in shown["devices"]] == [TALO_RTR]
    text = dzops(world, "runs", "show", "1")
    assert text.code == ExitCode.OK
    assert f"{TALO_RTR}: login refused for" in text.stdout and "unreachable" in text.stdout
    assert dzops(world, "runs", "show", "2").code == ExitCode.USAGE


def test_secrets_never_reach_the_ledger(world: World, failing: set[str]) -> None:  # noqa: F811
    """Every vault value is in the spies' errors, diffs and messages, and in a command line: the
    database file (and its WAL) holds none of them, raw or in any case."""
    secrets = _vault_values(world)
    failing.update({TALO_RTR, "gewog-talo-ap1", "hq-talo", f"device:{TALO_RTR}", "punakha-hq-srv1"})
    for args in (["backup"], ["provision-wan", "--all"], ["--diff", "provision-ap", "--all"], ["user", "apply"],
                 ["health"], ["patch"], ["onboard", "--all", "--accept-new", "--accept-fingerprint", secrets[1]]):
        run = dzops(world, *args)
        assert run.code not in (ExitCode.USAGE, ExitCode.ERROR, ExitCode.INVALID_INVENTORY), (args, run.stderr)
    runs = _runs(world, "runs")
    assert len(runs) == 7
    shown = [_runs(world, "runs", "show", str(r["id"])) for r in runs]
    stored = json.dumps(shown)
    assert "<removed>" in stored and "login refused for" in stored  # the rows are there, masked
    assert any("--accept-fingerprint" in r["argv"] for r in shown)
    data = b"".join(p.read_bytes() for p in _db(world).parent.glob("dzops.sqlite*"))
    assert len(data) > 4096
    for value in secrets:
        for form in (value, value.lower(), value.upper()):
            assert form.encode() not in data, f"a vault value ({value[:3]}...) is in the ledger"


def test_a_ledger_that_cannot_be_written_costs_a_warning_not_the_run(world: World, failing: set[str],  # noqa: F811
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from dzops.state import ledger

    def locked(conn: Any, run: Any) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(ledger, "record", locked)
    run = dzops(world, "--json", "--limit", LIMIT, "backup")
    assert run.code == ExitCode.OK
    assert {d["host"] for d in json.loads(run.stdout)["devices"]} == TALO  # stdout is the run's data only
    assert "dzops: warning: run not recorded in the ledger: OperationalError: database is locked" in run.stderr


def test_refused_and_read_only_commands_are_not_recorded(world: World) -> None:  # noqa: F811
    assert dzops(world, "--limit", "nosuchhost", "backup").code == ExitCode.USAGE
    assert dzops(world, "inventory", "show").code == ExitCode.OK
    assert dzops(world, "runs").code == ExitCode.OK
    assert _runs(world, "runs") == []
