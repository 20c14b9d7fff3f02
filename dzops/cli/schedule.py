"""`dzops schedule install|list|remove|run`: dzops jobs in cron, never overlapping, mailing failures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
from dzops.cli.help import DzopsTyper
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say
from dzops.scrub import egress

app = DzopsTyper(help="Run dzops jobs (patch, drift, backup, health, data-backup, data-backup-check) from cron, one at a time.", no_args_is_help=True,
                 rich_markup_mode=None)

# Tests (and careful officers) point this at a file instead of the user's real crontab.
CrontabOption = Annotated[Path | None, typer.Option("--crontab", envvar="DZOPS_CRONTAB", hidden=True, metavar="FILE",
                                                       help="Edit this crontab file instead of the user's crontab.")]
JobArgument = Annotated[str, typer.Argument(metavar="JOB", autocompletion=complete.jobs, help="patch, drift, backup, health, data-backup or data-backup-check.")]


@app.command()
@contract
def install(
    ctx: typer.Context,
    job: JobArgument,
    cron: Annotated[str | None, typer.Option(
        "--cron", metavar="SCHEDULE", help='Cron schedule, e.g. "0 2 * * 6" (default: the inventory\'s schedules.JOB).')] = None,
    check_runs: Annotated[bool, typer.Option(
        "--check-runs", help="Every scheduled run is a --check run (reports what it would change).")] = False,
    crontab: CrontabOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add the job to cron (replacing this inventory's earlier entry for it), wrapped in flock.

    The entry records the vault password file (owned by you, mode 0600 or 0400; else refused) and
    --limit, which then reach every scheduled run. --check shows the entry and writes nothing."""
    from dzops.cli.contract import check_contract, given
    from dzops.exceptions import UsageError
    from dzops.execute import schedule

    settings: Settings = ctx.obj
    schedule.check_job(job)
    inventory = settings.load_inventory()
    cron = cron or getattr(inventory.schedules, job.replace("-", "_"), None)
    if not cron:
        raise UsageError(f"no --cron given and no schedules.{job.replace('-', '_')} in the inventory")
    command = schedule.JOB_COMMANDS.get(job, [job])
    if _command_exists(command[0]):  # a job that would refuse these options every night is refused now
        check_contract(" ".join(command),
                       [o for o in given(ctx, settings) if o == "limit"] + (["check"] if check_runs else []))
    if check_runs and job == "drift":  # drift's --check belongs to --remediate, which cron never runs
        raise UsageError("--check-runs is not supported by `dzops schedule install drift`: a drift report changes "
                         "no device")
    options = recorded_options(settings) + (["--check"] if check_runs else [])
    if settings.check:
        entry = schedule.planned_entry(job, cron, settings.inventory, inventory.report_dir, options)
        say(f"dzops: check: would schedule {job} at '{entry.schedule}' ({crontab or 'your crontab'}); nothing written")
    else:
        entry = schedule.install(job, cron, settings.inventory, inventory.report_dir, crontab, options)
        _remember_mail(inventory, inventory.report_dir)
        say(f"dzops: scheduled {job} at '{entry.schedule}' ({crontab or 'your crontab'})")
    if not _command_exists(job):
        say(f"dzops: warning: `dzops {job}` does not exist in this version yet; the entry will fail until it does")
    _show([entry], settings.json)


def recorded_options(settings: Settings) -> list[str]:
    """The global options a cron entry carries (the vault password file checked, made absolute)."""
    import os

    from dzops.execute.schedule import check_secret_file

    options: list[str] = []
    source = settings.vault_password_file or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if source:
        options += ["--vault-password-file", str(check_secret_file(Path(source)))]
    return options + (["--limit", settings.limit] if settings.limit else [])


