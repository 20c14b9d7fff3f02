"""Network diagrams of a `Topology`: Graphviz (SVG, PNG), draw.io XML and Mermaid.

The picture reads as a tree, whatever the WAN's shape: sites are boxes laid out in levels by their
hop distance from HQ along each site's primary path (the least-cost path, OSPF cost from
bandwidth), HQ at the top, aggregation sites below it, their gewogs below them. A WAN link that is
on no site's primary path is a backup and is drawn as a double line. Lines between sites run only
in the free bands between levels and the free gaps between boxes, entering a site box from above
and leaving it from below (as Graphviz's compound edges do), so no line crosses a box it does not
belong to; each WAN label sits just above the box the link enters, side by side with that box's
other labels. Line width grows with the logarithm of the bandwidth.

Layout is stable: every device's position is kept in a JSON file next to the inventory
(`diagram-layout.json`), created on the first run and only ever extended with new devices (which
get their place in the levels). Graphviz draws with `neato -n2` (positions and lines given, nothing
re-laid out), draw.io gets the same coordinates and the same line routes, Mermaid (laid out by the
viewer) gets the same levels: a subgraph per site, every link written from its upper end.
"""

from __future__ import annotations

import heapq
import json
import math
import re
import subprocess
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from dzops.bandwidth import format_bandwidth, ospf_cost
from dzops.exceptions import DzopsError
from dzops.report.topology import Link, Node, Topology

FORMATS = ("svg", "png", "drawio", "mermaid")
LAYOUT_FILE = "diagram-layout.json"
CELL_W, CELL_H = 230, 110  # points; one device per cell
SITE_COLS = 3  # devices per row inside a site
NODE_W, NODE_H = 190, 62
BOX_PAD, BOX_TITLE = 12, 30  # a site box around its devices: sides and bottom, top (its title)
SITE_GAP = 60  # between neighbouring site boxes (and their labels) of one level
FAN = 70  # height of the band where lines between two levels fan out
WRAP_MIN = 12  # a site's leaf children per row, at least; more wrap onto further rows
EDGE_FONT, LINE_H, CHAR_W = 8, 10.0, 5.0  # edge labels: points; CHAR_W over-estimates Helvetica 8
SIZE_CAP = ', size="100,100"'  # inches: a 1,000-device PNG stays under 10,000 pixels a side
TIERS = {"routers": 0, "switches": 1, "servers": 2, "access_points": 2}
UNKNOWN_SITE = "Not in the inventory"


@dataclass(frozen=True)
class LinkStyle:
    color: str
    dot_style: str
    width: float
    label: str
    sample: str  # the line drawn in text legends
    mermaid_arrow: str
    drawio: str


STYLES: dict[str, LinkStyle] = {
    "confirmed": LinkStyle("#2e7d32", "solid", 2.0, "confirmed (declared and seen)", "━━━━", "---",
                           "strokeColor=#2e7d32;"),
    "declared-not-seen": LinkStyle("#c62828", "dashed", 2.0, "declared, not seen", "─ ─ ─", "-.-",
                                   "strokeColor=#c62828;dashed=1;dashPattern=8 4;"),
    "seen-not-declared": LinkStyle("#ef6c00", "dotted", 3.0, "seen, not declared", "• • • •", "===",
                                   "strokeColor=#ef6c00;dashed=1;dashPattern=1 4;"),
    "unverified": LinkStyle("#9e9e9e", "dashed", 1.0, "declared, ends not discovered", "- - - -", "-.-",
                            "strokeColor=#9e9e9e;dashed=1;dashPattern=3 3;"),
}
SHAPES = {"routers": ("ellipse", "#e3f2fd"), "switches": ("box", "#e8f5e9"), "servers": ("box3d", "#fff8e1"),
          "access_points": ("house", "#f3e5f5"), "unknown": ("octagon", "#ffebee")}
BACKUP_TEXT = "backup"
LEGEND_EXTRA = [("═════", "backup: a WAN link on no site's least-cost path to HQ"),
                ("─  ━  ▬", "line width: bandwidth (512 kbit/s, 10 Mbit/s, 1 Gbit/s)")]
MERMAID_BACKUP = "stroke-dasharray:12 4 2 4"  # dash-dot: no link status uses it


class DiagramError(DzopsError):
    """A diagram could not be rendered (Graphviz missing or refusing the input)."""


Point = tuple[float, float]


# --- sites, levels ---------------------------------------------------------------------------------

def _site_order(topology: Topology) -> list[str]:
    order = list(topology.sites)
    order += sorted({n.site for n in topology.nodes.values()} - set(order))
    return order


def _members_by_site(topology: Topology) -> dict[str, list[Node]]:
    by_site: dict[str, list[Node]] = defaultdict(list)
    for node in topology.nodes.values():
        by_site[node.site].append(node)
    return by_site


def _site_groups(topology: Topology) -> list[tuple[int, str, list[Node]]]:
    """(position in the site order, site, its devices) for every site that has devices."""
    by_site = _members_by_site(topology)
    return [(index, site, by_site[site]) for index, site in enumerate(_site_order(topology)) if by_site.get(site)]


def _site_title(topology: Topology, site: str) -> str:
    return topology.sites.get(site) or (UNKNOWN_SITE if not site else site)


def _title_width(title: str) -> float:
    """Points a site box needs for its title (Helvetica 12, over-estimated), margins included."""
    return len(title) * 7.0 + 2 * BOX_PAD


def _kbps(link: Link) -> int | None:
    """The link's bandwidth in kbit/s (topologies carry Mbit/s, fractional below 1 Mbit/s).

    >>> _kbps(Link(("a", "e0"), ("b", "e0"), "wan", bandwidth_mbps=0.512)), _kbps(Link(("a", "e0"), ("b", "e0"), "lan"))
    (512, None)
    """
    return round(link.bandwidth_mbps * 1000) if link.bandwidth_mbps else None


