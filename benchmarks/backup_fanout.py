"""How fast `dzops backup` pulls configurations: 100 lab routers, against two baselines in the same run.

Generates an inventory of N FRR routers (one site, unique lab prefix and management /24), builds
its lab, then times (median of --runs each):

  * `python -m dzops -i DIR backup` (a warm-up run first creates the git repository, so the timed
    runs are the daily case: collect everything, scrub, commit nothing);
  * the floor: paramiko, same concurrency, connect (host key checked) + `vtysh -c 'show running-config'`
    on an exec channel + close, per router, in one Python process with paramiko already imported
    (the lab's routers are stock boxes: the login lands in bash, as dzops_router_login: shell);
  * the same floor as a process of its own (benchmarks/paramiko_floor.py run as a script): Python
    starts, imports paramiko, loads the inventory from dzops' warm cache, then fans out. The least
    any command built on this inventory and paramiko pays; `dzops backup` is timed the same way;
  * `ansible-playbook` with `ansible.netcommon.network_cli` and `cisco.ios.ios_command:
    show running-config`, forks = the same concurrency (host key checking off: that only makes
    the baseline faster). Needs the `ansible` PyPI package (it bundles cisco.ios and netcommon).

and prints the ratios dzops / floor (target <= 1.0, issue 20: dzops also starts Python, loads the
inventory through ansible-core and runs git) and ansible / dzops (target >= 15), with the CPU
seconds each side spent (the dzops process whole; the floor's client side) and the load average
per run: on 2 cores shared with the routers, CPU spent by the client is time taken from them. The
lab is torn down at the end, also on failure or Ctrl-C.

    python benchmarks/backup_fanout.py [--routers 100] [--workers 10] [--runs 5] [--prefix bkb]
                                       [--octet 55] [--skip-ansible] [--baseline-tree DIR]

--baseline-tree times another checkout's `dzops backup` (its root first on PYTHONPATH) in the
same rounds: a before/after on one lab. Each timed tree runs from bytecode (compiled first, as an
installed copy is) with a state folder of its own (its own warm inventory cache entry).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from paramiko_floor import floor  # noqa: E402 - the floor, shared with its whole-process form


def generate(root: Path, routers: int, octet: int, password: str, state_dir: Path) -> Path:
    """An inventory of `routers` FRR routers at one site, management 10.<octet>.0.0/24."""
    inv = root / "inventory"
    (inv / "group_vars/all").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    names = [f"bench-rtr{i:03d}" for i in range(1, routers + 1)]
    hosts = "\n".join(f"        {n}:" for n in names)
    (inv / "hosts.yml").write_text(
        f"---\nall:\n  children:\n    site_hq:\n      hosts:\n{hosts}\n    routers:\n      children:\n"
        f"        site_hq:\n")
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault_password = secrets.token_hex(16)
    (root / "vault-password.txt").write_text(vault_password + "\n")
    vault = VaultLib([("default", VaultSecret(vault_password.encode()))])
    (inv / "group_vars/all/vault.yml").write_bytes(
        vault.encrypt(f"---\nvault_network_password: {password}\n".encode()))
    (inv / "group_vars/routers.yml").write_text(
        "---\nplatform: frr\nansible_password: \"{{ vault_network_password }}\"\n"
        "ansible_connection: ansible.netcommon.network_cli\nansible_network_os: cisco.ios.ios\n")
    (inv / "group_vars/all/connection.yml").write_text(
        f"---\nansible_user: dzadmin\ndzops_known_hosts: {state_dir / 'known_hosts'}\n")
    (inv / "group_vars/all/dzongkhag.yml").write_text(
        "---\ndzongkhag:\n  name: Benchkha\n  code: bch\n\naddress_pools:\n"
        f"  management: 10.{octet}.0.0/24\n  wan: 10.{octet}.255.0/24\n  loopback: 10.{octet}.254.0/24\n"
        f"  lan: 10.{octet + 1}.0.0/16\n\nsites:\n  hq:\n    title: Bench HQ\n    kind: hq\n"
        f"    lan_prefix: 10.{octet + 1}.0.0/24\n")
    (inv / "group_vars/all/operations.yml").write_text(
        f"---\nbackup_repository: {root / 'config-backups'}\nreport_dir: {root / 'reports'}\n"
        # Loopback is shared by every lab: this one's SMTP sink needs a port of its own.
        f"mail:\n  smtp_host: 127.0.0.1\n  smtp_port: {20000 + octet}\n  sender: dzops@bench.example\n"
        "  recipients: [ict@bench.example]\n")
    for i, name in enumerate(names, start=1):
        (inv / "host_vars" / f"{name}.yml").write_text(
            f"---\nansible_host: 10.{octet}.0.{i + 1}\ndevice_role: bench-router\n"
            f"loopback: 10.{octet}.254.{i}/32\n")
    return inv


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compiled(tree: Path) -> None:
    """The tree's modules as bytecode, as an installed dzops runs them.

    A shell with PYTHONDONTWRITEBYTECODE=1 (or a read-only tree) otherwise has every dzops run
    compile each module whose .pyc is missing or stale from source (about 0.04 CPU-seconds a run when
    none is compiled, measured here): a cost no installed copy pays, and unequal between two trees.
    """
    import compileall

    if not (tree / "dzops").is_dir() or not compileall.compile_dir(str(tree / "dzops"), quiet=1):
        raise SystemExit(f"cannot compile {tree / 'dzops'}")


def tree_env(env: dict[str, str], state: Path) -> dict[str, str]:
    """A timed tree's own state folder: the inventory cache is keyed on dzops' own code, so two trees
    sharing one would replace each other's entry and every run would load through ansible again."""
    return {**env, "DZOPS_STATE_DIR": str(state)}


