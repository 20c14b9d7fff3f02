"""`dzops lab up|status|down|exec|link`: the virtual Dzongkhag built from the inventory."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
from dzops.cli.help import DzopsTyper
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say

app = DzopsTyper(help="Build, inspect and remove the virtual lab of the inventory.", no_args_is_help=True,
                 rich_markup_mode=None)

PrefixOption = Annotated[str | None, typer.Option(
    "--prefix", envvar="DZOPS_LAB_PREFIX", metavar="PREFIX", help="Name prefix of this lab (two labs need two prefixes).")]


def _lab(settings: Settings, prefix: str | None, configured: bool = False) -> tuple[Any, Any]:
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    # The lab is built from the inventory as written (it records which routers FRR stands in for);
    # commands then talk to it through the lab's view (stand-ins are FRR routers there).
    spec = spec_from_inventory(settings.load_inventory(declared=True), prefix, configured=configured)
    return Lab(spec), settings.load_inventory()


def _print_status(status: Any, as_json: bool) -> None:
    data = status.to_dict()
    if as_json:
        emit_json(data)
        return
    for node in data.get("nodes", []):
        daemons = " ".join(f"{name}={'up' if node['daemons'].get(name) else 'DOWN'}"
                           for name in node.get("expected_daemons", []))
        ssh = "ssh=ok" if node.get("ssh") else "ssh=NO"
        # A stand-in says so: an FRR router in the lab for the inventory's ios/routeros/... router.
        kind = f"{node['kind']} (FRR for {node['stands_in_for']})" if node.get("stands_in_for") else node["kind"]
        emit_text(f"{node['name']:<28} {kind:<7} {node.get('mgmt_address', ''):<16} {ssh:<7} {daemons}")
    for service, alive in data.get("services", {}).items():
        emit_text(f"{'(lab service)':<28} {service:<7} {'':<16} {'':<7} {'up' if alive else 'DOWN'}")


@app.command()
@contract
def up(
    ctx: typer.Context,
    prefix: PrefixOption = None,
    configured: Annotated[bool, typer.Option(
        "--configured", help="Start devices in their intended state instead of factory state.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Build the lab (root only). Running it again is harmless."""
    settings: Settings = ctx.obj
    lab, inventory = _lab(settings, prefix, configured)
    if settings.check:
        _would(f"build lab '{lab.spec.prefix}' from {settings.inventory}: {len(lab.spec.nodes)} nodes, "
               f"{len(lab.spec.links)} links", settings.json, {"prefix": lab.spec.prefix, "action": "up",
                                                               "nodes": [n.name for n in lab.spec.nodes]})
        return
    say(f"dzops: building lab '{lab.spec.prefix}' from {settings.inventory} ...")
    # The lab's host keys stay in its own known_hosts (state dir); the inventory's file holds
    # production trust and is never written here.
    status = lab.up()
    _print_status(status, settings.json)
    if not status.healthy:
        say("dzops: some lab nodes are not healthy (see above)")
        raise typer.Exit(ExitCode.LAB_ERROR)
    say(f"dzops: lab '{lab.spec.prefix}' is up: {len(lab.spec.nodes)} nodes, {len(lab.spec.links)} links")
    if configured:
        _configure_access_points(inventory, {n.name for n in lab.spec.nodes})


def _configure_access_points(inventory: Any, nodes: set[str]) -> None:
    """APs reach their intended state the way an officer gets them there: the real provision-ap run
    (save, apply, verify with hostapd_cli, restore on failure), not files the lab drops in place."""
    from dzops.execute.ap import provision_ap
    from dzops.plan.ap import access_points_in_scope

    scope = [ap for ap in access_points_in_scope(inventory) if ap in nodes]
    if not scope:
        return
    say(f"dzops: provision-ap {len(scope)} access point(s) to their intended state")
    results = provision_ap(inventory, scope, verify_timeout=120,
                           progress=lambda subject, message: say(f"  {subject}: {message}"))
    failed = [r for r in results if r.status not in ("ok", "changed")]
    for r in failed:
        say(f"dzops: {r.host}: {r.status}: {r.error}")
    if failed:
        say(f"dzops: {len(failed)} access point(s) did not reach their intended state")
        raise typer.Exit(ExitCode.LAB_ERROR)


@app.command()
@contract
def status(ctx: typer.Context, prefix: PrefixOption = None, json_output: JsonOption = False) -> None:
    """Every node, its daemons, and whether SSH answers."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    result = lab.status()
    _print_status(result, settings.json)
    if not result.healthy:
        raise typer.Exit(ExitCode.LAB_ERROR)


@app.command()
@contract
def down(ctx: typer.Context, prefix: PrefixOption = None, json_output: JsonOption = False) -> None:
    """Remove every namespace, link, mount, process and file of the lab, and nothing else."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    if settings.check:
        _would(f"remove lab '{lab.spec.prefix}' ({len(lab.spec.nodes)} nodes)", settings.json,
               {"prefix": lab.spec.prefix, "action": "down", "nodes": [n.name for n in lab.spec.nodes]})
        return
    lab.down()
    say(f"dzops: lab '{lab.spec.prefix}' removed")
    if settings.json:
        emit_json({"prefix": lab.spec.prefix, "action": "down", "done": True})


def _would(what: str, as_json: bool, data: dict[str, Any]) -> None:
    """--check on a lab command: say what would be done; nothing is built, removed or changed."""
    say(f"dzops: check: would {what}; nothing done")
    if as_json:
        emit_json({**data, "check": True, "done": False})


@app.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@contract
def exec_(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(metavar="NODE", autocompletion=complete.hosts, help="Node (inventory host) name.")],
    command: Annotated[list[str], typer.Argument(metavar="COMMAND", help="Command to run at the node's console.")],
    prefix: PrefixOption = None,
) -> None:
    """Run a command on a node as if at its console (an out-of-band change)."""
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    # `dzops lab exec NODE -- CMD`: Click keeps the `--` when unknown options are passed through.
    result = lab.exec(node, command[1:] if command[:1] == ["--"] else command)
    if settings.json:
        emit_json({"node": node, "returncode": result.returncode, "stdout": result.stdout or "",
                   "stderr": result.stderr or ""})
        raise typer.Exit(result.returncode)
    emit_text(result.stdout or "")
    if result.stderr:
        say(result.stderr.rstrip())
    raise typer.Exit(result.returncode)


@app.command()
@contract
def link(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(metavar="NODE", autocompletion=complete.hosts, help="Node (inventory host) name.")],
    interface: Annotated[str, typer.Argument(metavar="IFACE", help="Interface on that node.")],
    state: Annotated[str, typer.Argument(metavar="up|down", autocompletion=complete.link_states, help="up or down")],
    prefix: PrefixOption = None,
    json_output: JsonOption = False,
) -> None:
    """Take a lab link down or up (fault injection)."""
    from dzops.exceptions import UsageError

    if state not in ("up", "down"):
        raise UsageError(f"link state must be 'up' or 'down', not '{state}'")
    settings: Settings = ctx.obj
    lab, _ = _lab(settings, prefix)
    data = {"prefix": lab.spec.prefix, "action": "link", "node": node, "interface": interface, "state": state}
    if settings.check:
        _would(f"set {node} {interface} {state}", settings.json, data)
        return
    from dzops.lab.from_inventory import linux_ifname

    lab.set_link(node, linux_ifname(interface), state == "up")  # a stand-in's Gi0/1 is Gi0-1 in the lab
    say(f"dzops: {node} {interface} {state}")
    if settings.json:
        emit_json({**data, "done": True})
