"""The lab core on the session lab of the sample inventory: real namespaces, FRR, sshd, lldpd, hostapd.

Every test runs against `punakha_lab` (factory state) and leaves it as it found it: links up, daemons
running, files and running configs restored, LLDP neighbours and OSPF adjacencies back.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
import pytest

from dzops.exceptions import LabError
from dzops.inventory.models import Inventory
from dzops.lab.builder import Lab, LabStatus
from dzops.lab.spec import LabInterface, LabLink, LabNode, LabSpec
from tests.labkit import LabHandle, lab_leftovers, lab_pids

pytestmark = pytest.mark.lab

HQ = "punakha-hq-rtr1"
ROUTER_DAEMONS = {"zebra", "staticd", "ospfd", "watchfrr", "sshd", "lldpd"}
OVS_DAEMONS = {"ovsdb-server", "ovs-vswitchd"}  # each switch's and AP's own Open vSwitch (VLAN-aware br0)
SWITCH_DAEMONS = {"zebra", "watchfrr", "sshd", "lldpd"} | OVS_DAEMONS
AP_DAEMONS = {"sshd", "lldpd"} | OVS_DAEMONS  # factory state: hostapd is not expected to run
SERVER_DAEMONS = {"sshd", "lldpd"}


# --- helpers ---------------------------------------------------------------------------------------


def _wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _parallel(func: Callable[[str], Any], names: list[str]) -> dict[str, Any]:
    with ThreadPoolExecutor(8) as pool:  # ~8 sessions saturate the 2 shared cores (lab notes)
        return dict(zip(names, pool.map(func, names), strict=True))


def _ip(inventory: Inventory, name: str) -> str:
    return str(inventory.devices[name].mgmt_address)


def _names(inventory: Inventory, platform: str) -> list[str]:
    return sorted(n for n, d in inventory.devices.items() if d.platform == platform)


def _ssh(lab: Lab, inventory: Inventory, name: str, known_hosts: Path | None = None) -> paramiko.SSHClient:
    device = inventory.devices[name]
    assert device.password is not None
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts or lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())  # StrictHostKeyChecking=yes
    try:
        client.connect(_ip(inventory, name), username=device.username,
                       password=device.password.get_secret_value(), allow_agent=False, look_for_keys=False,
                       timeout=20, banner_timeout=30, auth_timeout=30)
    except BaseException:
        client.close()
        raise
    return client


def _run(client: paramiko.SSHClient, command: str, stdin: str | None = None,
         timeout: float = 60) -> tuple[int, str, str]:
    chan_in, out, err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    text_out, text_err = out.read().decode(), err.read().decode()
    return out.channel.recv_exit_status(), text_out, text_err


def _running(lab: Lab, node: str) -> str:
    out = lab.exec(node, ["vtysh", "-c", "show running-config"]).stdout
    return out[out.index("frr version"):]


def _cables(inventory: Inventory) -> dict[str, list[tuple[str, str, str]]]:
    """(local port, neighbour, neighbour port) of every node, from the inventory's cabling alone."""
    ends = [((w.a.host, w.a.interface), (w.b.host, w.b.interface)) for w in inventory.wan_links]
    ends += [((c.a.host, c.a.interface), (c.b.host, c.b.interface)) for c in inventory.lan_links]
    ends += [((d.name, d.uplink.interface), (d.uplink.switch, d.uplink.port))
             for d in inventory.devices.values() if d.uplink is not None]
    cables: dict[str, list[tuple[str, str, str]]] = {name: [] for name in inventory.devices}
    for (a, a_if), (b, b_if) in ends:
        cables[a].append((a_if, b, b_if))
        cables[b].append((b_if, a, a_if))
    return {name: sorted(found) for name, found in cables.items()}


def _ospf_full(lab: Lab, node: str) -> set[str]:
    """Router ids of the node's OSPF neighbours in state Full."""
    out = lab.exec(node, ["vtysh", "-c", "show ip ospf neighbor json"]).stdout.strip()
    if not out.startswith("{"):  # no `router ospf` at all (factory state)
        return set()
    neighbors = json.loads(out).get("neighbors", {})
    return {rid for rid, entries in neighbors.items()
            for e in entries if e.get("state", "").startswith("Full")}


