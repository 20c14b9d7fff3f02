"""Run playbooks through ansible-runner: a private data dir per run, events and stats in, results out.

ansible-playbook's stdout is never parsed: per-host outcomes come from runner events
(`runner_on_ok`, `runner_on_failed`, `runner_on_unreachable`, ...) and the final stats. The vault
password reaches Ansible as a file path on the command line, never through the runner's env files.
Extra variables (password hashes among them) go to a 0600 file in the run's private 0700 directory,
passed as `-e @file`: on the command line they would show in `ps`, and past 128 KiB (the kernel's
limit for one argument) ansible-playbook would not even start ("Argument list too long").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dzops.exceptions import DzopsError
from dzops.models import HostResult
from dzops.resources import ansible_cfg, playbooks_dir, roles_dir

log = logging.getLogger(__name__)

PLAYBOOKS = playbooks_dir()
HOST_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass
class TaskEvent:
    host: str
    task: str
    status: str  # ok, changed, failed, unreachable, skipped
    result: dict[str, Any] = field(default_factory=dict)  # the module's result (no_log tasks arrive censored)


@dataclass
class PlaybookRun:
    playbook: str
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    hosts: dict[str, HostResult] = field(default_factory=dict)
    events: list[TaskEvent] = field(default_factory=list)

    def host_events(self, host: str, task: str | None = None) -> list[TaskEvent]:
        return [e for e in self.events if e.host == host and (task is None or e.task == task)]


def _event_to_task(event: dict[str, Any]) -> TaskEvent | None:
    kind = event.get("event")
    if kind not in HOST_EVENTS:
        return None
    data = event.get("event_data", {})
    result = data.get("res") or {}
    status = HOST_EVENTS[kind]
    if status == "ok" and result.get("changed"):
        status = "changed"
    if kind == "runner_on_failed" and data.get("ignore_errors"):
        status = "ok"
    return TaskEvent(host=data.get("host", "?"), task=data.get("task", ""), status=status, result=result)


def _summarise(run: PlaybookRun, stats: dict[str, Any] | None) -> None:
    stats = stats or {}
    hosts = set(stats.get("processed", {})) | {e.host for e in run.events}
    for host in sorted(hosts):
        events = run.host_events(host)
        if host in stats.get("dark", {}):
            status, error = "unreachable", _first_message(events, "unreachable")
        elif host in stats.get("failures", {}):
            status, error = "failed", _first_message(events, "failed")
        elif host in stats.get("changed", {}):
            status, error = "changed", None
        else:
            status, error = "ok", None
        run.hosts[host] = HostResult(host=host, status=status, changed=host in stats.get("changed", {}),  # type: ignore[arg-type]
                                     error=error)


def _first_message(events: list[TaskEvent], status: str) -> str | None:
    for event in events:
        if event.status == status:
            message = str(event.result.get("msg") or event.result.get("stderr") or "").strip()
            return f"{event.task}: {message.splitlines()[0] if message else status}"
    return None


def write_extravars(data_dir: Path, extravars: dict[str, Any]) -> Path:
    """Write the run's extra variables where ansible-runner passes them as `-e @env/extravars`.

    Created 0600 from the start (never world-readable, not even for an instant), inside the run's
    0700 private data dir; the caller removes it after the run.
    """
    env_dir = data_dir / "env"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    path = env_dir / "extravars"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(extravars, fh)
    return path


class _Interrupts:
    """SIGINT/SIGTERM during a play: the play is cancelled (ansible-runner asks `seen`), then the
    signal goes on to the handlers that were there before, as if the play had not been running.

    Left to itself ansible-runner installs handlers that only set a flag and never puts the old ones
    back: every later Ctrl-C of the process (dzops, or a test session's teardown) would be swallowed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.saved: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self.saved = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
            for signum in self.SIGNALS:
                signal.signal(signum, self._note)

    def _note(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def seen(self) -> bool:
        return self.signum is not None

    def restore(self, deliver: bool = False) -> None:
        saved, self.saved = self.saved, {}
        for signum, handler in saved.items():
            if handler is not None:  # None: set outside Python, cannot be put back from here
                signal.signal(signum, handler)
        if deliver and self.signum is not None:
            signal.raise_signal(self.signum)


def run_playbook(
    inventory_dir: Path,
    playbook: str,
    *,
    limit: str | None = None,
    extravars: dict[str, Any] | None = None,
    check: bool = False,
    forks: int = 10,
    vault_password_file: Path | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
    keep_artifacts: bool = False,
    known_hosts: Path | None = None,
    become_password: str | None = None,
) -> PlaybookRun:
    """Run playbooks/<playbook> against the inventory; per-host outcomes are results, not exceptions.

    `known_hosts` (the inventory's, or a lab's with --lab) overrides `dzops_known_hosts`, which the
    inventory's ansible_ssh_common_args point OpenSSH at: Ansible checks host keys against the
    same file as dzops' own SSH. `become_password` answers Ansible's BECOME prompt from memory
    (hosts whose inventory sets ansible_become_password use their own): never a file or an argument.
    """
    import ansible_runner

    from dzops.inventory.loader import inventory_source
    from dzops.inventory.vault_password import vault_password_file as find_vault_file

    source = inventory_source(inventory_dir)
    playbook_path = PLAYBOOKS / playbook
    if not playbook_path.is_file():
        raise DzopsError(f"no playbook {playbook_path}")
    data_dir = Path(tempfile.mkdtemp(prefix="dzops-runner-"))
    cmdline = []
    password_file = find_vault_file(source.parent, vault_password_file)
    if password_file is not None:
        cmdline += ["--vault-password-file", str(password_file.resolve())]
    if check:
        cmdline.append("--check")
    passwords = None
    if become_password:
        cmdline.append("--ask-become-pass")
        passwords = {r"^BECOME password.*:\s*?$": become_password}
    envvars = {
        "ANSIBLE_CONFIG": str(ansible_cfg()),
        "ANSIBLE_ROLES_PATH": str(roles_dir()),
        # ansible-playbook must come from the same environment as dzops (e.g. the project's .venv).
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
    }
    run = PlaybookRun(playbook=playbook, status="failed", rc=-1)
    extravars = dict(extravars or {})
    if known_hosts is not None:
        extravars["dzops_known_hosts"] = str(known_hosts)

    final_stats: dict[str, Any] = {}

    def handler(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            # runner.stats reads the artifacts dir, which this handler keeps empty: keep them here.
            final_stats.update(event.get("event_data", {}))
        task = _event_to_task(event)
        if task is not None:
            run.events.append(task)
            if on_event is not None:
                on_event(task)
        return False  # events stay out of the artifacts dir: results can hold sensitive output

    extravars_file = write_extravars(data_dir, extravars) if extravars else None
    interrupted = _Interrupts()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(data_dir),
            project_dir=str(PLAYBOOKS),
            playbook=str(playbook_path),
            inventory=str(source.resolve()),
            limit=limit,
            forks=forks,
            cmdline=" ".join(cmdline) or None,
            envvars=envvars,
            event_handler=handler,
            quiet=True,
            suppress_env_files=True,
            passwords=passwords,
            cancel_callback=interrupted.seen,
        )
        interrupted.restore(deliver=True)  # a Ctrl-C that cancelled the play now stops dzops too
        run.status, run.rc = runner.status, runner.rc
        _summarise(run, runner.stats or final_stats)
        if not run.hosts and run.rc != 0:
            raise DzopsError(f"ansible-playbook {playbook} failed before reaching any host (rc {run.rc}); "
                             f"run with -v and see {data_dir}/artifacts" if keep_artifacts else
                             f"ansible-playbook {playbook} failed before reaching any host (rc {run.rc})")
    finally:
        interrupted.restore()
        if extravars_file is not None:
            extravars_file.unlink(missing_ok=True)  # kept artifacts never keep the hashes
        if not keep_artifacts:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            scrub_artifacts(data_dir)
    return run


def scrub_artifacts(data_dir: Path) -> None:
    """Runner files kept on disk for debugging still leave dzops: each text file passes the egress filter."""
    from dzops.scrub import egress

    for path in data_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        clean = egress(text)
        if clean != text:
            path.write_text(clean, encoding="utf-8")
