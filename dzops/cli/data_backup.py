"""`dzops data-backup`: restic backups of the servers' databases and files, and proof they restore.

`run` dumps each database consistently and backs up every item with restic (retention applied);
`list` shows each server's snapshots; `restore` brings one database or path back (next to the live
data unless `--in-place`); `verify` restores the newest snapshots into scratch databases and
directories and compares them; `check` reads the repository (restic check). All run through
ansible-runner (playbooks/data_backup.yml, role dz_data_backup) on the servers themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode, exit_code_for_results
from dzops.cli.help import DzopsTyper
from dzops.cli.output import (
    ForksOption,
    JsonOption,
    RetryFailedOption,
    Settings,
    emit_json,
    emit_text,
    record_results,
    say,
)

app = DzopsTyper(help="Back up databases and files with restic; list, restore, verify.", no_args_is_help=True)

LimitOption = Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", autocompletion=complete.hosts_and_groups,
                                                 help="Only these servers: an Ansible host pattern.")]
EmailOption = Annotated[bool, typer.Option("--email", help="Mail the report with the inventory's mail settings.")]
RepositoryOption = Annotated[int, typer.Option(
    "--repository", metavar="N", help="Read each server's Nth repository, in data_backups order (default: the first).")]


@app.command("run")
@contract
def run(ctx: typer.Context, limit: LimitOption = None, email: EmailOption = False, forks: ForksOption = None,
        retry_failed: RetryFailedOption = None, json_output: JsonOption = False) -> None:
    """Dump the databases, back up every database and path, apply the retention policy.

    --check lists what each server would back up, and where to, without touching any."""
    code, _ = backup_and_report(ctx.obj, email=email)
    if code:
        raise typer.Exit(code)


def backup_and_report(settings: Settings, *, email: bool = False) -> tuple[ExitCode, dict[str, Any]]:
    """One backup run (or its --check plan), printed, saved and optionally mailed."""
    from dzops.execute import data_backup

    inventory = settings.load_inventory()
    scope = data_backup.hosts_in_scope(inventory, settings.limit)
    if settings.check:
        plan = {host: _plan(inventory.devices[host].data_backups) for host in scope}
        say(f"dzops: data-backup (check) {len(scope)} server(s): nothing was run")
        if settings.json:
            emit_json({"check": True, "servers": plan})
        else:
            emit_text("".join(f"{host}:\n" + "".join(f"  {line}\n" for line in lines) for host, lines in plan.items()))
        return ExitCode.OK, {"check": True, "servers": plan}
    return _run_and_report(settings, "backup", scope, email=email)


def _plan(backup: Any) -> list[str]:
    lines = [f"database {db.engine}:{db.name} (dump, then restic)" for db in backup.databases]
    lines += [f"path {p.path}" + (f" (excluding {', '.join(p.exclude)})" if p.exclude else "") for p in backup.paths]
    lines += [f"-> {r.kind} {r.host + ':' if r.host else ''}{r.path}" for r in backup.repositories]
    lines.append(f"retention daily {backup.retention.daily}, weekly {backup.retention.weekly}, "
                 f"monthly {backup.retention.monthly}")
    return lines


def _run_and_report(settings: Settings, action: str, scope: list[str], *, extravars: dict[str, Any] | None = None,
                    email: bool = False, save: bool = True) -> tuple[ExitCode, dict[str, Any]]:
    from dzops.cli.progress import progress_for
    from dzops.execute import data_backup
    from dzops.report import data_backup as report_mod

    inventory = settings.load_inventory()
    say(f"dzops: data-backup {action}: {len(scope)} server(s)")
    with progress_for(settings, f"data-backup {action}", scope) as progress:
        result = data_backup.run_action(inventory, action, extravars=extravars, hosts=scope,
                                        vault_password_file=settings.vault_password_file,
                                        on_event=progress.ansible_event, forks=settings.forks)
        for host in result.hosts:
            progress.step(host.host, host.status + (f" - {host.error}" if host.error else ""))
        progress.finish((h.host, h.status) for h in result.hosts)
    record_results(result.hosts)  # the run ledger (dzops runs; --retry-failed of data-backup run)
    report = result.to_dict()
    say(f"dzops: {report_mod.summary_line(report)}")
    if save and inventory.report_dir is not None:
        _, text_path = report_mod.save(report, Path(inventory.report_dir))
        say(f"dzops: report saved: {text_path}")
    if settings.json:
        emit_json(report)
    else:
        emit_text(report_mod.render_text(report))
    code = exit_code_for_results([h.status if h.status != "skipped" else "failed" for h in result.hosts])
    if email:
        from dzops.cli.patch import mail_job_report

        code = mail_job_report(inventory, report_mod, report, code)
    return code, report


@app.command("list")
@contract
def list_(ctx: typer.Context, limit: LimitOption = None, forks: ForksOption = None,
          repository: RepositoryOption = 1, json_output: JsonOption = False) -> None:
    """Each server's snapshots: item, time, age, and the size of each item's newest snapshot."""
    from dzops.execute import data_backup

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    scope = data_backup.hosts_in_scope(inventory, settings.limit)
    code, _ = _run_and_report(settings, "snapshots", scope, save=False,
                              extravars=data_backup.repository_vars(inventory, scope, repository))
    if code:
        raise typer.Exit(code)


@app.command("restore")
@contract
def restore(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(metavar="SERVER", autocompletion=complete.hosts_and_groups,
                                          help="The server whose backup to restore (on that server).")],
    database: Annotated[str | None, typer.Option(
        "--database", metavar="[ENGINE:]NAME", help="A database of the server's data_backups, e.g. postgresql:dzongkhag.")] = None,
    path: Annotated[str | None, typer.Option(
        "--path", metavar="PATH", help="A backed-up path, or a file or folder below one.")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="DIR", help="Directory on the server to restore into (default: its staging dir's restore/).")] = None,
    snapshot: Annotated[str, typer.Option("--snapshot", metavar="ID", help="A snapshot id (default: the newest).")] = "latest",
    in_place: Annotated[bool, typer.Option(
        "--in-place", help="Overwrite the live database or files with the backup (asks first).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --in-place.")] = False,
    repository: RepositoryOption = 1,
    json_output: JsonOption = False,
) -> None:
    """Bring back one database or path from a snapshot; live data is never touched without --in-place."""
    import re

    from dzops.exceptions import UsageError
    from dzops.execute import data_backup

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    what = data_backup.restore_target(inventory, server, database, path)
    from_repository = data_backup.repository_vars(inventory, [server], repository)
    if in_place and to:
        raise UsageError("--in-place restores over the live data; --to names another place: give one of them")
    if not re.fullmatch(r"latest|[0-9a-f]{8,64}", snapshot):
        raise UsageError(f"--snapshot: '{snapshot}' is not a snapshot id (8 to 64 hex digits) or 'latest'")
    if to is not None and not to.startswith("/"):
        raise UsageError(f"--to: '{to}' must be an absolute directory on {server}")
    name = what.get("path") or f"{what['engine']} database {what['name']}"
    if in_place and not yes:
        if not typer.confirm(f"Overwrite the live {name} on {server} with snapshot {snapshot}?", err=True):
            say("dzops: nothing restored")
            raise typer.Exit(ExitCode.OK)
    extravars = {"dz_data_backup_restore": what, "dz_data_backup_snapshot": snapshot,
                 "dz_data_backup_target": to or "", "dz_data_backup_in_place": in_place, **from_repository}
    code, _ = _run_and_report(settings, "restore", [server], extravars=extravars, save=False)
    if code:
        raise typer.Exit(code)


@app.command("verify")
@contract
def verify(ctx: typer.Context, limit: LimitOption = None, email: EmailOption = False, forks: ForksOption = None,
           repository: RepositoryOption = 1, json_output: JsonOption = False) -> None:
    """Restore test: the newest snapshot of each database into a scratch database and of each path
    into a scratch directory; row counts and checksums compared; the scratch dropped; repository read."""
    from dzops.execute import data_backup

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    scope = data_backup.hosts_in_scope(inventory, settings.limit)
    code, _ = _run_and_report(settings, "verify", scope, email=email,
                              extravars=data_backup.repository_vars(inventory, scope, repository))
    if code:
        raise typer.Exit(code)


@app.command("check")
@contract
def check_(ctx: typer.Context, limit: LimitOption = None, email: EmailOption = False, forks: ForksOption = None,
           repository: RepositoryOption = 1, json_output: JsonOption = False) -> None:
    """restic check of each server's repository, reading its pack files (a damaged pack fails it)."""
    from dzops.execute import data_backup

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    scope = data_backup.hosts_in_scope(inventory, settings.limit)
    code, _ = _run_and_report(settings, "check", scope, email=email,
                              extravars=data_backup.repository_vars(inventory, scope, repository))
    if code:
        raise typer.Exit(code)