def passed_options(settings: Settings) -> list[str]:
    """Global options as command-line arguments, for a job run in a child process."""
    options: list[str] = []
    if settings.vault_password_file:
        options += ["--vault-password-file", str(Path(settings.vault_password_file).resolve())]
    if settings.limit:
        options += ["--limit", settings.limit]
    options += [flag for flag, on in (("--check", settings.check), ("--diff", settings.diff),
                                      ("--json", settings.json)) if on]
    return options + ["-v"] * settings.verbose


@app.command("list")
@contract
def list_(ctx: typer.Context, crontab: CrontabOption = None, json_output: JsonOption = False) -> None:
    """dzops' own cron entries (other entries are not shown)."""
    from dzops.execute import schedule

    settings: Settings = ctx.obj
    _show(schedule.entries(crontab), settings.json)


@app.command()
@contract
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
    inventory = None if all_inventories else settings.inventory
    if settings.check:
        gone = schedule.planned_removal(job, inventory, crontab)
        say(f"dzops: check: would remove {len(gone)} dzops entr{'y' if len(gone) == 1 else 'ies'}; nothing written")
    else:
        gone = schedule.remove(job, inventory, crontab)
        say(f"dzops: removed {len(gone)} dzops entr{'y' if len(gone) == 1 else 'ies'}")
    _show(gone, settings.json)


ReportDirOption = Annotated[Path | None, typer.Option(
    "--report-dir", hidden=True, metavar="DIR",
    help="Where a run whose inventory does not load keeps its report and outbox (recorded by install).")]


@app.command()
@contract
def run(ctx: typer.Context, job: JobArgument, report_dir: ReportDirOption = None) -> None:
    """Run a job as cron does: one at a time, report saved, and mailed when the run fails.

    Every global option (vault password file, --limit, --check, --diff, --json, -v) reaches the
    job. Any failure, an inventory that does not load included, is kept in the report directory
    and mailed (undelivered mail waits in its outbox)."""
    import os

    from dzops.exceptions import InventoryError
    from dzops.execute import schedule
    from dzops.inventory.loader import load

    settings: Settings = ctx.obj
    schedule.check_job(job)
    inventory, problems = None, []
    try:
        inventory, problems, _ = load(settings.inventory, settings.vault_password_file)
    except InventoryError as exc:  # YAML that does not parse, a wrong vault password
        problems = list(exc.problems)
    base = report_dir or (inventory.report_dir if inventory is not None else None)
    lock, _ = schedule.job_paths(base, job)
    name = inventory.dzongkhag.name if inventory is not None else settings.inventory.resolve().name

    with schedule.run_lock(lock, job):
        say(f"dzops: schedule run {job}: started (pid {os.getpid()}, lock {lock})")
        report: dict[str, Any] | None = None
        try:
            if problems or inventory is None:
                code = ExitCode.INVALID_INVENTORY
                text = (f"dzops {job} could not run: the inventory {settings.inventory} does not load "
                        f"({len(problems)} problem(s)):\n\n" + "".join(f"{p}\n" for p in problems))
                subject = f"dzops {job} {name}: FAILED (the inventory does not load)"
                for problem in problems:
                    say(str(problem))
            else:
                settings._inventory_cache = inventory
                if job == "patch":
                    from dzops.cli.contract import check_contract, given
                    from dzops.cli.patch import patch_and_report

                    check_contract("patch", given(ctx, settings))
                    code, report = patch_and_report(settings)
                    text, subject = _patch_text(report), _patch_subject(report, inventory)
                else:
                    code, text = _run_other(settings, job)
                    subject = f"dzops {job} {name}: FAILED (exit {int(code)})"
        except Exception as exc:  # noqa: BLE001 - whatever stopped the run is a failure to keep and mail
            from dzops.cli.exit_codes import exit_code_for

            code = exit_code_for(exc)
            text, subject = f"dzops {job} could not run: {exc}\n", f"dzops {job} {name}: FAILED ({code.name})"
            say(f"dzops: error: {exc}")
        # A degraded health run is a finding, not a failed job: its alerts went out on state change.
        if code != ExitCode.OK and not (job == "health" and code == ExitCode.HEALTH_DEGRADED):
            kept = _keep_failure(base, job, text)
            say(f"dzops: failure report kept: {kept}")
            _mail_failure(inventory, base, subject, text, report)
        else:
            _remember_mail(inventory, base)
    say(f"dzops: schedule run {job}: finished with exit {int(code)} ({ExitCode(code).name})")
    if code:
        raise typer.Exit(code)


