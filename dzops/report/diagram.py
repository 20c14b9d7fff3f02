"""Network diagrams of a `Topology`: Graphviz (SVG, PNG), draw.io XML and Mermaid.

Layout is stable: every device's position is kept in a JSON file next to the inventory
(`diagram-layout.json`), created on the first run and only ever extended with new devices. Graphviz
draws with `neato -n2` (positions given, nothing re-laid out), draw.io gets the same coordinates,
so between two runs a changed picture means a changed network (or a moved box, by hand, in the file).

Sites are clusters; WAN links carry circuit id, bandwidth and addresses; each link status has
its own colour and line style, explained by a legend.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from dzops.exceptions import DzopsError
from dzops.report.topology import Link, Node, Topology

FORMATS = ("svg", "png", "drawio", "mermaid")
LAYOUT_FILE = "diagram-layout.json"
CELL_W, CELL_H = 230, 110  # points; one device per cell
SITE_COLS = 3  # devices per row inside a site
SITE_GAP = 90  # between site blocks
NODE_W, NODE_H = 190, 62
SIZE_CAP = ', size="100,100"'  # inches: a 1,000-device PNG stays under 10,000 pixels a side
TIERS = {"routers": 0, "switches": 1, "servers": 2, "access_points": 2}


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
                           "strokeColor=#2e7d32;strokeWidth=2;"),
    "declared-not-seen": LinkStyle("#c62828", "dashed", 2.0, "declared, not seen", "─ ─ ─", "-.-",
                                   "strokeColor=#c62828;strokeWidth=2;dashed=1;dashPattern=8 4;"),
    "seen-not-declared": LinkStyle("#ef6c00", "dotted", 3.0, "seen, not declared", "• • • •", "===",
                                   "strokeColor=#ef6c00;strokeWidth=3;dashed=1;dashPattern=1 4;"),
    "unverified": LinkStyle("#9e9e9e", "dashed", 1.0, "declared, ends not discovered", "- - - -", "-.-",
                            "strokeColor=#9e9e9e;strokeWidth=1;dashed=1;dashPattern=3 3;"),
}
SHAPES = {"routers": ("ellipse", "#e3f2fd"), "switches": ("box", "#e8f5e9"), "servers": ("box3d", "#fff8e1"),
          "access_points": ("house", "#f3e5f5"), "unknown": ("octagon", "#ffebee")}


class DiagramError(DzopsError):
    """A diagram could not be rendered (Graphviz missing or refusing the input)."""


# --- stable layout ---------------------------------------------------------------------------------

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


def fresh_layout(topology: Topology) -> dict[str, tuple[float, float]]:
    """Deterministic positions (points, y growing downwards): sites on a grid, devices by tier.

    >>> t = Topology("T", {"hq": "HQ"}, {"r1": Node("r1", "hq", "routers"), "s1": Node("s1", "hq", "switches")}, [])
    >>> fresh_layout(t)
    {'r1': (115.0, 55.0), 's1': (115.0, 165.0)}
    """
    by_site = _members_by_site(topology)
    blocks: dict[str, dict[str, tuple[int, int]]] = {}
    for site in _site_order(topology):
        slots: dict[str, tuple[int, int]] = {}
        row = 0
        tiers: dict[int, list[Node]] = defaultdict(list)
        for node in by_site.get(site, []):
            tiers[TIERS.get(node.function, 3)].append(node)
        for tier in sorted(tiers):
            members = sorted(tiers[tier], key=lambda n: n.name)
            for i, node in enumerate(members):
                slots[node.name] = (i % SITE_COLS, row + i // SITE_COLS)
            row += math.ceil(len(members) / SITE_COLS)
        if slots:
            blocks[site] = slots
    if not blocks:
        return {}
    block_w = max(max(c for c, _ in s.values()) + 1 for s in blocks.values()) * CELL_W + SITE_GAP
    block_h = max(max(r for _, r in s.values()) + 1 for s in blocks.values()) * CELL_H + SITE_GAP
    columns = max(1, math.ceil(math.sqrt(len(blocks))))
    positions: dict[str, tuple[float, float]] = {}
    for index, (_site, slots) in enumerate(blocks.items()):
        ox, oy = (index % columns) * block_w, (index // columns) * block_h
        for name, (col, row) in slots.items():
            positions[name] = (float(ox + col * CELL_W + CELL_W / 2), float(oy + row * CELL_H + CELL_H / 2))
    return positions


def place(topology: Topology, kept: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Kept positions stay; a new device gets its fresh place, moved down while that is taken.

    >>> t = Topology("T", {"hq": "HQ"}, {"r1": Node("r1", "hq", "routers"), "r2": Node("r2", "hq", "routers")}, [])
    >>> place(t, {"r1": (345.0, 55.0), "old": (115.0, 55.0)})
    {'r1': (345.0, 55.0), 'old': (115.0, 55.0), 'r2': (345.0, 165.0)}
    """
    result = dict(kept)

    def cell(x: float, y: float) -> tuple[int, int]:
        return math.floor(x / CELL_W), math.floor(y / CELL_H)

    taken = {cell(x, y) for x, y in result.values()}
    fresh = fresh_layout(topology)
    for name in topology.nodes:
        if name in result:
            continue
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
        data = {"comment": "Device positions of `dzops diagram`, in points, y downwards. Edit to move a box.",
                "positions": {name: [round(x, 1), round(y, 1)] for name, (x, y) in sorted(positions.items())}}
        path.write_text(json.dumps(data, indent=1) + "\n")
    return positions


