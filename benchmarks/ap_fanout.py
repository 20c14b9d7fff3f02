"""`dzops provision-ap --all` over N lab APs, next to the parallel-SSH floor measured in the same run.

Builds its own lab (prefix `apb` unless --prefix) from a generated inventory: the sample's
group_vars, one switch per 10 APs, N hostapd APs each serving the sample's two SSIDs. Then times:

  * floor: paramiko connect + one command (`sudo -n true`) + close to every AP, with the same
    concurrency as provision-ap (10 workers), host keys checked;
  * `python -m dzops provision-ap --all` from factory state (first run: write, start, verify);
  * the same again (second run: read back only, nothing changes),

and prints the times and the ratios to the floor. Tears the lab down at the end (also on errors).

    python benchmarks/ap_fanout.py [--aps 50] [--prefix apb] [--octet 151] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "inventory"
WORKERS = 10  # = dzops.execute.ap.FAN_OUT_WORKERS


def generate(dest: Path, aps: int, octet: int, state_dir: Path) -> list[str]:
    """An inventory of `aps` APs on switches of 10 ports each, site `bench`, sample group_vars."""
    shutil.copytree(SAMPLE / "group_vars", dest / "group_vars")
    shutil.copy(SAMPLE / "DEMO-ONLY-vault-password.txt", dest)
    for name in ("wan_links.yml", "lan_links.yml"):
        path = dest / "group_vars/all" / name
        key = name.removesuffix(".yml")
        path.write_text(f"---\n{key}: []\n")
    dz = dest / "group_vars/all/dzongkhag.yml"
    text = dz.read_text().replace("10.30.0.", f"10.{octet}.0.")
    data = yaml.safe_load(text)
    data["sites"] = {"bench": {"title": "Benchmark site", "kind": "gewog", "lan_prefix": "10.31.250.0/24"}}
    data["address_pools"]["management"] = f"10.{octet}.0.0/22"
    dz.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))
    conn = dest / "group_vars/all/connection.yml"
    conn.write_text(conn.read_text().replace("/var/lib/dzops/punakha/known_hosts", str(state_dir / "known_hosts")))
    ops = dest / "group_vars/all/operations.yml"
    ops.write_text(ops.read_text().replace("/var/lib/dzops/punakha", str(state_dir))
                   .replace("smtp_port: 8025", f"smtp_port: {20000 + octet}"))
    switches = [f"bench-sw{i + 1}" for i in range((aps + 9) // 10)]
    names = [f"bench-ap{i + 1}" for i in range(aps)]
    (dest / "host_vars").mkdir()
    hosts = {"all": {"children": {
        "dzongkhag_bench": {"children": {"site_bench": {"hosts": {n: None for n in switches + names}}}},
        "switches": {"hosts": {n: None for n in switches}},
        "access_points": {"hosts": {n: None for n in names}},
        # The sample's user roles name these groups; they stay empty here.
        "routers": {"hosts": {}}, "servers": {"hosts": {}},
    }}}
    (dest / "hosts.yml").write_text("---\n" + yaml.safe_dump(hosts, sort_keys=False))
    for i, sw in enumerate(switches):
        (dest / f"host_vars/{sw}.yml").write_text("---\n" + yaml.safe_dump({
            "ansible_host": f"10.{octet}.1.{i + 1}", "device_role": "access-switch",
            "interfaces": {f"swp{p + 1}": {"description": "AP port"} for p in range(10)}}))
    for i, name in enumerate(names):
        (dest / f"host_vars/{name}.yml").write_text("---\n" + yaml.safe_dump({
            "ansible_host": f"10.{octet}.2.{i + 1}", "device_role": "office-ap",
            "uplink": {"switch": switches[i // 10], "port": f"swp{i % 10 + 1}"},
            "radio": {"channel": 6, "power": "auto", "driver": "none"},
            "ssids": ["staff", "guest"],
            "interfaces": {"eth0": {}, "wlan0": {}, "wlan1": {}}}, sort_keys=False))
    return names


def floor(inventory, names: list[str]) -> float:
    import paramiko

    def one(name: str) -> None:
        device = inventory.devices[name]
        client = paramiko.SSHClient()
        client.load_host_keys(str(inventory.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(str(device.mgmt_address), username=device.username,
                       password=device.password.get_secret_value(), look_for_keys=False, allow_agent=False,
                       timeout=30, banner_timeout=30, auth_timeout=30)
        try:
            _, out, _ = client.exec_command("sudo -n true")
            assert out.channel.recv_exit_status() == 0
        finally:
            client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, names))
    return time.perf_counter() - start


def timed_cli(inventory_dir: Path, expect_changed: bool) -> float:
    import json

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dzops", "-i", str(inventory_dir), "provision-ap", "--all",
                           "--json", "--verify-timeout", "120"], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"provision-ap failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
    statuses = {r["status"] for r in json.loads(proc.stdout)}
    if statuses != ({"changed"} if expect_changed else {"ok"}):
        raise SystemExit(f"unexpected statuses {statuses}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aps", type=int, default=50)
    parser.add_argument("--prefix", default="apb")
    parser.add_argument("--octet", type=int, default=151)
    parser.add_argument("--keep", action="store_true", help="leave the lab and inventory in place")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds a lab)")
    sys.path.insert(0, str(ROOT))
    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    work = Path(tempfile.mkdtemp(prefix="dzops-ap-bench-"))
    state_root = work / "state"
    inventory_dir = work / "inventory"
    names = generate(inventory_dir, args.aps, args.octet, state_root / args.prefix)
    inventory = load_inventory(inventory_dir)
    lab = Lab(spec_from_inventory(inventory, args.prefix, state_root=state_root))
    try:
        t0 = time.perf_counter()
        status = lab.up()
        if not status.healthy:
            raise SystemExit(f"lab unhealthy: {[n.name for n in status.nodes if not n.healthy]}")
        print(f"lab of {args.aps} APs built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        inventory = load_inventory(inventory_dir)
        ssh_floor = floor(inventory, names)
        first = timed_cli(inventory_dir, expect_changed=True)
        second = timed_cli(inventory_dir, expect_changed=False)
        floor_after = floor(inventory, names)
        base = min(ssh_floor, floor_after)
        print(f"APs: {args.aps}   workers: {WORKERS}")
        print(f"parallel SSH floor (connect + 1 command), best of 2: {base:6.2f} s")
        print(f"provision-ap --all, first run (apply + verify):      {first:6.2f} s   ratio {first / base:5.2f}")
        print(f"provision-ap --all, second run (no change):          {second:6.2f} s   ratio {second / base:5.2f}")
    finally:
        if not args.keep:
            lab.down()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
