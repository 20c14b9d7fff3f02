"""Every command x every global option: honoured (an observable effect) or refused (exit 2, one line
naming the option and the command). Nothing is silently ignored.

The commands run in-process through the console-script entry point (`dzops.cli.app.main`) on a
private copy of the sample inventory. The execute layer is replaced by spies at the boundary where
dzops would touch a device, a lab or ansible, so a run reaches nothing and every call is recorded:
"honoured" is what the spies (or the files, or stdout) saw.

- --vault-password-file: the copy has no demo password file beside it, so without the option
  every command that opens the vault fails (exit 3); with it, it does not, and the playbook runs
  (user apply/audit, patch) receive the file.
- --check: no file of the inventory, report directory, backup repository or crontab changes, and
  no spy that changes something is called (or it is called with check=True).
- --diff: a diff reaches stdout.  --limit: only limited hosts reach the spies (or the output).
- --json: stdout is one JSON document.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import chdir
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dzops.cli.app import main
from dzops.cli.contract import CONTRACT, OPTIONS
from dzops.cli.exit_codes import ExitCode
from dzops.execute.backup import collect as REAL_COLLECT
from dzops.models import HostResult, LinkResult
from tests.labkit import copy_sample_inventory

LIMIT = "gewog-talo-*"  # the Talo gewog's router, switch and access point
TALO = {"gewog-talo-rtr1", "gewog-talo-sw1", "gewog-talo-ap1"}


@dataclass
class World:
    root: Path
    inventory: Path
    vault_file: Path  # the vault password, 0600, outside the inventory
    crontab: Path
    key: Path
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def called(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for spy, kwargs in self.calls if spy == name]


@pytest.fixture(scope="session")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "contract-world"


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, world_root: Path) -> Path:
    """What every world starts from, made once: the sample (its state in the world's folder, no demo
    password beside it), the vault password file, a crontab, an SSH key."""
    template = tmp_path_factory.mktemp("contract-template")
    inventory = copy_sample_inventory(template / "inventory", 97, world_root / "state")
    demo = inventory / "DEMO-ONLY-vault-password.txt"
    vault_file = template / "vault-pass"
    vault_file.write_text(demo.read_text())
    vault_file.chmod(0o600)
    demo.unlink()
    (template / "crontab").write_text("15 3 * * * /usr/local/bin/nightly-rsync # office file sync\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tashi@punakha.gov.bt",
                    "-f", str(template / "id")], check=True)
    return template


@pytest.fixture()
def world(world_template: Path, world_root: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    # Each test gets a fresh copy of the template, always at the same path: the inventory cache then
    # serves the unchanged sample warm, as it does an officer's next run, instead of every test
    # loading it through ansible again (a test that edits the inventory is a miss for the next one).
    shutil.rmtree(world_root, ignore_errors=True)
    shutil.copytree(world_template, world_root)
    w = World(world_root, world_root / "inventory", world_root / "vault-pass", world_root / "crontab",
              world_root / "id.pub")
    for name in ("DZOPS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "DZOPS_INVENTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DZOPS_CRONTAB", str(w.crontab))
    monkeypatch.setenv("DZOPS_LAB_STATE", str(world_root / "lab-state"))
    _install_spies(w, monkeypatch)
    return w


def _install_spies(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from dzops.execute import ap, backup, discover, patch, users, wan
    from dzops.execute.backup import DeviceBackup
    from dzops.execute.discover import DeviceDiscovery
    from dzops.lab.builder import Lab
    from dzops.report import store

    def record(name: str, **kwargs: Any) -> None:
        w.calls.append((name, kwargs))

    def collect(inventory: Any, hosts: list[str], *, intended: Any = None, progress: Any = None,
                workers: int = 10, each: Any = None) -> list[Any]:
        record("collect", hosts=list(hosts), workers=workers)
        out = []
        for host in hosts:
            if progress:
                progress(host, "collected")
            out.append(DeviceBackup(host=host, site=inventory.devices[host].site, syntax="linux",
                                    files={"etc/hostname": host + "\n"}))
            if each is not None:
                each(out[-1])  # as the real pool does: the caller scrubs each result as it comes in
        return out

    def write_and_commit(repo: Path, snapshots: list[Any], **kwargs: Any) -> Any:
        record("write_and_commit", hosts=[s.host for s in snapshots])
        return store.CommitResult(commit="0" * 40, previous=None, changed={s.host: [] for s in snapshots})

    class StoreRun:  # a backup writes each device as it comes in, then commits: nothing reaches the repository
        def put(self, snap: Any) -> None:
            pass

        def commit(self, snapshots: list[Any], **kwargs: Any) -> Any:
            return write_and_commit(Path(), snapshots, **kwargs)

    from contextlib import contextmanager

    @contextmanager
    def writing(repo: Path) -> Any:
        yield StoreRun()

    def discover_(inventory: Any, hosts: list[str] | None = None, *, progress: Any = None,
                  workers: int = 10) -> dict[str, Any]:
        names = sorted(hosts if hosts is not None else inventory.devices)
        record("discover", hosts=names)
        return {name: DeviceDiscovery(name) for name in names}

    def provision_wan(inventory: Any, scope: list[str], *, check: bool = False, **kwargs: Any) -> list[Any]:
        record("provision_wan", scope=list(scope), check=check)
        return [LinkResult(link=name, hosts={"r": HostResult(host="r", diff=f"+ interface of {name}")})
                for name in scope]

    def provision_ap(inventory: Any, scope: list[str], *, check: bool = False, **kwargs: Any) -> list[Any]:
        record("provision_ap", scope=list(scope), check=check)
        return [HostResult(host=name, diff=f"+ ssid of {name}") for name in scope]

    def apply_users(inventory: Any, hosts: list[str], *, check: bool = False, progress: Any = None,
                    **runner: Any) -> list[Any]:
        record("apply_users", hosts=list(hosts), check=check, **runner)
        return [HostResult(host=h, status="skipped", diff=f"username of {h}") for h in hosts]

    def audit_users(inventory: Any, hosts: list[str], *, progress: Any = None, **runner: Any) -> Any:
        record("audit_users", hosts=list(hosts), **runner)
        return [], [HostResult(host=h) for h in hosts]

    def run_patch(inventory: Any, *, limit: str | None = None, check: bool = False, **kwargs: Any) -> Any:
        scope = patch.hosts_in_scope(inventory, limit)
        record("run_patch", hosts=scope, check=check, vault_password_file=kwargs.get("vault_password_file"),
               forks=kwargs.get("forks"))
        return patch.PatchRun(started="2026-12-01T10:00:00+06:00", finished="2026-12-01T10:01:00+06:00",
                              check=check, hosts=[HostResult(host=h) for h in scope])

    class Status:
        healthy = True

        def to_dict(self) -> dict[str, Any]:
            return {"nodes": [], "services": {}}

    monkeypatch.setattr(backup, "collect", collect)
    monkeypatch.setattr(store, "write_and_commit", write_and_commit)
    monkeypatch.setattr(store, "writing", writing)
    monkeypatch.setattr(discover, "discover", discover_)
    monkeypatch.setattr(wan, "provision_wan", provision_wan)
    monkeypatch.setattr(ap, "provision_ap", provision_ap)
    monkeypatch.setattr(users, "apply_users", apply_users)
    monkeypatch.setattr(users, "audit_users", audit_users)
    monkeypatch.setattr(patch, "run_patch", run_patch)
    from dzops.execute import data_backup

    def run_action(inventory: Any, action: str, *, hosts: list[str] | None = None, **kwargs: Any) -> Any:
        scope = hosts or data_backup.hosts_in_scope(inventory, kwargs.get("limit"))
        record("data_backup.run_action", action=action, hosts=list(scope),
               vault_password_file=kwargs.get("vault_password_file"))
        return data_backup.DataBackupRun(action=action, started="2026-12-01T23:00:00+06:00",
                                         hosts=[HostResult(host=h) for h in scope])

    monkeypatch.setattr(data_backup, "run_action", run_action)
    monkeypatch.setattr(Lab, "up", lambda self: (record("lab.up"), Status())[1])
    monkeypatch.setattr(Lab, "status", lambda self: (record("lab.status"), Status())[1])
    monkeypatch.setattr(Lab, "down", lambda self: record("lab.down"))
    monkeypatch.setattr(Lab, "set_link", lambda self, *a: record("lab.set_link"))
    monkeypatch.setattr(Lab, "exec", lambda self, node, argv: (record("lab.exec", node=node),
                                                               subprocess.CompletedProcess(argv, 0, "out\n", ""))[1])

    from dzops.cli import schedule as schedule_cli

    def run_other(settings: Any, job: str) -> Any:
        record("schedule.run_other", job=job, argv=schedule_cli.passed_options(settings))
        return ExitCode.OK, ""

    monkeypatch.setattr(schedule_cli, "_run_other", run_other)

    from dzops.execute import onboard
    from dzops.execute.ssh import HostKeyCheck

    def scan_host_keys(inventory: Any, hosts: list[str]) -> dict[str, Any]:
        record("onboard.scan", hosts=list(hosts))
        return {h: HostKeyCheck("unknown", f"SHA256:{h}", "ssh-ed25519", (), f"{h} ssh-ed25519 AAAA") for h in hosts}

    def prepare(inventory: Any, hosts: list[str], results: Any = None, **kwargs: Any) -> Any:
        record("onboard.prepare", hosts=list(hosts))
        for h in hosts:
            results[h].status = "ready"
        return results

    from dzops.execute import health
    from dzops.plan.health import Result

    def run_health(inventory: Any, checks: list[Any], progress: Any = None) -> list[Any]:
        record("run_health", hosts=sorted({c.host for c in checks if c.host}))
        return [Result(c.key, c.kind, c.site, "up") for c in checks]

    monkeypatch.setattr(health, "run_health", run_health)
    monkeypatch.setattr(onboard, "scan_host_keys", scan_host_keys)
    monkeypatch.setattr(onboard, "trust", lambda inventory, check, replace=False: record("onboard.trust"))
    monkeypatch.setattr(onboard, "prepare", prepare)


# command -> its arguments (after the command words); {key} is the world's file for it.
COMMANDS: dict[str, list[str]] = {
    "inventory check": [],
    "inventory show": [],
    "lab up": ["--prefix", "dzo"],
    "lab status": ["--prefix", "dzo"],
    "lab down": ["--prefix", "dzo"],
    "lab exec": ["gewog-talo-rtr1", "--prefix", "dzo", "--", "true"],
    "lab link": ["gewog-talo-rtr1", "eth1", "down", "--prefix", "dzo"],
    "provision-wan": ["--all"],
    "provision-ap": ["--all"],
    "user add": ["tashi", "--name", "Tashi Dorji", "--email", "tashi@punakha.gov.bt", "--role", "operator",
                 "--key", "{key}"],
    "user remove": ["pema"],
    "user apply": [],
    "user audit": [],
    "diagram": ["--format", "mermaid"],
    "docs": [],
    "patch": [],
    "backup": [],
    "drift": [],
    "schedule install": ["backup"],
    "schedule list": [],
    "schedule remove": [],
    "schedule run": ["backup"],
    "scrub": ["--platform", "ios"],
    "onboard": ["--all", "--accept-new"],
    "doctor": [],
    "health": [],
    "health history": ["--since", "7d"],
    "health page": ["--output", "status-page"],
    "runs": [],
    "runs show": ["1"],
    "data-backup run": [],
    "data-backup list": [],
    "data-backup restore": ["punakha-hq-srv1", "--database", "postgresql:dzongkhag"],
    "data-backup verify": [],
    "data-backup check": [],
}
# Run before the command (and before the spies' calls are looked at): the ledger needs a run to list.
SETUP: dict[str, list[str]] = {"runs": ["backup"], "runs show": ["backup"]}
DATA_BACKUP_SERVER = "punakha-hq-srv1"  # the sample's one server with data_backups (Talo has none)

# Refusals made by the command itself at run time (its contract entry honours the option because
# another form of the command uses it): drift's --check and --diff belong to --remediate.
RUNTIME_REFUSALS = {("drift", "check"): "`dzops drift --remediate`", ("drift", "diff"): "`dzops drift --remediate`"}

FLAGS = {"vault_password_file": None, "check": ["--check"], "diff": ["--diff"], "limit": ["--limit", LIMIT],
         "json": ["--json"]}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def dzops(w: World, *args: str, vault: bool = True) -> Run:
    from ansible.parsing.vault import VaultSecretsContext
    from ansible.plugins.vars import host_group_vars

    argv = ["dzops", "-i", str(w.inventory), *args]
    if vault and "--vault-password-file" not in args:
        os.environ["DZOPS_VAULT_PASSWORD_FILE"] = str(w.vault_file)  # the machine's default, not an option
    code: int | str | None = 0
    saved = sys.argv
    try:
        with CliRunner().isolation() as (out, err, _), chdir(w.root):
            sys.argv = argv
            try:
                main()
            except SystemExit as exc:
                code = exc.code
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    finally:
        sys.argv = saved
        os.environ.pop("DZOPS_VAULT_PASSWORD_FILE", None)
        VaultSecretsContext._current = None
        for cache in (host_group_vars.CANONICAL_PATHS, host_group_vars.FOUND, host_group_vars.NAK):
            cache.clear()
    return Run(int(code or 0), stdout, stderr)


def second_dzongkhag(w: World) -> Path:
    """Another Dzongkhag beside the world's: a copy of the same sample (its host names and addresses
    repeat, as they may across Dzongkhags), with its own state and no demo password."""
    root = w.root / "thimphu"
    if not root.exists():
        copy_sample_inventory(root, 97, w.root / "state-thimphu")
        (root / "DEMO-ONLY-vault-password.txt").unlink()
    return root


def command_args(w: World, command: str) -> list[str]:
    return [*command.split(), *(a.format(key=w.key) for a in COMMANDS.get(command, []))]


def snapshot(w: World) -> dict[str, str]:
    """What --check must never write: the inventory (users, subnets, diagram layout), the backup
    repository, the crontab. (Reports of a check run are its output, kept like any run's.)"""
    files = {}
    for base in (w.inventory, w.root / "state" / "config-backups", w.crontab):
        for path in ([base] if base.is_file() else sorted(base.rglob("*")) if base.exists() else []):
            if path.is_file():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


WRITING_SPIES = {"write_and_commit", "lab.up", "lab.down", "lab.set_link", "lab.exec", "onboard.trust",
                 "onboard.prepare"}


def honoured(w: World, command: str, option: str) -> None:
    """Run `command` with `option` and assert the option's effect."""
    args = command_args(w, command)
    if option == "vault_password_file":
        without = dzops(w, *args, vault=False)
        assert without.code == ExitCode.INVALID_INVENTORY, (without.code, without.stderr)
        run = dzops(w, "--vault-password-file", str(w.vault_file), *args, vault=False)
        assert run.code not in (ExitCode.INVALID_INVENTORY, ExitCode.USAGE), run.stderr
        for spy in ("apply_users", "audit_users", "run_patch", "data_backup.run_action"):
            for call in w.called(spy):  # the playbook run gets the file, not only the inventory load
                assert call["vault_password_file"] == w.vault_file
        if command == "schedule install":
            assert f"--vault-password-file {w.vault_file}" in w.crontab.read_text()
        if command == "schedule run":
            [call] = w.called("schedule.run_other")
            assert call["argv"][:2] == ["--vault-password-file", str(w.vault_file)]
        return
    if option == "dzongkhags":  # once per Dzongkhag, each under its name, one summary
        run = dzops(w, "-i", str(second_dzongkhag(w)), *args)
        assert run.code not in (ExitCode.USAGE, ExitCode.INVALID_INVENTORY, ExitCode.ERROR), run.stderr
        assert "== inventory (" in run.stderr and "== thimphu (" in run.stderr, run.stderr
        assert "dzops: 2 Dzongkhags, exit" in run.stderr, run.stderr
        return
    before = snapshot(w)
    run = dzops(w, *FLAGS[option], *args)
    assert run.code not in (ExitCode.USAGE, ExitCode.INVALID_INVENTORY, ExitCode.ERROR), run.stderr
    if command == "schedule run":  # handed on to the job, whose own contract then applies
        [call] = w.called("schedule.run_other")
        assert [a for a in FLAGS[option]] == [a for a in call["argv"] if a in FLAGS[option]], call
        assert snapshot(w) == before
        return
    if option == "check":
        assert snapshot(w) == before, "--check wrote a file"
        assert not [name for name, _ in w.calls if name in WRITING_SPIES], w.calls
        for _, kwargs in w.calls:
            if "check" in kwargs:
                assert kwargs["check"] is True
    elif option == "diff":
        assert ("+++ b/" in run.stdout or "--- " in run.stdout or "username of" in run.stdout), run.stdout
    elif option == "limit":
        _assert_limited(w, command, run)
    elif option == "json":
        json.loads(run.stdout)


def _assert_limited(w: World, command: str, run: Run) -> None:
    if command in ("runs", "runs show"):  # the setup's backup of every device, shown for the limit's only
        shown = [line.split()[0] for line in run.stdout.splitlines() if line.startswith("  gewog-")]
        assert (command == "runs" and "3 ok" in run.stdout) or set(shown) == TALO, run.stdout
        return
    if command == "inventory show":
        shown = set(__import__("yaml").safe_load(run.stdout)["devices"])
        assert shown == TALO
        return
    if command == "schedule install":
        assert f"--limit '{LIMIT}'" in w.crontab.read_text()
        return
    if command == "provision-wan":
        [call] = w.called("provision_wan")
        assert call["scope"] == ["punakha-hq--talo"] or all("talo" in link for link in call["scope"]), call
        assert call["scope"]
        return
    seen = [h for _, kwargs in w.calls for h in kwargs.get("hosts", kwargs.get("scope", []))]
    assert seen, w.calls
    # health measures Talo's WAN link from both ends, as provision-wan configures both
    expected = {"patch": set(), "provision-ap": {"gewog-talo-ap1"},
                "health": TALO | {"punakha-hq-rtr1"}}.get(command, TALO)
    if command == "patch":  # Talo has no Linux server: the limit leaves nothing to patch
        raise AssertionError("patch is checked by test_patch_limit_without_servers_is_refused")
    assert set(seen) <= expected | (TALO if command in ("diagram", "docs") else set()), seen


def refused(w: World, command: str, option: str, reason: str) -> None:
    before = snapshot(w)
    flags = (["--vault-password-file", str(w.vault_file)] if option == "vault_password_file"
             else ["-i", str(second_dzongkhag(w))] if option == "dzongkhags" else FLAGS[option])
    run = dzops(w, *flags, *command_args(w, command))
    assert run.code == ExitCode.USAGE, (run.code, run.stderr)
    [line] = run.stderr.strip().splitlines()
    assert OPTIONS[option] in line and reason in line, line
    assert snapshot(w) == before and not [n for n, _ in w.calls if n in WRITING_SPIES]


CASES = [(command, option) for command in CONTRACT for option in OPTIONS]


@pytest.mark.parametrize(("command", "option"), CASES, ids=[f"{c.replace(' ', '-')}:{o}" for c, o in CASES])
def test_every_command_honours_or_refuses_every_global_option(world: World, command: str, option: str) -> None:
    reason = CONTRACT[command][option]
    if command in SETUP:
        assert dzops(world, *SETUP[command]).code == ExitCode.OK
        world.calls.clear()
    if reason is not None:
        refused(world, command, option, f"`dzops {command}`")
    elif (command, option) in RUNTIME_REFUSALS:
        refused(world, command, option, RUNTIME_REFUSALS[command, option])
    elif command.startswith("data-backup") and option == "limit":
        run = dzops(world, "--limit", DATA_BACKUP_SERVER, *command_args(world, command))
        assert run.code == ExitCode.OK, run.stderr
        assert world.called("data_backup.run_action"), world.calls
        assert all(call["hosts"] == [DATA_BACKUP_SERVER] for call in world.called("data_backup.run_action"))
        refused_run = dzops(world, "--limit", LIMIT, *command_args(world, command))
        assert refused_run.code == ExitCode.USAGE and "selects no server with data_backups" in refused_run.stderr
    elif (command, option) == ("patch", "limit"):
        run = dzops(world, "--limit", "punakha-hq-srv1", "patch")
        assert run.code == ExitCode.OK, run.stderr
        assert world.called("run_patch")[0]["hosts"] == ["punakha-hq-srv1"]
    else:
        honoured(world, command, option)


def test_the_table_names_every_registered_command() -> None:
    import typer.main

    from dzops.cli.app import app

    def walk(command: Any, path: tuple[str, ...]) -> list[str]:
        subs = getattr(command, "commands", None)
        if subs is None:
            return [" ".join(path)]
        runs_itself = [" ".join(path)] if path and command.invoke_without_command else []  # `dzops health`
        return runs_itself + [name for sub, cmd in subs.items() for name in walk(cmd, (*path, sub))]

    registered = set(walk(typer.main.get_command(app), ()))
    assert registered == set(CONTRACT), (registered ^ set(CONTRACT))
    assert all(set(row) == set(OPTIONS) for row in CONTRACT.values())


def test_check_user_add_writes_nothing_and_shows_the_diff(world: World) -> None:
    before = snapshot(world)
    run = dzops(world, "--check", "--diff", *command_args(world, "user add"))
    assert run.code == ExitCode.OK, run.stderr
    assert snapshot(world) == before
    assert "+  - login: tashi" in run.stdout and "would add tashi" in run.stderr
    applied = dzops(world, *command_args(world, "user add"))
    assert applied.code == ExitCode.OK and "login: tashi" in (world.inventory / "group_vars/all/users.yml").read_text()


def test_patch_limit_without_servers_is_refused(world: World) -> None:
    run = dzops(world, "--limit", LIMIT, "patch")
    assert run.code == ExitCode.USAGE and "selects no host in group 'servers'" in run.stderr
    assert not world.called("run_patch")


def test_wan_limit_keeps_links_with_an_end_in_it_and_names_the_far_end(world: World) -> None:
    run = dzops(world, "--limit", "gewog-talo-rtr1", "--check", "provision-wan", "--all")
    assert run.code == ExitCode.OK, run.stderr
    [call] = world.called("provision_wan")
    from dzops.inventory.loader import load_inventory

    inventory = load_inventory(world.inventory, world.vault_file)
    expected = [link.name for link in inventory.wan_links if "gewog-talo-rtr1" in (link.a.host, link.b.host)]
    assert call["scope"] == expected and expected
    assert "far end(s) outside the limit configured too" in run.stderr and "punakha-hq-rtr1" in run.stderr


def test_unknown_limit_is_a_usage_error_for_every_limited_command(world: World) -> None:
    for command in ("backup", "provision-wan", "diagram", "user apply"):
        run = dzops(world, "--limit", "gewog-tallo-rtr1", *command_args(world, command))
        assert run.code == ExitCode.USAGE, (command, run.stderr)
        assert "no host or group matches 'gewog-tallo-rtr1'" in run.stderr


# --- progress and forks --------------------------------------------------------------------------

def test_plain_progress_lines_per_device_when_stderr_is_not_a_terminal(world: World) -> None:
    run = dzops(world, "--limit", LIMIT, "backup")
    assert run.code == ExitCode.OK, run.stderr
    for host in TALO:
        assert f"  {host}: collected" in run.stderr.splitlines()


def test_json_output_carries_no_progress(world: World) -> None:
    run = dzops(world, "--limit", LIMIT, "--json", "backup")
    assert run.code == ExitCode.OK, run.stderr
    assert {d["host"] for d in json.loads(run.stdout)["devices"]} == TALO
    assert not [line for line in run.stderr.splitlines() if line.startswith("  ")], run.stderr


@pytest.mark.parametrize(("args", "inventory_forks", "workers"), [
    ([], None, 10), ([], 4, 4), (["--forks", "3"], 4, 3),
], ids=["default", "inventory", "option-wins"])
def test_forks_reach_the_pool(world: World, monkeypatch: pytest.MonkeyPatch, args: list[str],
                              inventory_forks: int | None, workers: int) -> None:
    from dzops.execute import backup, fanout
    from dzops.execute.backup import DeviceBackup

    monkeypatch.setattr(backup, "collect", REAL_COLLECT)
    monkeypatch.setattr(backup, "collect_one", lambda inventory, host, intended: DeviceBackup(
        host=host, site=inventory.devices[host].site, syntax="linux", files={"etc/hostname": host}))
    monkeypatch.setattr(backup, "_started_probe", lambda inventory, host: None)  # no router logins either
    pools: list[int] = []
    real_pool = fanout.ThreadPoolExecutor

    def pool(max_workers: int) -> Any:
        pools.append(max_workers)
        return real_pool(max_workers=max_workers)

    monkeypatch.setattr(fanout, "ThreadPoolExecutor", pool)
    if inventory_forks is not None:
        operations = world.inventory / "group_vars/all/operations.yml"
        operations.write_text(operations.read_text() + f"\ndzops_forks: {inventory_forks}\n")
    run = dzops(world, "backup", *args)
    assert run.code == ExitCode.OK, run.stderr
    assert pools and all(width == workers for width in pools), pools  # as wide as asked (38 devices here)


@pytest.mark.parametrize("value", ["0", "501", "ten", "2.5", "true"])
def test_bad_dzops_forks_is_named_at_its_line(world: World, value: str) -> None:
    operations = world.inventory / "group_vars/all/operations.yml"
    text = operations.read_text()
    operations.write_text(text + f"dzops_forks: {value}\n")
    line = len(text.splitlines()) + 1
    run = dzops(world, "inventory", "check")
    assert run.code == ExitCode.INVALID_INVENTORY
    where = "" if value == "true" else f"operations.yml:{line}: "  # ansible-core tags no origin on a bool
    assert f"{where}dzops_forks: must be a whole number from 1 to 500" in run.stdout


def test_progress_bar_on_a_terminal_counts_done_and_failed() -> None:
    import io

    from dzops.cli.progress import RunProgress, choose_mode

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    assert choose_mode(False, stream) == "bar" and choose_mode(True, stream) == "off"
    with RunProgress("backup", ["r1", "r2", "r3"], "bar", stream=stream) as progress:
        progress.started("r1")
        progress.step("r1", "collected")
        progress.step("r2", "unreachable: no route to host")
        progress.step("r3", "collected")
    assert (progress.done, progress.failed) == ({"r1", "r2", "r3"}, {"r2"})
    shown = stream.getvalue()
    assert "3/3" in shown and "1 failed" in shown and "r3" in shown


# --- against the lab: the vault password file reaches ansible-runner ----------------------------

@pytest.mark.lab
@pytest.mark.parametrize("command", ["audit", "apply"])
def test_user_commands_open_the_vault_with_the_given_file_only(punakha_lab, tmp_path: Path, command: str) -> None:
    """No demo file beside the inventory and no environment variable: the playbook run opens the
    vault with --vault-password-file alone (it used to fail 'no vault secrets found')."""
    import shutil

    inventory = tmp_path / "inventory"
    shutil.copytree(punakha_lab.inventory_dir, inventory)
    demo = inventory / "DEMO-ONLY-vault-password.txt"
    secret = tmp_path / "vault-pass"
    secret.write_text(demo.read_text())
    secret.chmod(0o600)
    demo.unlink()
    env = {k: v for k, v in punakha_lab.env().items()
           if k not in ("DZOPS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "DZOPS_INVENTORY")}
    argv = [sys.executable, "-m", "dzops", "-i", str(inventory), "--vault-password-file", str(secret),
            "--limit", "punakha-hq-srv1", "--check", "user", command]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode in (ExitCode.OK, ExitCode.DRIFT_FOUND), proc.stderr
    assert "no vault secrets" not in proc.stderr.lower()
    assert "  punakha-hq-srv1: " in proc.stderr  # a plain progress line per ansible task (not a terminal)


def _lab_dzops(punakha_lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in punakha_lab.env().items() if k not in ("DZOPS_VAULT_PASSWORD_FILE",)}
    return subprocess.run([sys.executable, "-m", "dzops", *args], capture_output=True, text=True, env=env,
                          timeout=900, check=False)


@pytest.mark.lab
def test_limited_check_runs_touch_only_the_limit_on_the_lab(punakha_lab) -> None:
    """--limit with --check against real devices: only the limit's links, APs and devices appear,
    and nothing is written (no subnet in the inventory, no backup commit)."""
    inventory = punakha_lab.inventory()
    wan_file = punakha_lab.inventory_dir / "group_vars/all/wan_links.yml"
    wan_before = wan_file.read_text()

    wan = _lab_dzops(punakha_lab, "--limit", "gewog-talo-rtr1", "--check", "--json", "provision-wan", "--all")
    assert wan.returncode in (ExitCode.OK, ExitCode.HOSTS_FAILED, ExitCode.UNREACHABLE), wan.stderr
    expected = {link.name for link in inventory.wan_links if "gewog-talo-rtr1" in (link.a.host, link.b.host)}
    assert {r["link"] for r in json.loads(wan.stdout)} == expected and expected
    assert wan_file.read_text() == wan_before

    ap = _lab_dzops(punakha_lab, "--limit", "access_points:&site_talo", "--check", "--json", "provision-ap", "--all")
    assert ap.returncode in (ExitCode.OK, ExitCode.HOSTS_FAILED, ExitCode.UNREACHABLE), ap.stderr
    assert [r["host"] for r in json.loads(ap.stdout)] == ["gewog-talo-ap1"]

    backup = _lab_dzops(punakha_lab, "--limit", LIMIT, "--check", "--json", "backup")
    assert backup.returncode in (ExitCode.OK, ExitCode.UNREACHABLE), backup.stderr
    data = json.loads(backup.stdout)
    assert {d["host"] for d in data["devices"]} == TALO and data["commit"] is None and data["check"] is True
    repo = inventory.backup_repository
    assert not (repo / "talo").exists() or subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout == ""
