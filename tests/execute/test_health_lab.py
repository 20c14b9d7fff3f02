"""`dzops health` on the provisioned lab: all well, a gewog's WAN link cut and restored.

One test walks the whole story, since each step needs the one before (the history of the runs,
the alert state): healthy -> cut Talo's link -> one finding naming the link and the site behind
it, exit 6 -> after `alert_after` runs one alert mail -> restore -> recovery mail with the
outage's length -> history shows the outage -> the status page shows every site.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dzops.cli.exit_codes import ExitCode

pytestmark = pytest.mark.lab

LINK, SITE, ROUTER, PORT = "hq-talo", "talo", "gewog-talo-rtr1", "eth0"


# The lab's servers share this machine's kernel, so their load average is the whole machine's (other
# builds included): the load threshold is raised here and proven by parse_resources' doctest instead.
LAB_THRESHOLDS = "dzops_health_thresholds:\n  load_per_cpu: 1000\n"


@dataclass
class Env:
    handle: Any
    inventory_dir: Path
    provisioned: Any = None

    def env(self) -> dict[str, str]:
        return {**{k: v for k, v in self.handle.env().items() if k != "DZOPS_VAULT_PASSWORD_FILE"},
                "DZOPS_INVENTORY": str(self.inventory_dir)}

    @property
    def state_dir(self) -> Path:
        return Path(self.handle.state_dir)

    @property
    def lab(self) -> Any:
        return self.handle.lab

    def inventory(self) -> Any:
        from dzops.inventory.loader import load_inventory

        return load_inventory(self.inventory_dir)


@pytest.fixture(scope="module")
def hl(provisioned_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The lab's inventory copied, with its history and reports in a folder of this module's own."""
    root = tmp_path_factory.mktemp("health")
    inventory_dir = root / "inventory"
    shutil.copytree(provisioned_lab.handle.inventory_dir, inventory_dir)
    operations = inventory_dir / "group_vars/all/operations.yml"
    text = operations.read_text()
    assert "\nreport_dir:" in text
    operations.write_text(re.sub(r"\nreport_dir: .*", f"\nreport_dir: {root / 'reports'}", text))
    servers = inventory_dir / "group_vars/servers.yml"
    servers.write_text(servers.read_text() + LAB_THRESHOLDS)
    return Env(provisioned_lab.handle, inventory_dir, provisioned_lab)


def _dzops(handle: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", *args], capture_output=True, text=True, env=handle.env(),
                          timeout=600, check=False)


def _health(handle: Any) -> tuple[int, dict[str, Any], str]:
    run = _dzops(handle, "--json", "health")
    assert run.returncode in (ExitCode.OK, ExitCode.HEALTH_DEGRADED), run.stderr[-3000:]
    return run.returncode, json.loads(run.stdout), run.stderr


def _alerts(handle: Any) -> list[Any]:
    from dzops.lab.smtp import read_mail

    return [m for m in read_mail(handle.state_dir / "mail") if LINK in str(m["Subject"])]


