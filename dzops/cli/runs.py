"""`dzops runs`: the run ledger, and the one place every fan-out run is recorded in it.

Recording: `dzops.cli.contract.contract` opens `recorded(ctx, path)` around every command; for
the commands in RECORDED it times the run, reads the inventory's git commit (in a thread, beside
the fan-out), takes the per-device results the command hands over once (`hand_over`, through
`dzops.cli.output.record_results`), and at the end writes the run in one transaction of the
embedded database beside report_dir. What is stored leaves dzops like any output: through the
egress filter, plus every Vault value of the inventory. A ledger that cannot be written costs a
warning on stderr, never the run.

`--retry-failed ID` is resolved there too, before the command runs: the run must be one of the
same command; the units (devices, WAN links, health checks) that failed in it become the run's
scope, intersected with --limit.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import sys
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from dzops.cli.contract import contract
from dzops.cli.help import DzopsTyper
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say

# Commands whose runs check or change devices: each run of them is a ledger entry.
RECORDED = frozenset({"backup", "drift", "provision-wan", "provision-ap", "user apply", "user audit", "patch",
                      "health", "onboard", "schedule run", "data-backup run", "data-backup verify",
                      "data-backup check"})
# Commands whose unit is not a device the --limit pattern could name (links, APs chosen by name,
# onboarded devices): they narrow their own scope to the retried units (see `retried`).
OWN_SCOPE = frozenset({"provision-wan", "provision-ap", "onboard"})

app = DzopsTyper(help="The run ledger: who ran what, when, and how each device ended.",
                 invoke_without_command=True)


# -- recording ---------------------------------------------------------------------------------

@dataclass
class Retry:
    """A resolved --retry-failed: the run retried and what failed in it."""

    run: int
    units: list[str]
    hosts: list[str]


@dataclass
class _Recording:
    command: str
    argv: list[str]
    started: float
    check: bool
    devices: list[Any] = field(default_factory=list)  # results as handed over, converted at the end
    changed: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)  # unit -> seconds, from the progress display
    git: tuple[str | None, bool | None] = (None, None)
    git_thread: threading.Thread | None = None
    retry_of: int | None = None


_current: contextvars.ContextVar[_Recording | None] = contextvars.ContextVar("dzops_ledger_run", default=None)


def hand_over(results: Iterable[Any], *, changed: Collection[str] = (), command: str | None = None) -> None:
    """The run's per-device results (HostResult, LinkResult, or any object with host/status/error),
    for the ledger. `changed`: hosts whose change is not on the result itself (backup's commit)."""
    recording = _current.get()
    if recording is None:
        return
    recording.devices.extend(results)
    recording.changed.update(changed)
    if command:
        recording.command = command


def record_durations(seconds: dict[str, float]) -> None:
    """Each unit's seconds from its first worker to its last message (dzops.cli.progress measures them)."""
    recording = _current.get()
    if recording is not None:
        recording.seconds.update(seconds)


@contextmanager
def recorded(ctx: Any, path: str) -> Iterator[None]:
    """Record the run of `path` (when it is one of RECORDED) and resolve its --retry-failed."""
    settings: Settings = ctx.obj
    if path not in RECORDED:
        yield
        return
    recording = _Recording(command=path, argv=list(sys.argv[1:]), started=time.time(), check=settings.check)
    _start_git(recording, settings)
    if settings.retry_failed is not None:
        settings.retry = resolve_retry(settings, path)
        recording.retry_of = settings.retry_failed
    token = _current.set(recording)
    code = 0
    try:
        yield
    except BaseException as exc:
        code = _exit_code(exc)
        raise
    finally:
        _current.reset(token)
        _finish(recording, settings, code)


def _exit_code(exc: BaseException) -> int:
    from dzops.cli.exit_codes import exit_code_for

    if isinstance(getattr(exc, "exit_code", None), int):  # typer.Exit and click's own Exit
        return int(exc.exit_code)  # type: ignore[attr-defined]
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    return int(exit_code_for(exc))


def _start_git(recording: _Recording, settings: Settings) -> None:
    """The inventory's commit and dirtiness, read beside the run: two git calls the fan-out never waits for."""
    from dzops.state.ledger import git_state

    def read() -> None:
        recording.git = git_state(settings.inventory)

    recording.git_thread = threading.Thread(target=read, name="dzops-ledger-git", daemon=True)
    recording.git_thread.start()


def _finish(recording: _Recording, settings: Settings, code: int) -> None:
    """Write the run; any failure to do so is a warning, never the run's failure."""
    from dzops.cli.exit_codes import ExitCode

    if not recording.devices and code in (ExitCode.USAGE, ExitCode.INVALID_INVENTORY):
        return  # refused before anything was checked or changed
    if recording.command == "schedule run":
        return  # its job recorded itself: a child `dzops backup`, or patch in-process (handed over as patch)
    inventory = settings._inventory_cache
    if inventory is None:
        return  # the inventory never loaded: no device was reached, and there is no ledger to write to
    try:
        if inventory.report_dir is None:
            say("dzops: warning: run not recorded in the ledger: report_dir is not set (group_vars/all)")
            return
        run_id, failed = _write(recording, settings, inventory, code)
    except Exception as exc:  # noqa: BLE001 - the ledger is a record of the run, never a reason to fail it
        say(f"dzops: warning: run not recorded in the ledger: {type(exc).__name__}: {exc}")
        return
    if failed:
        say(f"dzops: run {run_id} recorded; `dzops {recording.command} --retry-failed {run_id}` runs again on "
            f"its {failed} failed unit(s) only")


def _write(recording: _Recording, settings: Settings, inventory: Any, code: int) -> tuple[int, int]:
    import dataclasses
    import shlex

    from dzops.scrub import inventory_secrets, mask_values
    from dzops.state import db, ledger

    secrets = inventory_secrets(inventory)
    devices = [_scrubbed(d, inventory, secrets) for d in to_records(recording.devices, inventory, recording.changed)]
    devices = [d if d.seconds is not None or d.unit not in recording.seconds
               else dataclasses.replace(d, seconds=recording.seconds[d.unit]) for d in devices]
    if recording.git_thread is not None:
        recording.git_thread.join(timeout=5)
    commit, dirty = recording.git
    argv = _clean(mask_values(" ".join(["dzops", *(shlex.quote(a) for a in recording.argv)]), secrets), None)
    run = ledger.RunRecord(command=recording.command, argv=argv, user=ledger.login_user(),
                           started=recording.started, finished=time.time(), exit_code=code, check=recording.check,
                           inventory=str(settings.inventory.resolve()), git_commit=commit, git_dirty=dirty,
                           retry_of=recording.retry_of, devices=devices)
    with db.connect(db.db_path(inventory.report_dir)) as conn:
        run_id = ledger.record(conn, run)
        # A health check every few minutes would otherwise grow the file without end: its runs go
        # with the health history they belong to, every other run after dzops_ledger_retention_days.
        ledger.prune(conn, run.finished - inventory.ledger_retention_days * 86400)
        ledger.prune(conn, run.finished - inventory.health.retention_days * 86400, command="health")
    return run_id, len(ledger.failed_units(run)[0])


def _clean(text: str | None, syntax: str | None) -> str | None:
    from dzops.scrub import egress

    return egress(text, syntax) if text else text


def _scrubbed(record: Any, inventory: Any, secrets: list[str]) -> Any:
    """A device row fit to store: its diff and error through its platform's rules and the Vault's values."""
    import dataclasses

    from dzops.scrub import mask_values, syntax_for

    device = inventory.devices.get(record.host)
    syntax = syntax_for(device.platform) if device is not None else None
    error = _clean(mask_values(record.error, secrets), syntax) if record.error else record.error
    diff = _clean(mask_values(record.diff, secrets), syntax) if record.diff else record.diff
    return dataclasses.replace(record, error=error, diff=diff or "")


def to_records(results: Iterable[Any], inventory: Any = None, changed: Collection[str] = ()) -> list[Any]:
    """Ledger rows of the results a command handed over, whatever their type.

    >>> from dzops.models import HostResult, LinkResult
    >>> link = LinkResult(link="hq-talo", status="rolled_back", hosts={
    ...     "hq": HostResult("hq", diff="+ ip ospf cost 10"), "talo": HostResult("talo", "failed", error="no Full")})
    >>> [(r.unit, r.host, r.status, r.unit_status) for r in to_records([link, HostResult("sw1", "changed")])]
    [('hq-talo', 'hq', 'ok', 'rolled_back'), ('hq-talo', 'talo', 'failed', 'rolled_back'), ('sw1', 'sw1', 'changed', 'changed')]
    """
    from dzops.state.ledger import DeviceRecord

    out: list[DeviceRecord] = []
    for r in results:
        if isinstance(r, DeviceRecord):
            out.append(r)
        elif hasattr(r, "link") and hasattr(r, "hosts"):  # a WAN link: one row per end, the link as unit
            ends = list(r.hosts.values())
            if not ends and inventory is not None:  # never reached a device: both ends carry the link's outcome
                wan = inventory.wan_link(r.link)
                ends = [None, None]
                names = [wan.a.host, wan.b.host]
            else:
                names = [h.host for h in ends]
            for name, host in zip(names, ends, strict=True):
                out.append(DeviceRecord(
                    host=name, unit=r.link, unit_status=r.status,
                    status=host.status if host is not None else r.status,
                    changed=bool(host.changed) if host is not None else False,
                    error=(host.error if host is not None else None) or r.error,
                    diff=host.diff if host is not None else ""))
        else:
            diff = getattr(r, "diff", "")
            status = r.status
            findings = getattr(r, "findings", None)  # a drift report's device: its findings are its diff
            if findings is not None:
                diff = "\n".join(f"{f.title}\n{f.detail}".rstrip() for f in findings)
                if status == "ok" and getattr(r, "drifted", False):
                    status = "drifted"
            out.append(DeviceRecord(host=r.host, status=status,
                                    changed=bool(getattr(r, "changed", False)) or r.host in changed,
                                    error=getattr(r, "error", None), diff=diff if isinstance(diff, str) else ""))
    return out


def health_records(inventory: Any, checks: Iterable[Any], results: Iterable[Any]) -> list[Any]:
    """Ledger rows of a health run: one per check, under the device it is about (its router for a
    site's LAN, its server for a service, the far end of a WAN link), so --host and --retry-failed
    find it. (A link is measured from its HQ end, but retrying the HQ router would re-check every link.)"""
    from dzops.state.ledger import DeviceRecord

    far_ends = {link.name: link.b.host for link in inventory.wan_links}
    owner = {}
    for check in checks:
        host = check.host
        if check.kind == "link":
            host = far_ends.get(check.key.split(":", 1)[1], host)
        elif host is None and check.kind == "lan":
            router = inventory.site_router(check.site)
            host = router.name if router is not None else ""
        elif host is None and check.kind == "service":
            host = check.key.split(":")[1]  # service:HOST:kind:target (dzops.plan.health.service_key)
        owner[check.key] = host or ""
    return [DeviceRecord(host=owner.get(r.key, ""), unit=r.key, status=r.status,
                         error=None if r.status == "up" else r.message) for r in results]


def resolve_retry(settings: Settings, path: str) -> Retry:
    """What `--retry-failed ID` runs again; narrows settings.limit for commands scoped by it."""
    from dzops.exceptions import UsageError
    from dzops.state import db, ledger

    run_id = settings.retry_failed
    assert run_id is not None
    inventory = settings.load_inventory()
    if inventory.report_dir is None or not db.db_path(inventory.report_dir).is_file():
        raise UsageError(f"--retry-failed {run_id}: no run ledger for this inventory yet (it lives beside "
                         "report_dir): nothing to retry")
    with db.connect(db.db_path(inventory.report_dir)) as conn:
        run = ledger.show(conn, run_id)
    if run is None:
        raise UsageError(f"--retry-failed {run_id}: no run {run_id} in the ledger (`dzops runs` lists them)")
    if run.command != path:
        raise UsageError(f"--retry-failed {run_id}: run {run_id} was `dzops {run.command}`, not `dzops {path}`")
    units, hosts = ledger.failed_units(run)
    if not units:
        say(f"dzops: run {run_id} has no failed unit: nothing to retry")
        raise typer.Exit(0)
    gone = [h for h in hosts if h not in inventory.devices]
    if gone:
        say(f"dzops: --retry-failed {run_id}: no longer in the inventory, left out: {', '.join(gone)}")
    hosts = [h for h in hosts if h in inventory.devices]
    if path not in OWN_SCOPE:
        if settings.limit:
            from dzops.inventory.limit import select_hosts

            allowed = set(select_hosts(inventory, settings.limit))
            outside = [h for h in hosts if h not in allowed]
            hosts = [h for h in hosts if h in allowed]
            if not hosts:
                raise UsageError(f"--retry-failed {run_id} with --limit '{settings.limit}': none of the run's "
                                 f"{len(outside)} failed host(s) is in the limit")
        if not hosts:
            raise UsageError(f"--retry-failed {run_id}: none of its failed hosts is in the inventory any more")
        settings.limit = ",".join(hosts)
    say(f"dzops: --retry-failed {run_id}: {len(units)} failed unit(s) of run {run_id} again")
    return Retry(run_id, units, hosts)


def retried(settings: Settings, scope: list[str]) -> list[str]:
    """`scope` narrowed to the units a --retry-failed run retries (unchanged without one)."""
    from dzops.exceptions import UsageError

    retry = settings.retry
    if retry is None:
        return scope
    wanted = set(retry.units)
    kept = [unit for unit in scope if unit in wanted]
    if not kept:
        raise UsageError(f"--retry-failed {retry.run}: none of the run's failed unit(s) ({', '.join(retry.units)}) "
                         "is in this run's selection")
    return kept


# -- dzops runs --------------------------------------------------------------------------------

LastOption = Annotated[int, typer.Option("--last", "-n", min=1, metavar="N", help="How many runs, newest first.")]
HostOption = Annotated[str | None, typer.Option("--host", metavar="HOST", help="Only runs that touched this device.")]


@app.callback()
def runs(ctx: typer.Context, last: LastOption = 20, host: HostOption = None, json_output: JsonOption = False) -> None:
    """List recorded runs: who ran what, when, from which inventory commit, with what per-device outcome.

    --limit (or --host) keeps the runs that touched those devices, counting only theirs."""
    if ctx.invoked_subcommand is None:
        _list(ctx=ctx, last=last, host=host, json_output=json_output)


def _hosts_of(settings: Settings, inventory: Any, host: str | None) -> set[str] | None:
    """The devices a listing is about: --host and --limit, intersected (None: every device)."""
    wanted: set[str] | None = None
    if settings.limit:
        from dzops.inventory.limit import select_hosts

        wanted = set(select_hosts(inventory, settings.limit))
    if host is not None:
        wanted = {host} if wanted is None else wanted & {host}
    return wanted


def _open_ledger(settings: Settings) -> tuple[Any, Any]:
    """(inventory, database path or None when nothing was recorded yet)."""
    from dzops.exceptions import UsageError
    from dzops.state.db import db_path

    inventory = settings.load_inventory()
    if inventory.report_dir is None:
        raise UsageError(f"{inventory.root}: report_dir is not set (group_vars/all): the run ledger lives beside it")
    path = db_path(inventory.report_dir)
    return inventory, path if path.is_file() else None


@contract
def _list(ctx: typer.Context, last: int, host: str | None, json_output: bool) -> None:
    from dzops.state import db, ledger

    settings: Settings = ctx.obj
    inventory, path = _open_ledger(settings)
    wanted = _hosts_of(settings, inventory, host)
    found: list[Any] = []
    if path is not None and wanted != set():
        with db.connect(path) as conn:  # reading never creates a database: see _open_ledger
            found = ledger.runs(conn, last, wanted)
    if settings.json:
        emit_json([{k: v for k, v in r.to_dict().items() if k != "devices"} for r in found])  # `show` has them
        return
    if not found:
        say("dzops: no run recorded" + (" for these devices" if wanted is not None else ""))
        return
    emit_text(f"{'ID':>5}  {'STARTED':<19}  {'USER':<10} {'COMMAND':<30} {'EXIT':>4}  {'SECONDS':>7}  "
              f"{'INVENTORY':<11} DEVICES")
    for r in found:
        emit_text(f"{r.id:>5}  {_when(r.started):<19}  {r.user[:10]:<10} {_command(r)[:30]:<30} {r.exit_code:>4}  "
                  f"{r.seconds:>7.1f}  {_commit(r):<11} {_counts(r.summary)}")


@app.command("show")
@contract
def show(ctx: typer.Context, run_id: Annotated[int, typer.Argument(metavar="ID", help="A run's id (see `dzops runs`).")],
         json_output: JsonOption = False) -> None:
    """One run in full: its command line, inventory commit, and every device's status, error and diff.

    --limit shows only those devices."""
    from dzops.exceptions import UsageError
    from dzops.state import db, ledger

    settings: Settings = ctx.obj
    inventory, path = _open_ledger(settings)
    wanted = _hosts_of(settings, inventory, None)
    run = None
    if path is not None:
        with db.connect(path) as conn:
            run = ledger.show(conn, run_id, wanted)
    if run is None:
        raise UsageError(f"no run {run_id} in the ledger (`dzops runs` lists them)")
    if settings.json:
        emit_json(run.to_dict())
        return
    emit_text(f"run {run.id}: {run.argv}")
    emit_text(f"  by {run.user}, {_when(run.started)} for {run.seconds:.1f} s, exit {run.exit_code}"
              + (" (check: nothing changed)" if run.check else "")
              + (f", retry of run {run.retry_of}" if run.retry_of else ""))
    emit_text(f"  inventory {run.inventory} at {_commit(run)}")
    emit_text(f"  devices: {_counts(run.summary) or 'none'}")
    for d in run.devices:
        unit = f" [{d.unit}: {d.unit_status}]" if d.unit != d.host else ""
        took = f" {d.seconds:.1f}s" if d.seconds is not None else ""
        emit_text(f"  {d.host or '-':<28} {d.status:<12}{' changed' if d.changed else ''}{took}{unit}"
                  + (f"  [{d.error}]" if d.error else ""))
    for d in run.devices:
        if d.diff:
            emit_text(f"--- {d.host}" + (f" ({d.unit})" if d.unit != d.host else "") + f"\n{d.diff}")


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _command(run: Any) -> str:
    return run.command + (" --check" if run.check else "") + (f" (retry {run.retry_of})" if run.retry_of else "")


def _commit(run: Any) -> str:
    """'3eb8b57', '3eb8b57+dirty', or '-' outside git.

    >>> from types import SimpleNamespace as R
    >>> _commit(R(git_commit="3eb8b57abc", git_dirty=True)), _commit(R(git_commit=None, git_dirty=None))
    ('3eb8b57+dirty', '-')
    """
    if not run.git_commit:
        return "-"
    return run.git_commit[:7] + ("+dirty" if run.git_dirty else "")


def _counts(summary: dict[str, int]) -> str:
    """'35 ok, 2 unreachable' (most first).

    >>> _counts({"unreachable": 2, "ok": 35})
    '35 ok, 2 unreachable'
    """
    return ", ".join(f"{n} {status}" for status, n in sorted(summary.items(), key=lambda kv: (-kv[1], kv[0])))
