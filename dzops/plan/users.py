"""Accounts of staff on every device, from `users` x `user_roles` (pure: no sockets, no subprocess).

Every managed login is decided on every host in scope: `present` where the user's role reaches one
of the host's groups and the user is not offboarded, `absent` everywhere else. So a role change or
an offboarding (`state: absent`) removes the account from every host where it is no longer wanted,
and `apply` reports each host where it was actually found.

Access per device follows the role's `privilege`: 15 is full access (IOS privilege 15, RouterOS
group `full`, FRR vtysh), anything lower is read-only (IOS privilege N, RouterOS group `read`, the
show-only shell on FRR). `sudo` only matters on Linux hosts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from dzops.inventory.models import Device, Inventory, UserAccount

FULL_PRIVILEGE = 15
LINUX_PLATFORMS = ("debian", "ubuntu", "rhel")
Access = Literal["full", "readonly"]


@dataclass(frozen=True)
class Account:
    """One login as one host should have it."""

    login: str
    state: Literal["present", "absent"]
    name: str = ""
    email: str = ""
    role: str = ""
    access: Access = "readonly"
    privilege: int = 1
    sudo: bool = False
    ssh_keys: tuple[str, ...] = ()
    expires: dt.date | None = None
    password_hash: str | None = None  # a crypt hash (never a clear password); kept out of reprs
    reason: str = ""  # why absent: "offboarded" or "role does not reach this host"

    def __repr__(self) -> str:  # the hash stays out of logs and test output
        return f"Account({self.login!r}, {self.state!r}, role={self.role!r})"

    @property
    def expires_epoch(self) -> int:
        """Seconds since the epoch at the start of the expiry day (UTC), -1 for never.

        >>> Account("a", "present", expires=dt.date(1970, 1, 2)).expires_epoch
        86400
        >>> Account("a", "present").expires_epoch
        -1
        """
        if self.expires is None:
            return -1
        return int(dt.datetime.combine(self.expires, dt.time(), tzinfo=dt.UTC).timestamp())

    @property
    def gecos(self) -> str:
        """The comment field: full name, without characters that would break passwd or a CLI line.

        >>> Account("a", "present", name="Dorji: 'ICT'\\n").gecos
        'Dorji ICT'
        """
        return " ".join("".join(c for c in self.name if c.isalnum() or c in " .-_").split())


def access_for(privilege: int) -> Access:
    """Privilege 15 is full access; any lower level reads only.

    >>> access_for(15), access_for(1), access_for(7)
    ('full', 'readonly', 'readonly')
    """
    return "full" if privilege >= FULL_PRIVILEGE else "readonly"


def reaches(inv: Inventory, user: UserAccount, device: Device) -> bool:
    """Whether the user's role covers one of the device's groups ('all' covers everything)."""
    role = inv.user_roles.get(user.role)
    if role is None:
        return False
    return any(group == "all" or device.name in inv.groups.get(group, ()) for group in role.groups)


def account_on(inv: Inventory, user: UserAccount, device: Device) -> Account:
    """What `user` should be on `device`."""
    if user.state == "absent":
        return Account(user.login, "absent", name=user.name, role=user.role, reason="offboarded")
    if not reaches(inv, user, device):
        return Account(user.login, "absent", name=user.name, role=user.role,
                       reason=f"role {user.role} does not reach this host")
    role = inv.user_roles[user.role]
    return Account(
        login=user.login, state="present", name=user.name, email=user.email, role=user.role,
        access=access_for(role.privilege), privilege=role.privilege, sudo=role.sudo,
        ssh_keys=tuple(user.ssh_keys), expires=user.expires,
        password_hash=user.password_hash.get_secret_value() if user.password_hash else None,
    )


def plan_users(inv: Inventory, hosts: list[str] | None = None) -> dict[str, list[Account]]:
    """host -> every managed login's desired state there, in inventory order."""
    names = hosts if hosts is not None else sorted(inv.devices)
    return {name: [account_on(inv, user, inv.devices[name]) for user in inv.users] for name in names}


def managed_logins(inv: Inventory) -> set[str]:
    return {user.login for user in inv.users}


def service_logins(inv: Inventory) -> set[str]:
    """Logins dzops itself uses (ansible_user): never staff, never audited, never removed."""
    return {d.username for d in inv.devices.values() if d.username}


# --- Linux hosts: variables of roles/dz_users ---------------------------------------------------


def role_vars(accounts: list[Account]) -> dict[str, object]:
    """The dz_users_* variables for one Linux host (see roles/dz_users/README.md).

    >>> v = role_vars([Account("karma", "present", name="Karma W", sudo=True, ssh_keys=("ssh-ed25519 AAAA k",)),
    ...                Account("old", "absent")])
    >>> v["dz_users_absent"], v["dz_users_present"][0]["sudo"], v["dz_users_present"][0]["expires"]
    (['old'], True, -1)
    """
    return {
        "dz_users_present": [
            {"login": a.login, "comment": a.gecos, "ssh_keys": list(a.ssh_keys), "sudo": a.sudo,
             "expires": a.expires_epoch, "password_hash": a.password_hash or ""}
            for a in accounts if a.state == "present"
        ],
        "dz_users_absent": [a.login for a in accounts if a.state == "absent"],
    }


# --- FRR routers: arguments of the router's `account` command (dzops.lab.routers) ---------------


def frr_account_command(account: Account) -> tuple[str, str]:
    """(exec command, stdin) that makes one FRR router's account match; stdin carries the keys.

    >>> frr_account_command(Account("pema", "present", name="Pema L", access="readonly",
    ...                             ssh_keys=("ssh-ed25519 AAAA p",), expires=dt.date(2027, 6, 30)))
    ('account present pema readonly 2027-06-30 Pema L', 'ssh-ed25519 AAAA p\\n')
    >>> frr_account_command(Account("old", "absent"))
    ('account absent old', '')
    """
    if account.state == "absent":
        return f"account absent {account.login}", ""
    expires = account.expires.isoformat() if account.expires else "never"
    keys = "".join(f"{key}\n" for key in account.ssh_keys)
    return f"account present {account.login} {account.access} {expires} {account.gecos}".rstrip(), keys


# --- Cisco IOS and RouterOS: configuration lines ------------------------------------------------

VENDOR_PLATFORMS = ("ios", "routeros")


def ssh_key_parts(key: str) -> tuple[str, str, str]:
    """(algorithm, base64 blob, comment) of an OpenSSH public key line.

    >>> ssh_key_parts("ssh-ed25519 AAAAC3Nz karma@x")
    ('ssh-ed25519', 'AAAAC3Nz', 'karma@x')
    """
    parts = key.split(None, 2)
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def vendor_user_lines(platform: str, accounts: list[Account]) -> list[str]:
    """The configuration lines that make an IOS or RouterOS device's staff accounts match."""
    from dzops.plan.render import render

    if platform not in VENDOR_PLATFORMS:
        raise ValueError(f"no user templates for platform {platform!r} (have: {', '.join(VENDOR_PLATFORMS)})")
    keys = {a.login: [ssh_key_parts(k) for k in a.ssh_keys] for a in accounts}
    text = render(platform, "users", accounts=accounts, keys=keys)
    return [line for line in text.splitlines() if line.strip()]
