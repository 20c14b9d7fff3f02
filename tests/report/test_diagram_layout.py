"""Diagrams that read for any tree, checked from Graphviz's own layout output (`neato -n2 -Tjson`).

For the shipped sample, a two-level Dzongkhag (HQ -> aggregation router -> gewogs, remote gewogs
three hops out on thin links, a dual-homed gewog) and every sample under samples/: no line crosses
a site box it does not end in, levels run top-down from HQ, no two labels overlap and no label
sits on a box or device it does not belong to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dzops.inventory.loader import load_inventory
from dzops.report import diagram
from dzops.report.topology import Link, Node, Topology, build_topology, site_view

ROOT = Path(__file__).resolve().parents[2]

# The two-level shape of issue 16: (site, parent over its primary link, primary Mbit/s).
TWO_LEVEL = [("hq", None, 0), ("agg", "hq", 100), ("g1", "agg", 10), ("g2", "agg", 10), ("g3", "agg", 8),
             ("dual", "agg", 8), ("remote1", "g2", 0.512), ("remote2", "g3", 1), ("near", "hq", 20)]
TWO_LEVEL_LEVELS = {"hq": 0, "agg": 1, "g1": 2, "g2": 2, "g3": 2, "dual": 2, "near": 1, "remote1": 3, "remote2": 3}
BACKUP = Link(("dual-rtr1", "eth2"), ("hq-rtr1", "eth9"), "wan", "confirmed", name="dual-backup",
              circuit_id="BT-BACKUP-1", bandwidth_mbps=2, a_addresses=["10.9.255.9/30"], b_addresses=["10.9.255.10/30"])


def two_level(extra_site: str = "", ring: bool = False) -> Topology:
    """The second Dzongkhag's shape, as discovery would return it (every declared link confirmed).

    ring: also a link between two gewogs of one level and one between two subtrees (both backups).
    """
    sites = {site: f"{site.title()} office" for site, _, _ in TWO_LEVEL}
    nodes = {"hq-rtr1": Node("hq-rtr1", "hq", "routers", mgmt_address="10.9.0.1", role="core-router"),
             "hq-sw1": Node("hq-sw1", "hq", "switches"), "hq-srv1": Node("hq-srv1", "hq", "servers"),
             "hq-srv2": Node("hq-srv2", "hq", "servers")}
    links = [Link(("hq-rtr1", "eth0"), ("hq-sw1", "swp1"), "lan", "confirmed"),
             Link(("hq-srv1", "eth0"), ("hq-sw1", "swp2"), "lan", "confirmed"),
             Link(("hq-srv2", "eth0"), ("hq-sw1", "swp3"), "lan", "confirmed")]
    spec = TWO_LEVEL + ([(extra_site, "agg", 10)] if extra_site else [])
    port: dict[str, int] = {}
    for n, (site, parent, mbps) in enumerate(spec):
        sites.setdefault(site, f"{site.title()} office")
        rtr = f"{site}-rtr1"
        nodes.setdefault(rtr, Node(rtr, site, "routers", mgmt_address=f"10.9.0.{n + 1}"))
        if site not in ("hq", "agg"):
            nodes[f"{site}-ap1"] = Node(f"{site}-ap1", site, "access_points")
            if site.startswith("remote"):  # a small office: the AP plugs into the router
                links.append(Link((f"{site}-ap1", "eth0"), (rtr, "eth1"), "uplink", "confirmed"))
            else:
                nodes[f"{site}-sw1"] = Node(f"{site}-sw1", site, "switches")
                links += [Link((rtr, "eth1"), (f"{site}-sw1", "swp1"), "lan", "confirmed"),
                          Link((f"{site}-ap1", "eth0"), (f"{site}-sw1", "swp2"), "uplink", "confirmed")]
        if site == "g1":  # an AP on a router port in an office with a switch: the switch is in its way
            nodes["g1-ap0"] = Node("g1-ap0", site, "access_points")
            links.append(Link(("g1-ap0", "eth0"), (rtr, "eth3"), "uplink", "confirmed"))
        if parent:
            up = f"{parent}-rtr1"
            port[up] = port.get(up, 1) + 1
            links.append(Link((up, f"eth{port[up]}"), (rtr, "eth0"), "wan", "confirmed", name=f"{parent}-{site}",
                              circuit_id=f"BT-T-{n:04d}", bandwidth_mbps=mbps,
                              a_addresses=[f"10.9.255.{4 * n + 1}/30"], b_addresses=[f"10.9.255.{4 * n + 2}/30"]))
    links.append(BACKUP)
    if ring:
        links += [Link(("g1-rtr1", "eth5"), ("dual-rtr1", "eth5"), "wan", "declared-not-seen", circuit_id="BT-RING-1",
                       bandwidth_mbps=10),
                  Link(("near-rtr1", "eth5"), ("g3-rtr1", "eth5"), "wan", "unverified", circuit_id="BT-RING-2",
                       bandwidth_mbps=1000)]
    return Topology("Two-level Dzongkhag", sites, nodes, links, "hq")


def wide_star(gewogs: int = 40) -> Topology:
    """One hub, more gewogs than fit one row: rows wrap and lines run down the gaps between boxes."""
    nodes = {"hq-rtr1": Node("hq-rtr1", "hq", "routers")}
    sites = {"hq": "HQ"}
    links = []
    for g in range(gewogs):
        site = f"g{g:02d}"
        sites[site] = f"Gewog {g:02d}"
        for name, function in ((f"{site}-rtr1", "routers"), (f"{site}-sw1", "switches"), (f"{site}-ap1", "access_points")):
            nodes[name] = Node(name, site, function)
        links += [Link(("hq-rtr1", f"eth{g + 1}"), (f"{site}-rtr1", "eth0"), "wan", "confirmed", circuit_id=f"BT-{g:04d}",
                       bandwidth_mbps=(2, 10, 100)[g % 3], a_addresses=[f"10.255.0.{4 * g + 1}/30"]),
                  Link((f"{site}-rtr1", "eth1"), (f"{site}-sw1", "swp1"), "lan", "confirmed"),
                  Link((f"{site}-ap1", "eth0"), (f"{site}-sw1", "swp2"), "uplink", "confirmed")]
    return Topology("Wide star", sites, nodes, links, "hq")


def _inventory_dirs() -> list[Path]:
    return [ROOT / "inventory"] + sorted(p.parent for p in (ROOT / "samples").glob("*/hosts.yml"))


def _from_inventory(root: Path) -> Topology:
    password = next(iter(sorted(root.glob("*vault*pass*"))), None)
    return build_topology(load_inventory(root, password), {})


SAMPLES = [pytest.param(two_level, id="two-level"), pytest.param(lambda: two_level(ring=True), id="two-level-ring"),
           pytest.param(wide_star, id="wide-star")] + [
    pytest.param(lambda root=root: _from_inventory(root), id=str(root.relative_to(ROOT))) for root in _inventory_dirs()]


# --- reading Graphviz's layout ---------------------------------------------------------------------

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 (Graphviz's y grows upwards)


@dataclass
class Laid:
    """What Graphviz computed: site boxes, device boxes, each link's drawn curves and label box."""

    clusters: dict[str, Rect]
    nodes: dict[str, Rect]
    curves: dict[str, list[list[tuple[float, float]]]]  # link id -> Bezier control points per stroke
    labels: dict[str, Rect]
    classes: dict[str, str]
    widths: dict[str, float]
    titles: dict[str, Rect]  # site -> its title's box


