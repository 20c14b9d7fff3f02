"""Discovery, diagrams and the docs site against the provisioned lab.

Fault tests decide from one discovery snapshot (see dzops.report.topology): a cut cable counts as
"not seen" because its interface loses carrier, although the far end's LLDP entry lingers for
the 120 s TTL; a new cable is seen as soon as both lldpd have exchanged frames (`lldpcli update`).
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from dzops.execute.discover import discover

pytestmark = pytest.mark.lab

HQ = "punakha-hq-rtr1"
CUT = ("gewog-talo-rtr1", "eth0")  # the b end of WAN link hq-talo
EXTRA = (("gewog-talo-sw1", "dgx0"), ("gewog-toebesa-sw1", "dgx1"))  # an undeclared patch cable


def lab_links(lab) -> set[frozenset]:
    return {frozenset(((link.a_node, link.a_interface), (link.b_node, link.b_interface))) for link in lab.spec.links}


def run_dzops(handle, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", *args], env=handle.env(), capture_output=True,
                          text=True, timeout=timeout)


def diagram_json(handle, out: Path, *extra: str) -> dict:
    proc = run_dzops(handle, "diagram", "--output", str(out), "--json", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def ends(link: dict) -> frozenset:
    return frozenset((tuple(link["a"]), tuple(link["b"])))


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def test_discovery_reads_lldp_ospf_addresses_and_facts(provisioned_lab):
    handle = provisioned_lab.handle
    inventory = handle.inventory()
    found = discover(inventory)
    assert {h: d.status for h, d in found.items()} == {h: "ok" for h in inventory.devices}
    hq = found[HQ]
    gewog_routers = {d.name for d in inventory.devices.values() if d.device_role == "gewog-router"}
    assert {n.system for n in hq.lldp} == gewog_routers | {"punakha-hq-sw1"}
    assert sum(1 for n in hq.ospf if n.state.startswith("Full")) == 11
    wan = inventory.wan_link("hq-barp")
    assert any(a.startswith(str(next(wan.subnet.hosts()))) for a in hq.interfaces["eth1"].addresses)
    assert hq.facts["os_version"].startswith("FRRouting 8.") and "Debian" in hq.facts["os_version"]
    server = found["punakha-hq-srv1"]
    assert server.facts["os_version"].startswith("Debian") and server.facts["uptime_seconds"] > 0
    assert [(n.interface, n.system, n.port) for n in server.lldp] == [("eth0", "punakha-hq-sw1", "swp2")]
    password = inventory.devices["punakha-hq-srv1"].password.get_secret_value()
    assert password not in json.dumps({h: d.to_dict() for h, d in found.items()})


def test_diagram_has_exactly_the_lab_devices_and_links(provisioned_lab, tmp_path):
    handle = provisioned_lab.handle
    lab = handle.lab
    data = diagram_json(handle, tmp_path)
    assert set(data["nodes"]) == {node.name for node in lab.spec.nodes}
    assert {ends(link) for link in data["links"]} == lab_links(lab)
    assert {link["status"] for link in data["links"]} == {"confirmed"}, \
        [link["id"] for link in data["links"] if link["status"] != "confirmed"]
    files = {k: Path(v) for k, v in data["files"].items()}
    png = files["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 1000 and height > 500
    model = ET.parse(files["drawio"]).getroot().find("diagram/mxGraphModel")
    cells = model.findall("root/mxCell")
    assert len([c for c in cells if c.get("id", "").startswith("node:")]) == len(lab.spec.nodes)
    assert len([c for c in cells if c.get("edge") == "1"]) == len(lab.spec.links)
    mermaid = files["mermaid"].read_text().splitlines()
    assert len([line for line in mermaid if " ---|" in line]) == len(lab.spec.links)
    assert (handle.inventory_dir / "diagram-layout.json").is_file()


def test_cut_link_and_undeclared_cable_are_drawn_as_such(provisioned_lab, tmp_path):
    handle = provisioned_lab.handle
    lab = handle.lab
    (a_node, a_if), (b_node, b_if) = EXTRA
    created = False
    lab.set_link(*CUT, False)
    try:
        subprocess.run(["ip", "link", "add", a_if, "netns", lab.netns_name(a_node), "type", "veth", "peer", "name",
                        b_if, "netns", lab.netns_name(b_node)], check=True, capture_output=True)
        created = True
        for node, ifname in EXTRA:
            subprocess.run(["ip", "-n", lab.netns_name(node), "link", "set", ifname, "up"], check=True)
        def both_see_each_other() -> bool:
            for node in (a_node, b_node):
                lab.exec(node, ["lldpcli", "update"])
            return ((a_if, b_node, b_if) in lab.lldp_neighbors(a_node)
                    and (b_if, a_node, a_if) in lab.lldp_neighbors(b_node))
        wait_for(both_see_each_other, 60, "LLDP on the new cable")
        data = diagram_json(handle, tmp_path)
    finally:
        if created:
            subprocess.run(["ip", "-n", lab.netns_name(a_node), "link", "del", a_if], check=False)
        lab.set_link(*CUT, True)
    status = {ends(link): link["status"] for link in data["links"]}
    wan = handle.inventory().wan_link("hq-talo")
    cut = frozenset(((wan.a.host, wan.a.interface), (wan.b.host, wan.b.interface)))
    extra = frozenset(EXTRA)
    assert status.pop(cut) == "declared-not-seen"
    assert status.pop(extra) == "seen-not-declared"
    assert set(status.values()) == {"confirmed"}
    assert set(status) == lab_links(lab) - {cut}
    svg = Path(data["files"]["svg"]).read_text()
    assert 'class="edge declared&#45;not&#45;seen"' in svg and 'class="edge seen&#45;not&#45;declared"' in svg
    # Put the WAN link back as other tests expect it: OSPF Full again on both ends.
    def talo_full() -> bool:
        out = lab.exec(HQ, ["vtysh", "-c", "show ip ospf neighbor"]).stdout
        return out.count("Full/-") == 11
    wait_for(talo_full, 120, "OSPF Full again on hq-talo")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.refs.append(attrs["href"])
        if tag in ("img", "link") and (attrs.get("src") or attrs.get("href")):
            self.refs.append(attrs.get("src") or attrs["href"])
        if attrs.get("id"):
            self.anchors.add(attrs["id"])


def test_docs_site_has_no_broken_links_and_no_secrets(provisioned_lab, tmp_path):
    handle = provisioned_lab.handle
    inventory = handle.inventory()
    site = tmp_path / "site"
    proc = run_dzops(handle, "docs", "--output", str(site), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages = sorted(site.glob("*.html"))
    assert {p.name for p in pages} >= {"index.html", "sites.html", "devices.html", "ip-plan.html", "vlans.html",
                                       "ssids.html", "wan.html", "diagrams.html", "assets.html"}
    parsed = {}
    for page in pages:
        refs = _Refs()
        refs.feed(page.read_text())
        parsed[page.name] = refs
    checked = 0
    for page, refs in parsed.items():
        for ref in refs.refs:
            assert not urlparse(ref).scheme, f"{page}: external link {ref}"
            target, fragment = urldefrag(ref)
            path = site / (target or page)
            assert path.is_file(), f"{page}: broken link {ref}"
            if fragment and path.suffix == ".html":
                assert fragment in parsed[path.name].anchors, f"{page}: broken anchor {ref}"
            checked += 1
    assert checked > 100
    rows = list(csv.DictReader((site / "assets.csv").open()))
    assert {r["name"] for r in rows} == set(inventory.devices)
    assert all(r["os_version"] for r in rows)
    secrets = [p.psk.get_secret_value() for p in inventory.ssid_profiles.values() if p.psk]
    secrets += [d.password.get_secret_value() for d in inventory.devices.values() if d.password]
    for path in site.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            text = path.read_text()
            assert not any(s in text for s in secrets), f"a secret leaked into {path.name}"
    assert "Punakha-Staff" in (site / "ssids.html").read_text()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "apt-get install -y chromium"
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", (site / "index.html").as_uri()],
                             capture_output=True, text=True, timeout=180)
        shot = tmp_path / "index.png"
        subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,1000",
                        (site / "diagrams.html").as_uri()], capture_output=True, text=True, timeout=180)
    assert "Punakha Dzongkhag" in dom.stdout and 'src="diagrams/topology.svg"' in dom.stdout
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
