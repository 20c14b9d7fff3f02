"""The report of one `dzops patch` run: per host, every package upgraded (from -> to), as text and JSON.

Built from the run's results (its dict form, so a scheduled run can rebuild the text from the JSON
a child process printed); never connects to anything. Each run is saved under the inventory's
report_dir as `patch-<time>[-check].json` and `.txt`, never overwriting an earlier run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def summary_line(report: dict[str, Any]) -> str:
    """One line: hosts per status and packages upgraded (or pending, for --check).

    >>> summary_line({"check": False, "hosts": [{"status": "changed", "data": {"upgraded": [{}, {}]}},
    ...                                      {"status": "unreachable", "data": {}}]})
    'ok 0, changed 1, failed 0, unreachable 1, not run 0; 2 package(s) upgraded'
    >>> summary_line({"check": True, "stopped": True, "hosts": [{"status": "ok", "data": {"pending": [{}]}}]})
    'ok 1, changed 0, failed 0, unreachable 0, not run 0; 1 package(s) pending (check: nothing changed); run stopped early'
    """
    hosts = report.get("hosts", [])
    count = {s: sum(1 for h in hosts if h.get("status") == s) for s in ("ok", "changed", "failed", "unreachable", "skipped")}
    if report.get("check"):
        packages = sum(len(h.get("data", {}).get("pending", [])) for h in hosts)
        tail = f"{packages} package(s) pending (check: nothing changed)"
    else:
        packages = sum(len(h.get("data", {}).get("upgraded", [])) for h in hosts)
        tail = f"{packages} package(s) upgraded"
    line = (f"ok {count['ok']}, changed {count['changed']}, failed {count['failed']}, "
            f"unreachable {count['unreachable']}, not run {count['skipped']}; {tail}")
    return line + ("; run stopped early" if report.get("stopped") else "")


def _version(value: Any) -> str:
    return "(none)" if value in (None, "") else str(value)


def render_text(report: dict[str, Any]) -> str:
    """The human report: a header, then per host its status and each package from -> to.

    >>> print(render_text({"started": "2025-01-04T02:00:00+06:00", "check": False, "security_only": False,
    ...   "batch": ["100%"], "max_fail": 100, "hosts": [{"host": "web1", "status": "changed", "error": None,
    ...   "data": {"upgraded": [{"name": "dz-motd", "from": "1.0", "to": "1.1"}], "reboot_required": False}}]}), end="")
    dzops patch report, 2025-01-04T02:00:00+06:00
    mode: upgrade (all updates); batches 100%; max fail 100%
    ok 0, changed 1, failed 0, unreachable 0, not run 0; 1 package(s) upgraded
    <BLANKLINE>
    web1: changed
      dz-motd 1.0 -> 1.1
    """
    mode = "check (list pending, change nothing)" if report.get("check") else "upgrade"
    scope = "security updates only" if report.get("security_only") else "all updates"
    batches = ",".join(str(b) for b in report.get("batch", []))
    lines = [f"dzops patch report, {report.get('started', '')}",
             f"mode: {mode} ({scope}); batches {batches}; max fail {report.get('max_fail')}%",
             summary_line(report)]
    for host in report.get("hosts", []):
        data = host.get("data") or {}
        status = "not run" if host.get("status") == "skipped" else host.get("status")
        lines += ["", f"{host.get('host')}: {status}" + (f" - {host['error']}" if host.get("error") else "")]
        key = "pending" if report.get("check") else "upgraded"
        packages = data.get(key) or []
        for package in packages:
            lines.append(f"  {package.get('name')} {_version(package.get('from'))} -> {_version(package.get('to'))}")
        if data and not packages and host.get("status") in ("ok", "changed"):
            lines.append("  nothing to upgrade" if report.get("check") else "  nothing upgraded")
        if data.get("reboot_required"):
            lines.append("  rebooted" if data.get("rebooted") else
                         "  REBOOT REQUIRED, not rebooted" + ("" if data.get("reboot_allowed", True)
                                                              else " (reboots disabled for this run)"))
        elif data.get("reboot_pending_before"):
            lines.append("  a reboot was already pending before this run")
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], report_dir: Path) -> tuple[Path, Path]:
    """Write the run's JSON and text under report_dir; returns (json path, text path).

    File names carry the start time to the second and a counter, so two runs never share a file.
    """
    from dzops.scrub import egress_data
    from dzops.state import PRIVATE_FILE, private_dir, write_private

    report = egress_data(report)  # a report leaves dzops: a host's error can quote a secret
    private_dir(report_dir)  # reports name hosts, packages and failures: the owner's only
    stamp = time.strftime("%Y%m%dT%H%M%S")
    suffix = "-check" if report.get("check") else ""
    for n in range(1000):
        base = report_dir / f"patch-{stamp}{suffix}{'' if n == 0 else f'-{n}'}"
        try:
            # O_EXCL claims the name, so concurrent runs (even of two processes) never collide.
            with open(base.with_suffix(".json"), "x", opener=lambda p, f: os.open(p, f, PRIVATE_FILE)) as handle:
                handle.write(json.dumps(report, indent=2) + "\n")
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a thousand runs in one second
        raise FileExistsError(f"no free report name for {stamp} in {report_dir}")
    text_path = base.with_suffix(".txt")
    write_private(text_path, render_text(report))
    return base.with_suffix(".json"), text_path


def subject(report: dict[str, Any], dzongkhag: str = "") -> str:
    """Mail subject naming the outcome first, so failures stand out in an inbox.

    >>> subject({"hosts": [{"status": "failed"}, {"status": "changed"}]}, "Punakha")
    'dzops patch Punakha: FAILED on 1 of 2 host(s)'
    >>> subject({"hosts": [{"status": "ok"}]})
    'dzops patch: ok on 1 host(s)'
    """
    hosts = report.get("hosts", [])
    bad = sum(1 for h in hosts if h.get("status") in ("failed", "unreachable", "skipped"))
    where = f" {dzongkhag}" if dzongkhag else ""
    if bad:
        return f"dzops patch{where}: FAILED on {bad} of {len(hosts)} host(s)"
    return f"dzops patch{where}: ok on {len(hosts)} host(s)"
