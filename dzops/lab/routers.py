"""What each kind of lab node runs and holds: its own files, its daemons, its factory setup.

Every node is a stock Debian box on a private root filesystem (`dzops.lab.node`): the lab base
image with Debian's frr, frr-pythontools, lldpd, hostapd and openssh-server packages. The lab writes
the node's identity (hostname, host key, sshd drop-in, frr.conf, lldpd and hostapd files) into the
node's overlay upper layer, then, inside the node as root, creates the login user with `useradd`
and `chpasswd` (its password arrives on stdin only) and starts the daemons with Debian's paths.

Router (kind "router"): FRR zebra, staticd, ospfd and watchfrr (`--dry`: fault injection stays),
  sshd, lldpd. The inventory's login user is a stock admin: bash, group `sudo`, its password. The
  lab then runs `roles/dz_router_access` on every router through ansible-runner
  (`dzops.lab.access`), exactly as `dzops onboard` does on a real box, and takes the login out of
  group `sudo`: what dzops does on a router afterwards rests on the role's narrow sudo rules only.

Switch (kind "switch", Cumulus-like): Open vSwitch's ovsdb-server and ovs-vswitchd (started as
  Debian's units start them, through ovs-ctl), a VLAN-aware `br0` with every data port (swpN) on it,
  FRR zebra + watchfrr, sshd, lldpd. The kernel here has no VLAN-aware Linux bridge and no 8021q,
  so br0 is an OVS bridge with `datapath_type=netdev` (user-space forwarding over the veths; each
  node runs its own OVS, since a vswitchd reaches only the interfaces of its own namespace). Ports
  start as Open vSwitch leaves them (no tag, no trunks: every VLAN, untagged frames in one). The
  login user gets bash and passwordless sudo, like Cumulus' admin account: the switch driver
  (dzops.execute.drivers.cumulus) runs its steps as `sudo -n sh -c`.

Access point (kind "ap"): Open vSwitch as on a switch, `br0` with every data interface on it
  (`eth0` uplink and any `wlanN`, stand-ins for radios), sshd, lldpd, and Debian's hostapd with
  `driver=none` (no radio exists on this kernel). Factory state (empty `hostapd_config`): hostapd
  not running. The login user gets bash and passwordless sudo: the AP driver (dzops.execute.drivers.hostapd) runs `sudo -n sh -c`.
  hostapd facts that shape the provisioning procedure (measured with hostapd 2.10):
  - `driver=none` cannot create secondary BSSes: a `bss=` section fails with "Failed to add BSS".
    One hostapd process can however run several interfaces, one config file each, listed in
    Debian's `DAEMON_CONF="..."` in `/etc/default/hostapd`.
  - hostapd has no config-check mode: a bad file is reported when it starts (it prints
    `Line N: <error>` and exits 1, e.g. for a 5-character `wpa_passphrase`).
  `Lab.start_daemon(node, "hostapd")` starts it the way Debian's init script does.

Server (kind "server"): sshd and lldpd; packages come from the lab's own repository.

A root login on any node (sudo) is root of that node only: see `dzops.lab.node`.
"""

from __future__ import annotations

import logging
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dzops.exceptions import LabError
from dzops.lab import netns
from dzops.lab.spec import LabNode

log = logging.getLogger(__name__)

LLDP_SOCKET = "/run/lldpd.socket"  # inside the node: lldpcli's default, so plain `lldpcli` works
HOSTAPD_CTRL_DIR = "/run/hostapd"
HOSTAPD_PIDFILE = "/run/hostapd.pid"
BRIDGE = "br0"  # switches' and APs' one bridge
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
OVS_DEFAULTS = "/etc/default/openvswitch-switch"
STANDIN_SUFFIX = "_lp"  # peer end of a veth that stands in for an unlinked port; LLDP ignores it
FRR_DAEMONS = ("zebra", "staticd", "ospfd")
FRR_DIR = "/usr/lib/frr"