# --- labels ----------------------------------------------------------------------------------------

def _bandwidth(mbps: int | None) -> str:
    """
    >>> _bandwidth(20), _bandwidth(1000), _bandwidth(None)
    ('20 Mbit/s', '1 Gbit/s', '')
    """
    if not mbps:
        return ""
    return f"{mbps // 1000} Gbit/s" if mbps >= 1000 and mbps % 1000 == 0 else f"{mbps} Mbit/s"


def link_label_lines(link: Link) -> list[str]:
    """What a link says about itself: WAN circuit id, bandwidth and the two ends' addresses.

    >>> from dzops.report.topology import Link
    >>> link_label_lines(Link(("a", "e1"), ("b", "e0"), "wan", circuit_id="BT-1", bandwidth_mbps=20,
    ...                       a_addresses=["10.0.0.1/30"], subnet="10.0.0.0/30"))
    ['BT-1', '20 Mbit/s', '10.0.0.1/30 – (10.0.0.0/30)']
    >>> link_label_lines(Link(("a", "e1"), ("b", "e0"), "lan"))
    []
    """
    if link.kind != "wan":
        return []
    a = ", ".join(link.a_addresses) or (f"({link.subnet})" if link.subnet else "?")
    b = ", ".join(link.b_addresses) or (f"({link.subnet})" if link.subnet else "?")
    return [x for x in (link.circuit_id, _bandwidth(link.bandwidth_mbps), f"{a} – {b}") if x]


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


# --- Graphviz --------------------------------------------------------------------------------------

