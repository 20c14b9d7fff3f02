"""`dzops inventory check|show`: the inventory as Ansible resolves it, validated, secrets masked."""

from __future__ import annotations

from typing import Annotated

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
from dzops.cli.help import DzopsTyper
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say

app = DzopsTyper(help="Validate and show the inventory (never contacts a device).", no_args_is_help=True,
                 rich_markup_mode=None)


@app.command()
@contract
def check(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Report every problem in the inventory, each as file:line: host/field: message."""
    from dzops.exceptions import InventoryError
    from dzops.inventory.cache import load_validated

    settings: Settings = ctx.obj
    try:
        inventory, problems = load_validated(settings.inventory, settings.vault_password_file)
    except InventoryError as exc:  # cannot even be loaded (YAML syntax, vault): still one report
        inventory, problems = None, exc.problems
    if settings.json:
        emit_json({"ok": not problems, "hosts": len(inventory.devices) if inventory else 0,
                   "problems": [{"file": p.file, "line": p.line, "host": p.host, "field": p.field,
                                 "message": p.message} for p in problems]})
    else:
        for problem in problems:
            emit_text(str(problem))
    if problems:
        say(f"dzops: {len(problems)} problem(s) in {settings.inventory}")
        raise typer.Exit(ExitCode.INVALID_INVENTORY)
    say(f"dzops: inventory {settings.inventory} is valid ({len(inventory.devices)} hosts)")


@app.command()
@contract
def show(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Argument(
        metavar="HOST", autocompletion=complete.hosts, help="One host; default: the whole inventory.")] = None,
    json_output: JsonOption = False,
) -> None:
    """The resolved inventory (or one host) with every secret masked; --limit keeps only its hosts."""
    from dzops.exceptions import UsageError
    from dzops.inventory.limit import select_hosts
    from dzops.inventory.show import masked_host, masked_inventory

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    if host is not None and host not in inventory.devices:
        raise UsageError(f"unknown host '{host}'")
    selected = select_hosts(inventory, settings.limit)
    if host is not None and host not in selected:
        raise UsageError(f"host '{host}' is outside --limit '{settings.limit}'")
    data = masked_host(inventory, host) if host else masked_inventory(inventory)
    if host is None and settings.limit:
        data["devices"] = {name: value for name, value in data["devices"].items() if name in selected}
    if settings.json:
        emit_json(data)
    else:
        import io

        from ruamel.yaml import YAML

        yaml = YAML()
        yaml.default_flow_style = False
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        emit_text(buffer.getvalue())
