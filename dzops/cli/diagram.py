"""`dzops diagram`: draw the network as it is, against the network as declared."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say


def discover_topology(settings: Settings, site: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(inventory, topology, discovery results): shared by `dzops diagram` and `dzops docs`."""
    from dzops.exceptions import UsageError
    from dzops.execute.discover import discover
    from dzops.report.topology import build_topology, declared_links

    inventory = settings.load_inventory()
    if site and site not in inventory.sites:
        raise UsageError(f"unknown site '{site}' (known: {', '.join(sorted(inventory.sites))})")
    hosts = None
    if site:
        # Far ends of the site's links too: a link is only classified from both of its ends.
        inside = {n for n, d in inventory.devices.items() if d.site == site}
        ends = {e[0] for link in declared_links(inventory) for e in (link.a, link.b)
                if link.a[0] in inside or link.b[0] in inside}
        hosts = sorted((inside | ends) & set(inventory.devices))
    say(f"dzops: discovering {len(hosts) if hosts is not None else len(inventory.devices)} device(s)")
    found = discover(inventory, hosts, progress=lambda h, m: say(f"  {h}: {m}") if settings.verbose else None)
    return inventory, build_topology(inventory, found), found


def layout_path(inventory: Any) -> Path:
    from dzops.report.diagram import LAYOUT_FILE

    return Path(inventory.root) / LAYOUT_FILE


def default_output(inventory: Any, name: str) -> Path:
    return (Path(inventory.report_dir) if inventory.report_dir else Path(".")) / name


def diagram(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(
        "--site", metavar="SITE", autocompletion=complete.sites, help="Only this site (and the far ends of its links).")] = None,
    formats: Annotated[str, typer.Option(
        "--format", metavar="svg|png|drawio|mermaid[,...]", autocompletion=complete.diagram_formats,
        help="Comma list of svg, png, drawio, mermaid.")] = "svg,png,drawio,mermaid",
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help="Directory for the files (default REPORT_DIR/diagrams).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Discover LLDP neighbours, merge with the declared links, draw every link by status."""
    from dzops.cli.exit_codes import exit_code_for_results
    from dzops.exceptions import UsageError
    from dzops.report import diagram as render
    from dzops.report.topology import site_view

    settings: Settings = ctx.obj
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in render.FORMATS]
    if unknown or not wanted:
        raise UsageError(f"--format: unknown format(s) {', '.join(unknown) or '(none)'} (known: {', '.join(render.FORMATS)})")
    inventory, topology, found = discover_topology(settings, site)
    positions = render.ensure_layout(topology, layout_path(inventory))
    view = site_view(topology, site) if site else topology
    out = output or default_output(inventory, "diagrams")
    files = render.render(view, positions, wanted, out, f"topology-{site}" if site else "topology")
    for name, d in sorted(found.items()):
        if d.status in ("unreachable", "failed"):
            say(f"dzops: {name}: {d.status}: {d.error}")
    counts = view.counts()
    if settings.json or json_output:
        emit_json({"files": {k: str(v) for k, v in files.items()}, "layout": str(layout_path(inventory)),
                   "counts": counts, "nodes": sorted(view.nodes), "links": [link.to_dict() for link in view.links],
                   "discovery": {h: {"status": d.status, "error": d.error} for h, d in sorted(found.items())}})
    else:
        for link in view.links:
            emit_text(f"{link.status:<18} {link.kind:<10} {link.a[0]} {link.a[1]} -- {link.b[0]} {link.b[1]}"
                      + (f"  {link.circuit_id}" if link.circuit_id else ""))
        say("dzops: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; files in {out}")
    code = exit_code_for_results([d.status for d in found.values()])
    if code:
        raise typer.Exit(code)
