"""The one table of which global options each command honours, checked before the command runs.

Every command honours `--vault-password-file`, `--check`, `--diff`, `--limit` and `--json`, or
refuses the option with exit 2 and one line naming the option, the command and why. Nothing is
ever silently ignored: a command missing from this table refuses to run at all (and the option
contract test lists every registered command against it).

"Honoured" for `--check` on a read-only command means what it says there too: nothing changes.
A command's own options of the same name (`backup --limit`, `user apply --check`) are the same
option given after the sub-command; `@contract` folds them into the command's Settings, so a
command body reads one value.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

OPTIONS = {"vault_password_file": "--vault-password-file", "check": "--check", "diff": "--diff",
           "limit": "--limit", "json": "--json", "dzongkhags": "several inventories (-i)"}

F = TypeVar("F", bound=Callable[..., Any])

NO_DIFF_READ_ONLY = "it changes nothing, so there is no diff to show"
WHOLE_INVENTORY_LAB = "the lab is always the whole inventory (use --limit on the commands you rehearse)"
CRONTAB_ONLY = "it reads only the crontab; the scheduled run opens the vault (give it to `schedule install`)"
CRONTAB_ENTRIES = "cron entries are per job and inventory, not per host"
LEDGER_READ_ONLY = "it only reads the run ledger: nothing runs, so nothing could change"
LEDGER_NO_DIFF = "it reads the ledger; `dzops runs show ID` prints each device's recorded diff"
# Several inventories run a command once per Dzongkhag (dzops.cli.dzongkhags); these cannot.
ONE_LAB = "a lab is a copy of one Dzongkhag: give that Dzongkhag's inventory alone"
DATA_BACKUP_READS = "it only reads the repository (after preparing the server's access to it): there is nothing to skip"


def _refusing(**reasons: str) -> dict[str, str | None]:
    """Every global option honoured except the ones given a reason."""
    unknown = set(reasons) - set(OPTIONS)
    if unknown:
        raise ValueError(f"not global options: {sorted(unknown)}")
    return {option: reasons.get(option) for option in OPTIONS}


# command path -> global option -> None (honoured) or the reason it is refused.
CONTRACT: dict[str, dict[str, str | None]] = {
    "inventory check": _refusing(
        limit="every host is always checked: one host's file can break any other", diff=NO_DIFF_READ_ONLY),
    "inventory show": _refusing(diff=NO_DIFF_READ_ONLY),
    "lab up": _refusing(limit=WHOLE_INVENTORY_LAB, dzongkhags=ONE_LAB,
                        diff="a lab is built, not diffed (`provision-wan --check --diff` shows device diffs)"),
    "lab status": _refusing(limit=WHOLE_INVENTORY_LAB, diff=NO_DIFF_READ_ONLY, dzongkhags=ONE_LAB),
    "lab down": _refusing(limit=WHOLE_INVENTORY_LAB, diff="the lab is removed whole; there is no diff",
                          dzongkhags=ONE_LAB),
    "lab exec": _refusing(
        check="dzops cannot know what an arbitrary console command would change",
        limit="it runs on the one node it names", diff="a console command has no diff", dzongkhags=ONE_LAB),
    "lab link": _refusing(limit="it acts on the one node it names", diff="a link state has no diff",
                          dzongkhags=ONE_LAB),
    "provision-wan": _refusing(),
    "provision-ap": _refusing(),
    "user add": _refusing(limit="it edits the inventory only; no host is contacted until `dzops user apply`"),
    "user remove": _refusing(limit="it edits the inventory only; no host is contacted until `dzops user apply`"),
    "user apply": _refusing(),
    "user audit": _refusing(diff="an audit changes nothing; its findings are the differences"),
    "diagram": _refusing(diff="a diagram has no configuration diff"),
    "docs": _refusing(diff="documentation has no configuration diff"),
    "patch": _refusing(diff="patch reports every package from -> to; it has no configuration diff"),
    "backup": _refusing(diff="backup commits what changed: `git -C BACKUP_REPOSITORY log -p` shows it"),
    # --check and --diff belong to --remediate; without it drift itself refuses them with exit 2.
    "drift": _refusing(),
    "schedule install": _refusing(diff="a cron entry has no configuration diff"),
    "schedule list": _refusing(vault_password_file=CRONTAB_ONLY, limit=CRONTAB_ENTRIES, diff=NO_DIFF_READ_ONLY,
                               dzongkhags="it lists the one crontab (--all shows every inventory's entries)"),
    "schedule remove": _refusing(vault_password_file=CRONTAB_ONLY, limit=CRONTAB_ENTRIES,
                                 diff="a cron entry has no configuration diff",
                                 dzongkhags="it edits the one crontab: remove one inventory's entries at a time"),
    # Passed through to the job, whose own line of this table then applies.
    "schedule run": _refusing(),
    "scrub": _refusing(vault_password_file="it scrubs the text it is given with the rules of --platform; it opens no vault",
                       limit="it reads text, not hosts", diff="it changes nothing, so there is no diff",
                       json="it prints the scrubbed text as it is, ready to paste",
                       dzongkhags="it reads text, not an inventory"),
    # --check scans and shows each host key and what would be trusted; writes and prepares nothing.
    "onboard": _refusing(diff="onboarding trusts keys and prepares access; it has no configuration diff",
                         dzongkhags="host keys are looked at and trusted one Dzongkhag at a time"),
    # --check runs every check and stores, mails and writes nothing.
    "health": _refusing(diff="a health check changes nothing, so there is no diff to show"),
    "health history": _refusing(limit="the history is per site (--site), link and service, not per host",
                                diff=NO_DIFF_READ_ONLY),
    "health page": _refusing(limit="the status page always shows the whole Dzongkhag",
                             check="it writes only the page, to the --output folder it is given",
                             diff="a status page has no configuration diff",
                             json="it writes HTML to --output",
                             dzongkhags="it writes one Dzongkhag's page to the --output folder"),
    # The run ledger: --limit keeps the runs (and devices) of those hosts.
    "runs": _refusing(check=LEDGER_READ_ONLY, diff=LEDGER_NO_DIFF),
    "runs show": _refusing(check=LEDGER_READ_ONLY, diff=LEDGER_NO_DIFF,
                           dzongkhags="a run ID belongs to one Dzongkhag's ledger"),
    # --check on run lists what each server would back up and runs nothing.
    "data-backup run": _refusing(diff="a backup has no configuration diff; `dzops data-backup list` shows its snapshots"),
    "data-backup list": _refusing(check=DATA_BACKUP_READS, diff=NO_DIFF_READ_ONLY),
    "data-backup restore": _refusing(
        limit="it restores on the one SERVER it names",
        check="`dzops data-backup verify` is the restore rehearsal (into scratch, dropped afterwards)",
        diff="a restore has no configuration diff",
        dzongkhags="it restores on the one SERVER it names, of one Dzongkhag"),
    "data-backup verify": _refusing(check="it restores only into scratch databases and directories it drops again",
                                    diff="a restore test has no configuration diff"),
    "data-backup check": _refusing(check=DATA_BACKUP_READS, diff=NO_DIFF_READ_ONLY),
    "doctor": _refusing(vault_password_file="it checks this machine; it opens no inventory or vault",
                        limit="it checks this machine, not hosts", diff="it changes nothing, so there is no diff",
                        dzongkhags="it checks this machine once, not an inventory"),
}


def command_path(ctx: Any) -> str:
    """'user add' for `dzops user add ...`, whatever the program was called."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))