# Runs inside the node as root before any daemon; the login's password arrives on stdin only.
SETUP_SCRIPT = r"""
set -eu
kind=$1 user=$2 gateway=$3; shift 3
case "$kind" in
    switch) groups=sudo,frr,frrvty ;;
    *) groups=sudo ;;
esac
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups "$groups" "$user"
chpasswd
while [ $# -gt 1 ]; do
    ip link set "$1" up
    if [ "$2" != - ]; then ip addr replace "$2" dev "$1"; fi
    shift 2
done
# A server answers beyond its LAN through its site router, as a real one's DHCP or ifupdown sets it.
if [ "$gateway" != - ]; then ip route replace default via "$gateway"; fi
install -d -m 0755 /run/sshd /run/lldpd
if [ -f /etc/frr/frr.conf ]; then
    chown -R frr:frr /etc/frr
    chmod 0640 /etc/frr/frr.conf /etc/frr/vtysh.conf /etc/frr/daemons
    install -d -o frr -g frr -m 0755 /run/frr /var/log/frr
fi
[ "$kind" != ap ] || install -d -m 0755 /run/hostapd
/usr/sbin/sshd -t
"""


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: tuple[str, ...]  # run inside the node as root; the program daemonizes itself
    pidfile: str  # inside the node
    frr: bool = False  # its config comes from frr.conf through `vtysh -b`
    keep: tuple[str, ...] = ()  # capabilities it needs beyond a node's bounding set


def daemons_for(node: LabNode) -> list[Daemon]:
    """The daemons of a node, in start order."""
    sshd = Daemon("sshd", ("/usr/sbin/sshd", "-E", "/var/log/sshd.log"), "/run/sshd.pid")
    lldpd = Daemon("lldpd", ("/usr/sbin/lldpd", "-u", LLDP_SOCKET), "/run/lldpd.pid")
    if node.kind == "router":
        frr = list(FRR_DAEMONS)
    elif node.kind == "switch":
        frr = ["zebra"]
    else:
        frr = []
    result = [
        # -P 0: no vty TCP port; vtysh and watchfrr use the unix sockets in /run/frr.
        Daemon(
            d,
            (f"{FRR_DIR}/{d}", "-d", "-P", "0", *(["-s", "90000000"] if d == "zebra" else [])),
            f"/run/frr/{d}.pid",
            frr=True,
            # FRR's privs_init refuses to start zebra/ospfd/staticd without sys_admin in reach.
            keep=("sys_admin",),
        )
        for d in frr
    ]
    if frr:
        # --dry: watchfrr serves `write memory` but never restarts a daemon, so that
        # Lab.stop_daemon (fault injection) really leaves it stopped.
        result.append(
            Daemon("watchfrr", (f"{FRR_DIR}/watchfrr", "-d", "--dry", *frr), "/run/frr/watchfrr.pid",
                   keep=("sys_admin",))
        )
    if node.kind in ("switch", "ap"):
        result += [_ovs_daemon("ovsdb-server", "--no-ovs-vswitchd"), _ovs_daemon("ovs-vswitchd", "--no-ovsdb-server")]
    result += [sshd, lldpd]
    if node.kind == "server":
        result += [DATABASE_DAEMONS[service] for service in node.services if service in DATABASE_DAEMONS]
    if node.kind == "ap":
        result.append(Daemon("hostapd", ("/bin/sh", "-c", _HOSTAPD_START), HOSTAPD_PIDFILE))
    return result


def _ovs_daemon(name: str, only: str) -> Daemon:
    """One Open vSwitch daemon, started the way Debian's ovsdb-server.service / ovs-vswitchd.service do
    (their EnvironmentFile is /etc/default/openvswitch-switch); ovs-ctl writes /run/openvswitch/NAME.pid."""
    script = (f"[ -r {OVS_DEFAULTS} ] && . {OVS_DEFAULTS}; "
              f"exec {OVS_CTL} {only} --no-monitor --system-id=random --no-record-hostname start $OVS_CTL_OPTS")
    return Daemon(name, ("/bin/sh", "-c", script), f"/run/openvswitch/{name}.pid")


def ovs_defaults() -> str:
    """/etc/default/openvswitch-switch of a lab switch or AP."""
    # mlockall would pin every vswitchd's whole address space; dozens of nodes share this machine.
    return 'OVS_CTL_OPTS="--no-mlockall"\n'


def bridge_setup_argv(ports: list[str]) -> list[str]:
    """ovs-vsctl creating br0 (user-space datapath) with the node's data ports; kept in the node's conf.db."""
    argv = ["ovs-vsctl", "--timeout=30", "--may-exist", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE,
            "datapath_type=netdev"]
    for port in ports:
        argv += ["--", "--may-exist", "add-port", BRIDGE, port]
    return argv


