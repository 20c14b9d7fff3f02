"""How the diagram renderers scale: a synthetic Dzongkhag of 1,000 devices, every format.

Generates in memory (no lab, no inventory files) a topology of N devices: an HQ site with a core
router, and gewog sites of router + switch + access point joined to HQ by WAN circuits, with a
mix of link statuses. For each format it times the render (layout file included for the first)
and measures peak Python memory (tracemalloc) plus the Graphviz child's peak RSS
(resource.getrusage RUSAGE_CHILDREN). The same is done for a baseline of --baseline devices in
the same run, and the ratio time(N) / time(baseline) is printed next to the device ratio (a
linear renderer keeps the two close).

    python benchmarks/diagram_scale.py [--devices 1000] [--baseline 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dzops.report import diagram  # noqa: E402
from dzops.report.topology import STATUSES, Link, Node, Topology  # noqa: E402


def synthetic(devices: int) -> Topology:
    sites = {"hq": "Dzongkhag HQ"}
    nodes = {"hq-rtr1": Node("hq-rtr1", "hq", "routers", mgmt_address="10.0.0.1")}
    links: list[Link] = []
    gewogs = max(1, (devices - 1) // 3)
    for g in range(gewogs):
        site = f"g{g:03d}"
        sites[site] = f"Gewog {g:03d}"
        rtr, sw, ap = f"{site}-rtr1", f"{site}-sw1", f"{site}-ap1"
        for name, function in ((rtr, "routers"), (sw, "switches"), (ap, "access_points")):
            nodes[name] = Node(name, site, function, mgmt_address=f"10.{g // 250}.{g % 250}.{len(nodes) % 250}")
        status = STATUSES[g % len(STATUSES)]
        links.append(Link(("hq-rtr1", f"eth{g + 1}"), (rtr, "eth0"), "wan", status, name=f"hq-{site}",
                          circuit_id=f"BT-{g:04d}", bandwidth_mbps=20, a_addresses=[f"10.255.{g // 64}.{g % 64 * 4 + 1}/30"],
                          b_addresses=[f"10.255.{g // 64}.{g % 64 * 4 + 2}/30"]))
        links.append(Link((rtr, "eth1"), (sw, "swp1"), "lan", "confirmed"))
        links.append(Link((ap, "eth0"), (sw, "swp2"), "uplink", "confirmed"))
    return Topology("Synthetic Dzongkhag", sites, nodes, links)


def measure(topology: Topology, fmt: str, out: Path) -> tuple[float, float, float]:
    """(seconds, peak Python MiB, Graphviz peak RSS MiB so far) of one format's render."""
    layout = out / "diagram-layout.json"
    tracemalloc.start()
    start = time.perf_counter()
    positions = diagram.ensure_layout(topology, layout)
    diagram.render(topology, positions, [fmt], out, f"topology-{fmt}")
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak / 2**20, child_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="write the files here instead of a temporary directory")
    args = parser.parse_args()
    results: dict[int, dict[str, tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for size in (args.baseline, args.devices):
            topology = synthetic(size)
            out = root / f"n{size}"
            out.mkdir(parents=True, exist_ok=True)
            results[size] = {fmt: measure(topology, fmt, out) for fmt in diagram.FORMATS}
            print(f"{len(topology.nodes)} devices, {len(topology.links)} links, {len(topology.sites)} sites -> {out}")
    ratio_devices = args.devices / args.baseline
    print(f"\n{'format':<9} {'time N':>9} {'time base':>10} {'ratio':>7} (devices x{ratio_devices:.0f})"
          f" {'py peak MiB':>12} {'graphviz RSS MiB':>17}")
    for fmt in diagram.FORMATS:
        t, mem, rss = results[args.devices][fmt]
        tb = results[args.baseline][fmt][0]
        print(f"{fmt:<9} {t:>8.2f}s {tb:>9.2f}s {t / tb if tb else float('nan'):>7.1f}"
              f" {'':>14}{mem:>12.1f} {rss if fmt in ('svg', 'png') else 0:>17.1f}")


if __name__ == "__main__":
    main()
