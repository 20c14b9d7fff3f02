"""Health history read back: uptime, outages, alerts on state change, and the static status page.

Pure over stored rows (dzops.state.db.Row): a status holds from its run until the next run of
the same subject (the last one until `until`), so uptime is time-weighted and an outage runs from
the first run that saw it down to the first run that saw it up again.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dzops.state.db import Row

SEVERITY = {"up": 0, "degraded": 1, "down": 2}
COLOURS = {"up": "#2e7d32", "degraded": "#f9a825", "down": "#c62828", "unknown": "#9e9e9e"}
WINDOWS = (("24 h", 86400), ("7 d", 7 * 86400), ("30 d", 30 * 86400))


def parse_since(text: str) -> int:
    """`7d`, `24h`, `30m`, `2w` as seconds.

    >>> parse_since("7d"), parse_since("24h"), parse_since("90m"), parse_since("2w")
    (604800, 86400, 5400, 1209600)
    >>> parse_since("soon")
    Traceback (most recent call last):
    ...
    ValueError: --since: a number and a unit (m, h, d, w), like 7d
    """
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if not match:
        raise ValueError("--since: a number and a unit (m, h, d, w), like 7d")
    return int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]


@dataclass(frozen=True)
class Outage:
    start: float
    end: float | None  # None: still going on
    status: str  # the worst status seen during it

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


@dataclass
class Summary:
    key: str
    kind: str
    site: str
    uptime_pct: float
    samples: int
    last: str
    worst_rtt_ms: float | None = None
    worst_loss: float | None = None
    outages: list[Outage] = field(default_factory=list)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "site": self.site, "uptime_pct": round(self.uptime_pct, 3),
                "samples": self.samples, "last": self.last, "worst_rtt_ms": self.worst_rtt_ms,
                "worst_loss": self.worst_loss,
                "outages": [{"start": iso(o.start), "end": iso(o.end) if o.end is not None else None,
                             "duration_s": round(o.duration(now)), "status": o.status} for o in self.outages]}


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(seconds: float) -> str:
    """A duration for people.

    >>> duration_text(42), duration_text(600), duration_text(5400), duration_text(90000)
    ('42 s', '10 min', '1 h 30 min', '1 d 1 h')
    """
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h" + (f" {minutes % 60} min" if minutes % 60 else "")
    return f"{days} d" + (f" {hours % 24} h" if hours % 24 else "")


def site_rows(rows: list[Row]) -> list[Row]:
    """One `site:NAME` row per run and site: the worst status of what the site's checks saw."""
    worst: dict[tuple[float, str], str] = {}
    for r in rows:
        here = worst.get((r.at, r.site), "up")
        worst[(r.at, r.site)] = r.status if SEVERITY[r.status] > SEVERITY[here] else here
    return [Row(at, f"site:{site}", "site", site, status) for (at, site), status in sorted(worst.items())]


def summarize(rows: list[Row], since: float, until: float) -> list[Summary]:
    """Per subject (and per site): time-weighted uptime within [since, until], worst RTT and loss, outages."""
    by_key: dict[str, list[Row]] = {}
    for r in sorted(rows + site_rows(rows), key=lambda r: r.at):
        if since <= r.at <= until:
            by_key.setdefault(r.key, []).append(r)
    out = []
    for key, samples in by_key.items():
        up_time = total = 0.0
        outages: list[Outage] = []
        current: Outage | None = None
        for index, r in enumerate(samples):
            nxt = samples[index + 1].at if index + 1 < len(samples) else until
            span = max(0.0, nxt - r.at)
            total += span
            if r.status == "up":
                up_time += span
                if current is not None:
                    outages.append(Outage(current.start, r.at, current.status))
                    current = None
            elif current is None:
                current = Outage(r.at, None, r.status)
            elif SEVERITY[r.status] > SEVERITY[current.status]:
                current = Outage(current.start, None, r.status)
        if current is not None:
            outages.append(current)
        rtts = [r.rtt_ms for r in samples if r.rtt_ms is not None]
        losses = [r.loss for r in samples if r.loss is not None]
        out.append(Summary(key, samples[0].kind, samples[0].site,
                           100.0 * up_time / total if total else (100.0 if samples[-1].status == "up" else 0.0),
                           len(samples), samples[-1].status, max(rtts) if rtts else None,
                           max(losses) if losses else None, outages))
    order = {"site": 0, "link": 1, "lan": 2, "device": 3, "service": 4, "resources": 5, "ap": 6}
    return sorted(out, key=lambda s: (order.get(s.kind, 9), s.key))


def history_text(summaries: list[Summary], now: float) -> str:
    lines = [f"{'subject':<44} {'uptime':>8} {'worst rtt':>10} {'worst loss':>10}  outages"]
    for s in summaries:
        rtt = f"{s.worst_rtt_ms:.1f} ms" if s.worst_rtt_ms is not None else "-"
        loss = f"{s.worst_loss:.0%}" if s.worst_loss is not None else "-"
        lines.append(f"{s.key:<44} {s.uptime_pct:>7.2f}% {rtt:>10} {loss:>10}  {len(s.outages)}")
        for o in s.outages:
            end = iso(o.end) if o.end is not None else "ongoing"
            lines.append(f"    {o.status} from {iso(o.start)} to {end} ({duration_text(o.duration(now))})")
    return "\n".join(lines)