def _cost(link: Link, out_of: str) -> int:
    """The OSPF cost of sending over the link out of host `out_of`: routing's choice is the primary path.

    The end's explicit cost, else the routers' auto-cost from bandwidth (dzops.bandwidth).

    >>> [_cost(Link(("a", "e0"), ("b", "e0"), "wan", bandwidth_mbps=m), "b") for m in (1000, 100, 2, 0.512)]
    [10, 100, 5000, 19531]
    >>> _cost(Link(("a", "e0"), ("b", "e0"), "wan", bandwidth_mbps=2, b_ospf_cost=7), "b")
    7
    """
    explicit = link.a_ospf_cost if out_of == link.a[0] else link.b_ospf_cost
    kbps = _kbps(link)
    return explicit or (ospf_cost(kbps) if kbps else ospf_cost(10_000))


@dataclass
class SiteTree:
    """Each site's parent on its primary path from HQ, its level (hops along it), its children."""

    roots: list[str]
    parent: dict[str, str | None]
    level: dict[str, int]
    children: dict[str, list[str]]
    backups: set[str] = field(default_factory=set)  # ids of WAN links on no site's primary path


def site_tree(topology: Topology) -> SiteTree:
    """Least-cost paths from the hub over WAN links; sites reached only otherwise hang off a neighbour.

    >>> n = {f"{s}-r": Node(f"{s}-r", s, "routers") for s in ("hq", "agg", "g1", "g2")}
    >>> w = [Link(("hq-r", "e1"), ("agg-r", "e0"), "wan", bandwidth_mbps=100),
    ...      Link(("agg-r", "e1"), ("g1-r", "e0"), "wan", bandwidth_mbps=10),
    ...      Link(("agg-r", "e2"), ("g2-r", "e0"), "wan", bandwidth_mbps=8),
    ...      Link(("hq-r", "e2"), ("g2-r", "e1"), "wan", bandwidth_mbps=2)]
    >>> t = site_tree(Topology("T", {"hq": "HQ", "agg": "A", "g1": "1", "g2": "2"}, n, w, "hq"))
    >>> t.level, t.backups
    ({'hq': 0, 'agg': 1, 'g1': 2, 'g2': 2}, {'g2-r:e1--hq-r:e2'})
    """
    network = topology.network or topology
    order = [site for _, site, _ in _site_groups(topology)]
    rank = {site: i for i, site in enumerate(order)}
    site_of = {name: node.site for name, node in network.nodes.items()}
    wan_adj: dict[str, list[tuple[str, Link, str]]] = defaultdict(list)  # site -> (far site, link, far host)
    any_adj: dict[str, list[str]] = defaultdict(list)
    for link in network.links:
        sa, sb = site_of.get(link.a[0]), site_of.get(link.b[0])
        if sa is None or sb is None or sa == sb:
            continue
        any_adj[sa].append(sb)
        any_adj[sb].append(sa)
        if link.kind == "wan":
            wan_adj[sa].append((sb, link, link.b[0]))
            wan_adj[sb].append((sa, link, link.a[0]))
    parent: dict[str, str | None] = {}
    backups: set[str] = set()
    if order:
        hub = network.hub if network.hub and network.hub in rank else order[0]
        # Dijkstra over the whole network (a site view's primary paths run through sites it omits).
        best: dict[str, tuple[int, int]] = {hub: (0, 0)}
        via: dict[str, tuple[str | None, str]] = {hub: (None, "")}
        heap = [(0, 0, hub)]
        done: set[str] = set()
        while heap:
            cost, hops, site = heapq.heappop(heap)
            if site in done:
                continue
            done.add(site)
            for other, link, far in wan_adj[site]:
                # A site's primary path is the one its traffic to HQ takes: costs out of the far end.
                candidate = (cost + _cost(link, far), hops + 1)
                if other not in best or candidate < best[other]:
                    best[other] = candidate
                    via[other] = (site, link.id)
                    heapq.heappush(heap, (*candidate, other))
        primary = {link_id for _, link_id in via.values()}
        backups = {link.id for link in network.links if link.kind == "wan" and link.id not in primary
                   and site_of.get(link.a[0]) != site_of.get(link.b[0])}
        # The view's tree: a site's parent is the nearest site of the view on its primary path.
        for site in order:
            up = via.get(site, (None, ""))[0]
            while up is not None and up not in rank:
                up = via[up][0]
            if site in via:
                parent[site] = up
    changed = True
    while changed:  # sites without a WAN path hang off any neighbour already placed
        changed = False
        for site in order:
            if site not in parent:
                placed = sorted((s for s in any_adj[site] if s in parent and s in rank), key=rank.__getitem__)
                if placed:
                    parent[site] = placed[0]
                    changed = True
    roots = [site for site in order if parent.get(site) is None]
    for site in roots:
        parent[site] = None
    children: dict[str, list[str]] = {site: [] for site in order}
    for site in order:
        if parent[site] is not None:
            children[parent[site]].append(site)
    level: dict[str, int] = {}
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        site, depth = stack.pop()
        level[site] = depth
        stack += [(child, depth + 1) for child in reversed(children[site])]
    return SiteTree(roots, parent, {s: level[s] for s in order}, children, backups)


# --- labels ----------------------------------------------------------------------------------------

def _bandwidth(mbps: float | None) -> str:
    """
    >>> _bandwidth(20), _bandwidth(1000), _bandwidth(0.512), _bandwidth(2.5), _bandwidth(None)
    ('20 Mbit/s', '1 Gbit/s', '512 kbit/s', '2500 kbit/s', '')
    """
    if not mbps:
        return ""
    text = format_bandwidth(round(mbps * 1000))  # the inventory's notation (512kbit), spelled out for people
    match = re.fullmatch(r"(\d+)(\D+)", text)
    return f"{match[1]} {match[2]}/s" if match else text