def _relearn_lldp(lab: Lab, a: tuple[str, str], b: tuple[str, str]) -> None:
    """After a link flap: both ends transmit now (not in 30 s) and see each other again."""
    for node, _ in (a, b):
        lab.exec(node, ["lldpcli", "update"])
    for (node, port), (far, far_port) in ((a, b), (b, a)):
        def back(n: str = node, e: tuple[str, str, str] = (port, far, far_port)) -> bool:
            return e in lab.lldp_neighbors(n)

        _wait(back, 40, f"LLDP {node} {port} again")


@contextmanager
def _frr_restored(lab: Lab, node: str) -> Iterator[None]:
    """Whatever the test does to a router's FRR, its running config and /etc/frr come back exactly."""
    running = _running(lab, node)
    listing = lab.exec(node, ["ls", "-A", "/etc/frr"]).stdout.split()
    saved = lab.exec(node, ["cat", "/etc/frr/frr.conf"]).stdout
    mode = lab.exec(node, ["stat", "-c", "%a %U:%G", "/etc/frr/frr.conf"]).stdout.split()
    try:
        yield
    finally:
        if _running(lab, node) != running:  # frr-reload costs seconds on the shared cores: only if needed
            # Reloaded from /etc/frr/frr.conf itself: with any other file name frr-reload.py ends with
            # a `write memory` (which fails while watchfrr has not yet seen a restarted daemon).
            lab.exec(node, ["sh", "-c", "cat > /etc/frr/frr.conf"], input=running)
            reload = lab.exec(node, ["/usr/lib/frr/frr-reload.py", "--reload", "/etc/frr/frr.conf"])
            assert reload.returncode == 0, reload.stdout + reload.stderr
            assert _running(lab, node) == running, f"{node}: running config not restored"
        if lab.exec(node, ["cat", "/etc/frr/frr.conf"]).stdout != saved:
            lab.exec(node, ["sh", "-c", "cat > /etc/frr/frr.conf"], input=saved)
        lab.exec(node, ["chown", mode[1], "/etc/frr/frr.conf"])
        lab.exec(node, ["chmod", mode[0], "/etc/frr/frr.conf"])
        for extra in set(lab.exec(node, ["ls", "-A", "/etc/frr"]).stdout.split()) - set(listing):
            lab.exec(node, ["rm", "-f", f"/etc/frr/{extra}"])  # e.g. frr.conf.sav of `write memory`
        assert lab.exec(node, ["cat", "/etc/frr/frr.conf"]).stdout == saved, f"{node}: frr.conf not restored"


# --- build and status ------------------------------------------------------------------------------


def test_status_reports_every_node_healthy(lab: Lab, inventory: Inventory) -> None:
    status = lab.status()
    assert status.healthy and status.running
    assert {n.name for n in status.nodes} == set(inventory.devices)
    assert [n.to_dict() for n in status.nodes if not n.healthy] == []
    assert status.services == {"pkgrepo": True, "smtp": True}
    expected = {"frr": ROUTER_DAEMONS, "cumulus": SWITCH_DAEMONS, "hostapd": AP_DAEMONS, "debian": SERVER_DAEMONS}
    for node in status.nodes:
        device = inventory.devices[node.name]
        # a server also runs the database servers its `services` name (the HQ server: PostgreSQL, MariaDB)
        databases = {s for s in device.services if s in ("postgresql", "mariadb")}
        assert set(node.expected_daemons) == expected[device.platform] | databases, node.name
        assert node.ssh and node.ssh_banner.startswith("SSH-2.0-OpenSSH"), node.name
    # hostapd is not required for health: factory-state APs have no config and run none (the
    # session's provisioned_lab, if some other test asked for it, gives them both)
    configured = _parallel(lambda ap: lab.exec(ap, ["sh", "-c", "ls /etc/hostapd/*.conf"]).returncode == 0,
                           _names(inventory, "hostapd"))
    assert {n.name: n.daemons["hostapd"] for n in status.nodes if n.kind == "ap"} == configured
    json.dumps(status.to_dict())  # what `dzops lab status --json` prints


def test_up_twice_is_harmless(lab: Lab) -> None:
    before = {n.name: n.holder_pid for n in lab.status().nodes}
    again = lab.up()
    assert isinstance(again, LabStatus) and again.healthy
    assert {n.name: n.holder_pid for n in again.nodes} == before  # nothing was rebuilt


