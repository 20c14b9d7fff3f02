"""Staff accounts from users x user_roles: who is where, as what, and the vendor lines (golden files).

The plan runs on the shipped sample inventory (Punakha: admin karma, operator sonam, readonly pema).
`DZOPS_UPDATE_GOLDEN=1 pytest tests/plan/test_users_plan.py` rewrites the golden files; review them
against the vendor documentation before committing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from functools import lru_cache
from pathlib import Path

import pytest

from dzops.inventory.loader import load_inventory
from dzops.inventory.models import Inventory
from dzops.plan.users import Account, frr_account_command, plan_users, role_vars, vendor_user_lines

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "inventory"
GOLDEN = REPO / "tests" / "fixtures" / "golden"
UPDATE = os.environ.get("DZOPS_UPDATE_GOLDEN") == "1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ karma@punakha.gov.bt"


@lru_cache(maxsize=1)
def sample() -> Inventory:
    return load_inventory(SAMPLE)


# (host, login) -> (state, access, sudo)
PLACEMENT = [
    pytest.param("punakha-hq-srv1", "karma", ("present", "full", True), id="admin-on-server-with-sudo"),
    pytest.param("gewog-barp-ap1", "karma", ("present", "full", True), id="admin-reaches-all-groups"),
    pytest.param("punakha-hq-srv1", "sonam", ("present", "full", False), id="operator-on-server-no-sudo"),
    pytest.param("gewog-talo-sw1", "sonam", ("present", "full", False), id="operator-on-switch"),
    pytest.param("gewog-talo-ap1", "sonam", ("absent", "readonly", False), id="operator-not-on-ap"),
    pytest.param("gewog-talo-rtr1", "pema", ("present", "readonly", False), id="readonly-on-router"),
    pytest.param("punakha-hq-web1", "pema", ("present", "readonly", False), id="readonly-on-server"),
    pytest.param("punakha-hq-sw1", "pema", ("absent", "readonly", False), id="readonly-not-on-switch"),
]


@pytest.mark.parametrize(("host", "login", "expected"), PLACEMENT)
def test_accounts_follow_roles(host: str, login: str, expected: tuple[str, str, bool]) -> None:
    account = {a.login: a for a in plan_users(sample(), [host])[host]}[login]
    state, access, sudo = expected
    assert account.state == state
    if state == "present":
        assert (account.access, account.sudo) == (access, sudo)


def test_offboarded_user_is_absent_everywhere() -> None:
    users = tuple(u.model_copy(update={"state": "absent"}) if u.login == "karma" else u for u in sample().users)
    inv = sample().model_copy(update={"users": users})
    plan = plan_users(inv)
    assert {a.state for host in plan.values() for a in host if a.login == "karma"} == {"absent"}
    assert all(a.reason == "offboarded" for host in plan.values() for a in host if a.login == "karma")


def test_expiry_and_keys_reach_the_role_vars() -> None:
    accounts = plan_users(sample(), ["punakha-hq-web1"])["punakha-hq-web1"]
    v = role_vars(accounts)
    pema = next(u for u in v["dz_users_present"] if u["login"] == "pema")  # type: ignore[union-attr]
    assert pema["expires"] == int(dt.datetime(2027, 6, 30, tzinfo=dt.UTC).timestamp())
    assert pema["ssh_keys"][0].startswith("ssh-ed25519 ") and pema["sudo"] is False
    assert v["dz_users_absent"] == []


@pytest.mark.parametrize(("account", "command"), [
    pytest.param(Account("karma", "present", name="Karma W", access="full", ssh_keys=(KEY,)),
                 "account present karma full never Karma W", id="full"),
    pytest.param(Account("pema", "present", name="Pema: L", access="readonly", expires=dt.date(2027, 6, 30)),
                 "account present pema readonly 2027-06-30 Pema L", id="readonly-expiring-name-sanitised"),
    pytest.param(Account("old", "absent"), "account absent old", id="absent"),
])
def test_frr_account_command(account: Account, command: str) -> None:
    assert frr_account_command(account)[0] == command


GOLDEN_ACCOUNTS = [
    Account("karma", "present", name="Karma Wangchuk", access="full", privilege=15, sudo=True, ssh_keys=(KEY,),
            password_hash="$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"),
    Account("pema", "present", name="Pema Lhamo", access="readonly", privilege=1, ssh_keys=(KEY.replace("karma", "pema"),)),
    Account("tashi", "absent", name="Tashi Dorji"),
]


@pytest.mark.parametrize("platform", ["ios", "routeros"])
@pytest.mark.parametrize(("case", "accounts"), [
    pytest.param("mixed", GOLDEN_ACCOUNTS, id="mixed"),
    pytest.param("offboard_only", GOLDEN_ACCOUNTS[2:], id="offboard-only"),
])
def test_vendor_golden(platform: str, case: str, accounts: list[Account]) -> None:
    text = "\n".join(vendor_user_lines(platform, accounts)) + "\n"
    path = GOLDEN / platform / f"users_{case}.txt"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with DZOPS_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


def test_no_secret_in_account_repr() -> None:
    assert "$9$" not in repr(GOLDEN_ACCOUNTS[0]) and "$9$" not in str([GOLDEN_ACCOUNTS[0]])


# --- inventory check rejects bad users before anything is touched --------------------------------

BAD_USERS = [
    pytest.param("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ karma@punakha.gov.bt",
                 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/L karma@punakha.gov.bt",
                 "users[karma].ssh_keys[0]: bad SSH public key: key data is truncated or corrupt", id="truncated-key"),
    pytest.param("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ karma@punakha.gov.bt",
                 "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ karma@punakha.gov.bt",
                 "not ssh-rsa", id="key-type-mismatch"),
    pytest.param("    role: readonly\n", "    role: auditor\n", "users[pema].role: unknown role 'auditor'", id="unknown-role"),
    pytest.param("    expires: 2027-06-30\n", "    expires: 2027-06-30\n    password_hash: Secret123-clear\n",
                 "users[pema].password_hash: password_hash must be a crypt hash", id="clear-password"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_USERS)
def test_inventory_check_rejects(tmp_path: Path, old: str, new: str, message: str) -> None:
    inv = tmp_path / "inventory"
    shutil.copytree(SAMPLE, inv)
    users = inv / "group_vars/all/users.yml"
    assert old in users.read_text()
    users.write_text(users.read_text().replace(old, new, 1))
    from tests.inventory.test_checks import dzops  # the console entry point in-process, output captured

    run = dzops(tmp_path, "-i", str(inv), "inventory", "check")
    assert run.code == 3, run.stderr
    assert message in run.text
    assert "Secret123" not in run.text


def test_add_and_remove_keep_comments(tmp_path: Path) -> None:
    from dzops.inventory.edit import add_user, remove_user

    inv = tmp_path / "inventory"
    shutil.copytree(SAMPLE, inv)
    users = inv / "group_vars/all/users.yml"
    add_user(inv, {"login": "tashi", "name": "Tashi Dorji", "email": "t@punakha.gov.bt", "role": "readonly",
                   "ssh_keys": [KEY.replace("karma", "tashi")]})
    remove_user(inv, "sonam")
    text = users.read_text()
    assert "# Staff accounts; `dzops user add/remove` edits this list." in text
    loaded = load_inventory(inv)
    by_login = {u.login: u for u in loaded.users}
    assert by_login["tashi"].role == "readonly" and by_login["sonam"].state == "absent"
    assert by_login["pema"].expires == dt.date(2027, 6, 30)
