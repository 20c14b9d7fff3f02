"""Which health checks exist for an inventory, and what a down WAN link hides behind it.

Pure: no sockets. `plan_checks` lists every check `dzops health` runs; `behind` reasons over the
WAN graph from HQ: a site whose every path from HQ crosses a down link is "unreachable behind"
the first down link on its shortest path, so the officer reads one line, not a storm.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from dzops.inventory.models import Inventory

Kind = Literal["device", "link", "lan", "service", "resources", "ap"]
Status = Literal["up", "degraded", "down"]
SEVERITY = {"up": 0, "degraded": 1, "down": 2}


@dataclass(frozen=True)
class Check:
    """One thing `dzops health` measures; `key` is stable across runs (the history's subject)."""

    key: str
    kind: Kind
    site: str
    host: str | None = None  # the device the check logs in to (None: measured from this machine)
    label: str = ""


@dataclass(frozen=True)
class Finding:
    """What the officer reads: one subject's state, with what it hides (sites behind a link)."""

    key: str
    status: Status
    message: str
    site: str
    behind: tuple[str, ...] = ()  # sites cut off behind this link
    hidden: tuple[str, ...] = field(default=())  # check keys folded into this finding


def service_key(host: str, kind: str, target: str, query: str | None = None) -> str:
    """The history subject of a server's service check.

    >>> service_key("srv1", "tcp", "10.30.0.21:22")
    'service:srv1:tcp:10.30.0.21:22'
    >>> service_key("ns1", "dns", "10.0.0.53", "www.punakha.gov.bt")
    'service:ns1:dns:10.0.0.53:www.punakha.gov.bt'
    """
    return f"service:{host}:{kind}:{target}" + (f":{query}" if query else "")


def hq_site(inventory: Inventory) -> str | None:
    """The site the WAN is seen from: the first `kind: hq` site."""
    return next((name for name, site in inventory.sites.items() if site.kind == "hq"), None)


def plan_checks(inventory: Inventory, hosts: Iterable[str] | None = None, site: str | None = None) -> list[Check]:
    """Every check for these hosts (default all), or the hosts of one site.

    A link is checked when either end is in scope; a site's LAN when its router is.
    """
    scope = set(inventory.devices if hosts is None else hosts)
    if site is not None:
        scope = {h for h in scope if inventory.devices[h].site == site}
    checks: list[Check] = []
    for name, device in inventory.devices.items():
        if name not in scope:
            continue
        checks.append(Check(f"device:{name}", "device", device.site, name, f"{name} SSH login"))
        if device.function == "servers":
            checks.append(Check(f"resources:{name}", "resources", device.site, name, f"{name} disk, memory, load"))
            for hc in device.health_checks:
                checks.append(Check(service_key(name, hc.kind, hc.target, hc.query), "service", device.site, None,
                                    f"{name} {hc.kind} {hc.target}" + (f" {hc.query}" if hc.query else "")))
        if device.function == "access_points" and device.ssids:
            checks.append(Check(f"ap:{name}", "ap", device.site, name, f"{name} SSIDs enabled"))
    hq = hq_site(inventory)
    for link in inventory.wan_links:
        if link.a.host in scope or link.b.host in scope:
            far_site = inventory.devices[link.b.host].site if link.b.host in inventory.devices else ""
            checks.append(Check(f"link:{link.name}", "link", far_site, link.a.host, f"WAN link {link.name}"))
    for name, site_obj in inventory.sites.items():
        router = inventory.site_router(name)
        if name != hq and router is not None and router.name in scope:
            checks.append(Check(f"lan:{name}", "lan", name, None, f"{site_obj.title} LAN from HQ"))
    return checks


def wan_graph(inventory: Inventory) -> list[tuple[str, str, str]]:
    """(link, site a, site b) for every WAN link between two sites, in inventory order."""
    out = []
    for link in inventory.wan_links:
        a, b = inventory.devices.get(link.a.host), inventory.devices.get(link.b.host)
        if a is not None and b is not None and a.site != b.site:
            out.append((link.name, a.site, b.site))
    return out


def behind(edges: list[tuple[str, str, str]], hq: str, down: Iterable[str]) -> dict[str, str]:
    """Site -> the down link it is unreachable behind (sites still reachable from `hq` are absent).

    The cause named is the first down link on the site's shortest path from HQ in the whole graph
    (ties: inventory order), so every site of a cut-off branch names the same, nearest link.

    >>> star = [("hq-talo", "hq", "talo"), ("hq-guma", "hq", "guma")]
    >>> behind(star, "hq", {"hq-talo"})
    {'talo': 'hq-talo'}
    >>> behind(star + [("talo-guma", "talo", "guma")], "hq", {"hq-talo"})
    {}
    """
    down = set(down)
    adjacency: dict[str, list[tuple[str, str]]] = {}
    for name, a, b in edges:
        adjacency.setdefault(a, []).append((name, b))
        adjacency.setdefault(b, []).append((name, a))

    def bfs(usable: bool) -> dict[str, tuple[str, str] | None]:
        parent: dict[str, tuple[str, str] | None] = {hq: None}
        queue = deque([hq])
        while queue:
            here = queue.popleft()
            for name, there in adjacency.get(here, []):
                if there in parent or (usable and name in down):
                    continue
                parent[there] = (name, here)
                queue.append(there)
        return parent

    reachable = bfs(usable=True)
    tree = bfs(usable=False)
    out: dict[str, str] = {}
    for site in tree:
        if site in reachable:
            continue
        path: list[str] = []
        step = tree[site]
        while step is not None:
            path.append(step[0])
            step = tree[step[1]]
        first_down = next(name for name in reversed(path) if name in down)
        out[site] = first_down
    return out


@dataclass(frozen=True)
class Result:
    """One check's outcome in one run (what execute returns, what the history stores)."""

    key: str
    kind: str
    site: str
    status: Status
    message: str = ""
    rtt_ms: float | None = None  # links: the worse direction's average round trip
    loss: float | None = None  # links: the worse direction's loss, 0..1


def findings(results: list[Result], edges: list[tuple[str, str, str]], hq: str | None) -> list[Finding]:
    """What is not up, with everything at a site behind a down link folded into that link's finding.

    >>> rs = [Result("link:hq-talo", "link", "talo", "down", "no echo reply"),
    ...       Result("lan:talo", "lan", "talo", "down", "no reply"), Result("device:srv", "device", "hq", "up")]
    >>> [(f.key, f.message, f.hidden) for f in findings(rs, [("hq-talo", "hq", "talo")], "hq")]
    [('link:hq-talo', 'WAN link hq-talo down: no echo reply; talo unreachable behind hq-talo', ('lan:talo',))]
    """
    down_links = {r.key.split(":", 1)[1] for r in results if r.kind == "link" and r.status == "down"}
    cut = behind(edges, hq, down_links) if hq else {}
    by_link: dict[str, list[str]] = {}
    for site, link in cut.items():
        by_link.setdefault(link, []).append(site)
    hidden: dict[str, list[str]] = {}
    out: list[Finding] = []
    for r in results:
        if r.status == "up":
            continue
        if r.kind != "link" and r.site in cut:
            hidden.setdefault(cut[r.site], []).append(r.key)
            continue
        if r.kind == "link" and r.key.split(":", 1)[1] not in by_link and r.site in cut:
            hidden.setdefault(cut[r.site], []).append(r.key)  # a link further out on a cut-off branch
            continue
        out.append(Finding(r.key, r.status, r.message, r.site))
    final = []
    for f in out:
        name = f.key.split(":", 1)[1]
        if f.key.startswith("link:") and name in by_link:
            sites = tuple(sorted(by_link[name]))
            message = f"WAN link {name} down: {f.message}; {', '.join(sites)} unreachable behind {name}"
            f = Finding(f.key, f.status, message, f.site, sites, tuple(hidden.get(name, ())))
        final.append(f)
    return final


def overall(results: list[Result]) -> Status:
    """The run's worst status.

    >>> overall([Result("a", "device", "s", "up"), Result("b", "link", "s", "degraded")])
    'degraded'
    """
    worst = max((SEVERITY[r.status] for r in results), default=0)
    return next(s for s, n in SEVERITY.items() if n == worst)  # type: ignore[return-value]
