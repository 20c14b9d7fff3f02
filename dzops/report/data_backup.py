"""The report of one `dzops data-backup` action: per server, its snapshots, restores or restore tests.

Built from the run's dict form; never connects anywhere. `run`, `verify` and `check` reports are
saved under report_dir as `data-backup-<action>-<time>.json` and `.txt`; the weekly report mail
carries the newest of each (`latest_summary`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

PREFIX = "data-backup"


def size(value: Any) -> str:
    """Bytes for people.

    >>> size(0), size(1536), size(5 * 1024 ** 3), size(None)
    ('0 B', '1.5 KiB', '5.0 GiB', '-')
    """
    if value is None:
        return "-"
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if number < 1024 or unit == "TiB":
            return f"{int(number)} B" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return "-"  # pragma: no cover


def age(when: str, now: dt.datetime | None = None) -> str:
    """How long ago a restic time stamp was, in the largest whole unit.

    >>> now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
    >>> age("2026-12-01T11:59:29.523456789Z", now), age("2026-12-01T09:00:00+00:00", now), age("2026-11-28T12:00:00Z", now)
    ('30s', '3h', '3d')
    """
    text = when.replace("Z", "+00:00")
    if "." in text:  # restic writes nanoseconds; Python takes microseconds
        head, _, tail = text.partition(".")
        digits = tail[:len(tail) - len(tail.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    then = dt.datetime.fromisoformat(text)
    seconds = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length}{unit}"
    return f"{max(seconds, 0)}s"


def summary_line(report: dict[str, Any]) -> str:
    """Hosts per status, plus what the action did.

    >>> summary_line({"action": "backup", "hosts": [{"status": "changed", "data": {"snapshots": [{}, {}]}},
    ...                                             {"status": "unreachable", "data": {}}]})
    'data-backup backup: ok 1, failed 0, unreachable 1; 2 snapshot(s) made'
    """
    hosts = report.get("hosts", [])
    good = sum(1 for h in hosts if h.get("status") in ("ok", "changed"))
    failed = sum(1 for h in hosts if h.get("status") in ("failed", "skipped"))
    dark = sum(1 for h in hosts if h.get("status") == "unreachable")
    line = f"data-backup {report.get('action')}: ok {good}, failed {failed}, unreachable {dark}"
    action = report.get("action")
    if action == "backup":
        made = sum(len((h.get("data") or {}).get("snapshots") or []) for h in hosts)
        line += f"; {made} snapshot(s) made"
    elif action == "verify":
        items = [i for h in hosts for i in (h.get("data") or {}).get("items") or []]
        line += f"; {sum(1 for i in items if i.get('ok'))} of {len(items)} item(s) restored and matching"
    return line


def render_text(report: dict[str, Any], now: dt.datetime | None = None) -> str:
    """The human report of any action."""
    lines = [f"dzops data-backup {report.get('action')} report, {report.get('started', '')}", summary_line(report)]
    for host in report.get("hosts", []):
        data = host.get("data") or {}
        lines += ["", f"{host.get('host')}: {host.get('status')}" + (f" - {host['error']}" if host.get("error") else "")]
        if data.get("repository"):
            lines.append(f"  repository {data['repository']}")
        for snap in data.get("snapshots") or []:
            if report.get("action") == "backup":
                lines.append(f"  {snap.get('kind')} {snap.get('name')}: snapshot {snap.get('snapshot')}, "
                             f"{snap.get('files')} file(s), {size(snap.get('bytes'))}, {size(snap.get('added_bytes'))} new")
            else:
                lines.append(f"  {snap.get('id')}  {snap.get('time', '')[:19]}  {age(snap['time'], now) + ' ago':>9}  "
                             f"{snap.get('kind'):<8} {snap.get('name')}"
                             + (f"  {size(snap.get('size'))}" if snap.get("newest") else ""))
        if report.get("action") == "backup" and data.get("ok"):
            lines.append(f"  retention {_retention(data.get('retention') or {})}: "
                         f"{data.get('forgotten', 0)} old snapshot(s) removed")
        if "check" in data:
            check = data["check"]
            lines.append("  repository check: " + ("ok" if check.get("ok") else "FAILED")
                         + "".join(f"\n    {e}" for e in (check.get("errors") or [])[:5]))
        for item in data.get("items") or []:
            detail = (f"{item.get('tables')} table(s), {item.get('rows')} row(s)" if item.get("kind") == "database"
                      else f"{item.get('files')} file(s)")
            lines.append(f"  {item.get('kind')} {item.get('name')}: "
                         + (f"restored from {item.get('snapshot')} and matching ({detail})" if item.get("ok")
                            else f"FAILED: {item.get('error') or 'mismatch'}")
                         + "".join(f"\n    {m.get('table')}: dump {m.get('dump')} row(s), restored {m.get('restored')}"
                                   for m in item.get("mismatches") or []))
        if report.get("action") == "restore" and data.get("ok"):
            what = data.get("restored") or {}
            name = what.get("path") or f"{what.get('engine')}:{what.get('name')}"
            lines.append(f"  {name} restored from snapshot {data.get('snapshot')} "
                         + ("IN PLACE" if data.get("in_place") else f"to {data.get('location')}"))
    return "\n".join(lines) + "\n"


def _retention(policy: dict[str, Any]) -> str:
    """
    >>> _retention({"daily": 7, "weekly": 4, "monthly": 0})
    'daily 7, weekly 4, monthly 0'
    """
    return ", ".join(f"{k} {policy.get(k, 0)}" for k in ("daily", "weekly", "monthly"))


def subject(report: dict[str, Any], dzongkhag: str = "") -> str:
    """
    >>> subject({"action": "backup", "hosts": [{"status": "unreachable"}]}, "Punakha")
    'dzops data-backup backup Punakha: FAILED on 1 of 1 server(s)'
    """
    hosts = report.get("hosts", [])
    bad = sum(1 for h in hosts if h.get("status") not in ("ok", "changed"))
    where = f" {dzongkhag}" if dzongkhag else ""
    head = f"dzops data-backup {report.get('action')}{where}"
    return f"{head}: FAILED on {bad} of {len(hosts)} server(s)" if bad else f"{head}: ok on {len(hosts)} server(s)"


def save(report: dict[str, Any], report_dir: Path) -> tuple[Path, Path]:
    """Write the run's JSON and text under report_dir (owner-only, never overwriting an earlier run)."""
    from dzops.scrub import egress_data
    from dzops.state import PRIVATE_FILE, private_dir, write_private

    report = egress_data(report)
    private_dir(report_dir)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for n in range(1000):
        base = report_dir / f"{PREFIX}-{report.get('action')}-{stamp}{'' if n == 0 else f'-{n}'}"
        try:
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


