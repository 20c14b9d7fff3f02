"""How `dzops inventory check` scales: 20 Dzongkhags x 250 devices = 5,000 hosts.

Generates, in a temporary directory, one inventory in the format of the sample `inventory/`
(hosts.yml with dzongkhag_, site_ and function groups, host_vars per host, group_vars/all with
sites, address_pools, wan_links from every gewog router to its Dzongkhag hub, lan_links,
ssid_profiles, users, and a Vault file encrypted with a generated password), checks it is valid,
then times in the same run, in interleaved rounds (median of --runs each, wall and child CPU):

  * `python -m dzops -i DIR --vault-password-file PW inventory check`, cold: an empty private state
    folder (DZOPS_STATE_DIR) each run, so it loads through ansible-core and stores its cache entry;
  * the same, warm: the state folder a cold run filled, the inventory unchanged;
  * `ansible-inventory -i DIR/hosts.yml --vault-password-file PW --list --export` (group vars stay
    on their groups), the linear baseline;
  * with --plain-list, plain `--list` too (it copies group_vars/all into every host and grows with
    the square of the host count; ~56 s for 500 hosts, ~240 s for 1,000 on a 2-CPU VM).

and prints the ratios dzops / ansible-inventory --export. Targets: cold <= 1.0, warm <= 0.2 (at
least 5x faster).

    python benchmarks/inventory_scale.py [--dzongkhags 20] [--devices 250] [--runs 3] [--timeout 900]
                                         [--plain-list] [--profile] [--keep]

`--profile` also runs the dzops load once under cProfile in-process and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import yaml

DZONGKHAGS = (
    "bumthang",
    "chhukha",
    "dagana",
    "gasa",
    "haa",
    "lhuentse",
    "mongar",
    "paro",
    "pemagatshel",
    "punakha",
    "samdrupjongkhar",
    "samtse",
    "sarpang",
    "thimphu",
    "trashigang",
    "trashiyangtse",
    "trongsa",
    "tsirang",
    "wangduephodrang",
    "zhemgang",
)
# Address plan, big enough for 5,000 hosts; the pools do not overlap each other.
MANAGEMENT = IPv4Network("10.0.0.0/10")  # 10.<dzongkhag>.<n//250>.<n%250+2>: .1 is the gateway
LOOPBACK = IPv4Network("10.64.0.0/16")  # 10.64.<dzongkhag>.<router>
WAN = IPv4Network("10.128.0.0/10")
LAN = IPv4Network("10.192.0.0/10")  # one /24 per site
HQ_DEVICES = ("rtr1", "sw1", "srv1", "web1")
GEWOG_DEVICES = ("rtr1", "sw1", "ap1")
FUNCTION_OF = {
    "rtr1": "routers",
    "sw1": "switches",
    "srv1": "servers",
    "web1": "servers",
    "ap1": "access_points",
}
VAULT_VALUES = {
    "vault_network_password": "Bench-Net-" + secrets.token_hex(6),
    "vault_server_password": "Bench-Srv-" + secrets.token_hex(6),
    "vault_ssid_staff_psk": "Bench-Psk-" + secrets.token_hex(6),
    "vault_smtp_password": "Bench-Smtp-" + secrets.token_hex(6),
}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ"


def dump(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=200))


def generate(root: Path, n_dzongkhags: int, n_devices: int) -> tuple[Path, int]:
    """Write the inventory under root; return the vault password file and the number of hosts."""
    gewogs_per_dzongkhag = (n_devices - len(HQ_DEVICES)) // len(GEWOG_DEVICES)
    sites: dict[str, dict] = {}
    site_groups: dict[str, dict] = {}
    function_groups: dict[str, dict] = {g: {"hosts": {}} for g in ("routers", "switches", "servers", "access_points")}
    dzongkhag_groups: dict[str, dict] = {}
    wan_links: list[dict] = []
    lan_links: list[dict] = []
    host_vars: dict[str, dict] = {}
    site_index = 0
    for d, dz in enumerate(DZONGKHAGS[:n_dzongkhags]):
        counter = 0

        def mgmt(d: int = d) -> str:
            nonlocal counter
            address = IPv4Address(
                int(MANAGEMENT.network_address) + (d << 16) + ((counter // 250) << 8) + counter % 250 + 2
            )
            counter += 1
            return str(address)

        dz_sites = [("hq", HQ_DEVICES)] + [(f"g{g:03d}", GEWOG_DEVICES) for g in range(1, gewogs_per_dzongkhag + 1)]
        dz_children: dict[str, None] = {}
        hub = f"{dz}-hq-rtr1"
        for s, (site, devices) in enumerate(dz_sites):
            site_name = f"{dz}_{site}"
            lan = IPv4Network((int(LAN.network_address) + (site_index << 8), 24))
            site_index += 1
            sites[site_name] = {
                "title": f"{dz.title()} {site.upper()}",
                "kind": "hq" if site == "hq" else "gewog",
                "lan_prefix": str(lan),
            }
            names = [f"{dz}-{site}-{dev}" for dev in devices]
            site_groups[f"site_{site_name}"] = {"hosts": {n: None for n in names}}
            dz_children[f"site_{site_name}"] = None
            gateway = str(IPv4Address(int(lan.network_address) + 1))
            for dev, name in zip(devices, names, strict=True):
                function_groups[FUNCTION_OF[dev]]["hosts"][name] = None
                hv: dict = {"ansible_host": mgmt()}
                if dev == "rtr1":
                    hv["device_role"] = "core-router" if site == "hq" else "gewog-router"
                    hv["loopback"] = f"{IPv4Address(int(LOOPBACK.network_address) + (d << 8) + s + 1)}/32"
                    if site == "hq":
                        hv["lan_interface"] = "eth0"
                        hv["interfaces"] = {"eth0": {"description": "HQ LAN", "address": f"{gateway}/24"}}
                        hv["interfaces"].update(
                            {
                                f"eth{i}": {"description": f"WAN to gewog {i:03d}"}
                                for i in range(1, gewogs_per_dzongkhag + 1)
                            }
                        )
                    else:
                        hv["lan_interface"] = "eth1"
                        hv["interfaces"] = {
                            "eth0": {"description": f"WAN to {hub}"},
                            "eth1": {"description": "gewog LAN", "address": f"{gateway}/24"},
                        }
                        wan_links.append(
                            {
                                "name": f"{dz}-hq-{site}",
                                "a": {"host": hub, "interface": f"eth{s}"},
                                "b": {"host": name, "interface": "eth0"},
                                "provider": "Bhutan Telecom",
                                "circuit_id": f"BT-{d:02d}-{s:04d}",
                                "bandwidth_mbps": 20,
                                "mtu": 1500,
                                "routing": {"protocol": "ospf", "area": 0},
                            }
                        )
                elif dev == "sw1":
                    hv["device_role"] = "access-switch"
                    hv["interfaces"] = {
                        "swp1": {"description": "uplink to router"},
                        "swp2": {"description": "AP"},
                    }
                    if site == "hq":
                        hv["interfaces"]["swp3"] = {"description": "web server"}
                elif dev in ("srv1", "web1"):
                    hv["device_role"] = "server"
                    hv["interfaces"] = {
                        "eth0": {
                            "address": f"{IPv4Address(int(lan.network_address) + 21)}/24"
                            if dev == "srv1"
                            else f"{IPv4Address(int(lan.network_address) + 22)}/24"
                        }
                    }
                    hv["services"] = ["ssh"]
                    hv["health_checks"] = [{"kind": "tcp", "target": f"{hv['ansible_host']}:22"}]
                else:  # ap1
                    hv["device_role"] = "office-ap"
                    hv["uplink"] = {"switch": f"{dz}-{site}-sw1", "port": "swp2"}
                    hv["radio"] = {"channel": 1, "power": "auto"}
                    hv["ssids"] = ["staff", "guest"]
                    # hostapd needs one radio interface per SSID
                    hv["interfaces"] = {"eth0": {"description": "uplink"}, "wlan0": {"description": "staff"},
                                        "wlan1": {"description": "guest"}}
                host_vars[name] = hv
            if site == "hq":
                lan_links += [
                    {
                        "a": {"host": f"{dz}-hq-rtr1", "interface": "eth0"},
                        "b": {"host": f"{dz}-hq-sw1", "interface": "swp1"},
                    },
                    {
                        "a": {"host": f"{dz}-hq-sw1", "interface": "swp2"},
                        "b": {"host": f"{dz}-hq-srv1", "interface": "eth0"},
                    },
                    {
                        "a": {"host": f"{dz}-hq-sw1", "interface": "swp3"},
                        "b": {"host": f"{dz}-hq-web1", "interface": "eth0"},
                    },
                ]
            else:
                lan_links.append(
                    {
                        "a": {"host": f"{dz}-{site}-rtr1", "interface": "eth1"},
                        "b": {"host": f"{dz}-{site}-sw1", "interface": "swp1"},
                    }
                )
        dzongkhag_groups[f"dzongkhag_{dz}"] = {"children": dz_children}

    hosts = {
        "all": {
            "children": {
                **{k: {"children": {c: site_groups[c] for c in v["children"]}} for k, v in dzongkhag_groups.items()},
                **function_groups,
            }
        }
    }
    dump(root / "hosts.yml", hosts)
    for name, hv in host_vars.items():
        dump(root / "host_vars" / f"{name}.yml", hv)
    gv = root / "group_vars"
    dump(
        gv / "all" / "dzongkhag.yml",
        {
            "dzongkhag": {"name": "Bench", "code": "bench"},
            "address_pools": {
                "management": str(MANAGEMENT),
                "wan": str(WAN),
                "loopback": str(LOOPBACK),
                "lan": str(LAN),
            },
            "sites": sites,
        },
    )
    dump(gv / "all" / "connection.yml", {"ansible_user": "dzadmin"})
    dump(gv / "all" / "wan_links.yml", {"wan_links": wan_links})
    dump(gv / "all" / "lan_links.yml", {"lan_links": lan_links})
    dump(
        gv / "all" / "network.yml",
        {
            "vlans": {10: {"name": "staff"}, 20: {"name": "guest"}, 99: {"name": "management"}},
            "ssid_profiles": {
                "staff": {
                    "ssid": "Staff",
                    "security": "wpa2-psk",
                    "psk": "{{ vault_ssid_staff_psk }}",
                    "vlan": 10,
                },
                "guest": {
                    "ssid": "Guest",
                    "security": "wpa2-psk",
                    "psk": "{{ vault_ssid_staff_psk }}",
                    "vlan": 20,
                    "client_isolation": True,
                },
            },
        },
    )
    dump(
        gv / "all" / "users.yml",
        {
            "user_roles": {
                "admin": {"groups": ["all"], "privilege": 15, "sudo": True},
                "operator": {"groups": ["routers", "switches"], "privilege": 15},
            },
            "users": [
                {
                    "login": f"officer{i:02d}",
                    "name": f"Officer {i}",
                    "email": f"officer{i}@example.gov.bt",
                    "role": "admin" if i % 5 == 0 else "operator",
                    "ssh_keys": [f"{KEY} officer{i}"],
                }
                for i in range(n_dzongkhags * 2)
            ],
        },
    )
    dump(
        gv / "all" / "operations.yml",
        {
            "mail": {
                "smtp_host": "127.0.0.1",
                "username": "dzops",
                "password": "{{ vault_smtp_password }}",
                "sender": "dzops@example.gov.bt",
                "recipients": ["ict@example.gov.bt"],
            },
            "schedules": {"patch": "0 2 * * 6", "drift": "0 6 * * 1", "backup": "30 1 * * *"},
        },
    )
    for group, platform, password in (
        ("routers", "frr", "network"),
        ("switches", "cumulus", "network"),
        ("access_points", "hostapd", "network"),
        ("servers", "debian", "server"),
    ):
        dump(
            gv / f"{group}.yml",
            {"platform": platform, "ansible_password": f"{{{{ vault_{password}_password }}}}"},
        )

    password_file = root.parent / "vault-password.txt"
    password_file.write_text(secrets.token_urlsafe(24) + "\n")
    plain = root.parent / "vault-plain.yml"
    dump(plain, VAULT_VALUES)
    run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),  # this venv's, not PATH's
            "encrypt",
            "--vault-password-file",
            str(password_file),
            "--output",
            str(gv / "all" / "vault.yml"),
            str(plain),
        ],
        cwd=root.parent,
    )
    plain.unlink()
    return password_file, len(host_vars)


def run(cmd: list[str], cwd: Path, timeout: float | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str] | None:
    """Run a command (None if it passed the timeout). cwd: the temp dir, away from the repository's
    ansible.cfg, whose vault_password_file would add a second vault id."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DZOPS_", "ANSIBLE_VAULT"))}
    try:
        proc = subprocess.run(cmd, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@dataclass
class Timing:
    """Wall and CPU (user+sys of the child) seconds of each run of one command."""

    label: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    timed_out: bool = False

    def measure(self, cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None,
                before: Callable[[], None] | None = None) -> None:
        if self.timed_out:
            return
        if before is not None:
            before()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        if run(cmd, cwd, timeout, env) is None:
            self.timed_out = True
            return
        self.wall.append(time.perf_counter() - start)
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)

    @property
    def median(self) -> float | None:
        return None if self.timed_out or not self.wall else statistics.median(self.wall)

    def report(self, timeout: float) -> None:
        runs = ", ".join(f"{t:.2f}" for t in self.wall)
        shown = f"{self.median:7.2f} s" if self.median is not None else f"> {timeout:.0f} s (timed out)"
        cpu = f"  cpu median {statistics.median(self.cpu):.2f} s" if self.cpu else ""
        print(f"{self.label:<38} median {shown}  runs [{runs}]{cpu}")


