"""`dzops backup`: every device's configuration, scrubbed, into the git repository of backups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from dzops.cli.exit_codes import ExitCode
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say
from dzops.inventory.limit import select_hosts

LimitOption = Annotated[Optional[str],  # noqa: UP045 - typer reads the annotation
                        typer.Option("--limit", "-l", help="Only these hosts or groups (comma list).")]


def collect_and_store(inventory: Any, hosts: list[str], *, kind: str, intended: dict[str, str] | None = None,
                      progress: Callable[[str, str], None] | None = None,
                      when: Any = None) -> tuple[list[Any], Any]:
    """Collect, scrub and commit: (DeviceBackup per host, with scrubbed files; the CommitResult)."""
    from dzops.exceptions import UsageError
    from dzops.execute.backup import collect
    from dzops.report.scrub import inventory_secrets, scrub
    from dzops.report.store import Snapshot, write_and_commit

    if inventory.backup_repository is None:
        raise UsageError(f"{inventory.root}: backup_repository is not set (group_vars/all)")
    backups = collect(inventory, hosts, intended=intended, progress=progress)
    secrets = inventory_secrets(inventory)
    for b in backups:
        b.files = {name: scrub(text, b.syntax_of(name), secrets) for name, text in b.files.items()}
        b.error = scrub(b.error, "linux", secrets) if b.error else None
    snapshots = [Snapshot(host=b.host, site=b.site, files=b.files, error=None if b.reachable else b.error)
                 for b in backups]
    result = write_and_commit(inventory.backup_repository, snapshots, kind=kind, when=when)
    return backups, result


def backup(
    ctx: typer.Context,
    limit: LimitOption = None,
    json_output: JsonOption = False,
) -> None:
    """Pull every device's configuration in parallel; commit what changed (secrets removed)."""
    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    if not settings.check:  # a check writes nothing: it waits for nobody
        from dzops.execute.schedule import job_lock_for

        ctx.with_resource(job_lock_for(inventory.report_dir, "backup"))  # the lock a scheduled backup holds
    hosts = select_hosts(inventory, limit or settings.limit)
    say(f"dzops: backup of {len(hosts)} device(s) into {inventory.backup_repository}")
    backups, result = collect_and_store(
        inventory, hosts, kind="backup",
        progress=(lambda host, message: say(f"  {host}: {message}")) if settings.verbose else None)
    unreachable = [b for b in backups if not b.reachable]
    if result.commit:
        say(f"dzops: committed {result.commit[:10]}: {len(result.changed)} device(s) changed")
    else:
        say("dzops: nothing changed, no commit")
    for b in unreachable:
        say(f"dzops: {b.status}: {b.error}")
    if settings.json or json_output:
        emit_json({
            "repository": str(inventory.backup_repository), "commit": result.commit, "previous": result.previous,
            "devices": [{"host": b.host, "site": b.site, "status": b.status, "error": b.error,
                         "files": sorted(b.files), "changed": result.changed.get(b.host, [])} for b in backups],
        })
    else:
        for b in backups:
            state = "changed" if b.host in result.changed else b.status
            emit_text(f"{b.host:<28} {state:<12} {len(b.files):>3} file(s)" + (f"  [{b.error}]" if b.error else ""))
    if any(b.status == "failed" for b in backups):
        raise typer.Exit(ExitCode.HOSTS_FAILED)
    if unreachable:
        raise typer.Exit(ExitCode.UNREACHABLE)