def _text_box(ops: list[dict], size: float) -> Rect | None:
    """A label's box from its xdot text operations: each line centred on pt's x, descender to ascender."""
    texts = [op for op in ops if op["op"] == "T"]
    if not texts:
        return None
    return (min(t["pt"][0] - t["width"] / 2 for t in texts), min(t["pt"][1] - 0.25 * size for t in texts),
            max(t["pt"][0] + t["width"] / 2 for t in texts), max(t["pt"][1] + 0.9 * size for t in texts))


def laid_out(topology: Topology, tmp_path: Path, positions: dict[str, tuple[float, float]] | None = None) -> Laid:
    positions = positions or diagram.fresh_layout(topology)
    out = tmp_path / "layout.json"
    diagram.render_graphviz(diagram.to_dot(topology, positions), {"json": out})
    data = json.loads(out.read_text())
    clusters: dict[str, Rect] = {}
    titles: dict[str, Rect] = {}
    nodes: dict[str, Rect] = {}
    names: dict[int, str] = {}
    for obj in data["objects"]:
        if obj["name"].startswith("cluster"):
            x0, y0, x1, y1 = map(float, obj["bb"].split(","))
            clusters[obj["id"].removeprefix("site:")] = (x0, y0, x1, y1)
            titles[obj["id"].removeprefix("site:")] = _text_box(obj["_ldraw_"], float(obj["fontsize"]))
        elif obj.get("id", "").startswith("node:"):
            x, y = map(float, obj["pos"].split(","))
            w, h = float(obj["width"]) * 36, float(obj["height"]) * 36
            nodes[obj["name"]] = (x - w, y - h, x + w, y + h)
            names[obj["_gvid"]] = obj["name"]
    curves, labels, classes, widths = {}, {}, {}, {}
    for edge in data["edges"]:
        link_id = edge["id"].removeprefix("link:")
        colour, strokes = "", []
        for op in edge["_draw_"]:
            colour = op["color"] if op["op"] == "c" else colour
            if op["op"] in "bB" and not (len(colour) == 9 and colour.endswith("00")):  # '#fffffe00': the invisible middle line
                strokes.append(op["points"])
        curves[link_id] = strokes
        classes[link_id] = edge.get("class", "")
        widths[link_id] = float(edge["penwidth"])
        label = _text_box(edge.get("_ldraw_", []), diagram.EDGE_FONT)
        if label:
            labels[link_id] = label
    return Laid(clusters, nodes, curves, labels, classes, widths, titles)


