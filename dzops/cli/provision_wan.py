"""`dzops provision-wan`: bring Dzongkhag WAN links up end to end, verified, or change nothing."""

from __future__ import annotations

from typing import Annotated, Any

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
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Save both ends, apply, verify (interface up, OSPF Full or route, pings, the gewog LAN reaching the
    HQ servers' ping and TCP services, else the first hop that fails); roll back on failure.

    With --limit, a link is in scope when either of its ends is in the limit: a link is changed on
    both of its ends or not at all, so its far end is configured too (and named on stderr)."""
    from dzops.cli.progress import progress_for
    from dzops.cli.runs import retried
    from dzops.exceptions import UsageError
    from dzops.execute.wan import provision_wan as run
    from dzops.inventory.edit import write_wan_subnets
    from dzops.plan.wan import links_in_scope

    settings: Settings = ctx.obj
    check = settings.check
    if settings.retry is not None and not (links or site or all_links):
        all_links = True  # the failed links of the retried run, within the whole inventory
    if sum(bool(x) for x in (links, site, all_links)) != 1:
        raise UsageError("name links, or give --site SITE, or --all (exactly one of them)")
    inventory = settings.load_inventory()
    if site and site not in inventory.sites:
        raise UsageError(f"unknown site '{site}' (known: {', '.join(sorted(inventory.sites))})")
    scope = links_within_limit(inventory, retried(settings, links_in_scope(inventory, links, site)), settings.limit)
    say(f"dzops: provision-wan {'(check) ' if check else ''}{len(scope)} link(s)")
    with progress_for(settings, "provision-wan", scope, final=_link_final) as progress:
        results = run(inventory, scope, check=check, verify_timeout=verify_timeout, progress=progress.step)
        progress.finish((r.link, r.status) for r in results)
    record_results(results)
    if not check:
        # Verified now, or already configured exactly as intended: either way the subnet is in use.
        allocated = {r.link: r.subnet for r in results
                     if (r.verified or r.status == "ok") and r.subnet and inventory.wan_link(r.link).subnet is None}
        written = write_wan_subnets(inventory.root, {k: v for k, v in allocated.items() if v})
        if written:
            say(f"dzops: recorded {len(allocated)} allocated subnet(s) in {written}")
    if settings.json:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            flags = ", ".join(x for x, on in (("changed", r.changed), ("verified", r.verified),
                                              ("rolled back", r.rolled_back)) if on) or "no change"
            emit_text(f"{r.link:<24} {r.status:<12} {r.subnet or '':<18} {flags}"
                      + (f"  [{r.error}]" if r.error else ""))
        if check or settings.diff:
            for host, names, text in router_diffs(results):
                emit_text(f"--- {host} (link{'s' if len(names) > 1 else ''}: {', '.join(names)})\n{text}")
    code = exit_code_for_results([r.status for r in results])
    if code:
        raise typer.Exit(code)


def router_diffs(results: list[Any]) -> list[tuple[str, list[str], str]]:
    """Each changed router's diff once, with the links that change it, in the order routers first appear.

    A router's candidate is its whole configuration, so every link of a hub carries the same diff:
    printed per link, the hub's diff came once per gewog.

    >>> from dzops.models import HostResult, LinkResult
    >>> hub = lambda: HostResult(host="hq", diff="+ interface eth1")
    >>> results = [LinkResult(link=n, hosts={"hq": hub(), n: HostResult(host=n, diff=f"+ {n}")}) for n in ("a", "b")]
    >>> router_diffs(results)
    [('hq', ['a', 'b'], '+ interface eth1'), ('a', ['a'], '+ a'), ('b', ['b'], '+ b')]
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for result in results:
        for host in result.hosts.values():
            if host.diff:
                grouped.setdefault((host.host, host.diff), []).append(result.link)
    return [(host, links, text) for (host, text), links in grouped.items()]


def _link_final(subject: str, message: str) -> bool:
    """A link's own messages end it when it verified or was skipped; its routers' messages do not."""
    return message == "verified" or message.startswith("skipped")


def links_within_limit(inventory: Any, scope: list[str], limit: str | None) -> list[str]:
    """The links of `scope` with at least one end in --limit; says which far ends that adds."""
    from dzops.exceptions import UsageError
    from dzops.inventory.limit import select_hosts

    if not limit:
        return scope
    allowed = set(select_hosts(inventory, limit))
    kept, far = [], set()
    for name in scope:
        link = inventory.wan_link(name)
        ends = {link.a.host, link.b.host}
        if ends & allowed:
            kept.append(name)
            far |= ends - allowed
    dropped = len(scope) - len(kept)
    if not kept:
        raise UsageError(f"--limit '{limit}': none of the {len(scope)} selected link(s) has an end in the limit")
    if dropped:
        say(f"dzops: --limit: {dropped} link(s) with no end in the limit left out")
    if far:
        say(f"dzops: --limit: far end(s) outside the limit configured too (a link changes on both ends): "
            f"{', '.join(sorted(far))}")
    return kept