def _body(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",)) if hasattr(message, "get_body") else None
    return part.get_content() if part is not None else message.get_payload(decode=True).decode()


def test_health_all_well_then_a_cut_link_alerts_once_and_recovers(hl: Env, tmp_path: Path) -> None:
    handle = hl
    provisioned = hl.provisioned.wan_results
    assert all(r.verified for r in provisioned), [(r.link, r.status, r.error) for r in provisioned if not r.verified]
    inventory = handle.inventory()
    n = inventory.health.alert_after
    code, data, stderr = _health(handle)
    assert code == ExitCode.OK, [(f["key"], f["message"]) for f in data["findings"]]
    by_key = {r["key"]: r for r in data["results"]}
    assert all(r["status"] == "up" for r in data["results"])
    assert {f"link:{link.name}" for link in inventory.wan_links} <= set(by_key)
    # every link, each shaped to its bandwidth by the lab (tbf), reports its round trip and no loss
    assert all(by_key[f"link:{link.name}"]["rtt_ms"] > 0 and by_key[f"link:{link.name}"]["loss"] == 0.0
               for link in inventory.wan_links)
    assert "SSID(s) enabled" in by_key["ap:gewog-talo-ap1"]["message"]
    assert "disk" in by_key["resources:punakha-hq-srv1"]["message"]
    before = len(_alerts(handle))

    handle.lab.set_link(ROUTER, PORT, False)
    try:
        for run in range(n):
            code, data, _ = _health(handle)
            assert code == ExitCode.HEALTH_DEGRADED
            talo = [f for f in data["findings"] if f["site"] == SITE or SITE in f["behind"]]
            assert len(talo) == 1, talo  # one finding, not a storm
            [finding] = talo
            assert finding["key"] == f"link:{LINK}" and finding["behind"] == [SITE]
            assert f"{SITE} unreachable behind {LINK}" in finding["message"]
            assert f"lan:{SITE}" in finding["hidden"]
            assert [f for f in data["findings"] if f["key"] != f"link:{LINK}"] == []
            if run < n - 1:
                assert len(_alerts(handle)) == before, "alerted before the state was confirmed"
        down_mails = _alerts(handle)[before:]
        assert len(down_mails) == 1
        subject = str(down_mails[0]["Subject"])
        assert "DOWN" in subject and LINK in subject and SITE in subject
        assert f"Unreachable behind {LINK}: {SITE}" in _body(down_mails[0])
        # the status page's summary goes with the alert: the cut site down, with its uptime so far
        [site_line] = [ln for ln in _body(down_mails[0]).splitlines() if ln.startswith(f"{SITE} ")]
        assert site_line.split()[1] == "down" and "%" in site_line
        _health(handle)  # still down: no second mail
        assert len(_alerts(handle)) == before + 1
    finally:
        handle.lab.set_link(ROUTER, PORT, True)

    deadline = time.monotonic() + 120  # OSPF comes back Full within about 40 s
    while True:
        code, data, _ = _health(handle)
        if code == ExitCode.OK or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert code == ExitCode.OK, data["findings"]
    for _ in range(n - 1):
        code, data, _ = _health(handle)
        assert code == ExitCode.OK, data["findings"]
    mails = _alerts(handle)[before:]
    subjects = [str(m["Subject"]) for m in mails]
    # A restored link can answer with loss for a few polls while OSPF and ARP settle. Confirmed for
    # alert_after polls, that is a DEGRADED alert of its own (the real lab does it now and then), in
    # the same outage: the recovery then reports all of it (tests/cli/test_health_cli.py).
    assert len(mails) in (2, 3) and all("DEGRADED" in s for s in subjects[1:-1]), subjects
    assert "RECOVERED" in subjects[-1] and "The outage lasted" in _body(mails[-1])

    history = _dzops(handle, "--json", "health", "history", "--since", "1d", "--site", SITE)
    assert history.returncode == ExitCode.OK, history.stderr
    subjects = {s["key"]: s for s in json.loads(history.stdout)["subjects"]}
    link = subjects[f"link:{LINK}"]
    assert 0 < link["uptime_pct"] < 100 and link["last"] == "up"
    [outage] = link["outages"]
    assert outage["end"] is not None and outage["duration_s"] > 0 and outage["status"] == "down"
    assert subjects[f"site:{SITE}"]["outages"]

    page = _dzops(handle, "health", "page", "--output", str(tmp_path / "page"))
    assert page.returncode == ExitCode.OK, page.stderr
    html = (tmp_path / "page" / "index.html").read_text()
    assert f'data-site="{SITE}" data-status="up"' in html and f'data-link="{LINK}"' in html
    # each recorded run regenerated the page beside the reports too
    assert (inventory.report_dir / "status" / "index.html").is_file()


def test_a_disk_over_its_threshold_is_degraded_and_named(hl: Env, tmp_path: Path) -> None:
    """The threshold is set under what the server's root file system holds now (filling a disk of
    this shared machine is not an option): the server is degraded, the mount and both numbers named."""
    host = "punakha-hq-srv1"
    copy = tmp_path / "inventory"
    shutil.copytree(hl.inventory_dir, copy)
    (copy / "host_vars" / f"{host}.yml").write_text(
        (copy / "host_vars" / f"{host}.yml").read_text() + "dzops_health_thresholds:\n  disk_percent: 1\n"
        "  load_per_cpu: 1000\n")
    run = _dzops(Env(hl.handle, copy), "--limit", host, "--check", "--json", "health")
    assert run.returncode == ExitCode.HEALTH_DEGRADED, run.stderr[-2000:]
    [finding] = json.loads(run.stdout)["findings"]
    assert finding["key"] == f"resources:{host}" and finding["status"] == "degraded"
    assert re.search(r"disk \S+ \d+% > 1%", finding["message"]), finding["message"]


def test_a_stopped_service_is_named(hl: Env, tmp_path: Path) -> None:
    """An HTTP application on a server (Python's own web server as a stand-in) is up while it runs,
    and named down once its process is stopped, while the server itself still answers SSH."""
    import socket

    host = "punakha-hq-web1"
    address = str(hl.inventory().devices[host].mgmt_address)
    url = f"http://{address}:8080/"
    copy = tmp_path / "inventory"
    shutil.copytree(hl.inventory_dir, copy)
    host_vars = copy / "host_vars" / f"{host}.yml"
    text = host_vars.read_text()
    assert "health_checks:\n" in text
    host_vars.write_text(text.replace("health_checks:\n", f"health_checks:\n  - kind: http\n    target: {url}\n"
                                      f"    body_match: Directory listing\n", 1))
    started = hl.lab.exec(host, ["sh", "-c", f"cd /tmp && python3 -m http.server 8080 --bind {address} "
                                             ">/dev/null 2>&1 & echo $!"])
    pid = started.stdout.strip()
    assert pid.isdigit(), started.stderr
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex((address, 8080)) == 0:
                    break
            assert time.monotonic() < deadline, "the stand-in application did not listen"
            time.sleep(0.3)
        key = f"service:{host}:http:{url}"
        run = _dzops(Env(hl.handle, copy), "--limit", host, "--check", "--json", "health")
        assert run.returncode == ExitCode.OK, run.stdout[-2000:]
        assert {r["key"]: r["status"] for r in json.loads(run.stdout)["results"]}[key] == "up"
    finally:
        hl.lab.exec(host, ["kill", pid])
    run = _dzops(Env(hl.handle, copy), "--limit", host, "--check", "--json", "health")
    assert run.returncode == ExitCode.HEALTH_DEGRADED
    [finding] = json.loads(run.stdout)["findings"]
    assert finding["key"] == key and finding["status"] == "down" and url in finding["message"]
    assert "refused" in finding["message"].lower()


HQ_ROUTER = "punakha-hq-rtr1"
VTYSH_LOGIN = "vtyadm"  # a `full` staff account: its login shell is vtysh, as on an appliance


def test_a_vtysh_only_login_pings_from_vtysh_and_calls_the_lan_not_measurable(hl: Env, tmp_path: Path) -> None:
    """HQ's router reached through a login that lands in vtysh (dzops_router_login: vtysh): its link
    ends are pinged by FRR's own `ping` on a terminal, each ended by Ctrl-C (on an exec channel it
    never ends and outlives the channel); the LAN checks need a ping from HQ's LAN address, which
    vtysh's ping cannot send: reported as not measurable, never as down."""
    key = tmp_path / "vtysh_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dzops-lab", "-f", str(key)], check=True)
    made = hl.lab.exec(HQ_ROUTER, ["/usr/local/lib/dzops/account", "present", VTYSH_LOGIN, "full", "never",
                                   "Vtysh Login"], input=key.with_suffix(".pub").read_text())
    assert made.returncode == 0, made.stderr
    copy = tmp_path / "inventory"
    shutil.copytree(hl.inventory_dir, copy)
    host_vars = copy / "host_vars" / f"{HQ_ROUTER}.yml"
    host_vars.write_text(host_vars.read_text() + f"ansible_user: {VTYSH_LOGIN}\nansible_ssh_private_key_file: {key}\n"
                         "dzops_router_login: vtysh\n")
    try:
        run = _dzops(Env(hl.handle, copy), "--check", "--json", "health")
        assert run.returncode == ExitCode.OK, run.stdout[-3000:] + run.stderr[-2000:]
        data = json.loads(run.stdout)
        inventory = hl.inventory()
        by_key = {r["key"]: r for r in data["results"]}
        for link in inventory.wan_links:
            result = by_key[f"link:{link.name}"]
            assert result["status"] == "up" and result["rtt_ms"] > 0 and result["loss"] == 0.0, result
        gewogs = {s for s, site in inventory.sites.items() if site.kind != "hq" and inventory.site_router(s)}
        assert {u["key"] for u in data["unmeasured"]} == {f"lan:{s}" for s in gewogs}
        assert all("not measurable on this login" in u["message"] for u in data["unmeasured"])
        assert not any(k.startswith("lan:") for k in by_key) and data["findings"] == []
        left = hl.lab.exec(HQ_ROUTER, ["ps", "-u", VTYSH_LOGIN, "-o", "pid=,args="])
        assert "ping" not in left.stdout, left.stdout  # every vtysh ping was ended, none outlived its terminal
    finally:
        hl.lab.exec(HQ_ROUTER, ["/usr/local/lib/dzops/account", "absent", VTYSH_LOGIN])
