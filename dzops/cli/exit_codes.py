"""Every exit code of dzops, and the one place exceptions and results become exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # an unexpected or unclassified failure
    USAGE = 2  # bad command line (also Click's own code)
    INVALID_INVENTORY = 3  # inventory cannot be loaded or fails its checks (including vault)
    HOSTS_FAILED = 4  # some hosts failed (and were rolled back where the command supports it)
    UNREACHABLE = 5  # some hosts could not be reached, none failed otherwise
    DRIFT_FOUND = 6  # drift or audit findings
    HEALTH_DEGRADED = 6  # `dzops health`: something is down or degraded (an alias: a finding, as drift's)
    MAIL_FAILED = 7  # the report is saved but could not be sent
    ALREADY_RUNNING = 8  # another run of the same scheduled job holds the lock
    LAB_ERROR = 9  # the virtual lab cannot be built or inspected (e.g. not root); doctor: something is missing
    INTERRUPTED = 130


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of an exception that ended a command."""
    from dzops import exceptions as e

    table: list[tuple[type[BaseException], ExitCode]] = [
        (e.InventoryError, ExitCode.INVALID_INVENTORY),
        (e.UsageError, ExitCode.USAGE),
        (e.LabError, ExitCode.LAB_ERROR),
        (e.AlreadyRunning, ExitCode.ALREADY_RUNNING),
        (e.MailError, ExitCode.MAIL_FAILED),
        (e.ConnectionFailed, ExitCode.UNREACHABLE),
        (e.DeviceError, ExitCode.HOSTS_FAILED),
        (KeyboardInterrupt, ExitCode.INTERRUPTED),
    ]
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return ExitCode.ERROR


def exit_code_for_results(statuses: list[str]) -> ExitCode:
    """Exit code of a run from its per-host statuses ('ok', 'changed', 'failed', 'unreachable', ...).

    >>> exit_code_for_results(["ok", "changed"]).name
    'OK'
    >>> exit_code_for_results(["ok", "unreachable"]).name
    'UNREACHABLE'
    >>> exit_code_for_results(["unreachable", "failed"]).name
    'HOSTS_FAILED'
    """
    if any(s in ("failed", "rolled_back") for s in statuses):
        return ExitCode.HOSTS_FAILED
    if "unreachable" in statuses:
        return ExitCode.UNREACHABLE
    return ExitCode.OK