def bezier_points(control: list[list[float]], steps: int = 12) -> Iterator[tuple[float, float]]:
    """Points along a piecewise cubic Bezier (Graphviz's edge curves), ends included."""
    for i in range(0, len(control) - 3, 3):
        p0, p1, p2, p3 = control[i:i + 4]
        for k in range(steps + 1):
            t = k / steps
            u = 1 - t
            yield (u ** 3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t ** 3 * p3[0],
                   u ** 3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t ** 3 * p3[1])


def segment_enters(a: tuple[float, float], b: tuple[float, float], rect: Rect, inset: float = 1.0) -> bool:
    """Whether the segment a-b passes through the rectangle's inside (Liang-Barsky clipping).

    >>> segment_enters((0, 5), (20, 5), (5, 0, 10, 10)), segment_enters((0, 20), (20, 20), (5, 0, 10, 10))
    (True, False)
    >>> segment_enters((0, 0), (5, 0), (5, 0, 10, 10))  # touching the border is not entering
    False
    """
    x0, y0, x1, y1 = rect[0] + inset, rect[1] + inset, rect[2] - inset, rect[3] - inset
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q < 0:
                return False
        else:
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    return t0 < t1


def overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def crossings(topology: Topology, laid: Laid) -> list[str]:
    site_of = {name: node.site for name, node in topology.nodes.items()}
    found = []
    for link in topology.links:
        own = {site_of[link.a[0]], site_of[link.b[0]]}
        for stroke in laid.curves[link.id]:
            points = list(bezier_points(stroke))
            for site, rect in laid.clusters.items():
                if site in own:
                    continue
                if any(segment_enters(p, q, rect) for p, q in zip(points, points[1:], strict=False)):
                    found.append(f"{link.id} crosses the box of site '{site}'")
    return found