# --- alerts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    key: str
    old: str
    new: str
    since: float  # when the new state began (the first of the N results that confirm it)
    message: str
    behind: tuple[str, ...] = ()
    outage_s: float | None = None  # a recovery: how long the subject was not up
    # What the alert state keeps as `since`: for a subject not up, when it stopped being up (a link
    # that comes back lossy, down -> degraded, is still in the same outage), else `since`.
    kept_since: float = 0.0


def confirmed(recent: list[tuple[float, str]], n: int) -> tuple[str, float] | None:
    """The state the last `n` results agree on (newest first in `recent`) and when it began, or None.

    >>> confirmed([(30.0, "down"), (20.0, "down"), (10.0, "up")], 2)
    ('down', 20.0)
    >>> confirmed([(30.0, "down"), (20.0, "up")], 2) is None
    True
    """
    if len(recent) < n or len({status for _, status in recent[:n]}) != 1:
        return None
    return recent[0][1], recent[n - 1][0]


def changes(states: dict[str, tuple[str, float]], streaks: dict[str, tuple[str, float] | None],
            messages: dict[str, str], behind: dict[str, tuple[str, ...]]) -> list[Change]:
    """State changes to alert: a confirmed state that differs from the last alerted one (unknown: up).

    `states` holds each subject's last alerted state and, for one not up, when it stopped being up
    (`Change.kept_since`): a recovery after down -> degraded reports the whole outage.

    >>> changes({}, {"link:a": ("down", 100.0)}, {"link:a": "no reply"}, {"link:a": ("talo",)})[0].behind
    ('talo',)
    >>> c = changes({"link:a": ("down", 100.0)}, {"link:a": ("up", 700.0)}, {}, {})[0]
    >>> (c.old, c.new, c.outage_s)
    ('down', 'up', 600.0)
    >>> lossy = changes({"link:a": ("down", 100.0)}, {"link:a": ("degraded", 400.0)}, {}, {})[0]
    >>> (lossy.since, lossy.kept_since, lossy.outage_s)
    (400.0, 100.0, None)
    >>> changes({"link:a": ("degraded", lossy.kept_since)}, {"link:a": ("up", 700.0)}, {}, {})[0].outage_s
    600.0
    """
    out = []
    for key, streak in streaks.items():
        if streak is None:
            continue
        new, since = streak
        old, old_since = states.get(key, ("up", since))
        if new == old:
            continue
        not_up_since = old_since if old != "up" else since
        out.append(Change(key, old, new, since, messages.get(key, ""), behind.get(key, ()),
                          since - not_up_since if new == "up" else None,
                          kept_since=since if new == "up" else not_up_since))
    return out


def alert_mail(change: Change, dzongkhag: str) -> tuple[str, str]:
    """(subject, text) of one state change."""
    what = change.key.split(":", 1)[1]
    kind = change.key.split(":", 1)[0]
    noun = {"link": "WAN link", "lan": "LAN of", "device": "device", "service": "service", "resources": "server",
            "ap": "access point"}.get(kind, kind)
    if change.new == "up":
        subject = f"[dzops {dzongkhag}] RECOVERED: {noun} {what} (down {duration_text(change.outage_s or 0)})"
        body = [f"{noun} {what} is up again since {iso(change.since)}.",
                f"The outage lasted {duration_text(change.outage_s or 0)} ({change.old} before)."]
    else:
        subject = f"[dzops {dzongkhag}] {change.new.upper()}: {noun} {what}"
        if change.behind:
            subject += f"; unreachable behind it: {', '.join(change.behind)}"
        body = [f"{noun} {what} is {change.new} since {iso(change.since)} (was {change.old}).", "",
                f"What was seen: {change.message}"]
        if change.behind:
            body += ["", f"Unreachable behind {what}: {', '.join(change.behind)}",
                     "(their own checks are folded into this alert)"]
    return subject, "\n".join(body) + "\n"


# --- the status page --------------------------------------------------------------------------

