"""`dzops provision-wan`: bring Dzongkhag WAN links up end to end, verified, or change nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from dzops.cli import complete
from dzops.cli.exit_codes import exit_code_for_results
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say


def provision_wan(
    ctx: typer.Context,
    links: Annotated[list[str] | None, typer.Argument(
        metavar="LINK", autocompletion=complete.links, help="WAN link names (see wan_links).")] = None,
    site: Annotated[str | None, typer.Option(
        "--site", metavar="SITE", autocompletion=complete.sites, help="Every link with an end at this site.")] = None,
    all_links: Annotated[bool, typer.Option("--all", help="Every WAN link of the inventory.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Print each device's diff; touch nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Also print the diff when applying.")] = False,
    verify_timeout: Annotated[float, typer.Option(metavar="SECONDS", help="Seconds to wait for a link to verify.")] = 90.0,
    json_output: JsonOption = False,
) -> None:
    """Save both ends, apply, verify (interface up, OSPF Full or route, pings); roll back on failure."""
    from dzops.exceptions import UsageError
    from dzops.execute.wan import provision_wan as run
    from dzops.inventory.edit import write_wan_subnets
    from dzops.plan.wan import links_in_scope

    settings: Settings = ctx.obj
    check = check or settings.check
    if sum(bool(x) for x in (links, site, all_links)) != 1:
        raise UsageError("name links, or give --site SITE, or --all (exactly one of them)")
    inventory = settings.load_inventory()
    if site and site not in inventory.sites:
        raise UsageError(f"unknown site '{site}' (known: {', '.join(sorted(inventory.sites))})")
    scope = links_in_scope(inventory, links, site)
    say(f"dzops: provision-wan {'(check) ' if check else ''}{len(scope)} link(s)")
    results = run(inventory, scope, check=check, verify_timeout=verify_timeout,
                  progress=lambda subject, message: say(f"  {subject}: {message}"))
    if not check:
        # Verified now, or already configured exactly as intended: either way the subnet is in use.
        allocated = {r.link: r.subnet for r in results
                     if (r.verified or r.status == "ok") and r.subnet and inventory.wan_link(r.link).subnet is None}
        written = write_wan_subnets(inventory.root, {k: v for k, v in allocated.items() if v})
        if written:
            say(f"dzops: recorded {len(allocated)} allocated subnet(s) in {written}")
    if settings.json or json_output:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            flags = ", ".join(x for x, on in (("changed", r.changed), ("verified", r.verified),
                                              ("rolled back", r.rolled_back)) if on) or "no change"
            emit_text(f"{r.link:<24} {r.status:<12} {r.subnet or '':<18} {flags}"
                      + (f"  [{r.error}]" if r.error else ""))
            if check or diff or settings.diff:
                for host in r.hosts.values():
                    if host.diff:
                        emit_text(f"--- {host.host}\n{host.diff}")
    code = exit_code_for_results([r.status for r in results])
    if code:
        raise typer.Exit(code)
