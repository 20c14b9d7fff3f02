"""`dzops drift`: intended vs running, out-of-band changes and unreachable devices, as a saved report.

Every run collects the devices' configurations (recorded in the backup repository, like a backup
run), compares each FRR router with its intended config on the same SSH connection, diffs the
backups against the previous drift run, and saves an HTML and a text report under `report_dir`.
`--email` sends it; what cannot be sent waits in `report_dir/outbox` for the next run.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.backup import LimitOption, collect_and_store
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
from dzops.cli.output import (
    ForksOption,
    JsonOption,
    RetryFailedOption,
    Settings,
    emit_json,
    emit_text,
    error,
    record_results,
    say,
)
from dzops.inventory.limit import select_hosts

STATE_FILE = "drift-state.json"  # host -> backup commit the last drift report measured up to


def _load_state(report_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((report_dir / STATE_FILE).read_text())
        return {str(k): str(v) for k, v in data.get("hosts", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _save_state(report_dir: Path, state: dict[str, str]) -> None:
    from dzops.state import write_private

    # Atomic: a run cut short never leaves a state file that has lost every host's baseline.
    write_private(report_dir / STATE_FILE, json.dumps({"hosts": state}, indent=1, sort_keys=True) + "\n")


def _ap_intent(inventory: Any, device: Any) -> dict[str, str] | None:
    """The AP's intended files from dzops.plan.ap, or None while that module does not exist."""
    try:
        from dzops.plan.ap import intended_ap_files  # type: ignore[import-not-found]
    except ImportError:
        return None
    files: dict[str, str] = intended_ap_files(inventory, device)
    return files