def test_node_identity_and_private_etc(lab: Lab, inventory: Inventory) -> None:
    names = sorted(inventory.devices)
    hostnames = _parallel(lambda n: lab.exec(n, ["hostname"]).stdout.strip(), names)
    assert hostnames == {n: n for n in names}  # a UTS namespace per node
    user = inventory.devices[HQ].username
    assert user and user in lab.exec(HQ, ["getent", "passwd", user]).stdout
    # the login user exists only inside the nodes, never on the host
    assert subprocess.run(["getent", "passwd", user], capture_output=True).returncode != 0
    assert f"hostname {HQ}\n" in lab.exec(HQ, ["cat", "/etc/frr/frr.conf"]).stdout
    assert lab.exec(HQ, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert lab.exec("punakha-hq-sw1", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    assert int(lab.exec(HQ, ["sysctl", "-n", "net.ipv4.igmp_max_memberships"]).stdout) > 20  # 11 WAN ports
    # the whole root is private: a file written in one node is seen neither by another node nor by the host
    marker = f"/etc/dz-private-{os.getpid()}"
    assert lab.exec("gewog-talo-rtr1", ["sh", "-c", f"echo talo > {marker}"]).returncode == 0
    try:
        assert lab.exec("gewog-talo-rtr1", ["cat", marker]).stdout == "talo\n"
        assert lab.exec("gewog-guma-rtr1", ["test", "-e", marker]).returncode == 1
        assert lab.exec("gewog-talo-sw1", ["test", "-e", marker]).returncode == 1
        assert not Path(marker).exists()
    finally:
        lab.exec("gewog-talo-rtr1", ["rm", "-f", marker])


def test_mgmt_addresses_answer_from_root(lab: Lab, inventory: Inventory) -> None:
    gateway = lab.spec.mgmt_gateway.split("/")[0]
    bridge = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", lab.mgmt_bridge],
                            capture_output=True, text=True).stdout
    assert f"inet {lab.spec.mgmt_gateway} " in bridge
    for name in sorted(inventory.devices):
        address = (_ip(inventory, name), 22)
        with socket.create_connection(address, source_address=(gateway, 0), timeout=10) as sock:
            sock.settimeout(10)
            assert sock.recv(64).startswith(b"SSH-2.0-"), name


def test_every_port_exists_and_unlinked_ports_have_carrier(lab: Lab, inventory: Inventory) -> None:
    def links(name: str) -> dict[str, dict[str, Any]]:
        return {i["ifname"]: i for i in json.loads(lab.exec(name, ["ip", "-j", "link", "show"]).stdout)}

    found = _parallel(links, sorted(inventory.devices))
    for node in lab.spec.nodes:
        for iface in [*node.interfaces, LabInterface("mgmt0")]:
            assert "LOWER_UP" in found[node.name][iface.name]["flags"], (node.name, iface.name)
    # the radio stand-ins of each AP are cabled to nothing, yet are up ports of the AP's Open vSwitch
    # br0 (access ports of their SSID's VLAN once provisioned); a switch's ports are on its br0
    bridge_of = {(node, port): lab.exec(node, ["ovs-vsctl", "port-to-br", port]).stdout.strip()
                 for node in [*_names(inventory, "hostapd"), "punakha-hq-sw1"]
                 for port in (("swp1", "swp2") if node.endswith("sw1") else ("wlan0", "wlan1", "eth0"))}
    assert set(bridge_of.values()) == {"br0"}, bridge_of


def _tbf_rate_bits(qdisc: str) -> int | None:
    """Rate of a tbf root qdisc in bit/s, from `tc qdisc show dev X` (e.g. `rate 20Mbit`)."""
    match = re.search(r"qdisc tbf \S+ root .*?rate (\d+(?:\.\d+)?)([KMG]?)bit", qdisc)
    if not match:
        return None
    return round(float(match.group(1)) * {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}[match.group(2)])


def test_wan_links_are_shaped_to_their_bandwidth(lab: Lab, inventory: Inventory) -> None:
    for wan in inventory.wan_links:
        for end in (wan.a, wan.b):
            qdisc = lab.exec(end.host, ["tc", "qdisc", "show", "dev", end.interface]).stdout
            assert _tbf_rate_bits(qdisc) == wan.bandwidth_kbps * 1000, (wan.name, end.host, qdisc)
    for lan in inventory.lan_links:
        qdisc = lab.exec(lan.a.host, ["tc", "qdisc", "show", "dev", lan.a.interface]).stdout
        assert "tbf" not in qdisc, (lan.a.host, qdisc)


# --- SSH -------------------------------------------------------------------------------------------


def test_ssh_with_strict_host_keys_reaches_every_device(punakha_lab: LabHandle, lab: Lab,
                                                        inventory: Inventory) -> None:
    assert inventory.known_hosts == lab.known_hosts_path  # what dzops itself uses
    hosts = [line.split()[0] for line in lab.known_hosts_path.read_text().splitlines()]
    assert sorted(hosts) == sorted(_ip(inventory, n) for n in inventory.devices)

    def probe(name: str) -> tuple[int, str]:
        with _ssh(lab, inventory, name) as client:
            router = inventory.devices[name].platform == "frr"
            rc, out, _ = _run(client, "vtysh -c 'show version'" if router else "hostname")
        return rc, out

    answers = _parallel(probe, sorted(inventory.devices))
    for name, (rc, out) in answers.items():
        assert rc == 0 and name in out, (name, out[:200])
        if inventory.devices[name].platform == "frr":
            assert out.startswith("FRRouting "), (name, out[:200])


def test_wrong_host_key_is_rejected(lab: Lab, inventory: Inventory, tmp_path: Path) -> None:
    # the known_hosts line of another router under HQ's address: RejectPolicy must refuse it
    keys = {line.split()[0]: line.split(None, 1)[1] for line in lab.known_hosts_path.read_text().splitlines()}
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{_ip(inventory, HQ)} {keys[_ip(inventory, 'gewog-talo-rtr1')]}\n")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts|does not match"):
        _ssh(lab, inventory, HQ, known_hosts=forged)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _ssh(lab, inventory, HQ, known_hosts=empty)


