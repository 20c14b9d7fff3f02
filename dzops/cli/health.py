"""`dzops health`: one run of every check, its history, alerts on state change, a status page.

`dzops health` checks logins, WAN links (loss and RTT from both ends, OSPF Full), each site's LAN
from HQ, servers' services and resources, and APs' SSIDs; it exits HEALTH_DEGRADED (6) when
anything is down or degraded. Each run (not --check) is stored in the SQLite history beside
report_dir, alerts mail state changes confirmed by `health.alert_after` consecutive runs through
the outbox, and the status page in report_dir/status is regenerated.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
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

app = DzopsTyper(help="Uptime: check every link, site, server and AP now; history; status page.",
                 invoke_without_command=True)

SiteOption = Annotated[str | None, typer.Option("--site", metavar="SITE", help="Only this site.")]
STATUS_DIR = "status"  # report_dir/status: the page each recorded run regenerates


@app.callback()
def health(ctx: typer.Context, site: SiteOption = None, forks: ForksOption = None,
           json_output: JsonOption = False, retry_failed: RetryFailedOption = None) -> None:
    """Run every health check once; exit 6 when something is down or degraded.

    With --check the checks run but nothing is stored, mailed or written."""
    if ctx.invoked_subcommand is None:
        _health(ctx=ctx, site=site, forks=forks, json_output=json_output, retry_failed=retry_failed)


def _db_path(inventory: Any) -> Path:
    from dzops.exceptions import UsageError
    from dzops.state.db import db_path

    if inventory.report_dir is None:
        raise UsageError(f"{inventory.root}: report_dir is not set (group_vars/all): the history lives beside it")
    return db_path(inventory.report_dir)


def _check_site(inventory: Any, site: str | None) -> None:
    from dzops.exceptions import UsageError

    if site is not None and site not in inventory.sites:
        raise UsageError(f"--site: unknown site '{site}' (sites: {', '.join(inventory.sites)})")


@contract
def _health(ctx: typer.Context, site: str | None, forks: int | None, json_output: bool,
            retry_failed: int | None = None) -> None:
    from dzops.cli.progress import progress_for
    from dzops.execute.health import run_health
    from dzops.inventory.limit import select_hosts
    from dzops.plan.health import findings, hq_site, overall, plan_checks, wan_graph

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    _check_site(inventory, site)
    if not settings.check:
        from dzops.execute.schedule import job_lock_for

        ctx.with_resource(job_lock_for(inventory.report_dir, "health"))
    checks = plan_checks(inventory, select_hosts(inventory, settings.limit), site)
    say(f"dzops: health {'(check) ' if settings.check else ''}: {len(checks)} check(s)")
    started = time.time()
    with progress_for(settings, "health", [c.key for c in checks]) as progress:
        results = run_health(inventory, checks, progress=progress.step)
    from dzops.cli.runs import health_records

    record_results(health_records(inventory, checks, results))
    unmeasured = list(getattr(results, "unmeasured", ()))
    found = findings(results, wan_graph(inventory), hq_site(inventory))
    status = overall(results)
    if not settings.check:
        _record_and_alert(inventory, results, found, started, status)
    if settings.json:
        emit_json({"status": status, "check": settings.check,
                   "findings": [{"key": f.key, "status": f.status, "message": f.message, "site": f.site,
                                 "behind": list(f.behind), "hidden": list(f.hidden)} for f in found],
                   "results": [{"key": r.key, "kind": r.kind, "site": r.site, "status": r.status,
                                "message": r.message, "rtt_ms": r.rtt_ms, "loss": r.loss} for r in results],
                   # what this login cannot measure (a LAN ping on a vtysh-only login): data, not a failure
                   "unmeasured": [{"key": u.key, "kind": u.kind, "site": u.site, "message": u.message}
                                  for u in unmeasured]})
    else:
        for f in found:
            emit_text(f"{f.status.upper():<9} {f.key:<40} {f.message}")
        for u in unmeasured:
            emit_text(f"{'N/A':<9} {u.key:<40} {u.message}")
        emit_text(f"{status}: {sum(r.status == 'up' for r in results)}/{len(results)} check(s) up, "
                  f"{len(found)} finding(s)" + (f", {len(unmeasured)} not measurable" if unmeasured else ""))
    if found:
        raise typer.Exit(ExitCode.HEALTH_DEGRADED)


def _record_and_alert(inventory: Any, results: list[Any], found: list[Any], started: float, status: str) -> None:
    """Store the run, prune old runs, mail confirmed state changes, regenerate the status page."""
    from dzops.exceptions import MailError
    from dzops.report.health import alert_mail, changes, confirmed
    from dzops.scrub import egress
    from dzops.state import db

    hidden = {key for f in found for key in f.hidden}
    messages = {f.key: f.message for f in found}
    behind = {f.key: f.behind for f in found}
    n = inventory.health.alert_after
    with db.connect(_db_path(inventory)) as conn:
        db.record_run(conn, started, time.time(), status,
                      # stored messages leave dzops like any output (a device's error can quote a Vault value)
                      [db.Row(started, r.key, r.kind, r.site, r.status, egress(r.message), r.rtt_ms, r.loss)
                       for r in results])
        db.prune(conn, inventory.health.retention_days)
        streaks = {r.key: confirmed(db.recent(conn, r.key, n), n) for r in results if r.key not in hidden}
        found_changes = changes(db.alert_state(conn), streaks, messages, behind)
        for change in found_changes:
            db.set_alert_state(conn, change.key, change.new, change.kept_since, time.time())
    from dzops.report.health import render_page, status_summary, write_page

    context = status_context(inventory)
    write_page(Path(inventory.report_dir) / STATUS_DIR, render_page(context))
    for change in found_changes:
        say(f"dzops: {change.key}: {change.old} -> {change.new}")
        if inventory.mail is None:
            continue
        from dzops.report.mail import compose, deliver
        from dzops.scrub import egress as scrubbed

        # The status page goes with the alert: its summary under the text, the page itself (with the
        # alert on top) as the HTML part; compose passes both through the egress filter.
        subject, text = alert_mail(change, inventory.dzongkhag.name)
        html = render_page({**context, "notice": scrubbed(text)})
        message = compose(inventory.mail, subject, f"{text}\n{status_summary(context)}\n", html=html)
        try:
            deliver(inventory.mail, message, Path(inventory.report_dir) / "outbox")
        except MailError as exc:
            say(f"dzops: alert kept in the outbox: {exc}")


def write_status_page(inventory: Any, output: Path, now: float | None = None) -> Path:
    from dzops.report.health import render_page, write_page

    return write_page(output, render_page(status_context(inventory, now)))


def status_context(inventory: Any, now: float | None = None) -> dict[str, Any]:
    """What the status page shows, from the stored history: map colours, uptime bars, links."""
    from dzops.report.diagram import fresh_layout, load_layout
    from dzops.report.health import WINDOWS, page_context, site_rows, summarize
    from dzops.report.topology import build_topology
    from dzops.state import db

    now = now if now is not None else time.time()
    with db.connect(_db_path(inventory)) as conn:
        rows = db.history(conn, now - WINDOWS[-1][1])
    by_window = {name: summarize(rows, now - seconds, now) for name, seconds in WINDOWS}
    last_run = max((r.at for r in rows), default=None)
    last = [r for r in rows if r.at == last_run]
    last_status = {r.key: r.status for r in last + site_rows(last)}
    topology = build_topology(inventory, {})
    from dzops.cli.diagram import layout_path

    kept = layout_path(inventory)
    positions = load_layout(kept) if kept.is_file() else {}
    if set(positions) < set(topology.nodes):
        positions = fresh_layout(topology)
    return page_context(topology, positions, by_window, last_status, inventory.dzongkhag.name, now)


@app.command("history")
@contract
def history(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", metavar="AGE", help="How far back: 24h, 7d, 30d.")] = "7d",
    site: SiteOption = None,
    json_output: JsonOption = False,
) -> None:
    """Uptime per site, link and service, worst RTT and loss, and every outage with its length."""
    from dzops.exceptions import UsageError
    from dzops.report.health import history_text, parse_since, summarize
    from dzops.state import db

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    _check_site(inventory, site)
    try:
        seconds = parse_since(since)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    now = time.time()
    rows: list[Any] = []
    if _db_path(inventory).is_file():  # no runs yet: nothing to read, and nothing is created by reading
        with db.connect(_db_path(inventory)) as conn:
            rows = db.history(conn, now - seconds, site)
    summaries = summarize(rows, now - seconds, now)
    if settings.json:
        emit_json({"since": since, "site": site, "subjects": [s.to_dict(now) for s in summaries]})
    elif summaries:
        emit_text(history_text(summaries, now))
    else:
        say(f"dzops: no health runs stored in the last {since}")


@app.command("page")
@contract
def page(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Folder for index.html.")],
) -> None:
    """Write the static status page: the map coloured by state, uptime bars, RTT and loss per link."""
    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    path = write_status_page(inventory, output)
    say(f"dzops: status page written to {path}")