@contract
def drift(
    ctx: typer.Context,
    hosts_arg: Annotated[list[str] | None, typer.Argument(
        metavar="HOST", autocompletion=complete.hosts, help="Only these devices (names or patterns); with --remediate, the devices to put back.")
    ] = None,
    email: Annotated[bool, typer.Option("--email", help="Send the report to the inventory's mail recipients.")] = False,
    remediate: Annotated[bool, typer.Option(
        "--remediate", help="Put drifted devices back to their intended config: preflight, replace, verify, "
                            "roll back on failure (routers).")] = False,
    check: Annotated[bool, typer.Option("--check", help="With --remediate: show the commands; change nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="With --remediate: also print the commands applied.")] = False,
    verify_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="With --remediate: seconds to wait for a device's WAN links to verify.")] = 90.0,
    limit: LimitOption = None,
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Report configuration drift per site and device; exit DRIFT_FOUND when there is any.

    With --remediate: exit 0 when every device is as intended afterwards, 4 when one failed (and
    was rolled back), 5 when one was unreachable; with --check, 6 when something would change."""
    from dzops.exceptions import DzopsError, MailError, UsageError
    from dzops.report import drift as report
    from dzops.report.scrub import inventory_secrets
    from dzops.report.store import changes_between, commit_time, head, is_commit

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    if remediate:
        if email:
            raise UsageError("--email and --remediate do not go together: run `dzops drift --email` after")
        _remediate(settings, inventory, _selected(inventory, hosts_arg, settings.limit),
                   named=bool(hosts_arg), check=check or settings.check, diff=diff or settings.diff,
                   as_json=settings.json or json_output, verify_timeout=verify_timeout)
        return
    if settings.check or settings.diff:  # global or the command's own: the same option
        raise UsageError("--check and --diff go with `dzops drift --remediate` (a drift report changes no device)")
    if inventory.report_dir is None:
        raise UsageError(f"{inventory.root}: report_dir is not set (group_vars/all)")
    if email and inventory.mail is None:
        raise UsageError(f"{inventory.root}: --email needs the 'mail' settings (group_vars/all)")
    hosts = _selected(inventory, hosts_arg, settings.limit)
    from dzops.execute.schedule import job_lock_for
    from dzops.state import private_dir, write_private

    report_dir = private_dir(inventory.report_dir)
    ctx.with_resource(job_lock_for(report_dir, "drift"))  # the lock a scheduled drift run holds
    now = dt.datetime.now().astimezone()
    secrets = inventory_secrets(inventory)

    intended = report.intended_frr_configs(inventory, hosts)
    say(f"dzops: drift check of {len(hosts)} device(s)")
    from dzops.cli.progress import progress_for

    with progress_for(settings, "drift", hosts) as progress:
        backups, commit = collect_and_store(inventory, hosts, kind="drift", intended=intended, when=now,
                                            progress=progress.step, forks=settings.forks)
    repo = inventory.backup_repository
    tip = head(repo)

    # Out-of-band changes: from what each device's last drift report saw (else the previous run's
    # HEAD) to now. Hosts sharing a baseline share one git diff.
    state = _load_state(report_dir)
    sites = {b.host: b.site for b in backups}
    by_base: dict[str, dict[str, str]] = {}
    for host in hosts:
        base = state.get(host) if is_commit(repo, state.get(host)) else commit.previous
        if base and tip and base != tip:
            by_base.setdefault(base, {})[host] = sites[host]
    changes = [c for base, group in by_base.items() for c in changes_between(repo, base, tip, group)]
    baselines = sorted({commit_time(repo, base) for base in by_base} | (
        {commit_time(repo, commit.previous)} if commit.previous else set()))

    from dzops.plan.candidates import CANDIDATE_PLATFORMS

    notes = []
    devices: list[report.DeviceReport] = []
    ap_supported = True
    for b in backups:
        device = inventory.devices[b.host]
        entry = report.DeviceReport(host=b.host, site=b.site, function=device.function, platform=device.platform,
                                    status=b.status)
        if not b.reachable:
            entry.findings.append(report.unreachable_finding(b.host, b.site, b.status, b.error))
        elif b.diff is not None:
            finding = report.intended_finding(b.host, b.site, b.diff.remove, b.diff.add, "frr", secrets)
            if finding:
                entry.findings.append(finding)
        elif device.platform in CANDIDATE_PLATFORMS and "running-config" in b.files:
            finding = report.candidate_finding(inventory, b.host, b.site, b.files["running-config"], b.syntax, secrets)
            if finding:
                entry.findings.append(finding)
        elif device.function == "access_points":
            try:
                files = _ap_intent(inventory, device)
            except (ValueError, DzopsError) as exc:
                entry.findings.append(report.Finding(b.host, b.site, "note",
                                                     f"intended configuration cannot be rendered: {exc}"))
                files = {}
            if files is None:
                ap_supported = False
            elif files:
                entry.findings.extend(report.intended_file_findings(b.host, b.site, files, b.files, "hostapd",
                                                                    secrets))
        entry.findings.extend(report.out_of_band_findings(c for c in changes if c.host == b.host))
        devices.append(entry)
    record_results(devices)
    if not ap_supported:
        notes.append("access points: intended configuration not yet supported (dzops.plan.ap is not available); "
                     "out-of-band changes are reported")
    notes.append("switches and servers: out-of-band changes only (their intent is applied by Ansible roles)")
    if commit.previous is None and not state:
        notes.append("no earlier backup: this run is the baseline for out-of-band changes")

    result = report.build_report(
        dzongkhag=inventory.dzongkhag.name, generated=now,
        baseline=(baselines[0] if baselines else None), devices=devices, notes=notes,
        site_titles={name: site.title for name, site in inventory.sites.items()})
    html, text = report.render_html(result), report.render_text(result)
    stem = report_dir / f"drift-{now:%Y%m%dT%H%M%S}"
    html_path, text_path = stem.with_suffix(".html"), stem.with_suffix(".txt")
    write_private(html_path, html)
    write_private(text_path, text)
    if tip:
        _save_state(report_dir, {**state, **{host: tip for host in hosts}})
    say(f"dzops: report saved: {html_path} and {text_path.name}")

    mail_failed = False
    if email:
        from dzops.report.data_backup import with_latest
        from dzops.report.mail import compose, deliver

        # The weekly mail also says how the servers' data backups went (newest saved runs).
        mail_text, mail_html = with_latest(text, html, inventory.report_dir)
        message = compose(inventory.mail, report.subject(result), mail_text, mail_html)
        try:
            sent = deliver(inventory.mail, message, report_dir / "outbox")
            say(f"dzops: mailed {len(sent)} report(s) to {', '.join(inventory.mail.recipients)}")
        except MailError as exc:
            error(str(exc))
            mail_failed = True

    if settings.json or json_output:
        emit_json({**result.to_dict(), "report": {"html": str(html_path), "text": str(text_path)},
                   "commit": commit.commit, "mail_failed": mail_failed if email else None})
    else:
        emit_text(text)
    if mail_failed:
        raise typer.Exit(ExitCode.MAIL_FAILED)
    if result.has_drift:
        raise typer.Exit(ExitCode.DRIFT_FOUND)
    if result.unreachable:
        raise typer.Exit(ExitCode.UNREACHABLE)


def _selected(inventory: Any, names: list[str] | None, limit: str | None) -> list[str]:
    """The devices named on the command line (all when none), narrowed by --limit."""
    hosts = select_hosts(inventory, ",".join(names) if names else None)
    if limit:
        allowed = set(select_hosts(inventory, limit))
        hosts = [h for h in hosts if h in allowed]
    return hosts


def _remediate(settings: Settings, inventory: Any, hosts: list[str], *, named: bool, check: bool, diff: bool,
               as_json: bool, verify_timeout: float) -> None:
    """`drift --remediate`: each selected device with an intended config, put back through the safe path."""
    from dzops.cli.exit_codes import exit_code_for_results
    from dzops.exceptions import UsageError
    from dzops.execute.remediate import remediate
    from dzops.report import drift as report
    from dzops.report.scrub import inventory_secrets, scrub

    intended = report.intended_frr_configs(inventory, hosts)
    refused = [h for h in hosts if h not in intended]
    if named:
        for host in refused:
            say(f"dzops: {host}: not remediated: no intended config for {inventory.devices[host].function} "
                f"(only routers have one; drift reports its out-of-band changes)")
    elif refused:
        say(f"dzops: {len(refused)} device(s) without an intended config left alone (switches, access points, "
            f"servers: drift reports their out-of-band changes)")
    if not intended:
        raise UsageError("nothing to remediate: none of the selected devices has an intended config (routers do)")
    say(f"dzops: drift --remediate {'(check) ' if check else ''}{len(intended)} device(s)")
    from dzops.cli.progress import progress_for

    with progress_for(settings, "drift --remediate", sorted(intended)) as progress:
        results = remediate(inventory, intended, check=check, verify_timeout=verify_timeout, forks=settings.forks,
                            progress=progress.step)
        progress.finish((r.host, r.status) for r in results)
    record_results(results)
    secrets = inventory_secrets(inventory)
    rows = []
    for r in results:
        site = inventory.devices[r.host].site
        finding = report.intended_finding(r.host, site, tuple(r.data["remove"]), tuple(r.data["add"]), "frr",
                                          secrets)
        error_text = scrub(r.error, "linux", secrets) if r.error else None
        rows.append({"host": r.host, "site": site, "status": r.status, "changed": r.changed,
                     "rolled_back": bool(r.data.get("rolled_back")), "error": error_text,
                     "commands": list(finding.commands) if finding else [],
                     "checks": r.data.get("checks", []), "not_checked": r.data.get("not_checked", [])})
    changed = [r.host for r in results if r.changed]
    if changed and not check:
        _record_remediation(inventory, changed)
    if as_json:
        emit_json({"remediate": True, "check": check, "refused": refused, "devices": rows})
    else:
        for row in rows:
            state = "would change" if check and row["commands"] else row["status"]
            emit_text(f"{row['host']:<28} {state:<12}" + (f"  [{row['error']}]" if row["error"] else ""))
            if row["commands"] and (check or diff):
                emit_text("\n".join(f"    {c}" for c in row["commands"]))
            for note in row["not_checked"]:
                say(f"  {row['host']}: link not checked: {note}")
    code = exit_code_for_results([r.status for r in results])
    if code:
        raise typer.Exit(code)
    if check and any(row["commands"] for row in rows):
        raise typer.Exit(ExitCode.DRIFT_FOUND)


def _record_remediation(inventory: Any, hosts: list[str]) -> None:
    """Back up what remediation left, and let the next drift report measure from there: a change
    dzops made is not an out-of-band change."""
    if inventory.backup_repository is None:
        return
    from dzops.report.store import head

    collect_and_store(inventory, hosts, kind="remediation", when=dt.datetime.now().astimezone())
    tip = head(inventory.backup_repository)
    report_dir = inventory.report_dir
    if tip and report_dir is not None:
        from dzops.state import private_dir

        private_dir(report_dir)
        _save_state(report_dir, {**_load_state(report_dir), **{host: tip for host in hosts}})
