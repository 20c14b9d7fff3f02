"""The lab core against real namespaces, FRR, sshd, lldpd and hostapd (no mocks). Needs root."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from dzops.exceptions import LabError
from dzops.lab import netns
from dzops.lab.builder import Lab, LabStatus
from dzops.lab.spec import LabSpec

pytestmark = pytest.mark.lab

# The session lab of tests/lab/conftest.py; its values, not an import of conftest (not a module).
PREFIX = "hc"
STATE_DIR = Path("/tmp/dzops-test-hc/lab")
USER = "netadmin"
PASSWORD = "Lab-pass-123"

ROUTERS = ("hq-rtr1", "gw1-rtr1", "gw2-rtr1")
CABLES = {
    "hq-rtr1": [("eth1", "gw1-rtr1", "eth1"), ("eth2", "gw2-rtr1", "eth1")],
    "gw1-rtr1": [("eth1", "hq-rtr1", "eth1"), ("eth2", "gw1-sw1", "swp1")],
    "gw2-rtr1": [("eth1", "hq-rtr1", "eth2")],
    "gw1-sw1": [("swp1", "gw1-rtr1", "eth2"), ("swp2", "gw1-ap1", "eth0"), ("swp3", "gw1-ap2", "eth0")],
    "gw1-ap1": [("eth0", "gw1-sw1", "swp2")],
    "gw1-ap2": [("eth0", "gw1-sw1", "swp3")],
}


def _wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _ip(spec: LabSpec, name: str) -> str:
    return spec.node(name).mgmt_address.split("/")[0]


def _ssh(lab: Lab, ip: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())  # StrictHostKeyChecking=yes
    client.connect(ip, username=USER, password=PASSWORD, allow_agent=False, look_for_keys=False, timeout=10)
    return client


def _run(client: paramiko.SSHClient, command: str, stdin: str | None = None) -> tuple[int, str, str]:
    chan_in, out, err = client.exec_command(command, timeout=30)
    if stdin is not None:
        chan_in.write(stdin)
        chan_in.channel.shutdown_write()
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(), err.read().decode()


@pytest.fixture()
def router_ssh(lab: Lab, lab_spec: LabSpec) -> Iterator[paramiko.SSHClient]:
    client = _ssh(lab, _ip(lab_spec, "hq-rtr1"))
    yield client
    client.close()


def _ospf_full(lab: Lab, node: str) -> set[str]:
    """Router ids of the node's OSPF neighbours in state Full."""
    out = lab.exec(node, ["vtysh", "-c", "show ip ospf neighbor json"]).stdout
    neighbors = json.loads(out or "{}").get("neighbors", {})
    return {
        rid for rid, entries in neighbors.items() for e in entries if e.get("state", "").startswith("Full")
    }


# --- build and status ----------------------------------------------------------------------------


def test_spec_matches_these_constants(lab_spec: LabSpec) -> None:
    assert (lab_spec.prefix, lab_spec.state_dir) == (PREFIX, STATE_DIR)
    assert {(n.login_user, n.login_password) for n in lab_spec.nodes} == {(USER, PASSWORD)}


def test_status_reports_every_node_healthy(lab: Lab, lab_spec: LabSpec) -> None:
    status = lab.status()
    assert {n.name for n in status.nodes} == {n.name for n in lab_spec.nodes}
    unhealthy = [n.to_dict() for n in status.nodes if not n.healthy]
    assert not unhealthy
    hq = status.node("hq-rtr1")
    assert set(hq.expected_daemons) == {"zebra", "staticd", "ospfd", "watchfrr", "sshd", "lldpd"}
    assert hq.ssh_banner.startswith("SSH-2.0-OpenSSH")
    # the factory-state AP runs no hostapd, and that is not unhealthy
    assert status.node("gw1-ap1").daemons["hostapd"] is False
    assert status.node("gw1-ap2").daemons["hostapd"] is True
    json.dumps(status.to_dict())  # JSON-serialisable for `dzops lab status --json`


def test_up_twice_is_harmless(lab: Lab) -> None:
    before = {n.name: n.holder_pid for n in lab.status().nodes}
    again = lab.up()
    assert isinstance(again, LabStatus) and again.healthy
    assert {n.name: n.holder_pid for n in again.nodes} == before  # nothing was rebuilt


