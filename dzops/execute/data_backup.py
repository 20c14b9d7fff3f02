"""restic backups of servers' databases and paths: playbooks/data_backup.yml (role dz_data_backup)
through ansible-runner.

Each action (backup, check, snapshots, restore, verify) ends in the role setting the fact
`dz_data_backup_record`; its runner event is where the host's outcome comes from, never
ansible-playbook's output. A host whose repository server cannot be reached is `unreachable` (the
role's delegated tasks to that server fail that way); every other failure is `failed`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dzops.exceptions import UsageError
from dzops.execute.ssh import explain_host_key
from dzops.inventory.limit import select_among
from dzops.inventory.models import Inventory
from dzops.models import HostResult

RECORD_FACT = "dz_data_backup_record"
ACTIONS = ("backup", "check", "snapshots", "restore", "verify")


def hosts_in_scope(inventory: Inventory, limit: str | None) -> list[str]:
    """Servers with `data_backups` that a --limit selects, in inventory order.

    Raises UsageError when nothing is left: a typo must not look like a successful run.
    """
    hosts = [name for name, device in inventory.devices.items() if device.data_backups is not None]
    if not hosts:
        raise UsageError("no server in the inventory has data_backups")
    return select_among(inventory, limit, hosts,
                        f"--limit: '{limit}' selects no server with data_backups (those: {', '.join(hosts)})")


def repository_vars(inventory: Inventory, scope: list[str], number: int) -> dict[str, Any]:
    """Extra vars that make list, restore, verify and check read each server's `number`th repository
    (1-based, in data_backups order; backup always writes to every one).

    Raises UsageError naming a server in scope that has fewer repositories.
    """
    if number < 1:
        raise UsageError(f"--repository: {number} is not a repository number (1 is the first)")
    for host in scope:
        backup = inventory.devices[host].data_backups
        count = len(backup.repositories) if backup is not None else 0
        if number > count:
            raise UsageError(f"--repository {number}: {host} has {count} repositor{'y' if count == 1 else 'ies'} "
                             "in its data_backups")
    return {"dz_data_backup_repository_index": number - 1}


def restore_target(inventory: Inventory, host: str, database: str | None, path: str | None) -> dict[str, Any]:
    """What `restore --database NAME | --path PATH` means on this server: which backed-up item holds it.

    A path may be the backed-up directory itself or anything below it.
    """
    if host not in inventory.devices:
        raise UsageError(f"unknown server '{host}'")
    backup = inventory.devices[host].data_backups
    if backup is None:
        raise UsageError(f"{host} has no data_backups")
    if (database is None) == (path is None):
        raise UsageError("say what to restore: --database NAME or --path PATH (one of them)")
    if database is not None:
        engine, _, name = database.rpartition(":")
        found = [db for db in backup.databases if db.name == name and (not engine or db.engine == engine)]
        if not found:
            known = ", ".join(f"{db.engine}:{db.name}" for db in backup.databases) or "none"
            raise UsageError(f"{host} backs up no database '{database}' (databases: {known})")
        if len(found) > 1:
            raise UsageError(f"'{name}' is both " + " and ".join(f"{db.engine}:{db.name}" for db in found)
                             + f": say which, e.g. --database {found[0].engine}:{name}")
        return {"kind": "database", "engine": found[0].engine, "name": found[0].name}
    assert path is not None
    clean = "/" + path.strip("/")
    for item in backup.paths:
        if clean == item.path or clean.startswith(item.path.rstrip("/") + "/"):
            return {"kind": "path", "item": item.path, "path": clean}
    known = ", ".join(p.path for p in backup.paths) or "none"
    raise UsageError(f"{host} backs up no path holding '{path}' (paths: {known})")


@dataclass
class DataBackupRun:
    """One `dzops data-backup` action over its servers; HostResult.data holds each role record."""

    action: str
    started: str
    finished: str = ""
    hosts: list[HostResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_from_events(events: list[Any]) -> dict[str, Any] | None:
    """The dz_data_backup_record fact of the last event that carries it."""
    for event in reversed(events):
        facts = event.result.get("ansible_facts") or {}
        if RECORD_FACT in facts:
            return dict(facts[RECORD_FACT])
    return None


def _unreachable_error(event: Any) -> str:
    """Which machine did not answer: the server itself, or (a delegated task) its repository server."""
    result = event.result
    failed = [item for item in result.get("results") or [] if isinstance(item, dict) and item.get("unreachable")]
    detail = failed[0] if failed else result
    message = str(detail.get("msg") or "no answer").strip().splitlines()
    delegated = (detail.get("_ansible_delegated_vars") or {}).get("ansible_delegated_host")
    item = detail.get("item") if isinstance(detail.get("item"), dict) else {}
    who = f"repository server {delegated or item.get('host')}" if delegated or item.get("host") else "server"
    return f"{who} unreachable ({event.task}): {message[0] if message else 'no answer'}"


def run_action(
    inventory: Inventory,
    action: str,
    *,
    limit: str | None = None,
    extravars: dict[str, Any] | None = None,
    vault_password_file: Path | None = None,
    on_event: Callable[[Any], None] | None = None,
    forks: int = 10,
    hosts: list[str] | None = None,
) -> DataBackupRun:
    """Run one role action on the servers in scope; per-host failures are results."""
    from dzops.execute.ansible import run_playbook

    if action not in ACTIONS:
        raise UsageError(f"unknown data-backup action '{action}' (actions: {', '.join(ACTIONS)})")
    scope = hosts or hosts_in_scope(inventory, limit)
    run = DataBackupRun(action=action, started=_now())
    variables = {"dz_data_backup_action": action, **(extravars or {})}
    playbook = run_playbook(inventory.root, "data_backup.yml", limit=",".join(scope), extravars=variables,
                            forks=forks, vault_password_file=vault_password_file, on_event=on_event,
                            known_hosts=inventory.known_hosts)
    for host in scope:
        result = playbook.hosts.get(host) or HostResult(host=host, status="skipped", error="not run")
        events = playbook.host_events(host)
        unreachable = [e for e in events if e.status == "unreachable"]
        if unreachable:
            result.status, result.error = "unreachable", _unreachable_error(unreachable[0])
            refused = explain_host_key(inventory, host, str(unreachable[0].result.get("msg") or ""))
            if refused is not None:
                result.status, result.error = "failed", refused
        record = record_from_events(events)
        if record is not None:
            result.data = record
            if record.get("error") and result.status == "failed":
                result.error = f"{record.get('action', action)}: {str(record['error']).splitlines()[-1]}"
            if record.get("unreachable") and result.status == "failed":  # restic's ssh found no one there
                last = str(record.get("error") or "no answer").splitlines()[-1]
                result.status, result.error = "unreachable", f"repository server {record['unreachable']} unreachable: {last}"
        run.hosts.append(result)
    run.finished = _now()
    return run


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")