# --- the tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", SAMPLES)
def test_no_line_crosses_a_site_box_it_does_not_end_in(make, tmp_path: Path) -> None:
    topology = make()
    laid = laid_out(topology, tmp_path)
    assert set(laid.curves) == {link.id for link in topology.links}
    assert all(laid.curves.values()), "every link is drawn"
    assert crossings(topology, laid) == []


@pytest.mark.parametrize("make", SAMPLES)
def test_no_line_crosses_a_device_it_does_not_end_at(make, tmp_path: Path) -> None:
    topology = make()
    laid = laid_out(topology, tmp_path)
    found = set()
    for link in topology.links:
        for stroke in laid.curves[link.id]:
            points = list(bezier_points(stroke))
            found |= {(link.id, name) for name, rect in laid.nodes.items() if name not in (link.a[0], link.b[0])
                      and any(segment_enters(p, q, rect) for p, q in zip(points, points[1:], strict=False))}
            site = topology.nodes[link.a[0]].site
            if site == topology.nodes[link.b[0]].site:  # a line inside one site stays inside its box
                x0, y0, x1, y1 = laid.clusters[site]
                found |= {(link.id, "outside its box") for x, y in points if not (x0 < x < x1 and y0 < y < y1)}
    assert sorted(found) == []


@pytest.mark.parametrize("make", SAMPLES)
def test_no_label_overlaps_another_or_a_box_it_does_not_belong_to(make, tmp_path: Path) -> None:
    topology = make()
    laid = laid_out(topology, tmp_path)
    wan = [link for link in topology.links if link.kind == "wan"]
    assert wan and all(link.id in laid.labels for link in wan), "every WAN link is labelled"
    ids = sorted(laid.labels)
    clashes = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if overlap(laid.labels[a], laid.labels[b])]
    assert clashes == []
    site_of = {name: node.site for name, node in topology.nodes.items()}
    links = {link.id: link for link in topology.links}
    on_boxes = [(link_id, site) for link_id, rect in laid.labels.items() for site, box in laid.clusters.items()
                if site not in {site_of[links[link_id].a[0]], site_of[links[link_id].b[0]]} and overlap(rect, box)]
    assert on_boxes == []
    on_devices = [(link_id, name) for link_id, rect in laid.labels.items() for name, box in laid.nodes.items()
                  if overlap(rect, box)]
    assert on_devices == []
    through = set()
    for link_id, strokes in laid.curves.items():
        for stroke in strokes:
            points = list(bezier_points(stroke))
            through |= {(link_id, other) for other, rect in laid.labels.items() if other != link_id
                        and any(segment_enters(p, q, rect) for p, q in zip(points, points[1:], strict=False))}
    assert sorted(through) == [], "no line is drawn through another link's label"
    spilling = [site for site, title in laid.titles.items()
                if not (laid.clusters[site][0] <= title[0] and title[2] <= laid.clusters[site][2])]
    assert spilling == [], "a site's title stays inside its box"


def _above(upper: Rect, lower: Rect) -> bool:
    return upper[1] > lower[3]  # y grows upwards: the upper box's bottom is over the lower box's top


@pytest.mark.parametrize("make", SAMPLES)
def test_hq_is_on_top_and_every_site_hangs_below_a_wan_neighbour(make, tmp_path: Path) -> None:
    topology = make()
    laid = laid_out(topology, tmp_path)
    hub = topology.hub or "hq"
    assert all(_above(laid.clusters[hub], rect) for site, rect in laid.clusters.items() if site != hub)
    site_of = {name: node.site for name, node in topology.nodes.items()}
    neighbours: dict[str, set[str]] = {}
    for link in topology.links:
        a, b = site_of[link.a[0]], site_of[link.b[0]]
        if link.kind == "wan" and a != b:
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
    hanging = [site for site in laid.clusters if site != hub
               and not any(_above(laid.clusters[n], laid.clusters[site]) for n in neighbours.get(site, ()))]
    assert hanging == []