def timed_process(argv: list[str], env: dict[str, str], what: str, cwd: str | None = None) -> tuple[float, float]:
    """(wall, CPU seconds of the process and its children) of one command that must succeed."""
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, cwd=cwd)
    elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return elapsed, cpu


def dzops_backup(inv: Path, env: dict[str, str], tree: str | None = None) -> tuple[float, float]:
    """(wall, CPU seconds of the dzops process: start-up, inventory, SSH client side, scrubbing, git)."""
    if tree is not None:
        env = {**env, "PYTHONPATH": tree}
    return timed_process([sys.executable, "-m", "dzops", "-i", str(inv), "backup"], env, "dzops backup", cwd=tree)


def process_floor(inv: Path, password_file: Path, workers: int, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU seconds) of the floor as a process of its own: Python, paramiko, the cached inventory."""
    return timed_process([sys.executable, str(Path(__file__).with_name("paramiko_floor.py")), str(inv),
                          str(password_file), str(workers)], env, "the floor's process")


def ansible_network_cli(root: Path, inv: Path, workers: int, env: dict[str, str]) -> float:
    playbook = root / "show_run.yml"
    playbook.write_text(
        "---\n- hosts: routers\n  gather_facts: false\n  tasks:\n"
        "    - cisco.ios.ios_command:\n        commands: [show running-config]\n")
    run_env = {**env, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_FORKS": str(workers),
               "ANSIBLE_NETWORK_CLI_SSH_TYPE": "paramiko", "ANSIBLE_RETRY_FILES_ENABLED": "False",
               "ANSIBLE_PERSISTENT_COMMAND_TIMEOUT": "120"}
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv / "hosts.yml"), str(playbook)], env=run_env,
                          capture_output=True, text=True, timeout=3600, cwd=root)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "failed=0" not in proc.stdout or "unreachable=0" not in proc.stdout:
        raise SystemExit(f"ansible-playbook failed ({proc.returncode}): {proc.stdout.strip()[-1200:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routers", type=int, default=100)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prefix", default="bkb")
    parser.add_argument("--octet", type=int, default=55)
    parser.add_argument("--skip-ansible", action="store_true", help="Skip the network_cli baseline.")
    parser.add_argument("--baseline-tree", help="Also time this checkout's dzops backup in the same rounds.")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the benchmark builds a lab of network namespaces: run it as root")

    from dzops.execute.ssh import FAN_OUT_WORKERS
    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    if args.workers != FAN_OUT_WORKERS:
        print(f"note: dzops backup uses {FAN_OUT_WORKERS} workers; baselines use {args.workers}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="dzops-backup-bench-") as tmp:
        root = Path(tmp)
        state_root = root / "state"
        inv = generate(root, args.routers, args.octet, f"Bench-{secrets.token_hex(6)}", state_root / args.prefix)
        inventory = load_inventory(inv, root / "vault-password.txt")
        lab = Lab(spec_from_inventory(inventory, args.prefix, state_root=state_root))
        env = {**os.environ, "DZOPS_INVENTORY": str(inv), "DZOPS_VAULT_PASSWORD_FILE": str(root / "vault-password.txt"),
               "ANSIBLE_VAULT_PASSWORD_FILE": str(root / "vault-password.txt")}
        try:
            start = time.perf_counter()
            status = lab.up()
            if not status.healthy:
                raise SystemExit(f"lab unhealthy: {[n.name for n in status.nodes if not n.healthy][:10]}")
            print(f"lab of {args.routers} routers built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            compiled(REPO)
            base_env = tree_env(env, root / "dzops-state-baseline")
            env = tree_env(env, root / "dzops-state")
            warm, _ = dzops_backup(inv, env)  # creates the repository: the first commit holds every router
            print(f"warm-up dzops backup (first commit): {warm:.2f} s", file=sys.stderr)
            if args.baseline_tree:
                compiled(Path(args.baseline_tree))
                dzops_backup(inv, base_env, args.baseline_tree)  # its inventory cache entry, warm like ours
            from dzops.execute.backup import collect

            password_file = root / "vault-password.txt"
            process_floor(inv, password_file, args.workers, env)  # reads the entry dzops' warm-up wrote
            dz, fl, pf, co, an, before = [], [], [], [], [], []
            dz_cpu, fl_cpu, pf_cpu, before_cpu = [], [], [], []
            for run in range(args.runs):
                # The floor and dzops take turns to go first: neither always meets the routers (their
                # sshd and vtysh caches) and the machine's load as the other one left them. The
                # floor's own process runs between them.
                for side in (("dzops", "process", "floor") if run % 2 else ("floor", "process", "dzops")):
                    if side == "floor":
                        wall, cpu = floor(inventory, args.workers)
                        fl.append(wall)
                        fl_cpu.append(cpu)
                    elif side == "process":
                        wall, cpu = process_floor(inv, password_file, args.workers, env)
                        pf.append(wall)
                        pf_cpu.append(cpu)
                    else:
                        wall, cpu = dzops_backup(inv, env)
                        dz.append(wall)
                        dz_cpu.append(cpu)
                if args.baseline_tree:
                    wall, cpu = dzops_backup(inv, base_env, args.baseline_tree)
                    before.append(wall)
                    before_cpu.append(cpu)
                    print(f"run {run + 1}: baseline {args.baseline_tree} {before[-1]:.2f} s (cpu {cpu:.2f} s)",
                          file=sys.stderr)
                # The collection alone, in-process: what is left of dzops/floor is start-up, the
                # inventory load through ansible-core, scrubbing and git.
                start = time.perf_counter()
                collected = collect(inventory, list(inventory.devices))
                co.append(time.perf_counter() - start)
                assert all(b.reachable for b in collected), [b.error for b in collected if not b.reachable][:3]
                print(f"run {run + 1}: dzops {dz[-1]:.2f} s (cpu {dz_cpu[-1]:.2f} s), collect {co[-1]:.2f} s, "
                      f"paramiko floor {fl[-1]:.2f} s (cpu {fl_cpu[-1]:.2f} s), its process {pf[-1]:.2f} s "
                      f"(cpu {pf_cpu[-1]:.2f} s), ratio {dz[-1] / fl[-1]:.2f}, "
                      f"{'dzops' if run % 2 else 'floor'} first, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
            if not args.skip_ansible:
                # network_cli costs ~1 s per device: one run is already a long measurement.
                an.append(ansible_network_cli(root, inv, args.workers, env))
        finally:
            start = time.perf_counter()
            lab.down()
            print(f"lab torn down in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    d, f = statistics.median(dz), statistics.median(fl)
    # The lab's pace drifts from minute to minute (one run's rounds span 20% on 2 cores); a round's
    # two sides run back to back, so its own ratio compares like with like, and the median of
    # those ratios is the result.
    paired = statistics.median(one / other for one, other in zip(dz, fl, strict=True))
    print(f"routers={args.routers} workers={args.workers} runs={args.runs}")
    print(f"dzops backup            {d:8.2f} s   (cpu of the whole process {statistics.median(dz_cpu):.2f} s)")
    print(f"paramiko floor          {f:8.2f} s   (cpu of its client side {statistics.median(fl_cpu):.2f} s)")
    print(f"ratio dzops/floor       {paired:8.3f}   (median of the rounds' ratios; target <= 1.0, issue 20)")
    print(f"  medians' ratio        {d / f:8.3f}   (rounds: {', '.join(f'{a / b:.3f}' for a, b in zip(dz, fl, strict=True))})")
    p = statistics.median(pf)
    print(f"floor as a process      {p:8.2f} s   (cpu {statistics.median(pf_cpu):.2f} s; ratio to floor "
          f"{statistics.median(one / other for one, other in zip(pf, fl, strict=True)):.3f}, median of the rounds)")
    print(f"ratio dzops/its process {statistics.median(one / other for one, other in zip(dz, pf, strict=True)):8.3f}"
          "   (median of the rounds' ratios: dzops against the same fan-out started as a process)")
    print(f"dzops collect only      {statistics.median(co):8.2f} s   (ratio to floor "
          f"{statistics.median(co) / f:.2f})")
    if before:
        b = statistics.median(before)
        print(f"baseline dzops backup   {b:8.2f} s   (ratio to floor {b / f:.2f}; cpu {statistics.median(before_cpu):.2f} s; "
              f"{args.baseline_tree})")
    if an:
        a = statistics.median(an)
        print(f"ansible network_cli     {a:8.2f} s")
        print(f"ratio ansible/dzops     {a / d:8.2f}   (target >= 15)")


if __name__ == "__main__":
    main()
