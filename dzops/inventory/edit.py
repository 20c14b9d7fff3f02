"""Edits of the inventory files that keep comments, order and style (round-trip YAML), for git diff.

Every edit is a read-modify-write under one lock per inventory (two runs at once both land), and the
file is replaced atomically (Ctrl-C or a crash mid-write leaves the old file whole).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dzops.exceptions import InventoryError, Problem
from dzops.state import atomic_write, file_lock

LOCK_TIMEOUT_S = 120.0  # another write-back holds the inventory for well under a second


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


@contextmanager
def editing(root: Path) -> Iterator[None]:
    """Hold the inventory's write-back lock (on its directory: no lock file in the checkout)."""
    with file_lock(Path(root), f"inventory write-back in {root}", timeout=LOCK_TIMEOUT_S):
        yield


def _dump(yaml: Any, data: Any, path: Path) -> None:
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    atomic_write(path, buffer.getvalue())


def file_defining(root: Path, key: str) -> Path:
    """The group_vars file that defines a top-level key (vault files are never edited)."""
    yaml = _yaml()
    for path in sorted((root / "group_vars").rglob("*.y*ml")):
        if path.read_bytes()[:14] == b"$ANSIBLE_VAULT":
            continue
        data = yaml.load(path.read_text())
        if isinstance(data, dict) and key in data:
            return path
    raise InventoryError([Problem(f"no group_vars file defines '{key}'", file=str(root / "group_vars"))])


def write_wan_subnets(root: Path, subnets: dict[str, str]) -> Path | None:
    """Record allocated subnets on their links; links that already have one are left alone."""
    if not subnets:
        return None
    with editing(root):
        return _write_wan_subnets(root, subnets)


def _write_wan_subnets(root: Path, subnets: dict[str, str]) -> Path | None:
    path = file_defining(root, "wan_links")
    yaml = _yaml()
    text = path.read_text()
    yaml.explicit_start = text.lstrip().startswith("---")
    data = yaml.load(text)
    changed = False
    for link in data["wan_links"]:
        name = link.get("name")
        if name in subnets and not link.get("subnet"):
            link["subnet"] = subnets[name]
            changed = True
    if changed:
        _dump(yaml, data, path)
    return path if changed else None


def _load_users_file(root: Path) -> tuple[Path, Any, Any]:
    path = file_defining(root, "users")
    yaml = _yaml()
    text = path.read_text()
    yaml.explicit_start = text.lstrip().startswith("---")
    data = yaml.load(text)
    if data.get("users") is None:
        from ruamel.yaml.comments import CommentedSeq

        data["users"] = CommentedSeq()
    return path, yaml, data


def add_user(root: Path, user: dict[str, Any]) -> Path:
    """Append a user to `users` (or bring back an offboarded one with the same login), keeping comments.

    `user` holds login, name, email, role, ssh_keys and optionally expires; validation is the
    caller's (the whole inventory is checked again after the write).
    """
    with editing(root):
        return _add_user(root, user)


def _add_user(root: Path, user: dict[str, Any]) -> Path:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    path, yaml, data = _load_users_file(root)
    entry = CommentedMap()
    for key in ("login", "name", "email", "role", "ssh_keys", "expires"):
        if user.get(key) is not None:
            value = user[key]
            entry[key] = CommentedSeq(value) if isinstance(value, (list, tuple)) else value
    for index, existing in enumerate(data["users"]):
        if existing.get("login") == user["login"]:
            if existing.get("state", "present") != "absent":
                raise InventoryError([Problem(f"user '{user['login']}' already exists", file=str(path),
                                              field=f"users[{user['login']}]")])
            data["users"][index] = entry  # a returning colleague: a fresh entry, no stale keys
            break
    else:
        data["users"].append(entry)
    _dump(yaml, data, path)
    return path


def remove_user(root: Path, login: str) -> Path:
    """Mark a user `state: absent` (the next apply removes the account everywhere), keeping comments."""
    with editing(root):
        return _remove_user(root, login)


def _remove_user(root: Path, login: str) -> Path:
    path, yaml, data = _load_users_file(root)
    for existing in data["users"]:
        if existing.get("login") == login:
            existing["state"] = "absent"
            break
    else:
        raise InventoryError([Problem(f"no user '{login}' in users", file=str(path), field="users")])
    _dump(yaml, data, path)
    return path


def forget_user(root: Path, login: str) -> Path | None:
    """Delete an offboarded user's entry once no host has the account any more."""
    with editing(root):
        path, yaml, data = _load_users_file(root)
        for index, existing in enumerate(data["users"]):
            if existing.get("login") == login and existing.get("state") == "absent":
                del data["users"][index]
                _dump(yaml, data, path)
                return path
        return None