def test_router_login_is_a_shell_with_vtysh_lldpcli_and_ip(lab: Lab, inventory: Inventory) -> None:
    """A router's login lands in bash (a stock box, `dzops_router_login: shell`); dz_router_access put
    it in frr/frrvty/_lldpd/adm, so vtysh, lldpcli, ip and ping work without sudo."""
    def probe(name: str) -> tuple[str, bool, bool, bool]:
        with _ssh(lab, inventory, name) as client:
            shell = _run(client, "echo $0")[1].strip()
            running = _run(client, "vtysh -c 'show running-config'")[1]
            lldp = _run(client, "/usr/sbin/lldpcli -f json0 show neighbors details")
            addrs = _run(client, "ip -j addr show")
        return (shell, f"hostname {name}\n" in running, lldp[0] == 0 and '"lldp"' in lldp[1],
                addrs[0] == 0 and '"mgmt0"' in addrs[1])

    routers = _names(inventory, "frr")
    assert len(routers) == 12
    assert _parallel(probe, routers) == {name: ("bash", True, True, True) for name in routers}

    # several -c in one call, and `write memory` (served by the node's watchfrr) writes the node's file
    node = "gewog-talo-rtr1"
    with _frr_restored(lab, node), _ssh(lab, inventory, node) as client:
        rc, out, err = _run(client, "vtysh -c 'configure terminal' -c 'interface lo' "
                                    "-c 'description set-by-vtysh' -c 'end' -c 'write memory'")
        assert rc == 0 and "% " not in out, out + err
        assert " description set-by-vtysh\n" in lab.exec(node, ["cat", "/etc/frr/frr.conf"]).stdout
        assert lab.exec(node, ["stat", "-c", "%U", "/etc/frr/frr.conf"]).stdout.strip() == "frr"
        far = _ip(inventory, "punakha-hq-rtr1")
        assert _run(client, f"ping -c 2 -W 1 {far}")[0] == 0
    assert "set-by-vtysh" not in lab.exec(node, ["cat", "/etc/frr/frr.conf"]).stdout