def _patch_text(report: dict[str, Any]) -> str:
    from dzops.report.patch import render_text

    return render_text(report)


def _patch_subject(report: dict[str, Any], inventory: Any) -> str:
    from dzops.report.patch import subject

    return subject(report, inventory.dzongkhag.name)


MAIL_MEMORY = "schedule-mail.json"  # the inventory's mail settings minus the password, for runs it cannot load


def _remember_mail(inventory: Any, base: Path | None) -> None:
    """Keep where failure mail goes, so a run whose inventory does not load can still send it."""
    import json

    if inventory is None or inventory.mail is None:
        return
    folder = base or Path("/var/lib/dzops")
    data = inventory.mail.model_dump(mode="json", exclude={"password"})
    try:
        from dzops.state.files import atomic_write

        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / MAIL_MEMORY, json.dumps(data, indent=1) + "\n")
    except OSError as exc:
        say(f"dzops: warning: cannot remember the mail settings in {folder}: {exc.strerror}")


def _keep_failure(base: Path | None, job: str, text: str) -> Path:
    import datetime as dt

    from dzops.state.files import atomic_write

    folder = (base or Path("/var/lib/dzops")) / "schedule-failures"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().astimezone().strftime("%Y%m%dT%H%M%S")
    return atomic_write(folder / f"{job}-{stamp}.txt", egress(text))  # a kept report leaves dzops too


def _mail_failure(inventory: Any, base: Path | None, subject: str, text: str,
                  report: dict[str, Any] | None) -> None:
    """Mail the failed run's report: with the inventory's settings, else the remembered ones (no
    SMTP login then: a server that requires one keeps it in the outbox for the next run that can)."""
    import json

    from dzops.exceptions import MailError

    try:
        if inventory is not None and inventory.mail is not None:
            from dzops.cli.patch import mail_report

            mail_report(inventory, subject, text, report)
        else:
            from dzops.inventory.models import MailSettings
            from dzops.report.mail import compose, deliver

            folder = base or Path("/var/lib/dzops")
            try:
                remembered = MailSettings.model_validate(json.loads((folder / MAIL_MEMORY).read_text()))
            except (OSError, ValueError) as exc:
                raise MailError(f"no mail settings: the inventory does not load and none are remembered in "
                                f"{folder / MAIL_MEMORY} ({exc})") from None
            deliver(remembered, compose(remembered, subject, text), folder / "outbox")
        say("dzops: failure report mailed")
    except MailError as exc:
        say(f"dzops: {exc}")


def _command_exists(job: str) -> bool:
    import typer.main

    from dzops.cli.app import app as root

    return job in typer.main.get_command(root).commands  # type: ignore[attr-defined]


def _run_other(settings: Settings, job: str) -> tuple[ExitCode, str]:
    """drift and backup run as their own dzops command in a child process; its output is the report."""
    import subprocess
    import sys

    from dzops.exceptions import UsageError
    from dzops.execute.schedule import JOB_COMMANDS

    command = JOB_COMMANDS.get(job, [job])
    if not _command_exists(command[0]):
        raise UsageError(f"`dzops {job}` does not exist in this version yet: nothing to run")
    argv = [sys.executable, "-m", "dzops", "-i", str(settings.inventory), *passed_options(settings), *command]
    from dzops.state.lock import held_job_locks

    # The child runs under this run's job lock: it gets the locked descriptor (see dzops.state.lock).
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, pass_fds=held_job_locks())
    sys.stdout.write(egress(proc.stdout))  # the child scrubbed its own; this is the exit of this process
    sys.stderr.write(egress(proc.stderr))
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