# Database servers as Debian's packages leave a real box: the postinst's first cluster / system tables
# (debootstrap's chroot made none), then the server itself. PostgreSQL 15 is bookworm's.
_POSTGRESQL_START = (
    "install -d -o postgres -g postgres -m 2775 /run/postgresql; "
    "[ -d /etc/postgresql/15/main ] || pg_createcluster 15 main >/dev/null; "
    "exec pg_ctlcluster 15 main start"
)
_MARIADB_START = (
    "install -d -o mysql -g mysql -m 0755 /run/mysqld; "
    "[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --skip-test-db >/dev/null 2>&1; "
    "setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid </dev/null >/dev/null 2>&1 & "
    "for _ in $(seq 600); do mariadb-admin ping >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
)
DATABASE_DAEMONS = {
    "postgresql": Daemon("postgresql", ("/bin/sh", "-c", _POSTGRESQL_START), "/run/postgresql/15-main.pid"),
    "mariadb": Daemon("mariadb", ("/bin/sh", "-c", _MARIADB_START), "/run/mysqld/mysqld.pid"),
}

_HOSTAPD_START = (
    "[ -r /etc/default/hostapd ] && . /etc/default/hostapd; "
    "exec /usr/sbin/hostapd -B -P /run/hostapd.pid ${DAEMON_CONF:-/etc/hostapd/hostapd.conf}"
)


def expected_daemons(node: LabNode) -> list[str]:
    """Daemons that must run after `up()`: an AP in factory state has no hostapd yet."""
    return [d.name for d in daemons_for(node) if not (d.name == "hostapd" and not node.hostapd_config)]


def daemon_by_name(node: LabNode, name: str) -> Daemon:
    for daemon in daemons_for(node):
        if daemon.name == name:
            return daemon
    known = ", ".join(d.name for d in daemons_for(node))
    raise LabError(f"{node.name}: no daemon {name!r} on a {node.kind} (known: {known})")




# --- the node's own files, written into its overlay upper layer before the node starts -----------


class RootWriter:
    """Writes files into a node's overlay upper dir.

    A directory created in the upper layer hides the lower one's owner and mode, so new
    directories copy them (numerically) from the base image: /etc/frr stays frr's.
    """

    def __init__(self, upper: Path, lower: Path) -> None:
        self.upper = upper
        self.lower = lower

    def _mkdirs(self, rel: Path) -> None:
        for depth in range(1, len(rel.parts) + 1):
            sub = Path(*rel.parts[:depth])
            target = self.upper / sub
            if target.is_dir():
                continue
            target.mkdir()
            below = self.lower / sub
            if below.is_dir() and not below.is_symlink():
                st = below.stat()
                target.chmod(stat.S_IMODE(st.st_mode))
                shutil.chown(target, st.st_uid, st.st_gid)

    def write(self, rel: str, text: str, mode: int = 0o644) -> None:
        path = self.upper / rel
        self._mkdirs(Path(rel).parent)
        path.write_text(text)
        path.chmod(mode)

    def remove(self, rel: str) -> None:
        """Hide a base-image file (an overlay whiteout: a 0/0 character device)."""
        path = self.upper / rel
        self._mkdirs(Path(rel).parent)
        netns.run(["mknod", str(path), "c", "0", "0"], what=f"whiteout {rel}")


def sshd_dropin(node: LabNode) -> str:
    ip = node.mgmt_address.split("/")[0]
    # A server's services face its LAN as well (a stock sshd listens everywhere): provision-wan's goal
    # check reaches them there from the gewogs. Its addresses are set before sshd starts.
    lan = [a.split("/")[0] for i in node.interfaces for a in i.addresses] if node.kind == "server" else []
    # Debian's sshd_config includes sshd_config.d first and the first value wins: these settings hold.
    return "\n".join([
        "# dzops lab: the management address (a server's LAN addresses too), the node's own host key",
        *(f"ListenAddress {a}" for a in dict.fromkeys([ip, *lan])),
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        # The fan-out runs ~20 parallel sessions per second: don't let sshd drop early connections.
        "MaxStartups 200:30:400",
    ]) + "\n"


def lldpd_conf(node: LabNode) -> str:
    return (
        "configure lldp portidsubtype ifname\n"
        f"configure system hostname {node.name}\n"
        # Stand-in peers of unlinked ports would otherwise make a node its own neighbour.
        f"configure system interface pattern *,!*{STANDIN_SUFFIX}\n"
    )