def link_width(link: Link) -> float:
    """Line width: a WAN link's grows with log(bandwidth) (512 kbit/s 1, 10 Mbit/s 2.5, 1 Gbit/s 5).

    >>> [link_width(Link(("a", "e0"), ("b", "e0"), "wan", bandwidth_mbps=m)) for m in (0.512, 10, 1000)]
    [1.0, 2.55, 4.95]
    """
    kbps = _kbps(link)
    if not kbps:
        return STYLES[link.status].width
    return round(min(6.0, max(1.0, 1 + 1.2 * math.log10(kbps / 512))), 2)


def link_label_lines(link: Link, backup: bool = False) -> list[str]:
    """What a link between two sites says: circuit id, bandwidth, and each end's interface and addresses.

    >>> from dzops.report.topology import Link
    >>> link_label_lines(Link(("a", "e1"), ("b", "e0"), "wan", circuit_id="BT-1", bandwidth_mbps=20,
    ...                       a_addresses=["10.0.0.1/30"], subnet="10.0.0.0/30"), backup=True)
    ['BT-1 · 20 Mbit/s · backup', 'a e1 10.0.0.1/30', 'b e0 (10.0.0.0/30)']
    >>> link_label_lines(Link(("a", "e1"), ("b", "e0"), "undeclared"))
    ['a e1 – b e0']
    """
    if link.kind != "wan":
        return [f"{link.a[0]} {link.a[1]} – {link.b[0]} {link.b[1]}"]
    subnet = f"({link.subnet})" if link.subnet else ""
    first = " · ".join(x for x in (link.circuit_id, _bandwidth(link.bandwidth_mbps), BACKUP_TEXT if backup else "") if x)
    ends = [" ".join(x for x in (host, ifname, ", ".join(addresses) or subnet) if x)
            for (host, ifname), addresses in ((link.a, link.a_addresses), (link.b, link.b_addresses))]
    return [x for x in (first, *ends) if x]


def label_size(lines: list[str]) -> tuple[float, float]:
    """(width, height) in points that an edge label of these lines is sure to fit in."""
    return max((len(line) for line in lines), default=0) * CHAR_W + 6, len(lines) * LINE_H + 4


def node_label_lines(node: Node) -> list[str]:
    lines = [node.name]
    if node.mgmt_address:
        lines.append(node.mgmt_address)
    model = node.facts.get("model") or node.role
    if model:
        lines.append(str(model))
    if not node.declared:
        lines.append("(not in inventory)")
    return lines


# --- fresh, layered layout -------------------------------------------------------------------------

