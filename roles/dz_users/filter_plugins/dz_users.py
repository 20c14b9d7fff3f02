"""Filters of the dz_users role: which logins the role must refuse to touch, and why.

Shipped inside the role (Ansible loads a role's filter_plugins/ when the role is used), so the
refusal holds however the role is run: `dzops user apply`, plain `ansible-playbook`, molecule.
Pure Python with no import beyond the standard library: it runs on the controller.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

# The shape useradd accepts by default on Debian (NAME_REGEX); anything else could carry a newline
# or a space into the sudoers drop-in the role writes.
LOGIN_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _uid(entry: Any) -> int | None:
    """The uid of a getent passwd entry ([password, uid, gid, gecos, home, shell])."""
    try:
        return int(entry[1])
    except (TypeError, ValueError, IndexError):
        return None


def dz_users_refused(logins: Iterable[Any], passwd: Mapping[str, Any] | None, reserved: Iterable[str],
                     uid_min: int = 1000, uid_max: int = 60000) -> list[str]:
    """One reason per login the role must not touch: a reserved name (shell-style patterns such as
    `systemd-*` allowed), a name useradd would not create, or an existing account whose uid is
    outside the staff range [uid_min, uid_max] (a system account, or nobody).

    >>> passwd = {"backup": ["x", "34", "34", "backup", "/var/backups", "/usr/sbin/nologin"],
    ...           "karma": ["x", "1001", "1001", "Karma", "/home/karma", "/bin/bash"],
    ...           "svc": ["x", "998", "998", "", "/", "/bin/false"],
    ...           "ghost": ["x", "65534", "65534", "", "/", "/bin/false"]}
    >>> dz_users_refused(["karma", "backup", "svc", "ghost", "new1"], passwd, ["backup", "systemd-*"])
    ['backup: reserved name', 'svc: uid 998 is a system account (staff uids are 1000..60000)', 'ghost: uid 65534 is a system account (staff uids are 1000..60000)']
    >>> dz_users_refused(["systemd-network", "Bad Name", "x\\nALL"], {}, ["systemd-*"])
    ['systemd-network: reserved name', "'Bad Name': not a valid login name", "'x\\\\nALL': not a valid login name"]
    """
    patterns = [str(p) for p in reserved if p]
    passwd = passwd or {}
    reasons = []
    for login in logins:
        name = str(login)
        if not LOGIN_PATTERN.match(name):
            reasons.append(f"{name!r}: not a valid login name")
        elif any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            reasons.append(f"{name}: reserved name")
        elif name in passwd:
            uid = _uid(passwd[name])
            if uid is None or not uid_min <= uid <= uid_max:
                reasons.append(f"{name}: uid {uid} is a system account (staff uids are {uid_min}..{uid_max})")
    return reasons


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"dz_users_refused": dz_users_refused}
