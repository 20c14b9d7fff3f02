"""A generated Dzongkhag in the sample inventory's format: 1 HQ router + N gewog routers (+ APs/switches).

Used by benchmarks that need a lab bigger than the sample. The vault is the sample's (same demo
password), so credentials and checks behave exactly as in the shipped inventory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "inventory"


def write_inventory(dest: Path, gewogs: int, mgmt_octet: int, *, switches: bool = False, aps: bool = False,
                    state_dir: Path | None = None, smtp_port: int = 25025) -> Path:
    """Write an inventory with `gewogs` gewog sites; management network 10.<mgmt_octet>.0.0/22."""
    if gewogs > 250:
        raise ValueError("at most 250 gewogs")
    dest.mkdir(parents=True)
    (dest / "host_vars").mkdir()
    shutil.copytree(SAMPLE / "group_vars", dest / "group_vars")
    shutil.copy(SAMPLE / "DEMO-ONLY-vault-password.txt", dest)
    for stale in ("wan_links.yml", "lan_links.yml", "dzongkhag.yml"):
        (dest / "group_vars/all" / stale).unlink()
    mgmt = f"10.{mgmt_octet}"
    names = [f"g{i:03d}" for i in range(1, gewogs + 1)]
    hosts = ["---", "all:", "  children:", "    dzongkhag_synth:", "      children:",
             "        site_hq:", "          hosts:", "            hq-rtr1:"]
    routers, sws, ap_hosts = ["hq-rtr1"], [], []
    for name in names:
        members = [f"{name}-rtr1"] + ([f"{name}-sw1"] if switches or aps else []) + ([f"{name}-ap1"] if aps else [])
        hosts += [f"        site_{name}:", "          hosts:"] + [f"            {m}:" for m in members]
        routers.append(f"{name}-rtr1")
        sws += [m for m in members if m.endswith("-sw1")]
        ap_hosts += [m for m in members if m.endswith("-ap1")]
    for group, members in (("routers", routers), ("switches", sws), ("access_points", ap_hosts), ("servers", [])):
        # Empty function groups are still declared: group_vars and user roles refer to them.
        hosts += [f"    {group}:"] + (["      hosts:"] + [f"        {m}:" for m in members] if members else [])
    (dest / "hosts.yml").write_text("\n".join(hosts) + "\n")

    def mgmt_ip(n: int) -> str:
        return f"{mgmt}.{n // 250}.{n % 250 + 2}"

    hq_ifaces = "".join(f"  eth{i}:\n    description: WAN to {name}\n" for i, name in enumerate(names, 1))
    (dest / "host_vars/hq-rtr1.yml").write_text(
        f"---\nansible_host: {mgmt_ip(0)}\ndevice_role: core-router\nloopback: 10.250.254.1/32\n"
        f"lan_interface: lan0\ninterfaces:\n  lan0:\n    address: 10.250.0.1/24\n{hq_ifaces}")
    wan, lan = ["---", "wan_links:"], ["---", "lan_links:"]
    sites = ["---", "dzongkhag: {name: Synthetic, code: syn}", "address_pools:",
             f"  management: {mgmt}.0.0/22", "  wan: 10.249.0.0/16", "  loopback: 10.250.254.0/24",
             "  lan: 10.251.0.0/16", "sites:", "  hq: {title: HQ, kind: hq, lan_prefix: 10.250.0.0/24}"]
    for i, name in enumerate(names, 1):
        sites.append(f"  {name}: {{title: Gewog {name}, kind: gewog, lan_prefix: 10.251.{i}.0/24}}")
        (dest / f"host_vars/{name}-rtr1.yml").write_text(
            f"---\nansible_host: {mgmt_ip(i)}\ndevice_role: gewog-router\nloopback: 10.250.254.{i + 1}/32\n"
            f"lan_interface: eth1\ninterfaces:\n  eth0: {{}}\n  eth1:\n    address: 10.251.{i}.1/24\n")
        wan += [f"  - name: hq-{name}", f"    a: {{host: hq-rtr1, interface: eth{i}}}",
                f"    b: {{host: {name}-rtr1, interface: eth0}}", "    provider: Bhutan Telecom",
                f"    circuit_id: BT-SYN-{i:04d}", "    bandwidth_mbps: 10", "    routing: {protocol: ospf, area: 0}"]
        if switches or aps:
            (dest / f"host_vars/{name}-sw1.yml").write_text(
                f"---\nansible_host: {mgmt_ip(i + 300)}\ndevice_role: access-switch\n"
                "interfaces:\n  swp1: {}\n  swp2: {}\n")
            lan.append(f"  - {{a: {{host: {name}-rtr1, interface: eth1}}, b: {{host: {name}-sw1, interface: swp1}}}}")
        if aps:
            (dest / f"host_vars/{name}-ap1.yml").write_text(
                f"---\nansible_host: {mgmt_ip(i + 600)}\ndevice_role: office-ap\n"
                f"uplink: {{switch: {name}-sw1, port: swp2}}\nssids: [staff, guest]\n"
                "interfaces:\n  eth0: {}\n")
    (dest / "group_vars/all/wan_links.yml").write_text("\n".join(wan) + "\n")
    (dest / "group_vars/all/lan_links.yml").write_text("\n".join(lan) + "\n" if len(lan) > 2 else "---\nlan_links: []\n")
    (dest / "group_vars/all/dzongkhag.yml").write_text("\n".join(sites) + "\n")
    state = state_dir or dest / "state"
    connection = dest / "group_vars/all/connection.yml"
    connection.write_text(connection.read_text().replace("/var/lib/dzops/punakha/known_hosts",
                                                         str(state / "known_hosts")))
    operations = dest / "group_vars/all/operations.yml"
    operations.write_text(operations.read_text().replace("/var/lib/dzops/punakha", str(state))
                          .replace("smtp_port: 8025", f"smtp_port: {smtp_port}"))
    return dest