def _slots(members: list[Node]) -> dict[str, tuple[int, int]]:
    """(column, row) of each device in its site box: routers first, then switches, then the rest."""
    tiers: dict[int, list[Node]] = defaultdict(list)
    for node in members:
        tiers[TIERS.get(node.function, 3)].append(node)
    slots: dict[str, tuple[int, int]] = {}
    row = 0
    for tier in sorted(tiers):
        names = sorted(n.name for n in tiers[tier])
        for i, name in enumerate(names):
            slots[name] = (i % SITE_COLS, row + i // SITE_COLS)
        row += math.ceil(len(names) / SITE_COLS)
    return slots


def _lower_end(sa: str, sb: str, row: dict[str, int], rank: dict[str, int]) -> str:
    """The site a line between two sites enters from above (and whose box carries its label)."""
    return sb if (row[sb], rank[sb]) > (row[sa], rank[sa]) else sa


def _inter_site(topology: Topology) -> list[tuple[Link, str, str]]:
    site_of = {name: node.site for name, node in topology.nodes.items()}
    return [(link, site_of[link.a[0]], site_of[link.b[0]]) for link in topology.links
            if link.a[0] in site_of and link.b[0] in site_of and site_of[link.a[0]] != site_of[link.b[0]]]


def fresh_layout(topology: Topology) -> dict[str, tuple[float, float]]:
    """Deterministic positions (points, y growing downwards): sites in levels, devices by tier.

    >>> n = {"r1": Node("r1", "hq", "routers"), "s1": Node("s1", "hq", "switches"), "g": Node("g", "g1", "routers")}
    >>> fresh_layout(Topology("T", {"hq": "HQ", "g1": "G"}, n, [Link(("r1", "e1"), ("g", "e0"), "wan")], "hq"))
    {'r1': (107.0, 131.0), 's1': (107.0, 241.0), 'g': (107.0, 447.0)}
    """
    groups = _site_groups(topology)
    if not groups:
        return {}
    tree = site_tree(topology)
    rank = {site: index for index, site, _ in groups}
    slots = {site: _slots(members) for _, site, members in groups}
    members_of = {site: members for _, site, members in groups}
    size = {}
    for site, s in slots.items():
        cols, rows = max(c for c, _ in s.values()) + 1, max(r for _, r in s.values()) + 1
        size[site] = ((cols - 1) * CELL_W + NODE_W + 2 * BOX_PAD, (rows - 1) * CELL_H + NODE_H + BOX_PAD + BOX_TITLE)
    # Children's rows: sites with children of their own first (their subtrees hang below), leaves wrap.
    arrangement: dict[str, list[list[str]]] = {}
    for site, kids in tree.children.items():
        inner = [k for k in kids if tree.children[k]]
        leaves = [k for k in kids if not tree.children[k]]
        wrap = max(WRAP_MIN, math.ceil(1.3 * math.sqrt(len(kids))))
        if len(kids) <= wrap:  # one row: the inventory's order
            inner, leaves = kids, []
        first = max(0, wrap - len(inner))
        rows_ = [inner + leaves[:first]] if kids else []
        rows_ += [leaves[i:i + wrap] for i in range(first, len(leaves), wrap)]
        arrangement[site] = rows_
    subrow = dict.fromkeys(tree.roots, 0)
    depth_rows: dict[int, int] = {0: 1}
    for site in sorted(tree.level, key=lambda s: tree.level[s]):
        for i, kids in enumerate(arrangement[site]):
            for kid in kids:
                subrow[kid] = i
        if arrangement[site]:
            depth = tree.level[site] + 1
            depth_rows[depth] = max(depth_rows.get(depth, 1), len(arrangement[site]))
    base, total = {}, 0
    for depth in sorted(depth_rows):
        base[depth], total = total, total + depth_rows[depth]
    row = {site: base[tree.level[site]] + subrow[site] for site in tree.level}
    # Room for the labels of the lines that enter each box from above.
    labels: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for link, sa, sb in _inter_site(topology):
        labels[_lower_end(sa, sb, row, rank)].append(label_size(link_label_lines(link, link.id in tree.backups)))
    slot_w = {site: max(size[site][0], _title_width(_site_title(topology, site)), sum(w + 10 for w, _ in labels[site]))
              for site in size}
    width: dict[str, float] = {}
    for site in sorted(tree.level, key=lambda s: -tree.level[s]):
        spans = [sum(width[k] for k in kids) + SITE_GAP * (len(kids) - 1) for kids in arrangement[site]]
        width[site] = max([slot_w[site], *spans])
    centre: dict[str, float] = {}
    stack = []
    left = 0.0
    for root in tree.roots:
        stack.append((root, left))
        left += width[root] + 2 * SITE_GAP
    while stack:
        site, x = stack.pop()
        centre[site] = x + width[site] / 2
        for kids in arrangement[site]:
            span = sum(width[k] for k in kids) + SITE_GAP * (len(kids) - 1)
            kx = x + (width[site] - span) / 2
            for kid in kids:
                stack.append((kid, kx))
                kx += width[kid] + SITE_GAP
    row_h: dict[int, float] = defaultdict(float)
    label_h: dict[int, float] = defaultdict(float)
    for site, r in row.items():
        row_h[r] = max(row_h[r], size[site][1])
        label_h[r] = max([label_h[r], *(h + 8 for _, h in labels[site])])
    top: dict[int, float] = {}
    y = 0.0
    for r in range(total):
        y += FAN + label_h[r]
        top[r] = y
        y += row_h[r]
    positions: dict[str, tuple[float, float]] = {}
    for site, s in slots.items():
        x0 = centre[site] - size[site][0] / 2 + BOX_PAD + NODE_W / 2
        y0 = top[row[site]] + BOX_TITLE + NODE_H / 2
        for name in (n.name for n in members_of[site]):
            col, r = s[name]
            positions[name] = (float(x0 + col * CELL_W), float(y0 + r * CELL_H))
    return positions


def place(topology: Topology, kept: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Kept positions stay; a new device gets its fresh place, moved down while that is taken.

    >>> t = Topology("T", {"hq": "HQ"}, {"r1": Node("r1", "hq", "routers"), "r2": Node("r2", "hq", "routers")}, [])
    >>> place(t, {"r1": (337.0, 131.0), "old": (107.0, 131.0)})
    {'r1': (337.0, 131.0), 'old': (107.0, 131.0), 'r2': (337.0, 241.0)}
    """
    result = dict(kept)

    def cell(x: float, y: float) -> tuple[int, int]:
        return math.floor(x / CELL_W), math.floor(y / CELL_H)

    new = [name for name in topology.nodes if name not in result]
    if not new:
        return result
    taken = {cell(x, y) for x, y in result.values()}
    fresh = fresh_layout(topology)
    for name in new:
        x, y = fresh[name]
        while cell(x, y) in taken:
            y += CELL_H
        result[name] = (x, y)
        taken.add(cell(x, y))
    return result


def load_layout(path: Path) -> dict[str, tuple[float, float]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {name: (float(xy[0]), float(xy[1])) for name, xy in data.get("positions", {}).items()}
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise DiagramError(f"{path}: not a diagram layout file ({exc}); fix or delete it") from None


def ensure_layout(topology: Topology, path: Path) -> dict[str, tuple[float, float]]:
    """Positions for every device of the topology, writing the file only when a device is new."""
    kept = load_layout(path)
    positions = place(topology, kept)
    if positions != kept:
        data = {"comment": "Device positions of `dzops diagram`, in points, y downwards. Edit to move a box; "
                           "delete the file for a fresh layout by levels from HQ.",
                "positions": {name: [round(x, 1), round(y, 1)] for name, (x, y) in sorted(positions.items())}}
        path.write_text(json.dumps(data, indent=1) + "\n")
    return positions


# --- lines between the boxes -----------------------------------------------------------------------

@dataclass
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass
class Route:
    points: list[Point]  # y downwards; straight segments
    lines: list[str]  # the label's text
    label: Point | None  # the label's centre
    backup: bool = False


@dataclass
class Drawing:
    """Everything every format draws: site boxes, and each link's line and label."""

    boxes: dict[str, Box]
    routes: dict[str, Route]


def site_boxes(topology: Topology, positions: dict[str, tuple[float, float]]) -> dict[str, Box]:
    boxes: dict[str, Box] = {}
    for _, site, members in _site_groups(topology):
        xs = [positions[n.name][0] for n in members]
        ys = [positions[n.name][1] for n in members]
        # Wide enough for its title, around its devices.
        spare = max(0.0, _title_width(_site_title(topology, site)) - (max(xs) - min(xs) + NODE_W + 2 * BOX_PAD)) / 2
        boxes[site] = Box(min(xs) - NODE_W / 2 - BOX_PAD - spare, min(ys) - NODE_H / 2 - BOX_TITLE,
                          max(xs) + NODE_W / 2 + BOX_PAD + spare, max(ys) + NODE_H / 2 + BOX_PAD)
    return boxes


def _crosses(a: Point, b: Point, box: Box) -> bool:
    """Whether the segment a-b passes through the box's inside (Liang-Barsky clipping).

    >>> _crosses((0, 5), (20, 5), Box(5, 0, 10, 10)), _crosses((0, 20), (20, 20), Box(5, 0, 10, 10))
    (True, False)
    """
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - box.x0), (dx, box.x1 - a[0]), (-dy, a[1] - box.y0), (dy, box.y1 - a[1])):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
    return t0 < t1