def ratio_line(mine: Timing, other: Timing, target: float, timeout: float) -> bool:
    """dzops / other (wall medians, CPU medians for reference); True if the wall target is met."""
    if mine.median is None:
        print(f"ratio {mine.label} / {other.label}: dzops timed out")
        return False
    if other.median is None:
        print(f"ratio {mine.label} / {other.label} < {mine.median / timeout:.3f} (timed out at {timeout:.0f} s): "
              f"target met")
        return True
    ratio = mine.median / other.median
    cpu = statistics.median(mine.cpu) / statistics.median(other.cpu)
    met = ratio <= target
    print(f"ratio {mine.label} / {other.label} = {ratio:.3f} wall, {cpu:.3f} cpu "
          f"(target <= {target:g}: {'met' if met else 'NOT met'}; {1 / ratio:.1f}x faster)")
    return met


def profile(root: Path, password_file: Path, top: int = 25) -> None:
    """The cold dzops load in-process under cProfile: cumulative time of the functions that matter."""
    from dzops.inventory.loader import load

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    inventory, problems, _ = load(root, password_file)
    profiler.disable()
    total = time.perf_counter() - start
    print(f"\nprofile: in-process cold load() {total:.2f} s, {len(problems)} problem(s)")
    for sort in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort)
        stats.print_stats(top)
        text = out.getvalue()
        print(f"--- by {sort} ---")
        print(text[text.index("ncalls") :] if "ncalls" in text else text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dzongkhags", type=int, default=20)
    parser.add_argument("--devices", type=int, default=250, help="devices per Dzongkhag")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run counts as timed out")
    parser.add_argument("--plain-list", action="store_true",
                        help="also time plain `ansible-inventory --list` (quadratic: minutes at 5,000 hosts)")
    parser.add_argument("--profile", action="store_true", help="also profile the cold dzops load in-process")
    parser.add_argument("--keep", action="store_true", help="keep the generated inventory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dzops-bench-"))
    try:
        root = tmp / "inventory"
        start = time.perf_counter()
        password_file, n_hosts = generate(root, args.dzongkhags, args.devices)
        print(
            f"generated {n_hosts} hosts ({args.dzongkhags} Dzongkhags x {args.devices}) in {root} "
            f"in {time.perf_counter() - start:.1f} s"
        )

        dzops_cmd = [
            sys.executable,
            "-m",
            "dzops",
            "-i",
            str(root),
            "--vault-password-file",
            str(password_file),
            "inventory",
            "check",
        ]
        # cold: an empty private state folder each run (the run loads through ansible and stores);
        # warm: the folder a cold run filled, the inventory unchanged
        cold_state, warm_state = tmp / "state-cold", tmp / "state-warm"
        check = run(dzops_cmd, tmp, env={"DZOPS_STATE_DIR": str(warm_state)})  # exits if not valid
        print(check.stderr.strip() if check else "")
        assert list((warm_state / "inventory-cache").glob("*.entry")), "the cold run stored no cache entry"
        ansible_cmd = [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            str(root / "hosts.yml"),
            "--vault-password-file",
            str(password_file),
            "--list",
            "--output",
            str(tmp / "ansible-inventory.json"),
        ]
        cold = Timing("dzops inventory check (cold)")
        warm = Timing("dzops inventory check (warm)")
        export = Timing("ansible-inventory --list --export")
        # interleaved rounds: the machine's load drifts, and each ratio compares runs of the same minutes
        for _ in range(args.runs):
            cold.measure(dzops_cmd, tmp, args.timeout, {"DZOPS_STATE_DIR": str(cold_state)},
                         before=lambda: shutil.rmtree(cold_state, ignore_errors=True))
            warm.measure(dzops_cmd, tmp, args.timeout, {"DZOPS_STATE_DIR": str(warm_state)})
            # --export keeps group vars on their groups: the same parsing, vault and vars-plugin work without
            # copying group_vars/all into every host (which makes plain --list quadratic in the host count).
            export.measure([*ansible_cmd, "--export"], tmp, args.timeout)
        for timing in (cold, warm, export):
            timing.report(args.timeout)
        met = [ratio_line(cold, export, 1.0, args.timeout), ratio_line(warm, export, 0.2, args.timeout)]
        if args.plain_list:
            plain = Timing("ansible-inventory --list")
            for _ in range(args.runs):
                plain.measure(ansible_cmd, tmp, args.timeout)
            plain.report(args.timeout)
            ratio_line(cold, plain, 1.0, args.timeout)
        print(f"targets: cold <= 1.0x and warm >= 5x faster than ansible-inventory --list --export: "
              f"{'met' if all(met) else 'NOT met'}")
        if args.profile:
            profile(root, password_file)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