def test_two_level_hub_reads_top_down_by_hops_along_the_primary_path(tmp_path: Path) -> None:
    laid = laid_out(two_level(), tmp_path)
    for upper, lower in [(u, w) for u in TWO_LEVEL_LEVELS for w in TWO_LEVEL_LEVELS
                         if TWO_LEVEL_LEVELS[u] < TWO_LEVEL_LEVELS[w]]:
        assert _above(laid.clusters[upper], laid.clusters[lower]), f"{upper} above {lower}"
    for level in set(TWO_LEVEL_LEVELS.values()):  # one level, one row: boxes share their top
        tops = {laid.clusters[s][3] for s, lv in TWO_LEVEL_LEVELS.items() if lv == level}
        assert len(tops) == 1, level
    # Each parent is centred over its children: the aggregation router over its four gewogs.
    kids = [laid.clusters[s] for s in ("g1", "g2", "g3", "dual")]
    agg = laid.clusters["agg"]
    assert min(k[0] for k in kids) < (agg[0] + agg[2]) / 2 < max(k[2] for k in kids)


def test_backup_link_is_a_double_line_and_width_follows_bandwidth(tmp_path: Path) -> None:
    topology = two_level()
    laid = laid_out(topology, tmp_path)
    assert diagram.site_tree(topology).backups == {BACKUP.id}
    assert laid.classes[BACKUP.id] == "confirmed backup"
    assert len(laid.curves[BACKUP.id]) == 2, "a backup is drawn as two parallel strokes"
    primaries = [link for link in topology.links if link.kind == "wan" and link.id != BACKUP.id]
    assert all(len(laid.curves[link.id]) == 1 and laid.classes[link.id] == "confirmed" for link in primaries)
    by_speed = sorted(primaries, key=lambda link: link.bandwidth_mbps or 0)
    widths = [laid.widths[link.id] for link in by_speed]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert math.isclose(laid.widths[by_speed[0].id], 1.0)  # 512 kbit/s: the thinnest line


def test_drawio_and_mermaid_follow_the_same_levels(tmp_path: Path) -> None:
    import re
    import xml.etree.ElementTree as ET

    topology = two_level()
    positions = diagram.fresh_layout(topology)
    root = ET.fromstring(diagram.to_drawio(topology, positions))
    geometry = {c.get("id"): c.find("mxGeometry") for c in root.iter("mxCell")}
    top = {site: float(geometry[f"site:{site}"].get("y")) for site in TWO_LEVEL_LEVELS}
    assert all(top[a] < top[b] for a in top for b in top if TWO_LEVEL_LEVELS[a] < TWO_LEVEL_LEVELS[b])
    drawing = diagram.plan_drawing(topology, positions)
    backup = next(c for c in root.iter("mxCell") if c.get("id") == f"link:{BACKUP.id}")
    assert "shape=link;" in backup.get("style")  # draw.io's double line
    assert (backup.get("source"), backup.get("target")) == ("site:dual", "site:hq")  # ends on the boxes
    points = [(float(p.get("x")), float(p.get("y"))) for p in backup.iter("mxPoint")]
    assert points == [pytest.approx(p) for p in drawing.routes[BACKUP.id].points]  # the SVG's route
    text = diagram.to_mermaid(topology)
    assert text.startswith("flowchart TB")
    order = re.findall(r"subgraph site_\d+\[\"(\w+) office\"\]", text)
    assert [TWO_LEVEL_LEVELS[s.lower()] for s in order] == sorted(TWO_LEVEL_LEVELS.values())
    # Every link is written from its upper end (the viewer ranks along the edges): nearer HQ, router first.
    names = {mid: name for name, mid in diagram.mermaid_ids(topology.nodes).items()}
    edges = re.findall(r"^  (n_\w+) (?:---|-\.-|===)\|\"([^\"]*)\"\| (n_\w+)$", text, re.M)
    assert len(edges) == len(topology.links)
    tiers = {"routers": 0, "switches": 1, "access_points": 2, "servers": 2}
    for upper, _label, lower in edges:
        up, down = topology.nodes[names[upper]], topology.nodes[names[lower]]
        assert (TWO_LEVEL_LEVELS[up.site], tiers[up.function]) <= (TWO_LEVEL_LEVELS[down.site], tiers[down.function])
    backup = next(i for i, (_, label, _) in enumerate(edges) if "BT-BACKUP-1" in label)
    assert "backup" in edges[backup][1]
    assert re.search(rf"^  linkStyle {backup} .*{re.escape(diagram.MERMAID_BACKUP)}$", text, re.M)
    assert text.count(diagram.MERMAID_BACKUP) == 1