def test_node_identity_and_private_etc(lab: Lab) -> None:
    assert lab.exec("gw2-rtr1", ["hostname"]).stdout.strip() == "gw2-rtr1"
    assert USER in lab.exec("gw2-rtr1", ["getent", "passwd", USER]).stdout
    assert lab.exec("gw2-rtr1", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert lab.exec("gw1-sw1", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    assert int(lab.exec("hq-rtr1", ["sysctl", "-n", "net.ipv4.igmp_max_memberships"]).stdout) > 20
    # the user exists only inside the nodes, never on the host
    assert subprocess.run(["getent", "passwd", USER], capture_output=True).returncode != 0
    # each node has its own /etc/frr/frr.conf
    assert "hostname gw2-rtr1" in lab.exec("gw2-rtr1", ["cat", "/etc/frr/frr.conf"]).stdout


def test_mgmt_addresses_answer_from_root(lab: Lab, lab_spec: LabSpec) -> None:
    for node in lab_spec.nodes:
        with socket.create_connection((_ip(lab_spec, node.name), 22), timeout=3) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-"), node.name


def test_unlinked_port_exists_with_carrier_and_bandwidth_is_shaped(lab: Lab) -> None:
    link = lab.exec("hq-rtr1", ["ip", "-br", "link", "show", "eth3"]).stdout
    assert "LOWER_UP" in link
    qdisc = lab.exec("hq-rtr1", ["tc", "qdisc", "show", "dev", "eth1"]).stdout
    assert "tbf" in qdisc and "10Mbit" in qdisc
    assert "tbf" in lab.exec("gw2-rtr1", ["tc", "qdisc", "show", "dev", "eth1"]).stdout


# --- SSH ----------------------------------------------------------------------------------------


def test_ssh_with_strict_host_keys_reaches_every_node(lab: Lab, lab_spec: LabSpec) -> None:
    lines = lab.known_hosts_path.read_text().splitlines()
    assert len(lines) == len(lab_spec.nodes)
    for node in lab_spec.nodes:
        client = _ssh(lab, _ip(lab_spec, node.name))
        try:
            cmd = "show version" if node.kind == "router" else "hostname"
            rc, out, _ = _run(client, cmd)
            assert rc == 0 and node.name in out, (node.name, out)
        finally:
            client.close()


def test_wrong_host_key_is_rejected(lab: Lab, lab_spec: LabSpec, tmp_path: Path) -> None:
    # the known_hosts line of gw1-rtr1 under hq-rtr1's address: RejectPolicy must refuse
    keys = {line.split()[0]: line.split(None, 1)[1] for line in lab.known_hosts_path.read_text().splitlines()}
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{_ip(lab_spec, 'hq-rtr1')} {keys[_ip(lab_spec, 'gw1-rtr1')]}\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(forged))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(
            _ip(lab_spec, "hq-rtr1"),
            username=USER,
            password=PASSWORD,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
    client.close()


def test_netmiko_cisco_ios_on_every_router(lab: Lab, lab_spec: LabSpec) -> None:
    from netmiko import ConnectHandler

    for name in ROUTERS:
        conn = ConnectHandler(
            device_type="cisco_ios",
            host=_ip(lab_spec, name),
            username=USER,
            password=PASSWORD,
            use_keys=False,
            allow_agent=False,
            system_host_keys=False,
            alt_host_keys=True,
            alt_key_file=str(lab.known_hosts_path),
            ssh_strict=True,
        )
        try:
            assert conn.find_prompt() == f"{name}#"
            assert f"hostname {name}" in conn.send_command("show running-config")
            if name == "gw2-rtr1":
                out = conn.send_config_set(["interface eth1", " description set-by-netmiko"])
                assert "% " not in out, out
                assert "Integrated configuration saved" in conn.save_config()
        finally:
            conn.disconnect()
    saved = lab.exec("gw2-rtr1", ["cat", "/etc/frr/frr.conf"]).stdout
    assert "description set-by-netmiko" in saved  # write memory really wrote the node's file
    owner = lab.exec("gw2-rtr1", ["stat", "-c", "%U", "/etc/frr/frr.conf"]).stdout.strip()
    assert owner == "frr"


def test_router_exec_channel_and_frr_reload(lab: Lab, router_ssh: paramiko.SSHClient) -> None:
    rc, out, _ = _run(router_ssh, "show running-config")
    assert rc == 0 and "hostname hq-rtr1" in out
    rc, out, err = _run(router_ssh, "sudo ls /")  # only frr-reload may run with sudo
    assert rc != 0 and "only 'sudo frr-reload" in err
    running = _run(router_ssh, "show running-config")[1]
    candidate = running.replace("description wan eth1", "description replaced-by-reload")
    candidate = candidate[candidate.index("frr version") :]
    sftp = router_ssh.open_sftp()
    sftp.putfo(io.BytesIO(candidate.encode()), "candidate.conf")
    sftp.close()
    rc, out, _ = _run(router_ssh, "frr-reload --test candidate.conf")
    assert rc == 0
    assert re.search(r"Lines To Add\s*=+\s*interface eth1\s+description replaced-by-reload", out), out
    rc, out, _ = _run(router_ssh, "sudo /usr/lib/frr/frr-reload.py --reload --stdout candidate.conf")
    assert rc == 0, out
    assert "description replaced-by-reload" in _run(router_ssh, "show running-config")[1]
    # the same tool as root at the console
    lab.exec("hq-rtr1", ["sh", "-c", "cat > /tmp/cand.conf"], input=running[running.index("frr version") :])
    proc = lab.exec("hq-rtr1", ["/usr/lib/frr/frr-reload.py", "--test", "/tmp/cand.conf"])
    assert proc.returncode == 0 and "description wan eth1" in proc.stdout
    assert lab.exec("hq-rtr1", ["/usr/lib/frr/frr-reload.py", "--reload", "/tmp/cand.conf"]).returncode == 0
    assert "description wan eth1" in _run(router_ssh, "show running-config")[1]


def test_switch_user_gets_bash_and_sudo_bridge(lab: Lab, lab_spec: LabSpec) -> None:
    client = _ssh(lab, _ip(lab_spec, "gw1-sw1"))
    try:
        rc, out, _ = _run(client, "echo $0; sudo -n bridge link show")
        assert rc == 0, out
        assert "swp1" in out and "master br0" in out
        rc, out, _ = _run(client, "sudo -n ip link set swp4 down && ip -br link show swp4")
        assert rc == 0 and "DOWN" in out
        _run(client, "sudo -n ip link set swp4 up")
    finally:
        client.close()


# --- LLDP, OSPF, faults ---------------------------------------------------------------------------


def test_lldp_shows_exactly_the_cabled_neighbours(lab: Lab) -> None:
    for node, expected in CABLES.items():
        found = _wait(
            lambda n=node, e=expected: lab.lldp_neighbors(n) == sorted(e) and e,
            40,
            f"LLDP neighbours of {node}",
        )
        assert found


def test_ospf_full_then_link_down_removes_neighbour(lab: Lab) -> None:
    _wait(lambda: _ospf_full(lab, "hq-rtr1") == {"10.255.0.2", "10.255.0.3"}, 40, "OSPF Full on hq-rtr1")
    lab.set_link("gw2-rtr1", "eth1", up=False)
    try:
        _wait(lambda: _ospf_full(lab, "hq-rtr1") == {"10.255.0.2"}, 15, "gw2 to leave hq's OSPF neighbours")
        _wait(lambda: ("eth2", "gw2-rtr1", "eth1") not in lab.lldp_neighbors("hq-rtr1"), 15, "LLDP loss")
    finally:
        lab.set_link("gw2-rtr1", "eth1", up=True)
    _wait(lambda: "10.255.0.3" in _ospf_full(lab, "hq-rtr1"), 40, "OSPF to come back after link up")


def test_stop_and_start_daemon(lab: Lab) -> None:
    _wait(lambda: "10.255.0.2" in _ospf_full(lab, "hq-rtr1"), 40, "OSPF Full to gw1")
    lab.stop_daemon("gw1-rtr1", "ospfd")
    try:
        assert lab.status().node("gw1-rtr1").daemons["ospfd"] is False
        time.sleep(6)  # longer than watchfrr's poll: it must not restart the daemon behind our back
        assert lab.status().node("gw1-rtr1").daemons["ospfd"] is False
        _wait(lambda: "10.255.0.2" not in _ospf_full(lab, "hq-rtr1"), 15, "gw1 to leave hq's neighbours")
    finally:
        lab.start_daemon("gw1-rtr1", "ospfd")
    assert lab.status().node("gw1-rtr1").daemons["ospfd"] is True
    # the restarted ospfd got its part of frr.conf back and forms the adjacency again
    _wait(lambda: "10.255.0.2" in _ospf_full(lab, "hq-rtr1"), 40, "OSPF Full after ospfd restart")
    with pytest.raises(LabError):
        lab.stop_daemon("gw1-rtr1", "bgpd")


# --- access points --------------------------------------------------------------------------------


def _bss(iface: str, ssid: str, passphrase: str) -> str:
    return (
        f"driver=none\ninterface={iface}\nbridge=br0\nctrl_interface=/run/hostapd\nssid={ssid}\nhw_mode=g\n"
        f"channel=6\nwpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={passphrase}\n"
    )


HOSTAPD_STOP = (
    "sudo -n start-stop-daemon --stop --quiet --retry 5 --oknodo --pidfile /run/hostapd.pid "
    "--exec /usr/sbin/hostapd"
)
HOSTAPD_START = "sudo -n sh -c '. /etc/default/hostapd; exec hostapd -B -P /run/hostapd.pid $DAEMON_CONF'"


def test_ap_factory_state_then_provisioned_over_ssh(lab: Lab, lab_spec: LabSpec) -> None:
    assert lab.status().node("gw1-ap1").daemons["hostapd"] is False
    client = _ssh(lab, _ip(lab_spec, "gw1-ap1"))
    try:
        # two SSIDs = two files (driver=none cannot add a second BSS to one interface)
        for path, text in (
            ("/etc/hostapd/hostapd.conf", _bss("wlan0", "Gewog-Staff", "staff-secret-1")),
            ("/etc/hostapd/wlan1.conf", _bss("wlan1", "Gewog-Guest", "guest-secret-1")),
        ):
            assert _run(client, f"sudo -n tee {path} >/dev/null", stdin=text)[0] == 0
        default = 'DAEMON_CONF="/etc/hostapd/hostapd.conf /etc/hostapd/wlan1.conf"\n'
        assert _run(client, "sudo -n tee /etc/default/hostapd >/dev/null", stdin=default)[0] == 0
        assert _run(client, HOSTAPD_STOP)[0] == 0
        rc, out, err = _run(client, HOSTAPD_START)
        assert rc == 0, out + err
        for iface, ssid in (("wlan0", "Gewog-Staff"), ("wlan1", "Gewog-Guest")):
            status = _run(client, f"sudo -n hostapd_cli -p /run/hostapd -i {iface} status")[1]
            assert "state=ENABLED" in status, status
            assert (
                f"ssid={ssid}"
                in _run(client, f"sudo -n hostapd_cli -p /run/hostapd -i {iface} get_config")[1]
            )
        assert lab.status().node("gw1-ap1").daemons["hostapd"] is True
        # a 5-character passphrase: hostapd refuses the config and names the line
        bad = _bss("wlan1", "Gewog-Guest", "short")
        assert _run(client, "sudo -n tee /etc/hostapd/wlan1.conf >/dev/null", stdin=bad)[0] == 0
        assert _run(client, HOSTAPD_STOP)[0] == 0
        rc, out, err = _run(client, HOSTAPD_START)
        assert rc != 0
        assert re.search(r"Line \d+: .*passphrase", out + err), out + err
        assert lab.status().node("gw1-ap1").daemons["hostapd"] is False
    finally:
        client.close()


def test_ap_with_config_runs_hostapd_and_can_be_restarted(lab: Lab) -> None:
    out = lab.exec("gw1-ap2", ["hostapd_cli", "-p", "/run/hostapd", "-i", "wlan0", "status"]).stdout
    assert "state=ENABLED" in out
    lab.stop_daemon("gw1-ap2", "hostapd")
    assert lab.status().node("gw1-ap2").daemons["hostapd"] is False
    lab.start_daemon("gw1-ap2", "hostapd")
    assert lab.status().node("gw1-ap2").daemons["hostapd"] is True
    bridge = lab.exec("gw1-ap2", ["bridge", "link", "show"]).stdout
    assert "eth0" in bridge and "wlan0" in bridge and "br0" in bridge


# --- teardown (last: it builds and removes its own copy of the lab) --------------------------------


def _leftovers() -> list[str]:
    found = [
        f"netns {n}"
        for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        if n.startswith(f"{PREFIX}-")
    ]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout.split("\n")
    found += [f"link {ln.split()[0]}" for ln in links if ln.startswith(f"{PREFIX}-")]
    found += [
        f"mount {ln.split()[1]}"
        for ln in Path("/proc/mounts").read_text().splitlines()
        if str(STATE_DIR) in ln
    ]
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [
        f"process {ln.strip()}" for ln in ps.splitlines() if str(STATE_DIR) in ln or f" {PREFIX}-" in ln
    ]
    return found


def test_down_from_a_fresh_object_removes_everything(lab: Lab, lab_spec: LabSpec) -> None:
    state = json.loads((STATE_DIR / "state.json").read_text())
    pids = [n["holder_pid"] for n in state["nodes"].values()]
    pids += [pid for n in state["nodes"].values() for pid in n["daemons"].values()]
    assert len(pids) > 2 * len(lab_spec.nodes)
    Lab(lab_spec).down()  # a new object knows only the state file, like `dzops lab down`
    assert _leftovers() == []
    assert not [pid for pid in pids if netns.pid_alive(pid)]
    assert not STATE_DIR.exists()
    assert lab.status().running is False


def test_failed_up_cleans_up_after_itself(lab: Lab, lab_spec: LabSpec) -> None:
    broken_node = dataclasses.replace(
        lab_spec.node("gw2-rtr1"), frr_config="interface eth1\n ip address 999.1.1.1/30\n"
    )
    broken = dataclasses.replace(
        lab_spec, nodes=tuple(broken_node if n.name == "gw2-rtr1" else n for n in lab_spec.nodes)
    )
    with pytest.raises(LabError, match="gw2-rtr1"):
        Lab(broken).up()
    assert _leftovers() == []
    assert not STATE_DIR.exists()
    # and the real lab comes back (the session fixture's final down() then removes this build)
    assert lab.up().healthy
