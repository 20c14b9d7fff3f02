"""`dzops backup`: every device's configuration, scrubbed, into the git repository of backups."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
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
from dzops.inventory.limit import select_hosts

LimitOption = Annotated[Optional[str],  # noqa: UP045 - typer reads the annotation
                        typer.Option("--limit", "-l", metavar="PATTERN", autocompletion=complete.hosts_and_groups, help="Only these hosts: an Ansible host pattern.")]


def collect_and_store(inventory: Any, hosts: list[str], *, kind: str, intended: dict[str, str] | None = None,
                      progress: Callable[[str, str], None] | None = None,
                      when: Any = None, forks: int | None = None, commit: bool = True) -> tuple[list[Any], Any]:
    """Collect, scrub and commit: (DeviceBackup per host, with scrubbed files; the CommitResult).

    With commit=False (--check) nothing is written: the result names the devices whose files
    differ from the repository's, and carries no commit.
    """
    from dzops.exceptions import UsageError
    from dzops.execute.backup import collect
    from dzops.report.scrub import inventory_secrets, scrub
    from dzops.report.store import Snapshot, writing

    if inventory.backup_repository is None:
        raise UsageError(f"{inventory.root}: backup_repository is not set (group_vars/all)")
    secrets = inventory_secrets(inventory)

    def snapshot(b: Any) -> Any:
        return Snapshot(host=b.host, site=b.site, files=b.files, error=None if b.reachable else b.error)

    def run(store: Any) -> list[Any]:
        done: set[int] = set()
        refused: list[Exception] = []

        def scrubbed(b: Any) -> None:  # in the pool, as each device comes in: hidden behind the others
            b.files = {name: scrub(text, b.syntax_of(name), secrets) for name, text in b.files.items()}
            b.error = scrub(b.error, "linux", secrets) if b.error else None
            done.add(id(b))
            if store is not None:  # compared with the repository (and written if it differs) right away
                try:
                    store.put(snapshot(b))
                except Exception as exc:  # noqa: BLE001 - raised once the fan-out is over: no commit
                    refused.append(exc)

        backups = collect(inventory, hosts, intended=intended, progress=progress, each=scrubbed,
                          **({"workers": forks} if forks else {}))
        for b in backups:
            if id(b) not in done:  # nothing leaves unscrubbed or unwritten, whichever collector ran
                scrubbed(b)
        if refused:
            raise refused[0]
        return backups

    if not commit:
        backups = run(None)
        return backups, would_change(inventory.backup_repository, [snapshot(b) for b in backups])
    # The repository's lock is held from the first device in to the commit: no other run's files
    # can mix into this one's, and only git is left once the last device is in.
    with writing(inventory.backup_repository) as store:
        backups = run(store)
        return backups, store.commit([snapshot(b) for b in backups], kind=kind, when=when)


def would_change(repo: Path, snapshots: list[Any]) -> Any:
    """What a commit of these snapshots would change, read from the repository without writing."""
    from dzops.report.store import CommitResult, device_dir, head

    changed: dict[str, list[str]] = {}
    for snap in snapshots:
        if snap.error:
            continue
        folder = repo / device_dir(snap.site, snap.host)
        stored = {str(p.relative_to(folder)): p.read_text(errors="replace")
                  for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
        differ = sorted(name for name in set(stored) | set(snap.files) if stored.get(name) != snap.files.get(name))
        if differ:
            changed[snap.host] = [f"{device_dir(snap.site, snap.host)}/{name}" for name in differ]
    return CommitResult(commit=None, previous=head(repo), changed=changed)


def _before_first_login() -> None:
    """What the run needs before its first login, prepared while the inventory loads (its Vault key
    derivation and file reads run outside the GIL): what collecting imports, and the scrubber and
    store the fan-out and commit use, with the scrub table of the first message on stderr. Imported
    here, the main thread finds them loaded after the inventory instead of importing them one by
    one between the load and the first login. Not a daemon thread: a run that fails early ends
    once this has."""
    from dzops.execute.backup import prepare_collection
    from dzops.scrub import ANY, table

    prepare_collection()
    import dzops.report.scrub
    import dzops.report.store  # noqa: F401 - loaded for the main thread
    table(ANY)


@contract
def backup(
    ctx: typer.Context,
    limit: LimitOption = None,
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Pull every device's configuration in parallel; commit what changed (secrets removed).

    With --check the configurations are read and compared with the repository; nothing is committed."""
    from dzops.cli.progress import progress_for

    threading.Thread(target=_before_first_login, name="dzops-backup-warm-up").start()
    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    if not settings.check:  # a check writes nothing: it waits for nobody
        from dzops.execute.schedule import job_lock_for

        ctx.with_resource(job_lock_for(inventory.report_dir, "backup"))  # the lock a scheduled backup holds
    hosts = select_hosts(inventory, settings.limit)
    say(f"dzops: backup {'(check) ' if settings.check else ''}of {len(hosts)} device(s) "
        f"into {inventory.backup_repository}")
    with progress_for(settings, "backup", hosts) as progress:
        backups, result = collect_and_store(inventory, hosts, kind="backup", progress=progress.step,
                                            forks=settings.forks, commit=not settings.check)
    record_results(backups, changed=result.changed)
    unreachable = [b for b in backups if not b.reachable]
    if settings.check:
        say(f"dzops: check: {len(result.changed)} device(s) would change; nothing written")
    elif result.commit:
        say(f"dzops: committed {result.commit[:10]}: {len(result.changed)} device(s) changed")
    else:
        say("dzops: nothing changed, no commit")
    for b in unreachable:
        say(f"dzops: {b.status}: {b.error}")
    if settings.json:
        emit_json({
            "repository": str(inventory.backup_repository), "commit": result.commit, "previous": result.previous,
            "check": settings.check,
            "devices": [{"host": b.host, "site": b.site, "status": b.status, "error": b.error,
                         "files": sorted(b.files), "changed": result.changed.get(b.host, [])} for b in backups],
        })
    else:
        changed_word = "would change" if settings.check else "changed"
        for b in backups:
            state = changed_word if b.host in result.changed else b.status
            emit_text(f"{b.host:<28} {state:<12} {len(b.files):>3} file(s)" + (f"  [{b.error}]" if b.error else ""))
    if any(b.status == "failed" for b in backups):
        raise typer.Exit(ExitCode.HOSTS_FAILED)
    if unreachable:
        raise typer.Exit(ExitCode.UNREACHABLE)
