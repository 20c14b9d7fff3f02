"""`dzops lab up|status|down|exec|link`: the virtual Dzongkhag built from the inventory."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dzops.cli.exit_codes import ExitCode
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say

app = typer.Typer(help="Build, inspect and remove the virtual lab of the inventory.", no_args_is_help=True,
                  rich_markup_mode=None)

PrefixOption = Annotated[str | None, typer.Option(
    "--prefix", envvar="DZOPS_LAB_PREFIX", help="Name prefix of this lab (two labs need two prefixes).")]


def _lab(settings: Settings, prefix: str | None, configured: bool = False) -> tuple[Any, Any]:
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    inventory = settings.load_inventory()
    return Lab(spec_from_inventory(inventory, prefix, configured=configured)), inventory


def _print_status(status: Any, as_json: bool) -> None:
    data = status.to_dict()
    if as_json:
        emit_json(data)
        return
    for node in data.get("nodes", []):
        daemons = " ".join(f"{name}={'up' if node['daemons'].get(name) else 'DOWN'}"
                           for name in node.get("expected_daemons", []))
        ssh = "ssh=ok" if node.get("ssh") else "ssh=NO"
        emit_text(f"{node['name']:<28} {node['kind']:<7} {node.get('mgmt_address', ''):<16} {ssh:<7} {daemons}")
    for service, alive in data.get("services", {}).items():
        emit_text(f"{'(lab service)':<28} {service:<7} {'':<16} {'':<7} {'up' if alive else 'DOWN'}")


@app.command()
def up(
    ctx: typer.Context,
    prefix: PrefixOption = None,
    configured: Annotated[bool, typer.Option(
        "--configured", help="Start devices in their intended state instead of factory state.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Build the lab (root only). Running it again is harmless."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix, configured)
    say(f"dzops: building lab '{lab.spec.prefix}' from {settings.inventory} ...")
    # The lab's host keys stay in its own known_hosts (state dir); the inventory's file holds
    # production trust and is never written here.
    status = lab.up()
    _print_status(status, settings.json or json_output)
    if not status.healthy:
        say("dzops: some lab nodes are not healthy (see above)")
        raise typer.Exit(ExitCode.LAB_ERROR)
    say(f"dzops: lab '{lab.spec.prefix}' is up: {len(lab.spec.nodes)} nodes, {len(lab.spec.links)} links")


@app.command()
def status(ctx: typer.Context, prefix: PrefixOption = None, json_output: JsonOption = False) -> None:
    """Every node, its daemons, and whether SSH answers."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    result = lab.status()
    _print_status(result, settings.json or json_output)
    if not result.healthy:
        raise typer.Exit(ExitCode.LAB_ERROR)


@app.command()
def down(ctx: typer.Context, prefix: PrefixOption = None) -> None:
    """Remove every namespace, link, mount, process and file of the lab, and nothing else."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    lab.down()
    say(f"dzops: lab '{lab.spec.prefix}' removed")


@app.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
def exec_(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node (inventory host) name.")],
    command: Annotated[list[str], typer.Argument(help="Command to run at the node's console.")],
    prefix: PrefixOption = None,
) -> None:
    """Run a command on a node as if at its console (an out-of-band change)."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    # `dzops lab exec NODE -- CMD`: Click keeps the `--` when unknown options are passed through.
    result = lab.exec(node, command[1:] if command[:1] == ["--"] else command)
    emit_text(result.stdout or "")
    if result.stderr:
        say(result.stderr.rstrip())
    raise typer.Exit(result.returncode)


@app.command()
def link(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node (inventory host) name.")],
    interface: Annotated[str, typer.Argument(help="Interface on that node.")],
    state: Annotated[str, typer.Argument(help="up or down")],
    prefix: PrefixOption = None,
) -> None:
    """Take a lab link down or up (fault injection)."""
    from dzops.exceptions import UsageError

    if state not in ("up", "down"):
        raise UsageError(f"link state must be 'up' or 'down', not '{state}'")
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    lab.set_link(node, interface, state == "up")
    say(f"dzops: {node} {interface} {state}")
