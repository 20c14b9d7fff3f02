"""Filters of the dz_patch role: pending upgrades from package-manager data, versions before/after.

Pure functions over module results (never over ansible-playbook's output), with doctests:
`python -m doctest roles/dz_patch/filter_plugins/dz_patch.py`.
"""

from __future__ import annotations

import re
from typing import Any

# apt-get -s: "Inst dz-motd [1.0] (1.1 10.52.0.1 [all])"; a new package has no "[FROM]".
_APT_INST = re.compile(r"^Inst (?P<name>\S+) (?:\[(?P<from>[^\]]+)\] )?\((?P<to>\S+) (?P<origin>.*?)(?: \[[^\]]+\])?\)")


def apt_pending(lines: list[str]) -> list[dict[str, Any]]:
    """Pending upgrades from `apt-get -s upgrade` lines: name, from, to, origin.

    >>> apt_pending(["Inst dz-motd [1.0] (1.1 10.52.0.1 [all])", "Conf dz-motd (1.1 10.52.0.1 [all])"])
    [{'name': 'dz-motd', 'from': '1.0', 'to': '1.1', 'origin': '10.52.0.1'}]
    >>> apt_pending(["Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64]) []"])[0]["origin"]
    'Debian-Security:12/stable-security'
    >>> apt_pending(["Inst newdep (3.0 Debian:12.5/stable [amd64])"])[0]["from"] is None
    True
    """
    pending = []
    for line in lines:
        match = _APT_INST.match(line)
        if match:
            pending.append({"name": match["name"], "from": match["from"], "to": match["to"],
                            "origin": match["origin"]})
    return pending


def security_filter(pending: list[dict[str, Any]], security_only: bool, pattern: str) -> list[dict[str, Any]]:
    """Only the updates whose origin matches pattern, when security_only.

    >>> p = [{"name": "a", "origin": "Debian-Security:12/stable-security"}, {"name": "b", "origin": "Debian:12/stable"}]
    >>> [x["name"] for x in security_filter(p, True, "(?i)security")]
    ['a']
    >>> len(security_filter(p, False, "(?i)security"))
    2
    """
    if not security_only:
        return list(pending)
    regex = re.compile(pattern)
    return [p for p in pending if regex.search(str(p.get("origin") or ""))]


def _rpm_version(entry: dict[str, Any]) -> str:
    """[epoch:]version[-release] as rpm prints it.

    >>> _rpm_version({"version": "5.1", "release": "3.el9", "epoch": "1"})
    '1:5.1-3.el9'
    >>> _rpm_version({"version": "1.0"})
    '1.0'
    """
    version = str(entry.get("version", ""))
    if entry.get("release"):
        version += f"-{entry['release']}"
    if entry.get("epoch") not in (None, "", 0, "0"):
        version = f"{entry['epoch']}:{version}"
    return version


def versions(packages: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """package_facts' `packages` -> name: version (several installed versions joined by ', ').

    >>> versions({"dz-motd": [{"version": "1.0", "source": "apt"}], "k": [{"version": "5", "release": "1"}]})
    {'dz-motd': '1.0', 'k': '5-1'}
    """
    return {name: ", ".join(sorted(_rpm_version(e) for e in entries)) for name, entries in packages.items()}


def changes(before: dict[str, str], after: dict[str, str]) -> list[dict[str, Any]]:
    """Every package whose version differs: name, from (None = newly installed), to (None = removed).

    >>> changes({"a": "1.0", "b": "2", "c": "1"}, {"a": "1.1", "b": "2", "d": "4"})
    [{'name': 'a', 'from': '1.0', 'to': '1.1'}, {'name': 'c', 'from': '1', 'to': None}, {'name': 'd', 'from': None, 'to': '4'}]
    """
    return [{"name": name, "from": before.get(name), "to": after.get(name)}
            for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]


def dnf_pending(results: list[dict[str, Any]], before: dict[str, str],
                security_lines: list[str] | None) -> list[dict[str, Any]]:
    """Pending upgrades from `dnf list=updates` results; security_lines (from `dnf updateinfo list
    --security`) narrow them to security updates when given.

    >>> r = [{"name": "bash", "version": "5.1", "release": "2.el9", "epoch": "0", "arch": "x86_64", "repo": "baseos"}]
    >>> dnf_pending(r, {"bash": "5.1-1.el9"}, None)
    [{'name': 'bash', 'from': '5.1-1.el9', 'to': '5.1-2.el9', 'origin': 'baseos'}]
    >>> dnf_pending(r, {}, ["RHSA-2024:1 Important/Sec. openssl-3.0.7-2.el9.x86_64"])
    []
    """
    secure = None
    if security_lines is not None:
        secure = {line.split()[-1].rsplit("-", 2)[0] for line in security_lines if line.split()}
    pending = []
    for entry in results:
        name = entry.get("name", "")
        if secure is not None and name not in secure:
            continue
        pending.append({"name": name, "from": before.get(name), "to": _rpm_version(entry),
                        "origin": entry.get("repo")})
    return pending


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "dz_patch_apt_pending": apt_pending,
            "dz_patch_security_filter": security_filter,
            "dz_patch_versions": versions,
            "dz_patch_changes": changes,
            "dz_patch_dnf_pending": dnf_pending,
        }
