"""`dzops user`: staff accounts on every host and device, from the inventory's `users`.

`add` and `remove` edit the inventory (round-trip YAML, comments kept); `apply` makes every host
match it; `audit` lists accounts that differ from it (exit DRIFT_FOUND when there are findings).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from dzops.cli import complete
from dzops.cli.exit_codes import ExitCode, exit_code_for_results
from dzops.cli.help import DzopsTyper
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say
from dzops.inventory.limit import select_hosts

app = DzopsTyper(help="Staff accounts: add, remove, apply everywhere, audit.", no_args_is_help=True)

LimitOption = Annotated[str | None, typer.Option(
    "--limit", "-l", metavar="PATTERN", autocompletion=complete.hosts_and_groups,
    help="Only these hosts or groups (comma list).")]


@app.command("add")
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
    """Add a user to the inventory (nothing changes on devices until `dzops user apply`)."""
    from dzops.exceptions import InventoryError, UsageError
    from dzops.inventory.checks import ssh_key_problem
    from dzops.inventory.edit import add_user, file_defining
    from dzops.inventory.loader import load_inventory

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
    users_file = file_defining(inventory.root, "users")
    before = users_file.read_text()
    add_user(inventory.root, {"login": login, "name": name, "email": email, "role": role, "ssh_keys": keys,
                              "expires": expiry})
    try:
        load_inventory(inventory.root, settings.vault_password_file)
    except InventoryError:
        users_file.write_text(before)  # never leave an inventory that fails its checks
        raise
    say(f"dzops: added {login} ({role}) to {users_file}; run `dzops user apply` to create the accounts")
    if settings.json or json_output:
        emit_json({"login": login, "role": role, "file": str(users_file), "keys": len(keys)})


@app.command("remove")
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
    path = remove_user(inventory.root, login)
    say(f"dzops: {login} marked absent in {path}; run `dzops user apply` to remove the account everywhere")
    if settings.json or json_output:
        emit_json({"login": login, "state": "absent", "file": str(path)})


@app.command("apply")
def apply(
    ctx: typer.Context,
    limit: LimitOption = None,
    check: Annotated[bool, typer.Option("--check", help="Show what would change; touch nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show per-account actions and rendered vendor lines.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Make every host's staff accounts match the inventory; reports what was done where."""
    from dzops.execute.users import apply_users

    settings: Settings = ctx.obj
    check = check or settings.check
    diff = diff or settings.diff
    inventory = settings.load_inventory()
    hosts = select_hosts(inventory, limit or settings.limit)
    say(f"dzops: user apply {'(check) ' if check else ''}on {len(hosts)} host(s)")
    results = apply_users(inventory, hosts, check=check, progress=lambda s, m: say(f"  {s}: {m}"))
    offboarded = {u.login for u in inventory.users if u.state == "absent"}
    report = {login: {r.host: r.data["accounts"][login] for r in results
                      if login in r.data.get("accounts", {})} for login in sorted(offboarded)}
    if settings.json or json_output:
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
def audit(
    ctx: typer.Context,
    limit: LimitOption = None,
    json_output: JsonOption = False,
) -> None:
    """Accounts on hosts but not in the inventory (or offboarded), and inventory users missing."""
    from dzops.execute.users import audit_users

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    hosts = select_hosts(inventory, limit or settings.limit)
    findings, results = audit_users(inventory, hosts, progress=lambda s, m: say(f"  {s}: {m}"))
    if settings.json or json_output:
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
