"""Extra variables reach ansible-playbook through a 0600 file, never its command line.

A local-connection inventory (this machine, no lab) runs the real `playbooks/ping.yml` through
`dzops.execute.ansible.run_playbook`, with more than 128 KiB of extra variables full of password
hashes: on argv that is "Argument list too long" (one argument may hold at most 128 KiB) and every
hash would be readable by anyone running `ps`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from dzops.execute.ansible import TaskEvent, run_playbook

MAX_ARG_STRLEN = 128 * 1024  # Linux: the longest single argv string execve accepts
HASH = "$6$dzopsSalt$" + "Q" * 86  # shaped like a SHA-512 crypt hash


def big_plan(logins: int) -> dict[str, object]:
    present = [{"login": f"user{i:04d}", "comment": f"User {i}", "ssh_keys": [], "sudo": i % 2 == 0,
                "expires": -1, "password_hash": f"{HASH}{i:04d}"} for i in range(logins)]
    return {"dz_users_plan": {"localhost": {"dz_users_present": present, "dz_users_absent": []}}}


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    servers:\n      hosts:\n        localhost:\n"
        f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"
    )
    return inventory


def _cmdlines_of_children(marker: str) -> list[str]:
    """Command lines of running processes that mention `marker` (the run's private directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        text = raw.replace(b"\0", b" ").decode(errors="replace")
        if marker in text and "ansible-playbook" in text:
            found.append(text)
    return found


def test_large_extravars_go_through_a_private_file(local_inventory: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))  # the run's private dir lands where we can look
    extravars = big_plan(1200)
    assert len(json.dumps(extravars)) > MAX_ARG_STRLEN
    seen: dict[str, object] = {}

    def during_run(_event: TaskEvent) -> None:
        (data_dir,) = runs.glob("dzops-runner-*")
        extravars_file = data_dir / "env" / "extravars"
        seen["dir_mode"] = stat.S_IMODE(data_dir.stat().st_mode)
        seen["file_mode"] = stat.S_IMODE(extravars_file.stat().st_mode)
        seen["argv"] = _cmdlines_of_children(str(data_dir))

    run = run_playbook(local_inventory, "ping.yml", extravars=extravars, on_event=during_run, keep_artifacts=True)

    assert run.status == "successful" and run.rc == 0, run
    assert run.hosts["localhost"].status == "ok"
    assert seen["dir_mode"] == 0o700 and seen["file_mode"] == 0o600
    assert seen["argv"], "ansible-playbook was not seen running"
    (data_dir,) = runs.glob("dzops-runner-*")
    (command_file,) = data_dir.glob("artifacts/*/command")
    recorded = json.loads(command_file.read_text())["command"]
    for argv in [*seen["argv"], " ".join(recorded)]:  # type: ignore[list-item]
        assert HASH not in argv and "user0001" not in argv
        assert "@" + str(data_dir / "env" / "extravars") in argv
    assert not (data_dir / "env" / "extravars").exists()  # gone after the run, even with kept artifacts


def test_no_extravars_no_file(local_inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    run = run_playbook(local_inventory, "ping.yml", keep_artifacts=True)
    assert run.rc == 0
    (data_dir,) = runs.glob("dzops-runner-*")
    (command_file,) = data_dir.glob("artifacts/*/command")
    assert "-e" not in json.loads(command_file.read_text())["command"]


def test_signal_handlers_are_put_back_after_a_play(local_inventory: Path) -> None:
    import signal

    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not called")

    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert run_playbook(local_inventory, "ping.yml").rc == 0
        # ansible-runner alone leaves its flag-only handlers: every later Ctrl-C would be swallowed
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_ctrl_c_during_a_play_cancels_it_then_reaches_the_old_handler(local_inventory: Path) -> None:
    import signal

    received: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        sent: list[bool] = []

        def interrupt(event: TaskEvent) -> None:
            if not sent:
                sent.append(True)
                os.kill(os.getpid(), signal.SIGINT)

        run = run_playbook(local_inventory, "ping.yml", on_event=interrupt)
        assert run.status == "canceled"
        assert received == [signal.SIGINT]  # delivered once, after the play stopped
    finally:
        signal.signal(signal.SIGINT, before)