def test_router_frr_reload_through_the_roles_sudo_rules(lab: Lab, inventory: Inventory) -> None:
    lan_description = " description HQ LAN to punakha-hq-sw1 swp1\n"
    user = inventory.devices[HQ].username
    home = f"/home/{user}"
    reload = "sudo -n /usr/lib/frr/frr-reload.py"
    with _frr_restored(lab, HQ), _ssh(lab, inventory, HQ) as client:
        rc, running, _ = _run(client, "vtysh -c 'show running-config'")
        assert rc == 0 and f"hostname {HQ}\n" in running and lan_description in running
        running = running[running.index("frr version"):]
        # the login has no general sudo any more: the role's rules are all it has
        assert "sudo" not in _run(client, "id -nG")[1].split()
        rc, _, err = _run(client, "sudo -n ls /")
        assert rc != 0 and "password is required" in err
        candidate = running.replace(lan_description, " description replaced-by-reload\n")
        sftp = client.open_sftp()
        try:
            assert oct(sftp.stat(f"{home}/.dzops").st_mode & 0o777) == "0o700"
            sftp.putfo(io.BytesIO(candidate.encode()), f"{home}/.dzops/candidate.conf")
            rc, out, _ = _run(client, f"{reload} --test {home}/.dzops/candidate.conf")
            assert rc == 0
            assert re.search(r"Lines To Add\s*=+\s*interface eth0\s+description replaced-by-reload", out), out
            rc, out, err = _run(client, f"{reload} --reload --stdout {home}/.dzops/candidate.conf")
            assert rc == 0, out + err
            assert " description replaced-by-reload\n" in _run(client, "vtysh -c 'show running-config'")[1]
            # rollback the driver's way: reload the saved running config from the other fixed file
            sftp.putfo(io.BytesIO(running.encode()), f"{home}/.dzops/rollback.conf")
            rc, out, err = _run(client, f"{reload} --reload --stdout {home}/.dzops/rollback.conf")
            assert rc == 0, out + err
            assert lan_description in _run(client, "vtysh -c 'show running-config'")[1]
            # any other file or argument is refused by sudo itself, before frr-reload runs
            for words in ("--test candidate.conf", f"--test {home}/candidate.conf",
                          f"--reload {home}/.dzops/candidate.conf"):
                rc, _, err = _run(client, f"{reload} {words}")
                assert rc != 0 and "password is required" in err, words
        finally:
            for name in set(sftp.listdir(f"{home}/.dzops")) & {"candidate.conf", "rollback.conf"}:
                sftp.remove(f"{home}/.dzops/{name}")
            sftp.close()
    # the same tool as root at the console (out of band); --test changes nothing
    lab.exec(HQ, ["sh", "-c", "cat > /tmp/cand.conf"], input=candidate)
    proc = lab.exec(HQ, ["/usr/lib/frr/frr-reload.py", "--test", "/tmp/cand.conf"])
    lab.exec(HQ, ["rm", "-f", "/tmp/cand.conf"])
    assert proc.returncode == 0 and "description replaced-by-reload" in proc.stdout
    assert lan_description in _running(lab, HQ)


def test_switch_user_gets_bash_and_passwordless_sudo(lab: Lab, inventory: Inventory) -> None:
    with _ssh(lab, inventory, "punakha-hq-sw1") as client:
        rc, out, err = _run(client, "echo $0; id -un; sudo -n id -u; sudo -n ovs-vsctl list-ports br0")
    assert rc == 0, err
    shell, user, root_uid, *ports = out.splitlines()
    assert (shell, user, root_uid) == ("bash", inventory.devices["punakha-hq-sw1"].username, "0")
    assert set(ports) >= {"swp1", "swp2", "swp3"}


# --- LLDP, OSPF, faults ----------------------------------------------------------------------------


def test_lldp_shows_exactly_the_cabled_neighbours(lab: Lab, inventory: Inventory) -> None:
    expected = _cables(inventory)
    assert sum(len(v) for v in expected.values()) == 2 * (11 + 14 + 11)

    def wrong() -> dict[str, Any]:
        found = _parallel(lab.lldp_neighbors, sorted(expected))
        return {n: (found[n], expected[n]) for n in expected if found[n] != expected[n]}

    # Right after a flap elsewhere a neighbour can be missing until lldpd re-announces (every 30 s):
    # asked again until it is right, for at most one announce interval and a bit.
    deadline = time.monotonic() + 33
    while (mismatch := wrong()) and time.monotonic() < deadline:
        time.sleep(3)
    assert mismatch == {}


def _configure_ospf(lab: Lab, inventory: Inventory, host: str, iface: str, address: str) -> None:
    device = inventory.devices[host]
    assert device.loopback is not None
    lines = ["configure terminal", f"interface {iface}", f"ip address {address}",
             "ip ospf network point-to-point", "ip ospf hello-interval 1", "ip ospf dead-interval 4",
             "ip ospf area 0", "exit", "router ospf", f"ospf router-id {device.loopback.ip}"]
    proc = lab.exec(host, ["vtysh", *[arg for line in lines for arg in ("-c", line)]])
    assert proc.returncode == 0 and "% " not in proc.stdout, proc.stdout + proc.stderr