class _Corridors:
    """Free x-ranges of one band of boxes, for lines crossing it vertically."""

    MARGIN, STEP = 14.0, 7.0

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        merged: list[list[float]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1] + 2 * self.MARGIN:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        edges = [-math.inf] + [v for lo, hi in merged for v in (lo - self.MARGIN, hi + self.MARGIN)] + [math.inf]
        self.gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
        self.starts = [lo for lo, _ in self.gaps]
        self.used: dict[int, int] = defaultdict(int)

    def x(self, ideal: float) -> float:
        i = max(0, bisect_left(self.starts, ideal) - 1)
        best = min((j for j in (i - 1, i, i + 1) if 0 <= j < len(self.gaps)),
                   key=lambda j: abs(min(max(ideal, self.gaps[j][0]), self.gaps[j][1]) - ideal))
        lo, hi = self.gaps[best]
        n = self.used[best]
        self.used[best] += 1
        x = min(max(ideal, lo), hi) + (1 if n % 2 else -1) * math.ceil(n / 2) * self.STEP
        return min(max(x, lo), hi)


def plan_drawing(topology: Topology, positions: dict[str, tuple[float, float]]) -> Drawing:
    """Site boxes and every line's route and label position: computed once, drawn by every format."""
    boxes = site_boxes(topology, positions)
    tree = site_tree(topology)
    rank = {site: index for index, site, _ in _site_groups(topology)}
    # Bands: boxes whose vertical extents overlap form one band (a level, in a fresh layout).
    band_of: dict[str, int] = {}
    bands: list[list[float]] = []
    for site in sorted(boxes, key=lambda s: (boxes[s].y0, rank[s])):
        b = boxes[site]
        if bands and b.y0 <= bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], b.y1)
        else:
            bands.append([b.y0, b.y1])
        band_of[site] = len(bands) - 1
    inter = _inter_site(topology)
    entering: dict[str, list[tuple[Link, str]]] = defaultdict(list)  # lower site -> (link, upper site)
    for link, sa, sb in inter:
        lower = _lower_end(sa, sb, band_of, rank)
        entering[lower].append((link, sa if lower == sb else sb))
    routes: dict[str, Route] = {}
    label_spans: dict[str, tuple[float, float, float]] = {}  # site -> (left, right, top) of its labels
    stub: dict[str, float] = {}  # link id -> x where it enters the lower box
    for site, items in entering.items():
        box = boxes[site]
        items.sort(key=lambda item: (boxes[item[1]].cx, item[0].id))
        texts = [link_label_lines(link, link.id in tree.backups) for link, _ in items]
        sizes = [label_size(t) for t in texts]
        x = left = box.cx - (sum(w + 10 for w, _ in sizes) - 10) / 2
        top = box.y0
        for (link, _), lines, (w, h) in zip(items, texts, sizes, strict=True):
            stub[link.id] = x
            routes[link.id] = Route([], lines, (x + 4 + w / 2, box.y0 - 6 - h / 2), link.id in tree.backups)
            top = min(top, box.y0 - 8 - h)
            x += w + 10
        label_spans[site] = (left, x, top)
    band_top = [min([b[0], *(label_spans[s][2] for s in boxes if band_of[s] == i and s in label_spans)])
                for i, b in enumerate(bands)]
    corridors = [_Corridors([(min(boxes[s].x0, label_spans.get(s, (math.inf,))[0]),
                              max(boxes[s].x1, label_spans.get(s, (0, -math.inf))[1]))
                             for s in boxes if band_of[s] == i]) for i in range(len(bands))]

    obstacles: list[list[Box]] = [[] for _ in bands]  # per band: its boxes, and the labels above them
    for site, box in boxes.items():
        obstacles[band_of[site]].append(box)
        if site in label_spans:
            left, right, top = label_spans[site]
            obstacles[band_of[site]].append(Box(left, top, right, box.y0))

    def below(band: int) -> float:  # upper fan line of the band of lines under `band`
        return bands[band][1] + 10

    def above(band: int) -> float:  # lower fan line of the band of lines over `band`
        return band_top[band] - 6

    leaving: dict[str, list[tuple[Link, str]]] = defaultdict(list)
    for site, items in entering.items():
        for link, upper in items:
            leaving[upper].append((link, site))
    for site, items in leaving.items():
        box = boxes[site]
        items.sort(key=lambda item: (stub[item[0].id], item[0].id))
        for i, (link, lower) in enumerate(items):
            xa = box.x0 + (i + 1) * (box.x1 - box.x0) / (len(items) + 1)
            xb = stub[link.id]
            ra, rb = band_of[site], band_of[lower]
            points: list[Point] = [(xa, box.y1), (xa, below(ra))]
            if ra == rb:  # same band: under it, up through a gap, into the box from above
                x = corridors[ra].x((xa + xb) / 2)
                points += [(x, below(ra) + FAN / 3), (x, above(ra) - FAN / 3), (xb, above(ra) - FAN / 3)]
            else:
                for r in range(ra + 1, rb):
                    ideal = xa + (xb - xa) * (r - ra) / (rb - ra)
                    x = corridors[r].x(ideal)
                    points += [(x, above(r)), (x, below(r))]
            points += [(xb, above(rb)), (xb, boxes[lower].y0)]
            if not any(_crosses(points[0], points[2], rect) for rect in obstacles[ra] if rect is not box):
                del points[1]  # nothing beside the box: the line may leave it on the slant
            routes[link.id].points = points
    device_boxes: dict[str, list[tuple[str, Box]]] = defaultdict(list)
    for name, node in topology.nodes.items():
        x, y = positions[name]
        device_boxes[node.site].append((name, Box(x - NODE_W / 2, y - NODE_H / 2, x + NODE_W / 2, y + NODE_H / 2)))
    for link in topology.links:
        if link.id in routes or link.a[0] not in positions or link.b[0] not in positions:
            continue
        others = [b for name, b in device_boxes[topology.nodes[link.a[0]].site] if name not in (link.a[0], link.b[0])]
        lines = [f"{link.a[1]} – {link.b[1]}"]
        routes[link.id] = _inside_route(positions[link.a[0]], positions[link.b[0]], others, lines)
    return Drawing(boxes, routes)


