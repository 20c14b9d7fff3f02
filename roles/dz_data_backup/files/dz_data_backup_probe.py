#!/usr/bin/env python3
"""roles/dz_data_backup's setup on this server, in one round trip: what is in place, and the
repository password file made right.

Argument: JSON {packages, etc, files}. Standard input: the repository password (the role passes it
as the task's stdin: never an argument, which ps would show). Makes the private directory (root,
0700) and the password file (root, 0600, written only when its content differs, through a
temporary file renamed over it), then prints JSON {missing, password_changed, pubkey, files}: the
packages not installed, whether the password file was (re)written, the backup public key (empty if
none) and the sha1 of each client file that is root's and 0600 (empty otherwise). The role changes
only what differs; on an unchanged server its setup is this one task.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile


def owned_by_root(path: str, mode: int) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == 0 and info.st_gid == 0 and stat.S_IMODE(info.st_mode) == mode


def installed(packages: list[str]) -> set[str]:
    """Those of `packages` installed, by name or as a virtual package an installed one provides
    (Debian's postgresql-client-15 provides postgresql-client, as apt counts it)."""
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Provides}\n"],
                          capture_output=True, text=True, check=False)
    names = set()
    for line in proc.stdout.splitlines():
        status, _, rest = line.partition("|")
        if status.strip() != "ii":
            continue
        package, _, provides = rest.partition("|")
        names.add(package)
        names.update(entry.split()[0] for entry in provides.split(",") if entry.strip())
    return names & set(packages)


def private_directory(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chown(path, 0, 0)
    os.chmod(path, 0o700)


def write_if_changed(path: str, content: bytes) -> bool:
    """True when the file was (re)written: missing, another content, owner or mode."""
    if owned_by_root(path, 0o600):
        with open(path, "rb") as handle:
            if handle.read() == content:
                return False
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".password.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return True


def main() -> int:
    ask = json.loads(sys.argv[1])
    etc = ask["etc"]
    private_directory(etc)
    password_changed = write_if_changed(os.path.join(etc, "password"), sys.stdin.buffer.read())
    packages = ask.get("packages") or []
    have = installed(packages) if packages else set()
    files = {}
    for name in ask.get("files") or []:
        path = os.path.join(etc, name)
        if owned_by_root(path, 0o600):
            with open(path, "rb") as handle:
                files[name] = hashlib.sha1(handle.read()).hexdigest()
        else:
            files[name] = ""
    pubkey = ""
    if os.path.exists(os.path.join(etc, "id_ed25519")):
        try:
            with open(os.path.join(etc, "id_ed25519.pub"), encoding="utf-8") as handle:
                pubkey = handle.read().strip()
        except OSError:
            pass
    print(json.dumps({"missing": [p for p in packages if p not in have], "password_changed": password_changed,
                      "pubkey": pubkey, "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
