"""`dzops user`: staff accounts on every host and device, from the inventory's `users`.

`add` and `remove` edit the inventory (round-trip YAML, comments kept); `apply` makes every host
match it; `audit` lists accounts that differ from it (exit DRIFT_FOUND when there are findings).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

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
from dzops.inventory.limit import select_hosts

app = DzopsTyper(help="Staff accounts: add, remove, apply everywhere, audit.", no_args_is_help=True)

LimitOption = Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", autocompletion=complete.hosts_and_groups,
                                                 help="Only these hosts: an Ansible host pattern.")]


@app.command("add")
@contract
def add(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="Login name (lower case, as on every device).")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    email: Annotated[str, typer.Option("--email", help="Work e-mail address.")],
    role: Annotated[str, typer.Option("--role", help="A role from user_roles (admin, operator, readonly).")],
    key: Annotated[list[Path], typer.Option("--key", metavar="FILE", help="SSH public key file (repeatable).")],
    expires: Annotated[str | None, typer.Option("--expires", metavar="DATE", help="Last day of access, YYYY-MM-DD.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Add a user to the inventory (nothing changes on devices until `dzops user apply`).

    --check validates the edit on a copy of the inventory and writes nothing; --diff shows it."""
    from dzops.exceptions import UsageError
    from dzops.inventory.checks import ssh_key_problem
    from dzops.inventory.edit import add_user

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    if role not in inventory.user_roles:
        raise UsageError(f"--role: unknown role '{role}' (known: {', '.join(sorted(inventory.user_roles))})")
    keys = []
    for path in key:
        try:
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise UsageError(f"--key {path}: {exc.strerror}") from None
        for line in lines:
            reason = ssh_key_problem(line)
            if reason:
                raise UsageError(f"--key {path}: bad SSH public key: {reason}")
            keys.append(line)
    if not keys:
        raise UsageError("--key: no SSH public key in the given file(s)")
    expiry = None
    if expires:
        try:
            expiry = dt.date.fromisoformat(expires)
        except ValueError:
            raise UsageError(f"--expires: not a date (YYYY-MM-DD): {expires}") from None
    users_file, diff = edit_inventory(settings, inventory.root, lambda root: add_user(
        root, {"login": login, "name": name, "email": email, "role": role, "ssh_keys": keys, "expires": expiry}))
    if settings.check:
        say(f"dzops: check: would add {login} ({role}) to {users_file}; nothing written")
    else:
        say(f"dzops: added {login} ({role}) to {users_file}; run `dzops user apply` to create the accounts")
    if settings.json:
        emit_json({"login": login, "role": role, "file": str(users_file), "keys": len(keys), "check": settings.check,
                   **({"diff": diff} if settings.diff else {})})
    elif settings.diff:
        emit_text(diff)


@app.command("remove")
@contract
def remove(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(metavar="LOGIN", autocompletion=complete.users, help="Login to offboard.")],
    json_output: JsonOption = False,
) -> None:
    """Mark a user absent; the next `dzops user apply` removes the account everywhere it is found.

    On Linux hosts the home is archived to /var/backups/dz_users/LOGIN-YYYYmmdd.tar.gz, then the
    account, its processes and its home are removed; on routers the account and home are deleted.
    """
    from dzops.inventory.edit import remove_user

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    path, diff = edit_inventory(settings, inventory.root, lambda root: remove_user(root, login))
    if settings.check:
        say(f"dzops: check: would mark {login} absent in {path}; nothing written")
    else:
        say(f"dzops: {login} marked absent in {path}; run `dzops user apply` to remove the account everywhere")
    if settings.json:
        emit_json({"login": login, "state": "absent", "file": str(path), "check": settings.check,
                   **({"diff": diff} if settings.diff else {})})
    elif settings.diff:
        emit_text(diff)


