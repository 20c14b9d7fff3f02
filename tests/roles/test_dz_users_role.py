"""roles/dz_users and playbooks/users.yml refuse before any change, run as plain Ansible would run them.

The playbook runs through ansible-runner against this machine (local connection) in check mode, so
even a broken guard could not change an account here: what is asserted is that the run stops at
the guard and that no account task ever starts. The lab tests (tests/execute/test_users_lab.py) run
the same refusals for real against a lab server.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from dzops.execute.ansible import PlaybookRun, run_playbook

ROLE = Path(__file__).resolve().parents[2] / "roles" / "dz_users"
ACCOUNT_TASKS = ("Account", "SSH directory", "Authorized keys", "Sudoers drop-in",
                 "No sudoers drop-in when nobody has sudo", "Account removed (sessions ended, home deleted)")


def _filters():  # the role's filter plugin, loaded the way Ansible loads it: by path
    spec = importlib.util.spec_from_file_location("dz_users_filters", ROLE / "filter_plugins" / "dz_users.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PASSWD = {
    "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
    "backup": ["x", "34", "34", "backup", "/var/backups", "/usr/sbin/nologin"],
    "svcapp": ["x", "999", "999", "", "/var/lib/svcapp", "/usr/sbin/nologin"],
    "nobody": ["x", "65534", "65534", "nobody", "/nonexistent", "/usr/sbin/nologin"],
    "karma": ["x", "1000", "1000", "Karma", "/home/karma", "/bin/bash"],
    "edge": ["x", "60000", "60000", "", "/home/edge", "/bin/bash"],
    "high": ["x", "60001", "60001", "", "/home/high", "/bin/bash"],
}
RESERVED = ["root", "backup", "www-data", "nobody", "systemd-*", "_*", "dzadmin"]


@pytest.mark.parametrize(("login", "refused"), [
    ("karma", None),  # uid 1000: the first staff uid
    ("edge", None),  # uid 60000: the last
    ("newhire", None),  # not on the host yet: useradd gives it a staff uid
    ("backup", "backup: reserved name"),
    ("www-data", "www-data: reserved name"),
    ("systemd-timesync", "systemd-timesync: reserved name"),
    ("_apt", "_apt: reserved name"),
    ("dzadmin", "dzadmin: reserved name"),  # the connecting service login
    ("svcapp", "svcapp: uid 999 is a system account (staff uids are 1000..60000)"),
    ("high", "high: uid 60001 is a system account (staff uids are 1000..60000)"),
    ("Karma", "'Karma': not a valid login name"),
    ("evil\nALL", "'evil\\nALL': not a valid login name"),  # would add a sudoers line
    ("evil ALL=(ALL) NOPASSWD: ALL", "'evil ALL=(ALL) NOPASSWD: ALL': not a valid login name"),
])
def test_refusal_reasons(login: str, refused: str | None) -> None:
    reasons = _filters().dz_users_refused([login], PASSWD, RESERVED)
    assert reasons == ([refused] if refused else [])


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    servers:\n      hosts:\n        localhost:\n"
        f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"
        "          ansible_become: false\n"
    )
    return inventory


def _account_tasks(run: PlaybookRun) -> list[str]:
    return [e.task for e in run.events if e.task in ACCOUNT_TASKS]


def test_plain_ansible_playbook_without_a_plan_refuses(local_inventory: Path) -> None:
    run = run_playbook(local_inventory, "users.yml", check=True)
    assert run.rc != 0
    assert run.hosts["localhost"].status == "failed"
    assert "Refuse to run without dzops' plan" in (run.hosts["localhost"].error or "")
    assert "dzops user apply" in (run.hosts["localhost"].error or "")
    assert _account_tasks(run) == []


def test_a_plan_naming_a_system_account_is_refused_before_any_change(local_inventory: Path) -> None:
    plan = {"localhost": {"dz_users_present": [{"login": "backup", "comment": "Not Backup", "ssh_keys": [],
                                                 "sudo": True, "expires": -1, "password_hash": ""}],
                          "dz_users_absent": ["www-data"]}}
    run = run_playbook(local_inventory, "users.yml", check=True,
                       extravars={"dz_users_plan": plan, "dz_users_mode": "apply", "dz_users_hosts": "all"})
    error = run.hosts["localhost"].error or ""
    assert run.hosts["localhost"].status == "failed", run.hosts
    assert "Refuse system accounts and reserved names" in error
    assert "backup: reserved name" in error and "www-data: reserved name" in error
    assert _account_tasks(run) == []


def test_the_role_needs_an_explicit_account_list(local_inventory: Path) -> None:
    """A plan entry without dz_users_present must not read as "nobody has sudo here"."""
    plan = {"localhost": {"dz_users_absent": []}}
    run = run_playbook(local_inventory, "users.yml", check=True,
                       extravars={"dz_users_plan": plan, "dz_users_mode": "apply", "dz_users_hosts": "all"})
    assert run.hosts["localhost"].status == "failed", run.hosts
    assert "dz_users needs dz_users_present" in (run.hosts["localhost"].error or "")
    assert _account_tasks(run) == []


def test_hosts_outside_the_plan_are_left_alone(local_inventory: Path) -> None:
    run = run_playbook(local_inventory, "users.yml", check=True,
                       extravars={"dz_users_plan": {"elsewhere": {}}, "dz_users_mode": "apply"})
    assert run.rc == 0
    assert run.hosts["localhost"].status == "ok"
    assert [e.task for e in run.events if e.host == "localhost" and e.task != "Refuse to run without dzops' plan"
            and e.status != "skipped"] == []


def test_role_and_inventory_check_reserve_the_same_names() -> None:
    import yaml

    from dzops.inventory.checks import RESERVED_LOGINS

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["dz_users_reserved"] == list(RESERVED_LOGINS)
    assert "dz_users_present" not in defaults  # required: no silent empty list