def test_ospf_adjacency_link_down_and_ospfd_restart(lab: Lab, inventory: Inventory) -> None:
    """Factory state has no WAN routing: OSPF goes on one link through the console, and comes off again."""
    wan = inventory.wan_links[-1]
    near, far = wan.a, wan.b
    far_id = str(inventory.devices[far.host].loopback.ip)  # type: ignore[union-attr]
    before = _ospf_full(lab, near.host)  # empty at factory state; all gewogs once provisioned
    with _frr_restored(lab, near.host), _frr_restored(lab, far.host):
        try:
            # TEST-NET-1 addresses: they cannot clash with the sample's WAN pool if it is provisioned
            _configure_ospf(lab, inventory, near.host, near.interface, "192.0.2.1/30")
            _configure_ospf(lab, inventory, far.host, far.interface, "192.0.2.2/30")
            _wait(lambda: far_id in _ospf_full(lab, near.host), 60, f"OSPF Full {near.host} - {far.host}")

            lab.set_link(far.host, far.interface, up=False)
            _wait(lambda: far_id not in _ospf_full(lab, near.host), 30, "the neighbour to go on link down")
            _wait(lambda: (near.interface, far.host, far.interface) not in lab.lldp_neighbors(near.host), 30,
                  "LLDP to lose the neighbour")
            lab.set_link(far.host, far.interface, up=True)
            _wait(lambda: far_id in _ospf_full(lab, near.host), 60, "OSPF Full again after link up")

            # a restarted ospfd reloads its part of frr.conf: save the console config there first
            saved = lab.exec(far.host, ["vtysh", "-c", "write memory"]).stdout
            assert "Integrated configuration saved" in saved
            lab.stop_daemon(far.host, "ospfd")
            assert lab.status().node(far.host).daemons["ospfd"] is False
            time.sleep(6)  # longer than watchfrr's poll: it must not restart the daemon behind our back
            assert lab.status().node(far.host).daemons["ospfd"] is False
            _wait(lambda: far_id not in _ospf_full(lab, near.host), 30, "the neighbour to go on ospfd stop")
            lab.start_daemon(far.host, "ospfd")
            assert lab.status().node(far.host).daemons["ospfd"] is True
            _wait(lambda: far_id in _ospf_full(lab, near.host), 60, "OSPF Full after the ospfd restart")
            with pytest.raises(LabError, match="no daemon 'bgpd'"):
                lab.stop_daemon(far.host, "bgpd")
        finally:
            lab.set_link(far.host, far.interface, up=True)
            lab.start_daemon(far.host, "ospfd")  # no-op when running
    assert "192.0.2." not in _running(lab, near.host) + _running(lab, far.host)
    _relearn_lldp(lab, (near.host, near.interface), (far.host, far.interface))
    # as found: the adjacencies the lab had before (none at factory state) are all back
    _wait(lambda: _ospf_full(lab, near.host) == before, 90, f"{near.host}'s OSPF neighbours as before")


# --- access points ---------------------------------------------------------------------------------


def _bss(iface: str, ssid: str, passphrase: str) -> str:
    return (f"driver=none\ninterface={iface}\nbridge=br0\nctrl_interface=/run/hostapd\nssid={ssid}\n"
            "hw_mode=g\n"
            f"channel=6\nwpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={passphrase}\n")


HOSTAPD_STOP = ("sudo -n start-stop-daemon --stop --quiet --retry 5 --oknodo --pidfile /run/hostapd.pid "
                "--exec /usr/sbin/hostapd")
HOSTAPD_START = "sudo -n sh -c '. /etc/default/hostapd; exec hostapd -B -P /run/hostapd.pid $DAEMON_CONF'"


_LIST_AP_FILES = ('for f in /etc/hostapd/* /etc/default/hostapd; do [ -f "$f" ] && '
                  'printf "%s %s:%s\\n" "$f" "$(stat -c %a "$f")" "$(base64 -w0 < "$f")"; done')


def _ap_state(lab: Lab, ap: str) -> dict[str, Any]:
    """Everything an SSID test touches on an AP: hostapd files, bridge ports, hostapd and its SSIDs."""
    files = lab.exec(ap, ["sh", "-c", _LIST_AP_FILES]).stdout
    links = json.loads(lab.exec(ap, ["ip", "-j", "link", "show"]).stdout)
    running = lab.exec(ap, ["sh", "-c", "kill -0 $(cat /run/hostapd.pid)"]).returncode == 0
    ssids = {radio: lab.exec(ap, ["hostapd_cli", "-p", "/run/hostapd", "-i", radio, "status"]).stdout
             .partition("state=")[2].split("\n")[0] for radio in ("wlan0", "wlan1")} if running else {}
    return {"files": dict(line.split(" ", 1) for line in files.splitlines()),
            "masters": {link["ifname"]: link.get("master") for link in links},
            "running": running, "ssids": ssids}