def _q(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks.

    >>> _q('a "b"\\nc\\\\')
    '"a \\\\"b\\\\"\\\\nc\\\\\\\\"'
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _legend_html() -> str:
    rows = "".join(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{s.color}">{escape(s.sample)}</FONT></TD>'
                   f'<TD ALIGN="LEFT">{escape(s.label)}</TD></TR>' for s in STYLES.values())
    return (f'<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" BGCOLOR="white">'
            f'<TR><TD COLSPAN="2"><B>Legend</B></TD></TR>{rows}</TABLE>>')


def _bbox(points: Iterable[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = zip(*points, strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def to_dot(topology: Topology, positions: dict[str, tuple[float, float]]) -> str:
    """DOT for `neato -n2`: every node pinned, site clusters with computed bounding boxes."""
    # Obstacle-avoiding splines cost far more than linear time (about 20 s for 100 devices on
    # this 2-core machine); straight lines keep big diagrams fast. Big PNGs are capped in size.
    big = len(topology.nodes) > 60
    out = [f"graph {_q(topology.title)} {{",
           f"  graph [label={_q(topology.title)}, labelloc=t, fontsize=20, fontname=Helvetica, "
           f"splines={'line' if big else 'true'}, outputorder=edgesfirst, pad=0.3"
           f"{SIZE_CAP if len(topology.nodes) > 300 else ''}];",
           "  node [fontname=Helvetica, fontsize=10, style=filled, penwidth=1.2];",
           "  edge [fontname=Helvetica, fontsize=8];"]
    for index, site, members in _site_groups(topology):
        x0, y0, x1, y1 = _bbox(positions[n.name] for n in members)
        # dot's y grows upwards: the layout's y (downwards) is negated.
        bb = f"{x0 - NODE_W / 2 - 12},{-(y1 + NODE_H / 2 + 12)},{x1 + NODE_W / 2 + 12},{-(y0 - NODE_H / 2 - 30)}"
        title = topology.sites.get(site) or ("Not in the inventory" if not site else site)
        out.append(f"  subgraph {_q(f'cluster_{index}')} {{")
        out.append(f"    graph [label={_q(title)}, bb={_q(bb)}, style=rounded, color=\"#607d8b\", "
                   f"labeljust=l, fontsize=12, id={_q(f'site:{site}')}];")
        for node in sorted(members, key=lambda n: n.name):
            shape, fill = SHAPES.get(node.function, SHAPES["unknown"])
            x, y = positions[node.name]
            out.append(f"    {_q(node.name)} [label={_q(chr(10).join(node_label_lines(node)))}, shape={shape}, "
                       f"fillcolor={_q(fill)}, pos={_q(f'{x},{-y}')}, width={NODE_W / 72:.2f}, "
                       f"height={NODE_H / 72:.2f}, id={_q(f'node:{node.name}')}];")
        out.append("  }")
    for link in topology.links:
        style = STYLES[link.status]
        attrs = [f"color={_q(style.color)}", f"style={style.dot_style}", f"penwidth={style.width}",
                 f"id={_q(f'link:{link.id}')}", f"class={_q(link.status)}",
                 f"tooltip={_q(f'{link.a[0]} {link.a[1]} - {link.b[0]} {link.b[1]}: {link.status}')}",
                 f"taillabel={_q(link.a[1])}", f"headlabel={_q(link.b[1])}"]
        lines = link_label_lines(link)
        if lines:
            attrs.append(f"label={_q(chr(10).join(lines))}")
        out.append(f"  {_q(link.a[0])} -- {_q(link.b[0])} [{', '.join(attrs)}];")
    if positions:
        x0, y0, x1, _y1 = _bbox(positions[n] for n in topology.nodes)
        out.append(f"  \"__legend__\" [shape=plaintext, style=\"\", label={_legend_html()}, "
                   f"pos={_q(f'{x1 + NODE_W / 2 + 200},{-(y0)}')}, id=\"legend\"];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_graphviz(dot_text: str, targets: dict[str, Path]) -> None:
    """Run Graphviz once for every requested output (svg, png): the layout is computed once."""
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
    """An uncompressed draw.io file: sites as containers, one cell per device and per link."""
    cells = ['<mxCell id="0"/>', '<mxCell id="1" parent="0"/>']
    for _, site, members in _site_groups(topology):
        x0, y0, x1, y1 = _bbox(positions[n.name] for n in members)
        sx, sy = x0 - NODE_W / 2 - 12, y0 - NODE_H / 2 - 30
        sw, sh = x1 - x0 + NODE_W + 24, y1 - y0 + NODE_H + 42
        title = topology.sites.get(site) or ("Not in the inventory" if not site else site)
        sid = f"site:{site}"
        cells.append(f'<mxCell id={quoteattr(sid)} value={quoteattr(title)} '
                     f'style="swimlane;startSize=24;rounded=1;fillColor=none;strokeColor=#607d8b;" vertex="1" '
                     f'parent="1"><mxGeometry x="{sx:.1f}" y="{sy:.1f}" width="{sw:.1f}" height="{sh:.1f}" '
                     f'as="geometry"/></mxCell>')
        for node in sorted(members, key=lambda n: n.name):
            x, y = positions[node.name]
            _shape, fill = SHAPES.get(node.function, SHAPES["unknown"])
            label = "<br>".join(escape(line) for line in node_label_lines(node))
            style = f"{DRAWIO_SHAPES.get(node.function, DRAWIO_SHAPES['unknown'])}whiteSpace=wrap;html=1;fillColor={fill};"
            cells.append(f'<mxCell id={quoteattr("node:" + node.name)} value={quoteattr(label)} '
                         f'style={quoteattr(style)} vertex="1" parent={quoteattr(sid)}>'
                         f'<mxGeometry x="{x - NODE_W / 2 - sx:.1f}" y="{y - NODE_H / 2 - sy:.1f}" '
                         f'width="{NODE_W}" height="{NODE_H}" as="geometry"/></mxCell>')
    for link in topology.links:
        style = STYLES[link.status]
        label = "<br>".join(escape(line) for line in link_label_lines(link))
        cells.append(f'<mxCell id={quoteattr("link:" + link.id)} value={quoteattr(label)} '
                     f'style={quoteattr("endArrow=none;html=1;fontSize=9;" + style.drawio)} edge="1" parent="1" '
                     f'source={quoteattr("node:" + link.a[0])} target={quoteattr("node:" + link.b[0])}>'
                     f'<mxGeometry relative="1" as="geometry"/></mxCell>')
    if positions:
        _x0, y0, x1, _y1 = _bbox(positions[n] for n in topology.nodes)
        legend = "<b>Legend</b><br>" + "<br>".join(
            f'<font color="{s.color}">{escape(s.sample)}</font> {escape(s.label)}' for s in STYLES.values())
        cells.append(f'<mxCell id="legend" value={quoteattr(legend)} style="text;html=1;align=left;'
                     f'verticalAlign=top;strokeColor=#000000;fillColor=#ffffff;" vertex="1" parent="1">'
                     f'<mxGeometry x="{x1 + NODE_W}" y="{y0}" width="260" height="110" as="geometry"/></mxCell>')
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
    """A Mermaid flowchart: a subgraph per site, exactly one edge per link, styled by status."""
    ids = mermaid_ids(topology.nodes)
    out = ["flowchart TB", f"  %% {topology.title}; legend: " +
           "; ".join(f"{s.mermaid_arrow} {s.color} {status}" for status, s in STYLES.items())]
    for index, site, members in _site_groups(topology):
        title = topology.sites.get(site) or ("Not in the inventory" if not site else site)
        out.append(f"  subgraph site_{index}[{_mq(title)}]")
        for node in sorted(members, key=lambda n: n.name):
            out.append(f"    {ids[node.name]}[{_mq('<br/>'.join(node_label_lines(node)))}]")
        out.append("  end")
    styles = []
    for index, link in enumerate(topology.links):
        style = STYLES[link.status]
        text = " · ".join(link_label_lines(link)) or f"{link.a[1]} – {link.b[1]}"
        out.append(f"  {ids[link.a[0]]} {style.mermaid_arrow}|{_mq(text)}| {ids[link.b[0]]}")
        styles.append(f"  linkStyle {index} stroke:{style.color},stroke-width:{style.width:g}px")
    return "\n".join(out + styles) + "\n"


def mermaid_markdown(topology: Topology) -> str:
    legend = "\n".join(f"| `{s.mermaid_arrow}` | {s.color} | {s.label} |" for s in STYLES.values())
    return (f"# {topology.title}\n\n```mermaid\n{to_mermaid(topology)}```\n\n"
            f"| line | colour | link status |\n| --- | --- | --- |\n{legend}\n")


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