def test_a_site_view_keeps_the_whole_networks_primary_path(tmp_path: Path) -> None:
    topology = two_level()
    view = site_view(topology, "dual")  # holds dual, and the far ends hq-rtr1 (backup) and agg-rtr1
    assert diagram.site_tree(view).backups == {BACKUP.id}
    laid = laid_out(view, tmp_path, diagram.fresh_layout(topology))
    assert crossings(view, laid) == []


def test_pinned_positions_stay_and_a_new_site_takes_its_level(tmp_path: Path) -> None:
    layout = tmp_path / "diagram-layout.json"
    first = diagram.ensure_layout(two_level(), layout)
    # The site 'near' moved by hand, all its boxes 3000 points to the right.
    pinned = {n: [x + 3000 if n.startswith("near-") else x, y] for n, (x, y) in first.items()}
    layout.write_text(json.dumps({"positions": pinned}))
    grown = two_level(extra_site="g4")
    positions = diagram.ensure_layout(grown, layout)
    assert {n: list(positions[n]) for n in pinned} == pinned
    agg_y = positions["agg-rtr1"][1]
    assert all(positions[n][1] > agg_y for n in ("g4-rtr1", "g4-sw1", "g4-ap1")), "g4 sits below its aggregation"
    laid = laid_out(grown, tmp_path, positions)
    assert crossings(grown, laid) == []


@pytest.mark.parametrize("make", SAMPLES)
def test_every_site_view_drawn_with_the_whole_layout_is_clean(make, tmp_path: Path) -> None:
    """`dzops docs` draws each site with the whole network's positions: its lines and labels too."""
    topology = make()
    positions = diagram.fresh_layout(topology)
    for site in topology.sites:
        view = site_view(topology, site)
        if not view.nodes:
            continue
        laid = laid_out(view, tmp_path, positions)
        ids = sorted(laid.labels)
        assert crossings(view, laid) == [], site
        assert [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if overlap(laid.labels[a], laid.labels[b])] == []


def test_an_explicit_ospf_cost_decides_which_link_is_the_backup(tmp_path: Path) -> None:
    """With ospf_cost 10 on the dual-homed gewog's end of the HQ link, routing prefers it: so does the picture."""
    import dataclasses

    topology = two_level()
    topology.links = [dataclasses.replace(link, a_ospf_cost=10) if link.id == BACKUP.id else link
                      for link in topology.links]
    via_agg = next(link.id for link in topology.links if link.name == "agg-dual")
    tree = diagram.site_tree(topology)
    assert tree.backups == {via_agg}
    assert tree.level["dual"] == 1 and tree.parent["dual"] == "hq"
    laid = laid_out(topology, tmp_path)
    assert laid.classes[via_agg] == "confirmed backup" and laid.classes[BACKUP.id] == "confirmed"
    assert crossings(topology, laid) == []