def _restore_ap(lab: Lab, ap: str, before: dict[str, Any]) -> None:
    lab.exec(ap, ["sh", "-c", HOSTAPD_STOP.replace("sudo -n ", "")])
    lab.exec(ap, ["find", "/run/hostapd", "-mindepth", "1", "-delete"])  # sockets of a refused start
    now = _ap_state(lab, ap)
    for path in set(now["files"]) - set(before["files"]):
        lab.exec(ap, ["rm", "-f", path])
    for path, saved in before["files"].items():
        if now["files"].get(path) != saved:
            mode, data = saved.split(":", 1)
            lab.exec(ap, ["sh", "-c", f"base64 -d > {path} && chmod {mode} {path}"], input=data)
    for iface, master in before["masters"].items():
        if now["masters"].get(iface) != master:
            lab.exec(ap, ["ip", "link", "set", iface, *(["master", master] if master else ["nomaster"])])
    if before["running"]:
        lab.start_daemon(ap, "hostapd")


def test_ap_ssids_by_hand_over_ssh_and_back(lab: Lab, inventory: Inventory) -> None:
    ap = "gewog-toewang-ap1"
    before = _ap_state(lab, ap)
    if not any(f.endswith(".conf") for f in before["files"]):
        assert before["running"] is False  # factory state: no hostapd config, no hostapd
    # test-only passphrases of throwaway SSIDs (not the sample's vault PSKs), in files of their own
    files = {"/etc/hostapd/dz-test-wlan0.conf": _bss("wlan0", "Toewang-Test", "staff-secret-1"),
             "/etc/hostapd/dz-test-wlan1.conf": _bss("wlan1", "Toewang-Test-Guest", "guest-secret-1")}
    try:
        with _ssh(lab, inventory, ap) as client:
            assert _run(client, HOSTAPD_STOP)[0] == 0
            # two SSIDs = two files (driver=none cannot add a second BSS to one interface)
            for path, text in files.items():
                assert _run(client, f"sudo -n tee {path} >/dev/null", stdin=text)[0] == 0
            default = f'DAEMON_CONF="{" ".join(files)}"\n'
            assert _run(client, "sudo -n tee /etc/default/hostapd >/dev/null", stdin=default)[0] == 0
            for radio in ("wlan0", "wlan1"):
                assert _run(client, f"sudo -n ovs-vsctl --may-exist add-port br0 {radio}")[0] == 0
            rc, out, err = _run(client, HOSTAPD_START)
            assert rc == 0, out + err
            for iface, ssid in (("wlan0", "Toewang-Test"), ("wlan1", "Toewang-Test-Guest")):
                status = _run(client, f"sudo -n hostapd_cli -p /run/hostapd -i {iface} status")[1]
                assert "state=ENABLED" in status, status
                config = _run(client, f"sudo -n hostapd_cli -p /run/hostapd -i {iface} get_config")[1]
                assert f"ssid={ssid}\n" in config and "key_mgmt=WPA-PSK" in config, config
            assert lab.status().node(ap).daemons["hostapd"] is True
            # the lab's fault injection stops it, and starts it the way the driver does (step 3)
            lab.stop_daemon(ap, "hostapd")
            assert lab.exec(ap, ["sh", "-c", "kill -0 $(cat /run/hostapd.pid)"]).returncode != 0
            lab.start_daemon(ap, "hostapd")
            cli = ["hostapd_cli", "-p", "/run/hostapd", "-i", "wlan1", "status"]
            assert "state=ENABLED" in lab.exec(ap, cli).stdout
            # a 5-character passphrase: hostapd refuses the config and names the line
            bad = _bss("wlan1", "Toewang-Test-Guest", "short")
            assert _run(client, "sudo -n tee /etc/hostapd/dz-test-wlan1.conf >/dev/null", stdin=bad)[0] == 0
            assert _run(client, HOSTAPD_STOP)[0] == 0
            rc, out, err = _run(client, HOSTAPD_START)
            assert rc != 0
            assert re.search(r"Line \d+: .*passphrase", out + err), out + err
            assert lab.status().node(ap).daemons["hostapd"] is False
    finally:
        _restore_ap(lab, ap, before)  # as found: factory state, or what provision-ap left
    assert _ap_state(lab, ap) == before


# --- down and rebuild (a one-router lab of its own) -------------------------------------------------