def latest_summary(report_dir: Path | None) -> str:
    """The newest backup, verify and check reports, a few lines each, for the weekly report mail."""
    if report_dir is None or not Path(report_dir).is_dir():
        return ""
    parts = []
    for action in ("backup", "verify", "check"):
        found = sorted(Path(report_dir).glob(f"{PREFIX}-{action}-*.json"))
        if not found:
            continue
        try:
            report = json.loads(found[-1].read_text())
        except (OSError, ValueError):
            continue
        parts.append(render_text(report).rstrip())
    return ("Data backups (newest runs)\n\n" + "\n\n".join(parts) + "\n") if parts else ""


def with_latest(text: str, html: str, report_dir: Path | None) -> tuple[str, str]:
    """The weekly report mail's text and HTML with the newest data-backup results appended.

    >>> with_latest("drift", "<html><body><p>drift</p></body></html>", None)
    ('drift', '<html><body><p>drift</p></body></html>')
    """
    from html import escape

    summary = latest_summary(report_dir)
    if not summary:
        return text, html
    block = f'<h2>Data backups</h2>\n<pre>{escape(summary)}</pre>\n'
    html = html.replace("</body>", block + "</body>", 1) if "</body>" in html else html + block
    return f"{text.rstrip()}\n\n{summary}", html
