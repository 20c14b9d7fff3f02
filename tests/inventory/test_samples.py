"""Both sample Dzongkhags load, pass `inventory check` through the CLI and plan every WAN link.

`provision-wan --check` reads each router's running config, so without devices the plan layer is
what is checked here: every router of every link gets a whole candidate configuration.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dzops.inventory.loader import load_inventory
from dzops.inventory.vault_password import DEMO_VAULT_PASSWORD_FILE, vault_password_file
from dzops.plan.wan import links_in_scope, plan_wan

REPO = Path(__file__).resolve().parents[2]
SAMPLES = {"punakha": REPO / "inventory", "wangdue": REPO / "samples" / "wangdue"}
DZOPS = str(Path(sys.executable).parent / "dzops")


@pytest.fixture(autouse=True)
def _no_vault_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DZOPS_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_inventory_check_passes_with_the_demo_password_beside_it(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "VAULT_PASSWORD_FILE" not in k}
    relative = SAMPLES[name].relative_to(REPO)
    proc = subprocess.run([DZOPS, "-i", str(relative), "inventory", "check"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is valid" in proc.stderr


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_sample_opens_with_its_own_demo_file(name: str) -> None:
    root = SAMPLES[name]
    assert vault_password_file(root, None) == root / DEMO_VAULT_PASSWORD_FILE
    assert "DEMO-ONLY" in (root / "README.md").read_text()
    others = [p for n, p in SAMPLES.items() if n != name]
    assert all((root / DEMO_VAULT_PASSWORD_FILE).read_bytes() != (o / DEMO_VAULT_PASSWORD_FILE).read_bytes()
               for o in others)  # one public password per sample: never one that opens a real vault too


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_link_plans_a_whole_config_for_both_routers(name: str) -> None:
    inventory = load_inventory(SAMPLES[name])
    plan = plan_wan(inventory, links_in_scope(inventory))
    routers = {h for link in inventory.wan_links for h in (link.a.host, link.b.host)}
    assert set(plan.candidates) == routers
    for link in inventory.wan_links:
        a, b = (next(e for e in plan.ends[h] if e.link == link.name) for h in (link.a.host, link.b.host))
        assert a.address.network == b.address.network == plan.allocation[link.name]
        assert plan.allocation[link.name].prefixlen == inventory.address_pools.wan_subnet_size
        assert f"interface {a.ifname}\n" in plan.candidates[link.a.host]
        assert f" ip address {b.address}\n" in plan.candidates[link.b.host]
    assert len(set(plan.allocation.values())) == len(inventory.wan_links)


def test_the_samples_differ_in_shape() -> None:
    punakha, wangdue = (load_inventory(SAMPLES[n]) for n in ("punakha", "wangdue"))
    assert {link.routing.area for link in punakha.wan_links} == {0}
    assert {link.routing.area for link in wangdue.wan_links} == {0, 1}
    assert {link.bandwidth_kbps for link in wangdue.wan_links} >= {512, 2_000, 8_000, 100_000}
    assert wangdue.address_pools.wan_subnet_size == 31 and punakha.address_pools.wan_subnet_size == 30
    hosts_per_link = [h for link in wangdue.wan_links for h in (link.a.host, link.b.host)]
    assert hosts_per_link.count("wdp-ruebisa-rtr1") == 2  # dual-homed
    open_ssids = [p for p in wangdue.ssid_profiles.values() if p.security == "open"]
    assert open_ssids and all(p.client_isolation and p.psk is None for p in open_ssids)
    assert {"school", "health"} <= {wangdue.vlans[p.vlan].name for p in wangdue.ssid_profiles.values()}
    router_uplinked = [d for d in wangdue.devices.values() if d.uplink is not None and d.uplink.router]
    assert [d.name for d in router_uplinked] == ["wdp-athang-ap1"]
    assert not set(punakha.devices) & set(wangdue.devices)


@pytest.mark.parametrize(("name", "host", "gateway"), [
    ("wangdue", "wdp-hq-srv1", "10.60.1.1"),  # declared
    ("punakha", "punakha-hq-srv1", "10.30.1.1"),  # derived from punakha-hq-rtr1's LAN address
    ("punakha", "punakha-hq-web1", "10.30.1.1"),
])
def test_every_server_has_a_default_gateway(name: str, host: str, gateway: str) -> None:
    inventory = load_inventory(SAMPLES[name])
    assert str(inventory.default_gateway(host)) == gateway
    assert inventory.default_gateway(next(d.name for d in inventory.devices.values() if d.function == "routers")) \
        is None  # a router routes: it has no default gateway of its own here


def _guest_bss():
    from dzops.plan.ap import ap_bsses

    inventory = load_inventory(SAMPLES["wangdue"])
    return next(b for b in ap_bsses(inventory, inventory.devices["wdp-thedtsho-ap1"]) if b.profile == "guest")


def test_the_open_guest_ssid_renders_without_a_key_and_isolated() -> None:
    from dzops.plan.render import render

    conf = dict(line.split("=", 1) for line in render("hostapd", "bss", bss=_guest_bss()).splitlines()
                if "=" in line and not line.startswith("#"))
    assert (conf["wpa"], conf["ap_isolate"]) == ("0", "1")
    assert not {"wpa_passphrase", "sae_password", "wpa_key_mgmt", "ieee8021x"} & set(conf)


@pytest.mark.lab  # needs root: a private network namespace for hostapd
def test_hostapd_itself_starts_the_open_guest_ssid(tmp_path: Path) -> None:
    import shutil

    from dzops.plan.render import render

    bss = dataclasses.replace(_guest_bss(), interface="lo", bridge="", driver="none")
    conf = tmp_path / "guest.conf"
    conf.write_text(render("hostapd", "bss", bss=bss, ctrl_dir=str(tmp_path / "ctrl")).replace("bridge=\n", ""))
    hostapd = shutil.which("hostapd") or "/usr/sbin/hostapd"
    # hostapd runs until stopped: `timeout` ends it (SIGTERM), and it flushes its log on the way out.
    proc = subprocess.run(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec timeout 3 {hostapd} -dd {conf}"],
                          capture_output=True, text=True, timeout=30)
    log = proc.stdout + proc.stderr
    assert "lo: AP-ENABLED" in log and "Line " not in log, log  # parsed whole: hostapd names a bad line
