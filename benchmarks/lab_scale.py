"""Time to `lab up` and memory per router for labs of 10, 50 and 100 gewog routers (plus the HQ hub).

Memory is the PSS (proportional set size: shared pages split between their users) of every
process in the lab's namespaces, divided by the number of routers. Targets (issue 3): a 1 HQ + 50
gewog lab up in under 30 s, under 25 MB per router. `role s` is the part of `up` spent running
roles/dz_router_access on every router through ansible-runner, as `dzops onboard` does on real
routers. Run as root: `python benchmarks/lab_scale.py [N ...]`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_inventory import write_inventory  # noqa: E402

# Another engineer's benchmark on the same machine needs another prefix and management /24.
PREFIX = os.environ.get("DZOPS_BENCH_LAB_PREFIX", "bl")
OCTET = int(os.environ.get("DZOPS_BENCH_LAB_OCTET", "61"))


class _AccessTimer(logging.Handler):
    """Picks the time of the dz_router_access phase out of the lab's own log line."""

    seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "dzops.lab.access" and record.args and len(record.args) == 3:
            _AccessTimer.seconds = float(record.args[2])


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_pss_mib(lab) -> float:
    pids: set[int] = set()
    for node in lab.spec.nodes:
        listed = subprocess.run(["ip", "netns", "pids", lab.netns_name(node)], capture_output=True, text=True)
        pids.update(int(p) for p in listed.stdout.split())
    return sum(pss_kib(pid) for pid in pids) / 1024


def measure(gewogs: int) -> tuple[float, float, float, float]:
    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    work = Path(tempfile.mkdtemp(prefix="dzops-bench-lab-"))
    inventory_dir = write_inventory(work / "inventory", gewogs, OCTET, state_dir=work / "state" / PREFIX,
                                    smtp_port=25000 + OCTET)
    lab = Lab(spec_from_inventory(load_inventory(inventory_dir), PREFIX, state_root=work / "state"))
    started = time.perf_counter()
    try:
        status = lab.up()
        up = time.perf_counter() - started
        assert status.healthy, [n.name for n in status.nodes if not n.healthy]
        per_router = lab_pss_mib(lab) / len(lab.spec.nodes)
    finally:
        started = time.perf_counter()
        lab.down()
        down = time.perf_counter() - started
        shutil.rmtree(work, ignore_errors=True)  # the synthetic inventory (it holds its passwords)
    return up, _AccessTimer.seconds, per_router, down


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50, 100]
    access_log = logging.getLogger("dzops.lab.access")
    access_log.setLevel(logging.INFO)
    access_log.addHandler(_AccessTimer())
    print(f"{'routers':>8} {'up s':>7} {'role s':>7} {'MB/router':>10} {'down s':>7}")
    for gewogs in sizes:
        up, role, mib, down = measure(gewogs)
        verdict = ""
        if gewogs == 50:
            verdict = f"  target up < 30 s: {'met' if up < 30 else 'NOT met'}; < 25 MB: {'met' if mib < 25 else 'NOT met'}"
        print(f"{gewogs + 1:>8} {up:>7.1f} {role:>7.1f} {mib:>10.1f} {down:>7.1f}{verdict}")


if __name__ == "__main__":
    main()