def page_context(topology: Any, positions: dict[str, tuple[float, float]],
                 summaries_by_window: dict[str, list[Summary]], last_status: dict[str, str], dzongkhag: str,
                 generated: float) -> dict[str, Any]:
    """What templates/report/health/page.html.j2 shows: the diagram's site boxes coloured by state."""
    from dzops.report.diagram import site_boxes

    boxes = site_boxes(topology, positions)
    min_x = min((b.x0 for b in boxes.values()), default=0.0) - 20
    min_y = min((b.y0 for b in boxes.values()), default=0.0) - 20
    sites = []
    for name, box in boxes.items():
        status = last_status.get(f"site:{name}", "unknown")
        sites.append({"name": name, "title": topology.sites.get(name, name), "x": box.x0 - min_x,
                      "y": box.y0 - min_y, "w": box.x1 - box.x0, "h": box.y1 - box.y0,
                      "status": status, "colour": COLOURS[status]})
    width = max((s["x"] + s["w"] for s in sites), default=200) + 20
    height = max((s["y"] + s["h"] for s in sites), default=100) + 20
    box = {s["name"]: s for s in sites}
    links = []
    for link in topology.links:
        sa, sb = _site_of(topology, link.a[0]), _site_of(topology, link.b[0])
        if link.kind != "wan" or sa == sb or sa not in box or sb not in box:
            continue
        upper, lower = sorted((box[sa], box[sb]), key=lambda s: s["y"])  # layered: HQ's row above the gewogs'
        status = last_status.get(f"link:{link.name}", "unknown")
        links.append({"name": link.name, "x1": upper["x"] + upper["w"] / 2, "y1": upper["y"] + upper["h"],
                      "x2": lower["x"] + lower["w"] / 2, "y2": lower["y"], "colour": COLOURS[status],
                      "status": status})
    bars: dict[str, dict[str, float | None]] = {s["name"]: {w: None for w, _ in WINDOWS} for s in sites}
    link_rows: dict[str, dict[str, Any]] = {}
    for window, summaries in summaries_by_window.items():
        for s in summaries:
            if s.kind == "site" and s.site in bars:
                bars[s.site][window] = round(s.uptime_pct, 2)
            if s.kind == "link" and window == WINDOWS[0][0]:
                link_rows[s.key.split(":", 1)[1]] = {
                    "rtt": s.worst_rtt_ms, "loss": s.worst_loss, "uptime": round(s.uptime_pct, 2),
                    "status": last_status.get(s.key, "unknown")}
    return {"dzongkhag": dzongkhag, "generated": iso(generated), "width": width, "height": height,
            "sites": sites, "links": links, "windows": [w for w, _ in WINDOWS], "bars": bars,
            "link_rows": link_rows, "colours": COLOURS, "notice": None}


def status_summary(context: dict[str, Any]) -> str:
    """The status page as text for a mail: each site's state and uptime per window, then links not up.

    >>> ctx = {"dzongkhag": "Punakha", "generated": "2026-12-01T10:00:00Z", "windows": ["24 h", "7 d"],
    ...        "sites": [{"name": "hq", "status": "up"}, {"name": "talo", "status": "down"}],
    ...        "bars": {"hq": {"24 h": 100.0, "7 d": 100.0}, "talo": {"24 h": 87.5, "7 d": None}},
    ...        "link_rows": {"hq-talo": {"status": "down", "rtt": None, "loss": 1.0, "uptime": 87.5}}}
    >>> print(status_summary(ctx))
    Punakha network status at 2026-12-01T10:00:00Z
    site   now       uptime 24 h  uptime 7 d
    hq     up            100.00%     100.00%
    talo   down           87.50%     no data
    WAN links not up:
      hq-talo down: uptime 24 h 87.50%, worst loss 100%
    """
    windows = list(context["windows"])
    width = max([len(s["name"]) for s in context["sites"]] + [4]) + 2
    lines = [f"{context['dzongkhag']} network status at {context['generated']}",
             f"{'site':<{width}} {'now':<9}" + "".join(f"{'uptime ' + w:>12}" for w in windows)]
    for site in context["sites"]:
        bars = context["bars"].get(site["name"], {})
        cells = "".join(f"{'no data' if bars.get(w) is None else f'{bars[w]:.2f}%':>12}" for w in windows)
        lines.append(f"{site['name']:<{width}} {site['status']:<9}{cells}".rstrip())
    bad = {name: row for name, row in sorted(context["link_rows"].items()) if row["status"] != "up"}
    if bad:
        lines.append("WAN links not up:")
        for name, row in bad.items():
            seen = [f"uptime {windows[0]} {row['uptime']:.2f}%"]
            if row["rtt"] is not None:
                seen.append(f"worst RTT {row['rtt']:.1f} ms")
            if row["loss"] is not None:
                seen.append(f"worst loss {row['loss']:.0%}")
            lines.append(f"  {name} {row['status']}: {', '.join(seen)}")
    return "\n".join(lines)


def _site_of(topology: Any, host: str) -> str:
    node = topology.nodes.get(host)
    return str(node.site) if node is not None else ""


def render_page(context: dict[str, Any]) -> str:
    import jinja2

    from dzops.plan.render import TEMPLATES_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, autoescape=True)
    return env.get_template("report/health/page.html.j2").render(**context)


def write_page(output: Path, text: str) -> Path:
    """index.html into `output` (made if missing), atomically: a browser never reads half a page."""
    from dzops.scrub import egress_html
    from dzops.state import atomic_write

    output.mkdir(parents=True, exist_ok=True)
    return atomic_write(output / "index.html", egress_html(text), mode=0o644)

