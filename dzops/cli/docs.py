"""`dzops docs`: the Dzongkhag's static documentation site, from the inventory and the live network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dzops.cli.contract import contract
from dzops.cli.output import ForksOption, JsonOption, Settings, emit_json, emit_text, say


@contract
def docs(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help="Directory for the site (default REPORT_DIR/docs).")] = None,
    forks: ForksOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sites, devices with facts, IP plan, VLANs, SSIDs (no keys), WAN circuits, diagrams, asset register.

    With --check the network is discovered but nothing is written."""
    from dzops.cli.diagram import default_output, discover_topology, layout_path
    from dzops.cli.exit_codes import exit_code_for_results
    from dzops.report.diagram import ensure_layout
    from dzops.report.docs import build_site

    settings: Settings = ctx.obj
    inventory, topology, found = discover_topology(settings)
    out = output or default_output(inventory, "docs")
    if settings.check:
        say(f"dzops: check: the site would be written to {out}; nothing written")
        files: list[Path] = []
    else:
        positions = ensure_layout(topology, layout_path(inventory))
        files = build_site(inventory, topology, found, positions, out)
    if settings.json:
        emit_json({"output": str(out), "index": str(out / "index.html"), "check": settings.check,
                   "files": [str(f) for f in files],
                   "counts": topology.counts(),
                   "discovery": {h: {"status": d.status, "error": d.error} for h, d in sorted(found.items())}})
    elif not settings.check:
        emit_text(str(out / "index.html"))
        say(f"dzops: {len(files)} file(s) written to {out}")
    code = exit_code_for_results([d.status for d in found.values()])
    if code:
        raise typer.Exit(code)
