"""`dzops schedule install|list|remove|run`: dzops jobs in cron, never overlapping, mailing failures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.exit_codes import ExitCode
from dzops.cli.help import DzopsTyper
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say

app = DzopsTyper(help="Run dzops jobs (patch, drift, backup) from cron, one at a time.", no_args_is_help=True,
                 rich_markup_mode=None)

# Tests (and careful officers) point this at a file instead of the user's real crontab.
CrontabOption = Annotated[Path | None, typer.Option("--crontab", envvar="DZOPS_CRONTAB", hidden=True, metavar="FILE",
                                                       help="Edit this crontab file instead of the user's crontab.")]
JobArgument = Annotated[str, typer.Argument(metavar="JOB", autocompletion=complete.jobs, help="patch, drift or backup.")]


@app.command()
def install(
    ctx: typer.Context,
    job: JobArgument,
    cron: Annotated[str | None, typer.Option(
        "--cron", metavar="SCHEDULE", help='Cron schedule, e.g. "0 2 * * 6" (default: the inventory\'s schedules.JOB).')] = None,
    crontab: CrontabOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add the job to cron (replacing this inventory's earlier entry for it), wrapped in flock."""
    from dzops.exceptions import UsageError
    from dzops.execute import schedule

    settings: Settings = ctx.obj
    schedule.check_job(job)
    inventory = settings.load_inventory()
    cron = cron or getattr(inventory.schedules, job)
    if not cron:
        raise UsageError(f"no --cron given and no schedules.{job} in the inventory")
    entry = schedule.install(job, cron, settings.inventory, inventory.report_dir, crontab)
    if not _command_exists(job):
        say(f"dzops: warning: `dzops {job}` does not exist in this version yet; the entry will fail until it does")
    say(f"dzops: scheduled {job} at '{entry.schedule}' ({crontab or 'your crontab'})")
    _show([entry], settings.json or json_output)


@app.command("list")
def list_(ctx: typer.Context, crontab: CrontabOption = None, json_output: JsonOption = False) -> None:
    """dzops' own cron entries (other entries are not shown)."""
    from dzops.execute import schedule

    settings: Settings = ctx.obj
    _show(schedule.entries(crontab), settings.json or json_output)


@app.command()
def remove(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Argument(
        metavar="JOB", autocompletion=complete.jobs, help="Only this job (default: every dzops job).")] = None,
    all_inventories: Annotated[bool, typer.Option(
        "--all-inventories", help="Also entries of other inventories.")] = False,
    crontab: CrontabOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove dzops' entries of this inventory; anybody else's entries stay."""
    from dzops.execute import schedule

    settings: Settings = ctx.obj
    gone = schedule.remove(job, None if all_inventories else settings.inventory, crontab)
    say(f"dzops: removed {len(gone)} dzops entr{'y' if len(gone) == 1 else 'ies'}")
    _show(gone, settings.json or json_output)


@app.command()
def run(ctx: typer.Context, job: JobArgument) -> None:
    """Run a job as cron does: one at a time, report saved, and mailed when the run fails."""
    import os

    from dzops.cli.exit_codes import exit_code_for
    from dzops.exceptions import DzopsError
    from dzops.execute import schedule

    settings: Settings = ctx.obj
    schedule.check_job(job)
    inventory = settings.load_inventory()
    lock, _ = schedule.job_paths(inventory.report_dir, job)

    with schedule.run_lock(lock, job):
        say(f"dzops: schedule run {job}: started (pid {os.getpid()}, lock {lock})")
        report: dict[str, Any] | None = None
        try:
            if job == "patch":
                from dzops.cli.patch import patch_and_report

                code, report = patch_and_report(settings, limit=settings.limit, check=settings.check)
                text, subject = _patch_text(report), _patch_subject(report, inventory)
            else:
                code, text = _run_other(settings, job)
                subject = f"dzops {job} {inventory.dzongkhag.name}: FAILED (exit {int(code)})"
        except DzopsError as exc:  # a run that could not even start is a failure to mail, too
            code, text = exit_code_for(exc), f"dzops {job} could not run: {exc}\n"
            subject = f"dzops {job} {inventory.dzongkhag.name}: FAILED ({exit_code_for(exc).name})"
            say(f"dzops: error: {exc}")
        if code != ExitCode.OK:
            code = _mail_failure(inventory, subject, text, report, code)
    say(f"dzops: schedule run {job}: finished with exit {int(code)} ({ExitCode(code).name})")
    if code:
        raise typer.Exit(code)


def _patch_text(report: dict[str, Any]) -> str:
    from dzops.report.patch import render_text

    return render_text(report)


def _patch_subject(report: dict[str, Any], inventory: Any) -> str:
    from dzops.report.patch import subject

    return subject(report, inventory.dzongkhag.name)


def _mail_failure(inventory: Any, subject: str, text: str, report: dict[str, Any] | None,
                  code: ExitCode) -> ExitCode:
    """Mail the failed run's report; the run's own exit code wins over a mail failure."""
    from dzops.cli.patch import mail_report
    from dzops.exceptions import MailError

    try:
        mail_report(inventory, subject, text, report)
        say("dzops: failure report mailed")
    except MailError as exc:
        say(f"dzops: {exc}")
    return code


def _command_exists(job: str) -> bool:
    import typer.main

    from dzops.cli.app import app as root

    return job in typer.main.get_command(root).commands  # type: ignore[attr-defined]


def _run_other(settings: Settings, job: str) -> tuple[ExitCode, str]:
    """drift and backup run as their own dzops command in a child process; its output is the report."""
    import subprocess
    import sys

    from dzops.exceptions import UsageError

    if not _command_exists(job):
        raise UsageError(f"`dzops {job}` does not exist in this version yet: nothing to run")
    argv = [sys.executable, "-m", "dzops", "-i", str(settings.inventory), job]
    from dzops.state.lock import held_job_locks

    # The child runs under this run's job lock: it gets the locked descriptor (see dzops.state.lock).
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, pass_fds=held_job_locks())
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    try:
        code = ExitCode(proc.returncode)
    except ValueError:
        code = ExitCode.ERROR
    return code, f"dzops {job} exited {proc.returncode}\n\n{proc.stdout}\n{proc.stderr}"


def _show(entries: list[Any], as_json: bool) -> None:
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    for entry in entries:
        emit_text(f"{entry.job:<7} {entry.schedule:<16} {'' if entry.enabled else '(disabled) '}{entry.inventory}")