def _inside_route(a: Point, b: Point, others: list[Box], lines: list[str]) -> Route:
    """A line between two devices of one site: straight, or round the devices in its way through the
    free space between their rows and columns, its label beside it.

    >>> r = _inside_route((100, 100), (100, 320), [Box(5, 179, 195, 241)], ["eth2 – eth0"])
    >>> r.points, r.label
    ([(100, 100), (100, 155.0), (-1.0, 155.0), (-1.0, 320), (100, 320)], (49.5, 147.0))
    """
    (xa, ya), (xb, yb) = a, b
    w, h = label_size(lines)
    straight = Route([a, b], lines, ((xa + xb) / 2 + w / 2 + 4, (ya + yb) / 2))
    if not any(_crosses(a, b, box) for box in others):
        return straight
    dy = -CELL_H / 2 if yb < ya else CELL_H / 2
    if ya == yb:
        points = [a, (xa, ya + dy), (xb, ya + dy), b]
    else:  # along the row gap to the column gap beside b on a's side (left of b when above it), then in;
        # beside an outer column that is the box's margin, so the line keeps inside the box
        beside = NODE_W / 2 + BOX_PAD / 2
        gx = xb + beside if xb < xa else xb - beside
        points = [a, (xa, ya + dy), (gx, ya + dy), (gx, yb), b]
    if any(_crosses(p, q, box) for p, q in zip(points, points[1:], strict=False) for box in others):
        return straight  # boxes moved by hand: no free path of this shape
    return Route(points, lines, ((points[1][0] + points[2][0]) / 2, ya + dy - h / 2 - 1))


# --- Graphviz --------------------------------------------------------------------------------------

