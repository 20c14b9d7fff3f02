"""`dzops patch`: OS package upgrades of the Linux servers in rolling batches, with a saved report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode, exit_code_for_results
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
def patch(
    ctx: typer.Context,
    limit: Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", autocompletion=complete.hosts_and_groups,
                                              help="Only these hosts: an Ansible host pattern.")] = None,
    check: Annotated[bool, typer.Option("--check", help="List pending upgrades per host; change nothing.")] = False,
    batch: Annotated[str | None, typer.Option(
        "--batch", metavar="SIZES", help="Batch sizes, e.g. 1,25% (the last repeats); default: all hosts at once.")] = None,
    max_fail: Annotated[str | None, typer.Option(
        "--max-fail", metavar="SHARE", help="Stop once more than this share of a batch failed, e.g. 10%.")] = None,
    security_only: Annotated[bool, typer.Option("--security-only", help="Only security updates.")] = False,
    no_reboot: Annotated[bool, typer.Option(
        "--no-reboot", help="Never reboot; report hosts that need one (the lab's servers cannot reboot).")] = False,
    email: Annotated[bool, typer.Option("--email", help="Mail the report with the inventory's mail settings.")] = False,
    forks: ForksOption = None,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Pre-check, upgrade, reboot when required, post-check; report every package from -> to."""
    settings: Settings = ctx.obj
    code, _ = patch_and_report(settings, batch=batch, max_fail=max_fail, security_only=security_only,
                               reboot=not no_reboot, email=email)
    if code:
        raise typer.Exit(code)


def patch_and_report(settings: Settings, *, batch: str | None = None, max_fail: str | None = None,
                     security_only: bool = False, reboot: bool = True,
                     email: bool = False) -> tuple[ExitCode, dict[str, Any]]:
    """Run, print, save and (optionally) mail one patch run (limit, check, json, forks and the vault
    password file from `settings`); returns its exit code and report."""
    from dzops.cli.progress import progress_for
    from dzops.execute.patch import hosts_in_scope, parse_batch, parse_max_fail, run_patch
    from dzops.report import patch as report_mod

    serial, fail_pct = parse_batch(batch), parse_max_fail(max_fail)
    inventory = settings.load_inventory()
    check = settings.check
    scope = hosts_in_scope(inventory, settings.limit)
    say(f"dzops: patch {'(check) ' if check else ''}{len(scope)} host(s), batches {','.join(map(str, serial))}, "
        f"max fail {fail_pct}%{', security updates only' if security_only else ''}")
    with progress_for(settings, "patch", scope) as progress:
        run = run_patch(inventory, limit=settings.limit, check=check, batch=serial, max_fail=fail_pct,
                        security_only=security_only, reboot=reboot, vault_password_file=settings.vault_password_file,
                        on_event=progress.ansible_event, forks=settings.forks)
        for host in run.hosts:
            upgraded, pending = len(host.data.get("upgraded", [])), len(host.data.get("pending", []))
            label = "not run" if host.status == "skipped" else host.status
            progress.step(host.host, f"{label} (pending {pending}, upgraded {upgraded})"
                          + (f" - {host.error}" if host.error else ""))
        progress.finish((h.host, h.status) for h in run.hosts)
    record_results(run.hosts, command="patch")
    report = run.to_dict()
    if run.stopped:
        say(f"dzops: patch stopped: more than {fail_pct}% of a batch failed; "
            f"{sum(1 for h in run.hosts if h.status == 'skipped')} host(s) not run")
    say(f"dzops: {report_mod.summary_line(report)}")
    if inventory.report_dir is not None:
        json_path, text_path = report_mod.save(report, Path(inventory.report_dir))
        say(f"dzops: report saved: {text_path} (and {json_path.name})")
    else:
        say("dzops: no report_dir in the inventory: report not saved")
    if settings.json:
        emit_json(report)
    else:
        emit_text(report_mod.render_text(report))
    code = exit_code_for_results([h.status if h.status != "skipped" else "unreachable" for h in run.hosts])
    if email:
        code = mail_job_report(inventory, report_mod, report, code)
    return code, report


def mail_job_report(inventory: Any, report_mod: Any, report: dict[str, Any], code: ExitCode) -> ExitCode:
    """Mail a job's report (its module gives subject and text); a mail that cannot go is said and
    turns a clean run's exit code into MAIL_FAILED (the message waits in the outbox)."""
    from dzops.exceptions import MailError

    try:
        mail_report(inventory, report_mod.subject(report, inventory.dzongkhag.name),
                    report_mod.render_text(report), report)
        say("dzops: report mailed")
    except MailError as exc:
        say(f"dzops: {exc}")
        return code or ExitCode.MAIL_FAILED
    return code


def mail_report(inventory: Any, subject: str, text: str, report: dict[str, Any] | None) -> None:
    """Mail a report with the inventory's settings; undelivered mail waits in report_dir/outbox."""
    import json

    from dzops.exceptions import MailError
    from dzops.report.mail import compose, deliver

    if inventory.mail is None:
        raise MailError("no mail settings in the inventory (group_vars/all: mail)")
    attachments = (("report.json", json.dumps(report, indent=2).encode(), "application/json"),) if report else ()
    outbox = Path(inventory.report_dir or Path.home() / ".dzops") / "outbox"
    deliver(inventory.mail, compose(inventory.mail, subject, text, attachments=attachments), outbox)
