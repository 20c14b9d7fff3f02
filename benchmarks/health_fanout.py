"""`dzops health` on a lab of 1 HQ + 50 gewog routers, next to a parallel-SSH floor from the same run.

Floor: paramiko, 10 workers, per router: connect (host key checked) + one command (`true`) on an
exec channel + close: the same number of SSH sessions one health run opens. The WAN is
provisioned first (links up, OSPF Full), then `dzops --check health` is timed three times (--check:
nothing stored, so every run does the same work). Its pings wait for replies (N echo requests
per direction, 0.2 s apart): that time is the protocol's, counted in, not subtracted.
Floor and health runs alternate, round by round, so a machine shared with other work loads both alike.
Target (issue 18): within 3x of the floor. Run as root:
`python benchmarks/health_fanout.py [GEWOGS] [MGMT_OCTET] [LAB_PREFIX]`; with DZOPS_BENCH_BASELINE_TREE set
to another checkout's root (e.g. `git archive` of an older commit), its `dzops health` is timed in the
same rounds too: a before/after on one lab.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_inventory import write_inventory  # noqa: E402

PREFIX, OCTET, WORKERS = "dzkb", 86, 10


def floor(inventory, known_hosts: Path) -> float:
    import paramiko

    def one(device) -> None:
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(str(device.mgmt_address), username=device.username,
                       password=device.password.get_secret_value(), look_for_keys=False, allow_agent=False)
        _, out, _ = client.exec_command("true")
        out.channel.recv_exit_status()
        client.close()

    routers = inventory.hosts_in("routers")
    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, routers))
    return time.perf_counter() - started


def dzops(inventory_dir: Path, *args: str, ok: tuple[int, ...] = (0,), tree: str | None = None) -> tuple[float, str]:
    env = {**os.environ, "DZOPS_LAB_PREFIX": PREFIX}
    if tree is not None:
        env["PYTHONPATH"] = tree  # that checkout's dzops before the installed one
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dzops", "-i", str(inventory_dir), *args],
                          capture_output=True, text=True, env=env, cwd=tree or None)
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok:
        raise SystemExit(f"dzops {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    global PREFIX
    gewogs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    octet = int(sys.argv[2]) if len(sys.argv) > 2 else OCTET  # another lab may hold the default's network
    PREFIX = sys.argv[3] if len(sys.argv) > 3 else PREFIX  # and its name prefix
    baseline = os.environ.get("DZOPS_BENCH_BASELINE_TREE")
    work = Path(tempfile.mkdtemp(prefix="dzops-bench-health-"))
    state_root = work / "state"
    inventory_dir = write_inventory(work / "inventory", gewogs, octet, state_dir=state_root / PREFIX,
                                    smtp_port=25000 + octet)
    inventory = load_inventory(inventory_dir)
    lab = Lab(spec_from_inventory(inventory, PREFIX, state_root=state_root))
    try:
        started = time.perf_counter()
        lab.up()
        print(f"lab up: {len(lab.spec.nodes)} nodes in {time.perf_counter() - started:.1f} s")
        dzops(inventory_dir, "provision-wan", "--all")
        floors, runs, before = [], [], []
        for _ in range(3):
            floors.append(floor(inventory, lab.known_hosts_path))
            runs.append(dzops(inventory_dir, "--check", "health", ok=(0, 6)))
            if baseline:
                before.append(dzops(inventory_dir, "--check", "health", ok=(0, 6), tree=baseline))
        base, health = statistics.median(floors), statistics.median(t for t, _ in runs)
        print(f"floor (paramiko connect + one command, {WORKERS} workers, "
              f"{len(inventory.hosts_in('routers'))} routers): {base:.2f} s (median of 3: "
              f"{', '.join(f'{t:.2f}' for t in floors)})")
        print(f"dzops --check health: {health:.2f} s = {health / base:.2f}x floor (target <= 3x; runs: "
              f"{', '.join(f'{t:.2f}' for t, _ in runs)}); last run: {runs[-1][1].strip().splitlines()[-1]}")
        if before:
            old = statistics.median(t for t, _ in before)
            print(f"baseline {baseline}: {old:.2f} s = {old / base:.2f}x floor (runs: "
                  f"{', '.join(f'{t:.2f}' for t, _ in before)}); last run: {before[-1][1].strip().splitlines()[-1]}")
    finally:
        lab.down()


if __name__ == "__main__":
    main()