def _q(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks.

    >>> _q('a "b"\\nc\\\\')
    '"a \\\\"b\\\\"\\\\nc\\\\\\\\"'
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _legend_html() -> str:
    samples = [(s.color, s.sample, s.label) for s in STYLES.values()]
    samples += [("#000000", sample, label) for sample, label in LEGEND_EXTRA]
    rows = "".join(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{color}">{escape(sample)}</FONT></TD>'
                   f'<TD ALIGN="LEFT">{escape(label)}</TD></TR>' for color, sample, label in samples)
    return (f'<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" BGCOLOR="white">'
            f'<TR><TD COLSPAN="2"><B>Legend</B></TD></TR>{rows}</TABLE>>')


def _spline(points: list[Point]) -> str:
    """Straight segments as Graphviz's B-spline `pos` (each segment a degenerate cubic), y negated.

    >>> _spline([(0, 0), (10, 20), (30, 20)])
    '0.0,0.0 0.0,0.0 10.0,-20.0 10.0,-20.0 10.0,-20.0 30.0,-20.0 30.0,-20.0'
    """
    out = [points[0]]
    for previous, point in zip(points, points[1:], strict=False):
        out += [previous, point, point]
    return " ".join(f"{x:.1f},{0.0 - y:.1f}" for x, y in out)


def _extent(drawing: Drawing) -> tuple[float, float]:
    """The right edge and the top of everything drawn (boxes, lines, labels): where the legend goes."""
    xs = [b.x1 for b in drawing.boxes.values()] + [x for r in drawing.routes.values() for x, _ in r.points]
    xs += [r.label[0] + label_size(r.lines)[0] / 2 for r in drawing.routes.values() if r.label and r.lines]
    ys = [b.y0 for b in drawing.boxes.values()]
    return max(xs, default=0.0), min(ys, default=0.0)


def to_dot(topology: Topology, positions: dict[str, tuple[float, float]]) -> str:
    """DOT for `neato -n2`: every node pinned, every line and label placed, site clusters with their boxes."""
    drawing = plan_drawing(topology, positions)
    out = [f"graph {_q(topology.title)} {{",
           f"  graph [label={_q(topology.title)}, labelloc=t, fontsize=20, fontname=Helvetica, "
           f"outputorder=edgesfirst, pad=0.3{SIZE_CAP if len(topology.nodes) > 300 else ''}];",
           "  node [fontname=Helvetica, fontsize=10, style=filled, penwidth=1.2];",
           f"  edge [fontname=Helvetica, fontsize={EDGE_FONT}];"]
    for index, site, members in _site_groups(topology):
        box = drawing.boxes[site]
        # dot's y grows upwards: the layout's y (downwards) is negated.
        bb = f"{box.x0},{-box.y1},{box.x1},{-box.y0}"
        out.append(f"  subgraph {_q(f'cluster_{index}')} {{")
        out.append(f"    graph [label={_q(_site_title(topology, site))}, bb={_q(bb)}, style=rounded, "
                   f"color=\"#607d8b\", labeljust=l, fontsize=12, id={_q(f'site:{site}')}];")
        for node in sorted(members, key=lambda n: n.name):
            shape, fill = SHAPES.get(node.function, SHAPES["unknown"])
            x, y = positions[node.name]
            out.append(f"    {_q(node.name)} [label={_q(chr(10).join(node_label_lines(node)))}, shape={shape}, "
                       f"fillcolor={_q(fill)}, pos={_q(f'{x},{-y}')}, width={NODE_W / 72:.2f}, "
                       f"height={NODE_H / 72:.2f}, id={_q(f'node:{node.name}')}];")
        out.append("  }")
    for link in topology.links:
        style = STYLES[link.status]
        route = drawing.routes[link.id]
        # A backup is a double line: two strokes of the status colour either side of an invisible one.
        color = f"{style.color}:invis:{style.color}" if route.backup else style.color
        attrs = [f"color={_q(color)}", f"style={style.dot_style}", f"penwidth={link_width(link)}",
                 f"id={_q(f'link:{link.id}')}", f"class={_q(link.status + (' backup' if route.backup else ''))}",
                 f"tooltip={_q(f'{link.a[0]} {link.a[1]} - {link.b[0]} {link.b[1]}: {link.status}')}",
                 f"pos={_q(_spline(route.points))}"]
        if route.lines and route.label:
            attrs += [f"label={_q(chr(10).join(route.lines))}", f"lp={_q(f'{route.label[0]:.1f},{-route.label[1]:.1f}')}"]
        out.append(f"  {_q(link.a[0])} -- {_q(link.b[0])} [{', '.join(attrs)}];")
    if positions:
        right, top = _extent(drawing)
        out.append(f"  \"__legend__\" [shape=plaintext, style=\"\", label={_legend_html()}, "
                   f"pos={_q(f'{right + 220},{-(top + 60)}')}, id=\"legend\"];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_graphviz(dot_text: str, targets: dict[str, Path]) -> None:
    """Run Graphviz once for every requested output (svg, png, json, ...): nothing is laid out again."""
    if not targets:
        return
    argv = ["neato", "-n2"]
    for fmt, path in targets.items():
        argv += [f"-T{fmt}", f"-o{path}"]
    try:
        proc = subprocess.run(argv, input=dot_text, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise DiagramError("Graphviz is not installed (`apt-get install graphviz`)") from None
    except subprocess.TimeoutExpired:
        raise DiagramError("Graphviz took longer than 600 s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise DiagramError(f"Graphviz refused the diagram: {detail}")


# --- draw.io ---------------------------------------------------------------------------------------

DRAWIO_SHAPES = {"routers": "ellipse;", "switches": "rounded=1;", "servers": "shape=cube;size=8;",
                 "access_points": "shape=trapezoid;perimeter=trapezoidPerimeter;", "unknown": "shape=hexagon;"}


def to_drawio(topology: Topology, positions: dict[str, tuple[float, float]]) -> str:
    """An uncompressed draw.io file: sites as containers, one cell per device and per link, same routes."""
    drawing = plan_drawing(topology, positions)
    cells = ['<mxCell id="0"/>', '<mxCell id="1" parent="0"/>']
    for _, site, members in _site_groups(topology):
        box = drawing.boxes[site]
        sid = f"site:{site}"
        cells.append(f'<mxCell id={quoteattr(sid)} value={quoteattr(_site_title(topology, site))} '
                     f'style="swimlane;startSize=24;rounded=1;fillColor=none;strokeColor=#607d8b;" vertex="1" '
                     f'parent="1"><mxGeometry x="{box.x0:.1f}" y="{box.y0:.1f}" width="{box.x1 - box.x0:.1f}" '
                     f'height="{box.y1 - box.y0:.1f}" as="geometry"/></mxCell>')
        for node in sorted(members, key=lambda n: n.name):
            x, y = positions[node.name]
            _shape, fill = SHAPES.get(node.function, SHAPES["unknown"])
            label = "<br>".join(escape(line) for line in node_label_lines(node))
            style = f"{DRAWIO_SHAPES.get(node.function, DRAWIO_SHAPES['unknown'])}whiteSpace=wrap;html=1;fillColor={fill};"
            cells.append(f'<mxCell id={quoteattr("node:" + node.name)} value={quoteattr(label)} '
                         f'style={quoteattr(style)} vertex="1" parent={quoteattr(sid)}>'
                         f'<mxGeometry x="{x - NODE_W / 2 - box.x0:.1f}" y="{y - NODE_H / 2 - box.y0:.1f}" '
                         f'width="{NODE_W}" height="{NODE_H}" as="geometry"/></mxCell>')
    labels = []
    site_of = {name: node.site for name, node in topology.nodes.items()}
    for link in topology.links:
        style = STYLES[link.status]
        route = drawing.routes[link.id]
        inside = site_of[link.a[0]] == site_of[link.b[0]]  # a line inside one site: the label rides on it
        text = "<br>".join(escape(line) for line in route.lines)
        # shape=link is draw.io's double line: a backup
        look = f"{'shape=link;' if route.backup else ''}strokeWidth={link_width(link)};{style.drawio}"
        waypoints = "" if inside else ('<Array as="points">' + "".join(
            f'<mxPoint x="{x:.1f}" y="{y:.1f}"/>' for x, y in route.points) + "</Array>")
        # Between sites the line ends on the site boxes (Graphviz's compound edges), not through them
        # to the device: the label names the devices and interfaces.
        source, target = ((f"node:{link.a[0]}", f"node:{link.b[0]}") if inside else
                          (f"site:{site_of[link.a[0]]}", f"site:{site_of[link.b[0]]}"))
        cells.append(f'<mxCell id={quoteattr("link:" + link.id)} value={quoteattr(text if inside else "")} '
                     f'style={quoteattr("endArrow=none;html=1;fontSize=9;rounded=0;" + look)} edge="1" parent="1" '
                     f'source={quoteattr(source)} target={quoteattr(target)}>'
                     f'<mxGeometry relative="1" as="geometry">{waypoints}</mxGeometry></mxCell>')
        if not inside and route.label and route.lines:
            w, h = label_size(route.lines)
            labels.append(f'<mxCell id={quoteattr("label:" + link.id)} value={quoteattr(text)} '
                          f'style="text;html=1;fontSize=9;align=center;verticalAlign=middle;" vertex="1" parent="1">'
                          f'<mxGeometry x="{route.label[0] - w / 2:.1f}" y="{route.label[1] - h / 2:.1f}" '
                          f'width="{w:.1f}" height="{h:.1f}" as="geometry"/></mxCell>')
    cells += labels
    if positions:
        right, top = _extent(drawing)
        legend = "<b>Legend</b><br>" + "<br>".join(
            f'<font color="{s.color}">{escape(s.sample)}</font> {escape(s.label)}' for s in STYLES.values())
        legend += "".join(f"<br>{escape(sample)} {escape(label)}" for sample, label in LEGEND_EXTRA)
        cells.append(f'<mxCell id="legend" value={quoteattr(legend)} style="text;html=1;align=left;'
                     f'verticalAlign=top;strokeColor=#000000;fillColor=#ffffff;" vertex="1" parent="1">'
                     f'<mxGeometry x="{right + 60:.1f}" y="{top:.1f}" width="330" height="140" as="geometry"/></mxCell>')
    body = "\n        ".join(cells)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<mxfile host="dzops" type="device">\n'
            f'  <diagram id="topology" name={quoteattr(topology.title)}>\n'
            '    <mxGraphModel grid="1" gridSize="10" guides="1" tooltips="1" connect="1" arrows="1" fold="1" '
            'page="0" pageScale="1" math="0" shadow="0">\n'
            f'      <root>\n        {body}\n      </root>\n'
            '    </mxGraphModel>\n  </diagram>\n</mxfile>\n')


# --- Mermaid ---------------------------------------------------------------------------------------

def mermaid_ids(names: Iterable[str]) -> dict[str, str]:
    """Mermaid-safe, unique node ids.

    >>> mermaid_ids(["hq-rtr1", "hq_rtr1", "end"])
    {'end': 'n_end', 'hq-rtr1': 'n_hq_rtr1', 'hq_rtr1': 'n_hq_rtr1_2'}
    """
    ids: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(names):
        base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids[name] = candidate
    return ids


def _mq(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(topology: Topology) -> str:
    """A Mermaid flowchart: a subgraph per site in level order, one edge per link written from its upper
    end (the viewer ranks top-down along the edges), primary paths first, styled by status and bandwidth."""
    ids = mermaid_ids(topology.nodes)
    tree = site_tree(topology)
    groups = sorted(_site_groups(topology), key=lambda g: (tree.level[g[1]], g[0]))
    site_of = {name: node.site for name, node in topology.nodes.items()}

    def height(name: str) -> tuple[int, int]:  # drawn higher: nearer HQ, then router before switch before AP
        return tree.level[site_of[name]], TIERS.get(topology.nodes[name].function, 3)

    out = ["flowchart TB", f"  %% {topology.title}; legend: " +
           "; ".join(f"{s.mermaid_arrow} {s.color} {status}" for status, s in STYLES.items()) +
           f"; dash-dot: {BACKUP_TEXT}; width: bandwidth"]
    for index, site, members in groups:
        out.append(f"  subgraph site_{index}[{_mq(_site_title(topology, site))}]")
        for node in sorted(members, key=lambda n: (TIERS.get(n.function, 3), n.name)):
            out.append(f"    {ids[node.name]}[{_mq('<br/>'.join(node_label_lines(node)))}]")
        out.append("  end")
    ordered = sorted(topology.links, key=lambda link: link.id in tree.backups)
    styles = []
    for index, link in enumerate(ordered):
        style = STYLES[link.status]
        backup = link.id in tree.backups
        a, b = link.a[0], link.b[0]
        if height(b) < height(a):
            a, b = b, a
        text = (" · ".join(link_label_lines(link, backup)) if site_of[a] != site_of[b]
                else f"{link.a[1]} – {link.b[1]}")
        out.append(f"  {ids[a]} {style.mermaid_arrow}|{_mq(text)}| {ids[b]}")
        styles.append(f"  linkStyle {index} stroke:{style.color},stroke-width:{link_width(link):g}px"
                      + (f",{MERMAID_BACKUP}" if backup else ""))
    return "\n".join(out + styles) + "\n"


def mermaid_markdown(topology: Topology) -> str:
    legend = "\n".join(f"| `{s.mermaid_arrow}` | {s.color} | {s.label} |" for s in STYLES.values())
    return (f"# {topology.title}\n\n```mermaid\n{to_mermaid(topology)}```\n\n"
            f"| line | colour | link status |\n| --- | --- | --- |\n{legend}\n"
            f"| dash-dot | any | {BACKUP_TEXT}: a WAN link on no site's least-cost path to HQ |\n"
            f"| width | any | WAN bandwidth (thicker is faster) |\n")


# --- everything ------------------------------------------------------------------------------------

def render(topology: Topology, positions: dict[str, tuple[float, float]], formats: Iterable[str],
           output: Path, stem: str = "topology") -> dict[str, Path]:
    """Write the requested formats into `output`; returns format -> file (dot/md included)."""
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise DiagramError(f"unknown diagram format(s): {', '.join(unknown)} (known: {', '.join(FORMATS)})")
    missing = [n for n in topology.nodes if n not in positions]
    if missing:
        positions = place(topology, positions)
    output.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if "svg" in formats or "png" in formats:
        dot_text = to_dot(topology, positions)
        files["dot"] = output / f"{stem}.dot"
        files["dot"].write_text(dot_text)
        targets = {fmt: output / f"{stem}.{fmt}" for fmt in ("svg", "png") if fmt in formats}
        render_graphviz(dot_text, targets)
        files.update(targets)
    if "drawio" in formats:
        files["drawio"] = output / f"{stem}.drawio"
        files["drawio"].write_text(to_drawio(topology, positions))
    if "mermaid" in formats:
        files["mermaid"] = output / f"{stem}.mmd"
        files["mermaid"].write_text(to_mermaid(topology))
        files["markdown"] = output / f"{stem}.md"
        files["markdown"].write_text(mermaid_markdown(topology))
    return files
