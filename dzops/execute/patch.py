"""OS package upgrades of Linux hosts: playbooks/patch.yml (role dz_patch) through ansible-runner.

Everything here comes from runner events and stats: the role's last task sets the fact
`dz_patch_record` (pending, upgraded from -> to, reboot, checks) and its event carries it. Hosts in
scope that never produced an event were not run, because the play stopped once more hosts failed
than `--max-fail` allows (or a whole batch failed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dzops.exceptions import UsageError
from dzops.execute.ssh import explain_host_key
from dzops.inventory.limit import select_among
from dzops.inventory.models import Inventory
from dzops.models import HostResult

PATCH_GROUP = "servers"  # apt/dnf hosts; routers and switches are patched by image, not by apt
RECORD_FACT = "dz_patch_record"
NOT_RUN = "not run: the play stopped before this host's batch (failures over --max-fail)"

_BATCH_ITEM = re.compile(r"^(?:(?P<count>\d+)|(?P<percent>\d+)%)$")


def parse_batch(text: str | None) -> list[int | str]:
    """`--batch 1,25%` -> Ansible's serial list; the last size repeats until every host is done.

    >>> parse_batch("1,25%")
    [1, '25%']
    >>> parse_batch(None)
    ['100%']
    >>> parse_batch("0")
    Traceback (most recent call last):
    ...
    dzops.exceptions.UsageError: --batch: '0' is not a host count (1, 2, ...) or a percentage (1% .. 100%)
    """
    if not text:
        return ["100%"]
    sizes: list[int | str] = []
    for item in (part.strip() for part in text.split(",")):
        match = _BATCH_ITEM.match(item)
        if match and match["count"] and int(match["count"]) >= 1:
            sizes.append(int(match["count"]))
        elif match and match["percent"] and 1 <= int(match["percent"]) <= 100:
            sizes.append(f"{int(match['percent'])}%")
        else:
            raise UsageError(f"--batch: '{item}' is not a host count (1, 2, ...) or a percentage (1% .. 100%)")
    return sizes


def parse_max_fail(text: str | None) -> int:
    """`--max-fail 10%` -> max_fail_percentage 10 (a run stops once MORE than that share of a batch failed).

    >>> parse_max_fail("10%"), parse_max_fail("0"), parse_max_fail(None)
    (10, 0, 100)
    >>> parse_max_fail("120%")
    Traceback (most recent call last):
    ...
    dzops.exceptions.UsageError: --max-fail: '120%' is not a percentage from 0% to 100%
    """
    if text is None:
        return 100
    match = re.fullmatch(r"(\d+)%?", text.strip())
    if not match or int(match[1]) > 100:
        raise UsageError(f"--max-fail: '{text}' is not a percentage from 0% to 100%")
    return int(match[1])


def hosts_in_scope(inventory: Inventory, limit: str | None) -> list[str]:
    """The patchable hosts a --limit names (hosts, groups or shell patterns), in inventory order.

    Raises UsageError for a name that matches nothing, or only hosts that are not Linux servers.
    """
    return select_among(inventory, limit, list(inventory.groups.get(PATCH_GROUP, ())),
                        f"--limit: '{limit}' selects no host in group '{PATCH_GROUP}' (only Linux servers are patched)")


@dataclass
class PatchRun:
    """One `dzops patch` run: its options and each host's outcome (HostResult.data holds the record)."""

    started: str
    finished: str = ""
    check: bool = False
    security_only: bool = False
    batch: list[int | str] = field(default_factory=lambda: ["100%"])
    max_fail: int = 100
    stopped: bool = False  # the play ended before every host in scope had its turn
    hosts: list[HostResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, int]:
        """Hosts per status plus packages pending/upgraded, for the summary line."""
        counts = {status: 0 for status in ("ok", "changed", "failed", "unreachable", "skipped")}
        for host in self.hosts:
            counts[host.status] = counts.get(host.status, 0) + 1
        counts["pending"] = sum(len(h.data.get("pending", [])) for h in self.hosts)
        counts["upgraded"] = sum(len(h.data.get("upgraded", [])) for h in self.hosts)
        return counts


def record_from_events(events: list[Any]) -> dict[str, Any] | None:
    """The dz_patch_record fact of the last event that carries it (the role's final task)."""
    for event in reversed(events):
        facts = event.result.get("ansible_facts") or {}
        if RECORD_FACT in facts:
            return dict(facts[RECORD_FACT])
    return None


def _clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """Only the fields the report promises, with package lists as name/from/to(/origin)."""
    def packages(items: Any) -> list[dict[str, Any]]:
        return [{k: item.get(k) for k in ("name", "from", "to", "origin") if k in item} for item in items or []]

    clean = {key: record.get(key) for key in ("reboot_pending_before", "reboot_required", "rebooted",
                                             "reboot_allowed", "systemd", "services", "health_checks")}
    clean["pending"] = packages(record.get("pending"))
    clean["upgraded"] = packages(record.get("upgraded"))
    return clean


def run_patch(
    inventory: Inventory,
    *,
    limit: str | None = None,
    check: bool = False,
    batch: list[int | str] | None = None,
    max_fail: int = 100,
    security_only: bool = False,
    reboot: bool = True,
    vault_password_file: Path | None = None,
    on_event: Callable[[Any], None] | None = None,
    forks: int = 10,
) -> PatchRun:
    """Patch the servers in scope (or only list pending upgrades with check=True)."""
    from dzops.execute.ansible import run_playbook

    scope = hosts_in_scope(inventory, limit)
    run = PatchRun(started=_now(), check=check, security_only=security_only, batch=batch or ["100%"],
                   max_fail=max_fail)
    extravars = {
        "dz_patch_hosts": PATCH_GROUP,
        "dz_patch_serial": run.batch,
        "dz_patch_max_fail_percentage": max_fail,
        "dz_patch_security_only": security_only,
        "dz_patch_reboot": reboot,
    }
    playbook = run_playbook(inventory.root, "patch.yml", limit=",".join(scope), extravars=extravars,
                            check=check, forks=forks, vault_password_file=vault_password_file,
                            on_event=on_event, known_hosts=inventory.known_hosts)
    for host in scope:
        result = playbook.hosts.get(host)
        if result is None:
            run.stopped = True
            run.hosts.append(HostResult(host=host, status="skipped", error=NOT_RUN))
            continue
        events = playbook.host_events(host)
        unreachable = [e for e in events if e.status == "unreachable"]
        if unreachable:  # the play fails unreachable hosts on purpose (see playbooks/patch.yml)
            message = str(unreachable[0].result.get("msg") or "no answer").strip().splitlines()
            result.status, result.error = "unreachable", f"{unreachable[0].task}: {message[0] if message else ''}"
            refused = explain_host_key(inventory, host, str(unreachable[0].result.get("msg") or ""))
            if refused is not None:
                result.status, result.error = "failed", refused
        record = record_from_events(events)
        if record is not None:
            result.data = _clean_record(record)
        run.hosts.append(result)
    run.finished = _now()
    return run


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")