def given(ctx: Any, settings: Any) -> list[str]:
    """The global options set for this run, in table order.

    The vault password file counts only when given on the command line: an environment default
    (DZOPS_VAULT_PASSWORD_FILE) is the machine's setting, not a request to this command.
    Several inventories count however they were named (-i twice, a parent folder, DZOPS_INVENTORY).
    """
    root = ctx.find_root()
    out = []
    for option in OPTIONS:
        value = getattr(settings, option)
        if option == "vault_password_file":
            source = root.get_parameter_source(option)
            value = value is not None and getattr(source, "name", "") == "COMMANDLINE"
        if value:
            out.append(option)
    return out


def check_contract(path: str, options: list[str]) -> None:
    """UsageError for the first global option `path` refuses (or for a command not in the table).

    >>> check_contract("user apply", ["check", "limit"])
    >>> check_contract("user add", ["limit"])
    Traceback (most recent call last):
    ...
    dzops.exceptions.UsageError: --limit is not supported by `dzops user add`: it edits the inventory only; no host is contacted until `dzops user apply`
    """
    from dzops.exceptions import UsageError

    if path not in CONTRACT:
        raise UsageError(f"`dzops {path}` has no entry in the option contract (dzops/cli/contract.py)")
    for option in options:
        reason = CONTRACT[path][option]
        if reason is not None:
            raise UsageError(f"{OPTIONS[option]} is not supported by `dzops {path}`: {reason}")


# A command's own option -> the Settings field it sets.
_LOCAL = {"limit": "limit", "check": "check", "diff": "diff", "json_output": "json", "forks": "forks_option",
          "retry_failed": "retry_failed"}


def contract(fn: F) -> F:
    """Check the run's global options against CONTRACT, then call the command with merged Settings."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx") or next(a for a in args if hasattr(a, "find_root"))
        settings = ctx.obj
        path = command_path(ctx)
        check_contract(path, given(ctx, settings))
        local = {field: kwargs[name] for name, field in _LOCAL.items() if kwargs.get(name)}
        ctx.obj = dataclasses.replace(settings, **local, command=path) if local or settings.command != path \
            else settings

        def once() -> Any:
            from dzops.cli.runs import recorded

            with recorded(ctx, path):  # the run ledger: one entry per run that checks or changes devices
                return fn(*args, **kwargs)

        if ctx.obj.dzongkhags:  # several inventories: once per Dzongkhag, one summary, the worst exit code
            from dzops.cli.dzongkhags import run_each

            return run_each(ctx, once)
        return once()

    return run  # type: ignore[return-value]