def vtysh_conf(node: LabNode) -> str:
    return f"service integrated-vtysh-config\nhostname {node.name}\n"


def frr_daemons_file(node: LabNode, stock: str) -> str:
    """/etc/frr/daemons as Debian's frrinit.sh reads it, with this node's daemons switched on."""
    wanted = {"router": FRR_DAEMONS, "switch": ("zebra",)}.get(node.kind, ())
    out: list[str] = []
    for line in stock.splitlines():
        key, sep, value = line.partition("=")
        if sep and value in ("yes", "no") and not line.startswith("#") and key != "vtysh_enable":
            line = f"{key}={'yes' if key in wanted else 'no'}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_node_files(root: RootWriter, node: LabNode, host_key: Path, repo_url: str) -> None:
    """Everything of the node's files that differs from the base image."""
    root.write("etc/hostname", f"{node.name}\n")
    # sudo resolves its own hostname; without this it waits for DNS that does not exist here.
    root.write("etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{node.name}\n::1\tlocalhost ip6-localhost\n")
    root.write("etc/resolv.conf", "# dzops lab: no DNS inside the lab\n")
    root.write("etc/ssh/ssh_host_ed25519_key", host_key.read_text(), 0o600)
    root.write("etc/ssh/ssh_host_ed25519_key.pub", host_key.with_suffix(".pub").read_text())
    root.write("etc/ssh/sshd_config.d/dzops-lab.conf", sshd_dropin(node))
    root.write("etc/lldpd.d/dzops-lab.conf", lldpd_conf(node))
    if node.kind in ("switch", "ap"):
        # What the switch and AP drivers run (`sudo -n sh -c ...`) needs root without a password.
        root.write("etc/sudoers.d/dzops-lab", f"{node.login_user} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
    if node.kind in ("router", "switch"):
        frr_conf = node.frr_config or f"hostname {node.name}\n"
        if "|" in "\n".join(ln for ln in frr_conf.splitlines() if "description" in ln):
            raise LabError(f"{node.name}: '|' in an interface description breaks `vtysh -b`")
        root.write("etc/frr/frr.conf", frr_conf, 0o640)
        root.write("etc/frr/vtysh.conf", vtysh_conf(node), 0o640)
        stock = (root.lower / "etc/frr/daemons").read_text()
        root.write("etc/frr/daemons", frr_daemons_file(node, stock), 0o640)
    if node.kind in ("switch", "ap"):
        root.write(OVS_DEFAULTS.lstrip("/"), ovs_defaults())
    if node.kind == "ap" and node.hostapd_config:
        root.write("etc/hostapd/hostapd.conf", node.hostapd_config, 0o600)
    if node.kind == "server":
        # The real mirror is unreachable from inside the namespaces: the lab repository is the only source.
        root.write("etc/apt/sources.list", f"deb [trusted=yes] {repo_url.rstrip('/')}/ ./\n")
        sources = root.lower / "etc/apt/sources.list.d"
        for extra in sources.glob("*") if sources.is_dir() else []:
            root.remove(f"etc/apt/sources.list.d/{extra.name}")


def setup_pairs(node: LabNode) -> list[str]:
    """(interface, address or '-') words for SETUP_SCRIPT: servers set their own addresses."""
    pairs: list[str] = []
    for iface in node.interfaces:
        for address in (iface.addresses if node.kind == "server" else ()) or ("-",):
            pairs += [iface.name, address]
    return pairs


def standin_peer(ifname: str) -> str:
    return ifname[: netns.IFNAMSIZ - len(STANDIN_SUFFIX)] + STANDIN_SUFFIX


def load_frr_config(holder_pid: int, node_name: str, daemon: str | None = None) -> None:
    """`vtysh -b`: push /etc/frr/frr.conf into the running daemons (all, or just the one restarted)."""
    argv = ["/usr/bin/vtysh", "-b", *(["-d", daemon] if daemon else [])]
    proc = netns.run(netns.nsenter_argv(holder_pid, argv), what=f"{node_name}: load frr.conf", check=False)
    if proc.returncode != 0:
        detail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise LabError(f"{node_name}: vtysh -b rejected frr.conf (exit {proc.returncode}): {detail}")

