"""`dzops diagram`: draw the network as it is, against the network as declared."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.cli import complete
from dzops.cli.contract import contract
from dzops.cli.output import ForksOption, JsonOption, Settings, emit_json, emit_text, say


def discover_topology(settings: Settings, site: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(inventory, topology, discovery results): shared by `dzops diagram` and `dzops docs`."""
    from dzops.cli.progress import progress_for
    from dzops.exceptions import UsageError
    from dzops.execute.discover import discover
    from dzops.inventory.limit import select_hosts
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
    if settings.limit:
        # Only the limit's devices are contacted; a link to a device outside it is drawn 'unverified'
        # unless its own end saw it.
        allowed = set(select_hosts(inventory, settings.limit))
        hosts = [h for h in (hosts if hosts is not None else inventory.devices) if h in allowed]
        if not hosts:
            raise UsageError(f"--limit '{settings.limit}': no device of site '{site}' is in the limit")
    names = sorted(hosts if hosts is not None else inventory.devices)
    say(f"dzops: discovering {len(names)} device(s)")
    with progress_for(settings, "discover", names) as progress:
        found = discover(inventory, hosts, progress=progress.step, workers=settings.forks)
    return inventory, build_topology(inventory, found), found


def layout_path(inventory: Any) -> Path:
    from dzops.report.diagram import LAYOUT_FILE

    return Path(inventory.root) / LAYOUT_FILE


def default_output(inventory: Any, name: str) -> Path:
    return (Path(inventory.report_dir) if inventory.report_dir else Path(".")) / name


@contract
def diagram(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(
        "--site", metavar="SITE", autocompletion=complete.sites, help="Only this site (and the far ends of its links).")] = None,
    formats: Annotated[str, typer.Option(
        "--format", metavar="svg|png|drawio|mermaid[,...]", autocompletion=complete.diagram_formats,
        help="Comma list of svg, png, drawio, mermaid.")] = "svg,png,drawio,mermaid",
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help="Directory for the files (default REPORT_DIR/diagrams).")] = None,
    forks: ForksOption = None,
    json_output: JsonOption = False,
) -> None:
    """Discover LLDP neighbours, merge with the declared links, draw every link by status.

    With --check the links are listed but no file is written (the layout file neither)."""
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
    view = site_view(topology, site) if site else topology
    out = output or default_output(inventory, "diagrams")
    if settings.check:
        files: dict[str, Path] = {}
    else:
        positions = render.ensure_layout(topology, layout_path(inventory))
        files = render.render(view, positions, wanted, out, f"topology-{site}" if site else "topology")
    for name, d in sorted(found.items()):
        if d.status in ("unreachable", "failed"):
            say(f"dzops: {name}: {d.status}: {d.error}")
    counts = view.counts()
    if settings.json:
        emit_json({"files": {k: str(v) for k, v in files.items()}, "layout": str(layout_path(inventory)),
                   "counts": counts, "nodes": sorted(view.nodes), "links": [link.to_dict() for link in view.links],
                   "discovery": {h: {"status": d.status, "error": d.error} for h, d in sorted(found.items())}})
    else:
        for link in view.links:
            emit_text(f"{link.status:<18} {link.kind:<10} {link.a[0]} {link.a[1]} -- {link.b[0]} {link.b[1]}"
                      + (f"  {link.circuit_id}" if link.circuit_id else ""))
        say("dzops: " + ", ".join(f"{n} {s}" for s, n in counts.items())
            + (f"; check: no file written (would write {', '.join(wanted)} to {out})" if settings.check
               else f"; files in {out}"))
    code = exit_code_for_results([d.status for d in found.values()])
    if code:
        raise typer.Exit(code)
