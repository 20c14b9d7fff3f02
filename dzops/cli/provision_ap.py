"""`dzops provision-ap`: access points and their uplink switch ports from the SSID intent, verified."""

from __future__ import annotations

from typing import Annotated

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import exit_code_for_results
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


@contract
def provision_ap(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(
        metavar="AP", autocompletion=complete.access_points, help="Access point names (group access_points).")] = None,
    site: Annotated[str | None, typer.Option(
        "--site", metavar="SITE", autocompletion=complete.sites, help="Every access point of this site.")] = None,
    all_aps: Annotated[bool, typer.Option("--all", help="Every access point of the inventory.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Show what would change; touch nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Also print each AP's diff (PSKs masked).")] = False,
    verify_timeout: Annotated[float, typer.Option(metavar="SECONDS", help="Seconds to wait for every SSID to verify.")] = 60.0,
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Save each AP's files, apply, verify with hostapd_cli (every SSID enabled, right SSID/security/VLAN);
    restore the saved files on failure. A second run changes nothing.

    With no AP, --site or --all: every AP and what would change, as `--check --all` shows it."""
    from dzops.cli.progress import progress_for
    from dzops.cli.runs import retried
    from dzops.exceptions import UsageError
    from dzops.execute.vendor_ap import provision_aps as run
    from dzops.inventory.limit import select_hosts
    from dzops.plan.ap import access_points_in_scope

    settings: Settings = ctx.obj
    check = settings.check
    if settings.retry is not None and not (hosts or site or all_aps):
        all_aps = True  # the failed APs of the retried run, not the bare command's check of every AP
    if not (hosts or site or all_aps):
        # A bare `dzops provision-ap`, as officers type it: every AP and what would change, touching nothing.
        all_aps, check = True, True
    if sum(bool(x) for x in (hosts, site, all_aps)) != 1:
        raise UsageError("name access points, or give --site SITE, or --all (exactly one of them)")
    inventory = settings.load_inventory()
    if site and site not in inventory.sites:
        raise UsageError(f"unknown site '{site}' (known: {', '.join(sorted(inventory.sites))})")
    scope = retried(settings, access_points_in_scope(inventory, hosts, site))
    if settings.limit:
        # The uplink switch port of an AP in the limit is configured with it, wherever the switch is.
        allowed = set(select_hosts(inventory, settings.limit))
        left_out = [ap for ap in scope if ap not in allowed]
        scope = [ap for ap in scope if ap in allowed]
        if not scope:
            raise UsageError(f"--limit '{settings.limit}': none of the selected access points is in the limit")
        if left_out:
            say(f"dzops: --limit: {len(left_out)} access point(s) outside the limit left out")
    say(f"dzops: provision-ap {'(check) ' if check else ''}{len(scope)} access point(s)")
    with progress_for(settings, "provision-ap", scope, final=_ap_final) as progress:
        results = run(inventory, scope, check=check, verify_timeout=verify_timeout, progress=progress.step)
        progress.finish((r.host, r.status) for r in results)
    record_results(results)
    for r in results:
        note = r.data.get("switch_port", {}).get("note")
        if note:
            say(f"  {r.host}: note: {note}")
    if settings.json:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            ssids = ",".join(f"{s['ssid']}@{s['vlan']}" for s in r.data.get("ssids", []))
            port = r.data.get("switch_port", {})
            emit_text(f"{r.host:<24} {r.status:<12} {ssids:<36} port:{port.get('status', '-')}"
                      + (f"  [{r.error}]" if r.error else ""))
            if (check or settings.diff) and r.diff:
                emit_text(f"--- {r.host}\n{r.diff}")
    code = exit_code_for_results([r.status for r in results])
    if code:
        raise typer.Exit(code)


def _ap_final(subject: str, message: str) -> bool:
    """An AP's '[n/total] ...' message is its last one (see dzops.execute.ap.ApRun._report)."""
    return message.startswith("[")