def edit_inventory(settings: Settings, root: Path, edit: Callable[[Path], Path]) -> tuple[Path, str]:
    """Apply an inventory edit to a copy, check the copy loads cleanly, then (unless --check) write
    the edited file back: (the inventory's file, a unified diff of the change).

    The real inventory is written once, and only with a result that passes every check.
    """
    import difflib
    import shutil
    import tempfile

    from dzops.inventory.loader import load_inventory
    from dzops.state.files import atomic_write

    with tempfile.TemporaryDirectory(prefix="dzops-edit-") as tmp:
        copy = Path(tmp) / root.name
        shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        edited = edit(copy)
        load_inventory(copy, settings.vault_password_file)  # InventoryError: the real file stays untouched
        target = root / edited.relative_to(copy)
        before, after = target.read_text(), edited.read_text()
    diff = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{target.relative_to(root)}", f"b/{target.relative_to(root)}"))
    if not settings.check and after != before:
        atomic_write(target, after)
    return target, diff


@app.command("apply")
@contract
def apply(
    ctx: typer.Context,
    limit: LimitOption = None,
    check: Annotated[bool, typer.Option("--check", help="Show what would change; touch nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show per-account actions and rendered vendor lines.")] = False,
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Make every host's staff accounts match the inventory; reports what was done where."""
    from dzops.cli.progress import progress_for
    from dzops.execute.users import apply_users

    settings: Settings = ctx.obj
    check, diff = settings.check, settings.diff
    inventory = settings.load_inventory()
    hosts = select_hosts(inventory, settings.limit)
    say(f"dzops: user apply {'(check) ' if check else ''}on {len(hosts)} host(s)")
    with progress_for(settings, "user apply", hosts) as progress:
        results = apply_users(inventory, hosts, check=check, progress=progress.step,
                              vault_password_file=settings.vault_password_file, on_event=progress.ansible_event)
        progress.finish((r.host, r.status) for r in results)
    record_results(results)
    from dzops.scrub import egress, syntax_for

    # Rendered vendor lines carry derived secrets (an IOS `secret 9` hash is no Vault value): each
    # host's diff leaves through its own platform's rules, in the JSON and in --diff alike.
    for r in results:
        r.diff = egress(r.diff, syntax_for(inventory.devices[r.host].platform)) if r.diff else r.diff
    offboarded = {u.login for u in inventory.users if u.state == "absent"}
    report = {login: {r.host: r.data["accounts"][login] for r in results
                      if login in r.data.get("accounts", {})} for login in sorted(offboarded)}
    if settings.json:
        emit_json({"hosts": [r.to_dict() for r in results], "offboarded": report})
    else:
        for r in results:
            changes = ", ".join(f"{k} {v}" for k, v in r.data.get("accounts", {}).items() if v not in ("unchanged", "present"))
            emit_text(f"{r.host:<26} {r.status:<11} {changes or ('' if r.error else 'no change')}"
                      + (f"  [{r.error}]" if r.error else ""))
            if diff and r.diff and r.status == "skipped":
                emit_text("\n".join(f"    {line}" for line in r.diff.splitlines()))
        for login, where in report.items():
            emit_text(f"offboarded {login}: " + (", ".join(f"{h} ({a})" for h, a in where.items())
                                                 if where else "found on no host"))
    code = exit_code_for_results([r.status for r in results])
    if code:
        raise typer.Exit(code)


@app.command("audit")
@contract
def audit(
    ctx: typer.Context,
    limit: LimitOption = None,
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Accounts on hosts but not in the inventory (or offboarded), and inventory users missing."""
    from dzops.cli.progress import progress_for
    from dzops.execute.users import audit_users

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    hosts = select_hosts(inventory, settings.limit)
    with progress_for(settings, "user audit", hosts) as progress:
        findings, results = audit_users(inventory, hosts, progress=progress.step,
                                        vault_password_file=settings.vault_password_file,
                                        on_event=progress.ansible_event)
        progress.finish((r.host, r.status) for r in results)
    record_results(results)
    if settings.json:
        emit_json({"findings": [f.to_dict() for f in findings],
                   "hosts": [r.to_dict() for r in results if r.status != "ok"]})
    else:
        for f in findings:
            emit_text(f"{f.host:<26} {f.login:<16} {f.kind:<10} {f.detail}")
        for r in results:
            if r.status not in ("ok", "skipped"):
                emit_text(f"{r.host:<26} {'-':<16} {r.status:<10} {r.error or ''}")
    say(f"dzops: {len(findings)} finding(s) on {len(hosts)} host(s)")
    code = exit_code_for_results([r.status for r in results])
    if code:
        raise typer.Exit(code)
    if findings:
        raise typer.Exit(ExitCode.DRIFT_FOUND)