# Why a second (tiny) lab here: `down()` of the session lab runs only at the end of the session (and
# tests/conftest.py proves it leaves nothing), while a fresh-object down (`dzops lab down` in another
# process), a rebuild after a node died, a factory-state AP regardless of what the session lab has
# been through, and a failed build can only be shown by building and breaking a lab. One router and
# one AP with their own prefix (`lbx` style: the session prefix + "x") and their own management /24
# cost a few seconds and never touch the session lab's namespaces or links.


def _tiny_spec(punakha_lab: LabHandle, tmp_path: Path) -> LabSpec:
    prefix = f"{punakha_lab.lab.prefix[:5]}x"
    octet = int(os.environ.get("DZOPS_TEST_LAB_OCTET", "99"))
    node = LabNode(name=f"{prefix}-r1", kind="router", mgmt_address=f"10.{octet}.250.2/24",
                   login_user="tinyadmin", login_password="tiny-lab-only-1",  # test-only, throwaway lab
                   interfaces=(LabInterface("eth1"),), frr_config=f"hostname {prefix}-r1\n")
    ap = LabNode(name=f"{prefix}-a1", kind="ap", mgmt_address=f"10.{octet}.250.3/24",
                 login_user="tinyadmin", login_password="tiny-lab-only-1",
                 interfaces=(LabInterface("eth0"), LabInterface("wlan0")))  # no hostapd_config: factory
    with socket.socket() as free:  # no SMTP sink without servers, but up() refuses a busy port
        free.bind(("127.0.0.1", 0))
        smtp_port = free.getsockname()[1]
    return LabSpec(prefix=prefix, mgmt_gateway=f"10.{octet}.250.1/24", nodes=(node, ap),
                   links=(LabLink(node.name, "eth1", ap.name, "eth0"),),
                   state_dir=tmp_path / "state" / prefix, smtp_port=smtp_port)


def test_down_rebuild_and_failed_up_leave_nothing(punakha_lab: LabHandle, tmp_path: Path) -> None:
    spec = _tiny_spec(punakha_lab, tmp_path)
    name = spec.nodes[0].name
    tiny = Lab(spec)
    assert lab_leftovers(spec.prefix, spec.state_dir) == []  # nothing of an earlier run is in the way
    try:
        first = tiny.up()
        assert first.healthy and first.node(name).holder_pid
        # an AP built without hostapd config (factory state) runs no hostapd and is healthy all the same
        ap = first.node(spec.nodes[1].name)
        assert ap.healthy and "hostapd" not in ap.expected_daemons and ap.daemons["hostapd"] is False
        _wait(lambda: tiny.lldp_neighbors(name) == [("eth1", ap.name, "eth0")], 30, "LLDP in the tiny lab")
        # the checker sees a running lab (so its empty answers below mean something)
        seen = " ".join(lab_leftovers(spec.prefix, spec.state_dir, lab_pids(spec.prefix, spec.state_dir)))
        assert all(f"{kind} " in seen for kind in ("netns", "root link", "process", "files")), seen
        # a node that died (its holder killed) is rebuilt by the next up(), healthy, with a new holder
        os.kill(first.node(name).holder_pid, signal.SIGKILL)  # type: ignore[arg-type]
        _wait(lambda: not tiny.status().node(name).holder_alive, 10, "the killed holder to be gone")
        rebuilt = tiny.up()
        assert rebuilt.healthy and rebuilt.node(name).holder_pid != first.node(name).holder_pid
        assert tiny.exec(name, ["hostname"]).stdout.strip() == name
        pids = lab_pids(spec.prefix, spec.state_dir)
        assert len(pids) >= 10  # router: holder, zebra, staticd, ospfd, watchfrr, sshd, lldpd; AP: 3
        Lab(spec).down()  # a new object knows only the state file, like `dzops lab down`
        assert lab_leftovers(spec.prefix, spec.state_dir, pids) == []
        assert tiny.status().running is False
        Lab(spec).down()  # idempotent

        broken = dataclasses.replace(spec, nodes=(dataclasses.replace(
            spec.nodes[0], frr_config="interface eth1\n ip address 999.1.1.1/30\n"), spec.nodes[1]))
        with pytest.raises(LabError, match=f"^{name}: vtysh -b rejected frr.conf"):
            Lab(broken).up()
        assert lab_leftovers(spec.prefix, spec.state_dir) == []
    finally:
        Lab(spec).down()
    assert punakha_lab.lab.status().node(HQ).healthy  # the session lab never noticed
