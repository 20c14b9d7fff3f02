"""Rendering a topology: Graphviz SVG/PNG, draw.io, Mermaid, and a layout that stays put."""

from __future__ import annotations

import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dzops.report import diagram
from dzops.report.topology import STATUSES, Link, Node, Topology


def sample(extra_node: bool = False) -> Topology:
    nodes = {
        "hq-rtr1": Node("hq-rtr1", "hq", "routers", mgmt_address="10.0.0.1"),
        "hq-sw1": Node("hq-sw1", "hq", "switches"),
        "g1-rtr1": Node("g1-rtr1", "g1", "routers"),
        "g1-ap1": Node("g1-ap1", "g1", "access_points"),
        "rogue": Node("rogue", "", declared=False),
    }
    if extra_node:
        nodes["g1-sw1"] = Node("g1-sw1", "g1", "switches")
    links = [
        Link(("hq-rtr1", "eth1"), ("g1-rtr1", "eth0"), "wan", "confirmed", name="hq-g1", circuit_id="BT-PNK-0001",
             bandwidth_mbps=20, a_addresses=["10.30.255.1/30"], b_addresses=["10.30.255.2/30"]),
        Link(("hq-rtr1", "eth0"), ("hq-sw1", "swp1"), "lan", "declared-not-seen"),
        Link(("g1-ap1", "eth0"), ("g1-rtr1", "eth1"), "uplink", "unverified"),
        Link(("hq-sw1", "swp9"), ("rogue", "eth0"), "undeclared", "seen-not-declared"),
    ]
    return Topology("Test Dzongkhag", {"hq": "HQ \"main\" <office>", "g1": "Gewog One"}, nodes, links)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Topology, dict[str, Path], Path]:
    topology = sample()
    layout = tmp_path / "diagram-layout.json"
    positions = diagram.ensure_layout(topology, layout)
    return topology, diagram.render(topology, positions, diagram.FORMATS, tmp_path / "out"), layout


def test_png_is_a_real_image(rendered) -> None:
    _, files, _ = rendered
    width, height = png_size(files["png"])
    assert width > 400 and height > 200


def test_svg_has_every_node_and_link_styled_by_status(rendered) -> None:
    topology, files, _ = rendered
    svg = ET.parse(files["svg"]).getroot()
    ids = {g.get("id") for g in svg.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"node:{n}" for n in topology.nodes} <= ids
    assert {f"link:{link.id}" for link in topology.links} <= ids
    groups = {g.get("id"): g for g in svg.iter("{http://www.w3.org/2000/svg}g")}
    for link in topology.links:
        group = groups[f"link:{link.id}"]
        assert group.get("class") == f"edge {link.status}"
        strokes = {p.get("stroke") for p in group.iter("{http://www.w3.org/2000/svg}path")}
        assert strokes == {diagram.STYLES[link.status].color}
    text = files["svg"].read_text()
    assert "BT&#45;PNK&#45;0001" in text and "20 Mbit/s" in text and "10.30.255.1/30" in text  # WAN label
    assert "Legend" in text and all(diagram.STYLES[s].label in text for s in STATUSES)
    assert "Gewog One" in text  # site clusters


def test_drawio_parses_with_one_cell_per_node_and_link(rendered) -> None:
    topology, files, _ = rendered
    root = ET.parse(files["drawio"]).getroot()
    assert root.tag == "mxfile"
    model = root.find("diagram/mxGraphModel")
    assert model is not None
    cells = model.findall("root/mxCell")
    vertices = [c for c in cells if (c.get("id") or "").startswith("node:")]
    edges = [c for c in cells if c.get("edge") == "1"]
    assert sorted(c.get("id") for c in vertices) == sorted(f"node:{n}" for n in topology.nodes)
    assert len(edges) == len(topology.links)
    cell_ids = {c.get("id") for c in cells}
    assert all(e.get("source") in cell_ids and e.get("target") in cell_ids for e in edges)
    assert all(c.find("mxGeometry") is not None for c in vertices + edges)
    assert all(v.get("parent", "").startswith("site:") for v in vertices)


def test_mermaid_has_one_edge_per_link(rendered) -> None:
    topology, files, _ = rendered
    text = files["mermaid"].read_text()
    edges = [line for line in text.splitlines() if re.match(r"\s+n_\S+ (---|-\.-|===)\|", line)]
    assert len(edges) == len(topology.links)
    assert len(re.findall(r"^\s+linkStyle \d+ ", text, re.M)) == len(topology.links)
    assert "#quot;main#quot;" in text  # quotes in titles cannot break the syntax
    assert files["markdown"].read_text().count("```mermaid") == 1


def test_layout_is_created_once_and_kept(tmp_path: Path, rendered) -> None:
    topology, files, layout = rendered
    first = json.loads(layout.read_text())["positions"]
    assert set(first) == set(topology.nodes)
    before = layout.stat().st_mtime_ns
    again = diagram.render(topology, diagram.ensure_layout(topology, layout), ["svg"], tmp_path / "again")
    assert layout.stat().st_mtime_ns == before  # nothing new: the file is not rewritten
    assert again["dot"].read_text() == files["dot"].read_text()  # same network, same picture
    grown = sample(extra_node=True)
    positions = diagram.ensure_layout(grown, layout)
    kept = json.loads(layout.read_text())["positions"]
    assert {n: kept[n] for n in first} == first  # old devices did not move
    new = positions["g1-sw1"]
    assert all(tuple(p) != new for n, p in first.items())


def test_moved_box_in_the_layout_file_is_respected(tmp_path: Path) -> None:
    topology = sample()
    layout = tmp_path / "diagram-layout.json"
    data = {"positions": {"hq-rtr1": [5000.0, 40.0]}}
    layout.write_text(json.dumps(data))
    positions = diagram.ensure_layout(topology, layout)
    assert positions["hq-rtr1"] == (5000.0, 40.0)
    assert 'pos="5000.0,-40.0"' in diagram.to_dot(topology, positions)


@pytest.mark.parametrize(("content", "message"), [
    pytest.param("not json", "not a diagram layout file", id="garbage"),
    pytest.param('{"positions": {"a": [1]}}', "not a diagram layout file", id="short-pair"),
])
def test_broken_layout_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    layout = tmp_path / "diagram-layout.json"
    layout.write_text(content)
    with pytest.raises(diagram.DiagramError, match=message):
        diagram.ensure_layout(sample(), layout)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(diagram.DiagramError, match="unknown diagram format"):
        diagram.render(sample(), {}, ["visio"], tmp_path)


def test_every_status_has_a_distinct_style() -> None:
    assert set(diagram.STYLES) == set(STATUSES)
    assert len({(s.color, s.dot_style, s.width) for s in diagram.STYLES.values()}) == len(STATUSES)
