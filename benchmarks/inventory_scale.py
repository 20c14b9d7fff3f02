"""How `dzops inventory check` scales: 20 Dzongkhags x 250 devices = 5,000 hosts.

Generates, in a temporary directory, one inventory in the format of the sample `inventory/`
(hosts.yml with dzongkhag_, site_ and function groups, host_vars per host, group_vars/all with
sites, address_pools, wan_links from every gewog router to its Dzongkhag hub, lan_links,
ssid_profiles, users, and a Vault file encrypted with a generated password), checks it is valid,
then times in the same run (median of --runs each):

  * `python -m dzops -i DIR --vault-password-file PW inventory check`
  * `ansible-inventory -i DIR/hosts.yml --vault-password-file PW --list` (runs that pass --timeout
    count as timed out: plain --list copies group_vars/all into every host and grows with the square
    of the host count; ~56 s for 500 hosts, ~240 s for 1,000 on a 2-CPU VM)
  * the same with `--export` (group vars stay on their groups), a linear baseline

and prints the times and the ratios dzops / ansible-inventory (target: <= 1.0).

    python benchmarks/inventory_scale.py [--dzongkhags 20] [--devices 250] [--runs 3] [--timeout 900]
                                         [--profile] [--keep]

`--profile` also runs the dzops load once under cProfile in-process and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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
MANAGEMENT = IPv4Network("10.0.0.0/10")  # 10.<dzongkhag>.<n//250>.<n%250+1>
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
                int(MANAGEMENT.network_address) + (d << 16) + ((counter // 250) << 8) + counter % 250 + 1
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
                    hv["interfaces"] = {"eth0": {"description": "uplink"}}
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


def run(cmd: list[str], cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess[str] | None:
    """Run a command (None if it passed the timeout). cwd: the temp dir, away from the repository's
    ansible.cfg, whose vault_password_file would add a second vault id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DZOPS_", "ANSIBLE_VAULT"))}
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def timed(cmd: list[str], cwd: Path, runs: int, timeout: float) -> tuple[float | None, list[float]]:
    """Median wall time of `runs` runs; None if a run passed the timeout (the remaining runs are skipped)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        if run(cmd, cwd, timeout) is None:
            return None, times
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def report(label: str, median: float | None, times: list[float], timeout: float) -> None:
    runs = ", ".join(f"{t:.2f}" for t in times)
    shown = f"{median:7.2f} s" if median is not None else f"> {timeout:.0f} s (timed out)"
    print(f"{label:<38} median {shown}  runs [{runs}]")


def ratio_line(dzops_time: float, label: str, other: float | None, timeout: float) -> None:
    if other is None:
        print(f"ratio dzops / {label} < {dzops_time / timeout:.3f} (timed out at {timeout:.0f} s): target met")
    else:
        ratio = dzops_time / other
        print(f"ratio dzops / {label} = {ratio:.2f} (target <= 1.0: {'met' if ratio <= 1.0 else 'NOT met'})")


def profile(root: Path, password_file: Path, top: int = 25) -> None:
    """The dzops load in-process under cProfile: cumulative time of the functions that matter."""
    from dzops.inventory.loader import load

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    inventory, problems, _ = load(root, password_file)
    profiler.disable()
    total = time.perf_counter() - start
    print(f"\nprofile: in-process load() {total:.2f} s, {len(problems)} problem(s)")
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
    parser.add_argument("--profile", action="store_true", help="also profile the dzops load in-process")
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
        check = run(dzops_cmd, tmp)  # exits here if the generated inventory is not valid
        print(check.stderr.strip() if check else "")
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
        dzops_time, dzops_all = timed(dzops_cmd, tmp, args.runs, args.timeout)
        assert dzops_time is not None, f"dzops took more than {args.timeout} s"
        report("dzops inventory check", dzops_time, dzops_all, args.timeout)
        # --export keeps group vars on their groups: the same parsing, vault and vars-plugin work without
        # copying group_vars/all into every host (which makes plain --list quadratic in the host count).
        export_time, export_all = timed([*ansible_cmd, "--export"], tmp, args.runs, args.timeout)
        report("ansible-inventory --list --export", export_time, export_all, args.timeout)
        list_time, list_all = timed(ansible_cmd, tmp, args.runs, args.timeout)
        report("ansible-inventory --list", list_time, list_all, args.timeout)
        ratio_line(dzops_time, "ansible-inventory --list", list_time, args.timeout)
        ratio_line(dzops_time, "ansible-inventory --list --export", export_time, args.timeout)
        if args.profile:
            profile(root, password_file)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
