"""`dzops docs`: a static documentation site of the Dzongkhag, from the inventory and one discovery.

Pages (templates/report/docs/*.j2): index, sites, devices (with discovered facts), IP plan,
VLANs, SSIDs, WAN circuits, diagrams, asset register (HTML and CSV). Every page carries the date
it was generated. Secrets never reach a template: pages are built from plain dicts made here,
and no PSK, RADIUS secret or password is ever put into them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dzops.execute.discover import DeviceDiscovery
from dzops.inventory.models import Inventory
from dzops.report import diagram
from dzops.report.topology import Topology, site_view
from dzops.resources import templates_dir
from dzops.scrub import egress, egress_data

TEMPLATES_DIR = templates_dir() / "report" / "docs"
PAGES = (("index.html", "Overview"), ("sites.html", "Sites"), ("devices.html", "Devices"),
         ("ip-plan.html", "IP plan"), ("vlans.html", "VLANs"), ("ssids.html", "SSIDs"),
         ("wan.html", "WAN circuits"), ("diagrams.html", "Diagrams"), ("assets.html", "Asset register"))
ASSET_COLUMNS = ("name", "site", "function", "role", "platform", "vendor", "model", "serial", "os_version",
                 "uptime", "mgmt_address", "discovery")


def uptime_text(seconds: int | None) -> str:
    """
    >>> uptime_text(93784), uptime_text(None)
    ('1d 2h 3m', '')
    """
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d {rest // 3600}h {rest % 3600 // 60}m"


def asset_rows(inventory: Inventory, found: Mapping[str, DeviceDiscovery]) -> list[dict[str, str]]:
    rows = []
    for device in sorted(inventory.devices.values(), key=lambda d: (d.site, d.name)):
        d = found.get(device.name)
        facts = d.facts if d is not None and d.discovered else {}
        rows.append({
            "name": device.name, "site": device.site, "function": device.function, "role": device.device_role,
            "platform": device.platform, "vendor": str(facts.get("vendor") or ""),
            "model": str(facts.get("model") or device.model or ""), "serial": str(facts.get("serial") or ""),
            "os_version": str(facts.get("os_version") or ""), "uptime": uptime_text(facts.get("uptime_seconds")),
            "mgmt_address": str(device.mgmt_address), "discovery": d.status if d is not None else "not-run",
        })
    return rows


def assets_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ASSET_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def ip_plan(inventory: Inventory, found: Mapping[str, DeviceDiscovery]) -> dict[str, Any]:
    pools = inventory.address_pools
    addresses = []
    for device in sorted(inventory.devices.values(), key=lambda d: d.name):
        addresses.append({"host": device.name, "interface": "management", "address": str(device.mgmt_address),
                          "source": "inventory"})
        if device.loopback:
            addresses.append({"host": device.name, "interface": "loopback", "address": str(device.loopback),
                              "source": "inventory"})
        d = found.get(device.name)
        live = d.interfaces if d is not None and d.discovered else {}
        for name in sorted(set(device.interfaces) | {n for n, s in live.items() if s.addresses}):
            if name in ("lo", "mgmt0"):
                continue
            declared = device.interfaces.get(name)
            seen = [a for a in live[name].addresses if ":" not in a] if name in live else []
            if declared is not None and declared.address:
                addresses.append({"host": device.name, "interface": name, "address": str(declared.address),
                                  "source": "inventory" + (" + seen" if str(declared.address) in seen else "")})
            for addr in seen:
                if declared is None or str(declared.address) != addr:
                    addresses.append({"host": device.name, "interface": name, "address": addr, "source": "seen"})
    return {
        "pools": [{"name": k, "prefix": str(v)} for k, v in (("management", pools.management), ("wan", pools.wan),
                                                              ("loopback", pools.loopback), ("lan", pools.lan))],
        "sites": [{"site": s.title, "prefix": str(s.lan_prefix)} for s in inventory.sites.values()],
        "wan": [{"link": w.name, "subnet": str(w.subnet or "not allocated")} for w in inventory.wan_links],
        "addresses": addresses,
    }


def ssid_rows(inventory: Inventory) -> list[dict[str, Any]]:
    """SSID profiles and the APs serving them; PSKs and RADIUS secrets are left out by construction."""
    rows = []
    for key, p in inventory.ssid_profiles.items():
        aps = sorted(d.name for d in inventory.devices.values() if key in d.ssids)
        rows.append({"profile": key, "ssid": p.ssid, "security": p.security, "vlan": p.vlan, "band": p.band,
                     "hidden": p.hidden, "client_isolation": p.client_isolation,
                     "radius": str(p.radius.server) if p.radius else "", "aps": aps})
    return rows


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                              undefined=jinja2.StrictUndefined, autoescape=True,
                              trim_blocks=True, lstrip_blocks=True)


def build_site(inventory: Inventory, topology: Topology, found: Mapping[str, DeviceDiscovery],
               positions: dict[str, tuple[float, float]], output: Path,
               generated: dt.datetime | None = None) -> list[Path]:
    """Write the whole site into `output`; returns the files written."""
    generated = generated or dt.datetime.now().astimezone()
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    diagrams: list[dict[str, Any]] = []
    views = [("topology", topology.title, topology)]
    views += [(f"site-{name}", topology.sites[name], site_view(topology, name)) for name in inventory.sites]
    # One Graphviz process per diagram, side by side: each lays out its own view into its own files,
    # and the processes, not Python, do the work (a Dzongkhag's 13 diagrams took 7 s one by one).
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        rendered = list(pool.map(lambda v: diagram.render(v[2], positions, diagram.FORMATS, output / "diagrams", v[0]),
                                 views))
    for (stem, title, view), files in zip(views, rendered, strict=True):
        written += files.values()
        diagrams.append({"stem": stem, "title": title,
                         "files": {k: f"diagrams/{v.name}" for k, v in files.items()},
                         "counts": view.counts()})
    rows = asset_rows(inventory, found)
    (output / "assets.csv").write_text(egress(assets_csv(rows)))
    written.append(output / "assets.csv")
    devices = []
    for row in rows:
        device = inventory.devices[row["name"]]
        d = found.get(device.name)
        devices.append({**row, "interfaces": [
            {"name": name, "description": i.description or "", "address": str(i.address or ""),
             "up": (d.interfaces[name].up if d is not None and name in d.interfaces else None),
             "seen": ", ".join(d.interfaces[name].addresses) if d is not None and name in d.interfaces else ""}
            for name, i in device.interfaces.items()],
            "lldp": [{"interface": n.interface, "system": n.system, "port": n.port} for n in (d.lldp if d else [])],
            "ospf": [{"router_id": n.router_id, "state": n.state, "interface": n.interface}
                     for n in (d.ospf if d else [])],
            "error": d.error if d is not None and d.error else ""})
    sites = []
    for name, site in inventory.sites.items():
        sites.append({"name": name, "title": site.title, "kind": site.kind, "location": site.location or "",
                      "lan_prefix": str(site.lan_prefix),
                      "devices": [r for r in rows if r["site"] == name], "diagram": f"diagrams/site-{name}.svg"})
    context = {
        "title": topology.title, "dzongkhag": inventory.dzongkhag.name, "pages": PAGES,
        "generated": generated.strftime("%Y-%m-%d %H:%M %Z").strip(), "sites": sites, "devices": devices,
        "assets": rows, "asset_columns": ASSET_COLUMNS, "ip_plan": ip_plan(inventory, found),
        "vlans": [{"id": v.id, "name": v.name,
                   "ssids": [p.ssid for p in inventory.ssid_profiles.values() if p.vlan == v.id]}
                  for v in sorted(inventory.vlans.values(), key=lambda v: v.id)],
        "ssids": ssid_rows(inventory),
        "wan": [{**link.to_dict(), "bandwidth": diagram._bandwidth(link.bandwidth_mbps)}
                for link in topology.links if link.kind == "wan"],
        "links": [link.to_dict() for link in topology.links], "counts": topology.counts(),
        "diagrams": diagrams,
    }
    # The site leaves dzops: what devices said (descriptions, errors) is scrubbed as data before
    # the HTML escapes it.
    context = {**egress_data({k: v for k, v in context.items() if k != "pages"}), "pages": PAGES}
    env = _environment()
    for page, _label in PAGES:
        path = output / page
        path.write_text(env.get_template(page.replace(".html", ".html.j2")).render(page=page, **context))
        written.append(path)
    (output / "style.css").write_text((TEMPLATES_DIR / "style.css").read_text())
    written.append(output / "style.css")
    return written
