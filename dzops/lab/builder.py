"""Turn a `LabSpec` into running namespaces, links and daemons, and remove them again.

Each node is a network namespace `{prefix}-{node}` plus PID 1 of the node's own mount, UTS and
PID namespaces on a private root filesystem (`dzops.lab.node`); everything in the node is started
with `nsenter -t HOLDER ...`. Management interfaces `mgmt0` hang off the root bridge
`{prefix}-mgmt`, which carries `spec.mgmt_gateway`. What each node kind runs is in
`dzops.lab.routers`; routers are then prepared by `roles/dz_router_access` (`dzops.lab.access`).

`state_dir/state.json` records what was created (namespaces, root links, bridge, the holder and
service processes with their start time and the boot id) so that `Lab(spec).down()` in a fresh
process removes exactly that and nothing else. A recorded process is signalled or entered only
while its start time and boot id still match (after a reboot the numbers belong to others).
`up()` and `down()` hold one lock per prefix (`state_dir/lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dzops.exceptions import LabError
from dzops.lab import access as _access
from dzops.lab import base_image as _base_image
from dzops.lab import netns, routers
from dzops.lab import node as _node
from dzops.lab import pkgrepo as _pkgrepo
from dzops.lab import sample_data as _sample_data
from dzops.lab import smtp as _smtp
from dzops.lab.spec import LabInterface, LabLink, LabNode, LabSpec

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
KNOWN_HOSTS = "known_hosts"
LOCK_FILE = "lock"
_PREFIX_RE = re.compile(r"^[a-z0-9]{1,6}$")
_WORKERS = 8  # measured: more than ~8 parallel builders only queue on 2 cores
_START_TIMEOUT_S = 15.0


@dataclass
class NodeStatus:
    name: str
    kind: str
    netns: str
    mgmt_address: str
    holder_pid: int | None
    holder_alive: bool
    daemons: dict[str, bool] = field(default_factory=dict)  # name -> alive
    expected_daemons: list[str] = field(default_factory=list)  # what up() started
    ssh: bool = False  # TCP/22 on the mgmt address answered with an SSH banner
    ssh_banner: str = ""
    stands_in_for: str = ""  # an FRR router standing in for a router of this platform (ios, ...)

    @property
    def healthy(self) -> bool:
        return (
            self.holder_alive and self.ssh and all(self.daemons.get(d, False) for d in self.expected_daemons)
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


@dataclass
class LabStatus:
    prefix: str
    state_dir: str
    running: bool  # a state file exists
    mgmt_bridge: str
    nodes: list[NodeStatus] = field(default_factory=list)
    services: dict[str, bool] = field(default_factory=dict)  # pkgrepo/smtp -> alive

    @property
    def healthy(self) -> bool:
        return self.running and all(n.healthy for n in self.nodes) and all(self.services.values())

    def node(self, name: str) -> NodeStatus:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "state_dir": self.state_dir,
            "running": self.running,
            "mgmt_bridge": self.mgmt_bridge,
            "healthy": self.healthy,
            "nodes": [n.to_dict() for n in self.nodes],
            "services": dict(self.services),
        }


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the virtual lab needs root (network namespaces, mounts): run it with sudo")


def _ip(cidr: str) -> str:
    return cidr.split("/", 1)[0]


def mgmt_bridge_name(prefix: str) -> str:
    name = f"{prefix}-mgmt"
    return name if len(name) <= netns.IFNAMSIZ else f"{prefix[:10]}-mgmt"


class Lab:
    """One virtual lab; all methods except construction need root."""

    def __init__(self, spec: LabSpec) -> None:
        self.spec = spec
        self.prefix = spec.prefix
        self.state_dir = Path(spec.state_dir)
        self.mgmt_bridge = mgmt_bridge_name(spec.prefix)
        self._state_lock = threading.Lock()
        self._state: dict[str, Any] = {}
        self._lock_depth = 0

    # --- names and paths ---------------------------------------------------------------------

    @property
    def known_hosts_path(self) -> Path:
        return self.state_dir / KNOWN_HOSTS

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def netns_name(self, node: LabNode | str) -> str:
        return f"{self.prefix}-{node if isinstance(node, str) else node.name}"

    def node_dir(self, name: str) -> Path:
        return self.state_dir / "nodes" / name

    def _root_mgmt_end(self, index: int) -> str:
        return f"{self.prefix}-m{index}"

    # --- validation --------------------------------------------------------------------------

    def _validate(self) -> None:
        spec = self.spec
        if not _PREFIX_RE.match(spec.prefix):
            raise LabError(f"lab prefix {spec.prefix!r} must be 1-6 characters of [a-z0-9]")
        if any(c in str(self.state_dir) for c in ",:") or not self.state_dir.is_absolute():
            raise LabError(
                f"state_dir {self.state_dir} must be absolute and contain no ',' or ':' (overlayfs)"
            )
        ipaddress.ip_interface(spec.mgmt_gateway)
        names: set[str] = set()
        addresses = {_ip(spec.mgmt_gateway)}
        for node in spec.nodes:
            if node.name in names or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", node.name):
                raise LabError(f"node name {node.name!r} is duplicated or not a valid hostname")
            names.add(node.name)
            if _ip(node.mgmt_address) in addresses:
                raise LabError(f"{node.name}: management address {node.mgmt_address} is used twice")
            addresses.add(_ip(node.mgmt_address))
            ipaddress.ip_interface(node.mgmt_address)
        for link in spec.links:
            for end_node, end_if in ((link.a_node, link.a_interface), (link.b_node, link.b_interface)):
                if end_node not in names:
                    raise LabError(f"link {link}: unknown node {end_node}")
                netns.check_ifname(end_if)
        for node in spec.nodes:
            seen = [i.name for i in self._node_ifaces(node)]
            if len(seen) != len(set(seen)) or "mgmt0" in seen:
                raise LabError(f"{node.name}: interface names repeat or reuse mgmt0: {seen}")

    def _node_ifaces(self, node: LabNode) -> list[LabInterface]:
        """Data interfaces of a node: declared ones plus link ends not declared (by name)."""
        result = list(node.interfaces)
        declared = {i.name for i in node.interfaces}
        for link in self.spec.links:
            for end_node, end_if in ((link.a_node, link.a_interface), (link.b_node, link.b_interface)):
                if end_node == node.name and end_if not in declared:
                    result.append(LabInterface(end_if))
                    declared.add(end_if)
        return result

    def _linked(self, node: str, ifname: str) -> LabLink | None:
        for link in self.spec.links:
            if (link.a_node, link.a_interface) == (node, ifname) or (link.b_node, link.b_interface) == (
                node,
                ifname,
            ):
                return link
        return None

    # --- state file --------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read lab state {self.state_path}: {exc}") from exc

    def _save_state(self) -> None:
        with self._state_lock:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._state, indent=1, sort_keys=True))
            tmp.chmod(0o600)
            os.replace(tmp, self.state_path)

    def _node_state(self, name: str) -> dict[str, Any]:
        state = self._load_state()
        if not state or name not in state.get("nodes", {}):
            raise LabError(
                f"node {name!r} is not running in lab {self.prefix!r} (no state in {self.state_path})"
            )
        self._state = state
        return state["nodes"][name]

    # --- up ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per prefix (re-entrant: a failed up() calls down())."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)  # host keys live below
        path = self.state_dir / LOCK_FILE
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(f"lab {self.prefix!r} is being built or removed by another process "
                               f"(lock {path} is held): wait for it to finish") from None
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)

    def up(self) -> LabStatus:
        """Build the lab; if it is already up, only restart dead daemons. Returns the status."""
        _require_root()
        self._validate()
        with self._locked():
            return self._up()

    def _up(self) -> LabStatus:
        if self._load_state() is not None:
            current = self.status()
            if (
                current.nodes
                and all(n.holder_alive for n in current.nodes)
                and {n.name for n in current.nodes} == {n.name for n in self.spec.nodes}
            ):
                log.info("lab %s already up; restarting dead daemons only", self.prefix)
                for ns in current.nodes:
                    for daemon in ns.expected_daemons:
                        if not ns.daemons.get(daemon):
                            self.start_daemon(ns.name, daemon)
                return self.status()
            log.warning("lab %s is partly gone; rebuilding it", self.prefix)
            self._down()
        self._check_conflicts()
        started = time.monotonic()
        try:
            self._build()
        except BaseException:
            log.error("lab %s: build failed, removing what was created", self.prefix)
            try:
                self._down()
                self._remove_lock_file()
            except Exception:  # the original error matters more; down() logged its own
                log.exception("lab %s: cleanup after failed build also failed", self.prefix)
            raise
        log.info(
            "lab %s up: %d nodes in %.1f s", self.prefix, len(self.spec.nodes), time.monotonic() - started
        )
        return self.status()

    def _check_conflicts(self) -> None:
        """Refuse to build over what another lab (or anything else) already holds in the root namespace."""
        gateway = _ip(self.spec.mgmt_gateway)
        for interface, address in netns.root_addresses():
            if address == gateway:
                raise LabError(f"management gateway {gateway} is already on interface {interface} "
                               f"(another lab of this inventory?): take that lab down first")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", self.spec.smtp_port)) == 0:
                raise LabError(f"SMTP port 127.0.0.1:{self.spec.smtp_port} is already in use "
                               f"(another lab?): set mail.smtp_port in the inventory to a free port")

    def _build(self) -> None:
        spec = self.spec
        (self.state_dir / "nodes").mkdir(exist_ok=True)
        root_ends = [self._root_mgmt_end(i) for i in range(len(spec.nodes))]
        # Record the intent before creating anything, so a crash mid-way is still fully removable.
        self._state = {
            "prefix": self.prefix,
            "boot_id": netns.boot_id(),
            "mgmt_bridge": self.mgmt_bridge,
            "mgmt_gateway": spec.mgmt_gateway,
            "netns": [self.netns_name(n) for n in spec.nodes],
            "root_links": root_ends,
            "bridges": [self.mgmt_bridge],
            "nodes": {},
            "services": {},
        }
        self._save_state()

        netns.ip_batch(
            [
                *netns.add_bridge_cmds(self.mgmt_bridge),
                f"addr add {spec.mgmt_gateway} dev {self.mgmt_bridge}",
            ],
            what=f"lab {self.prefix}: management bridge",
        )
        with ThreadPoolExecutor(_WORKERS) as pool:
            list(pool.map(lambda n: netns.add_netns(self.netns_name(n)), spec.nodes))
        netns.ip_batch(self._root_link_cmds(root_ends), what=f"lab {self.prefix}: veth links")
        self._start_services()
        with ThreadPoolExecutor(_WORKERS) as pool:
            for node, node_state in zip(spec.nodes, pool.map(self._build_node, spec.nodes), strict=True):
                self._state["nodes"][node.name] = node_state
        self._save_state()
        self._write_known_hosts()
        lab_routers = [n for n in spec.nodes if n.kind == "router"]
        if lab_routers:
            _access.prepare_routers(lab_routers, self.known_hosts_path, self.state_dir)
        with ThreadPoolExecutor(_WORKERS) as pool:
            list(pool.map(self._lldp_update, self._state["nodes"].items()))

    def _lldp_update(self, item: tuple[str, dict[str, Any]]) -> None:
        """Make every lldpd transmit now: the first frames went out while neighbours were still
        being built, and the next would only follow after the 30 s transmit interval."""
        name, node = item
        if "lldp_socket" in node:
            self._exec_checked(name, ["lldpcli", "-u", node["lldp_socket"], "update"], "lldp update")

    def _root_link_cmds(self, root_ends: list[str]) -> list[str]:
        cmds: list[str] = []
        for node, root_end in zip(self.spec.nodes, root_ends, strict=True):
            cmds.append(netns.veth_cmd("mgmt0", self.netns_name(node), root_end, None))
            cmds += [f"link set {root_end} master {self.mgmt_bridge}", f"link set {root_end} up"]
        for link in self.spec.links:
            cmds.append(
                netns.veth_cmd(
                    link.a_interface,
                    self.netns_name(link.a_node),
                    link.b_interface,
                    self.netns_name(link.b_node),
                )
            )
        for node in self.spec.nodes:
            for iface in self._node_ifaces(node):
                if self._linked(node.name, iface.name) is None:
                    # No `dummy` module on this kernel: an unlinked port is a veth whose peer stays
                    # in the node, so it has carrier like a port with a cable to an idle device.
                    peer = routers.standin_peer(iface.name)
                    cmds.append(
                        netns.veth_cmd(iface.name, self.netns_name(node), peer, self.netns_name(node))
                    )
        return cmds

    def _build_node(self, node: LabNode) -> dict[str, Any]:
        ns = self.netns_name(node)
        node_dir = self.node_dir(node.name)
        node_dir.mkdir(parents=True, exist_ok=True)
        host_key = self._host_key(node, node_dir)
        self._configure_links(node, ns)
        base = {
            "kind": node.kind,
            "stands_in_for": node.stands_in_for,
            "netns": ns,
            "mgmt_address": node.mgmt_address,
            "node_dir": str(node_dir),
            "host_key_pub": host_key.with_suffix(".pub").read_text().strip(),
        }
        upper, _, _ = _node.overlay_dirs(node_dir)
        for leftover in _node.overlay_dirs(node_dir):
            shutil.rmtree(leftover, ignore_errors=True)  # a stale upper layer would resurrect old files
        upper.mkdir(parents=True)
        lower = self._base_image()
        routers.write_node_files(routers.RootWriter(upper, lower), node, host_key, self._repo_url())
        record = _node.start_node(node.name, ns, node_dir, lower, forward=node.kind == "router")
        holder = record["pid"]
        node_state: dict[str, Any] = {
            **base,
            "holder": record,
            "holder_pid": holder,
            "lldp_socket": routers.LLDP_SOCKET,
            "daemon_nspids": {},
            "pidfiles": {},
            "expected": routers.expected_daemons(node),
        }
        try:
            self._setup_node(node, holder)
            for daemon in routers.daemons_for(node):
                if daemon.name not in node_state["expected"]:
                    continue
                node_state["pidfiles"][daemon.name] = daemon.pidfile
                if daemon.name == "watchfrr":
                    # Daemons run with an empty config until vtysh -b; watchfrr comes after, as in frrinit.sh.
                    routers.load_frr_config(holder, node.name)
                node_state["daemon_nspids"][daemon.name] = self._run_daemon(node.name, holder, daemon)
                if daemon.name == "ovs-vswitchd":
                    self._add_node_bridge(node, holder)
                if daemon.name == "lldpd":
                    self._lldp_resume(node.name, holder)
            databases = [s for s in node.services if s in _sample_data.DATABASE_SERVICES]
            if node.kind == "server" and databases:
                self._load_sample_data(node.name, holder, databases)
        except BaseException:
            _node.stop_node(record, node_dir)
            raise
        log.debug("node %s built (holder %d)", node.name, holder)
        return node_state

    def _load_sample_data(self, node_name: str, holder: int, services: list[str]) -> None:
        argv = netns.nsenter_argv(holder, ["/bin/sh", "-c", _sample_data.SCRIPT, "sample-data", *services])
        proc = netns.run(argv, what=f"{node_name}: sample data", check=False)
        if proc.returncode != 0:
            raise LabError(f"{node_name}: sample data failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")

    def _base_image(self) -> Path:
        return Path(self.spec.base_image_dir or _base_image.default_path())

    def _setup_node(self, node: LabNode, holder: int) -> None:
        """Create the login user (password on stdin only) and the runtime dirs inside the node."""
        argv = netns.nsenter_argv(holder, ["/bin/sh", "-c", routers.SETUP_SCRIPT, "dz-setup", node.kind,
                                           node.login_user, node.gateway or "-", *routers.setup_pairs(node)])
        proc = netns.run(argv, what=f"{node.name}: setup", input=f"{node.login_user}:{node.login_password}\n",
                         check=False)
        if proc.returncode != 0:
            # stderr of useradd/ip/sshd -t; chpasswd never echoes the password.
            raise LabError(f"{node.name}: setup failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")

    def _host_key(self, node: LabNode, node_dir: Path) -> Path:
        key = node_dir / "ssh_host_ed25519_key"
        if not key.exists() or not key.with_suffix(".pub").exists():
            key.unlink(missing_ok=True)
            netns.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name, "-f", str(key)],
                what=f"{node.name}: host key",
            )
        return key

    def _configure_links(self, node: LabNode, ns: str) -> None:
        # Switches' and APs' ports join their Open vSwitch br0 once ovs-vswitchd runs (_add_node_bridge).
        cmds = [f"addr add {node.mgmt_address} dev mgmt0", "link set mgmt0 up", "link set lo up"]
        for iface in self._node_ifaces(node):
            cmds.append(f"link set {iface.name} up")
            if self._linked(node.name, iface.name) is None:
                cmds.append(f"link set {routers.standin_peer(iface.name)} up")
        netns.ip_batch(cmds, netns=ns, what=f"{node.name}: interfaces")
        netns.tx_checksum_off(ns, self._ovs_facing(node), what=f"{node.name}: tx checksum off")
        for link in self.spec.links:
            if not link.bandwidth_kbps:
                continue
            for end_node, end_if in ((link.a_node, link.a_interface), (link.b_node, link.b_interface)):
                if end_node == node.name:
                    netns.tbf(ns, end_if, link.bandwidth_kbps, what=f"{node.name}: shape {end_if}")

    def _ovs_facing(self, node: LabNode) -> list[str]:
        """This node's linked interfaces with an Open vSwitch bridge on either end (switch and AP ports)."""
        kinds = {n.name: n.kind for n in self.spec.nodes}
        names = []
        for iface in self._node_ifaces(node):
            link = self._linked(node.name, iface.name)
            if link is not None and {kinds.get(link.a_node), kinds.get(link.b_node)} & {"switch", "ap"}:
                names.append(iface.name)
        return names

    def _add_node_bridge(self, node: LabNode, holder: int) -> None:
        """The VLAN-aware br0 of a switch or AP: an Open vSwitch bridge holding every data port."""
        ports = [iface.name for iface in self._node_ifaces(node)]
        for argv, what in ((routers.bridge_setup_argv(ports), "br0"), (["ip", "link", "set", "br0", "up"], "br0 up")):
            proc = netns.run(netns.nsenter_argv(holder, argv), what=f"{node.name}: {what}", check=False)
            if proc.returncode != 0:
                raise LabError(f"{node.name}: {what} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")

    def _run_daemon(self, node_name: str, holder: int, daemon: routers.Daemon) -> int:
        """Start a daemon inside the node; returns its PID in the node's own PID namespace."""
        pidfile = _node.inside(holder, daemon.pidfile)
        pidfile.unlink(missing_ok=True)  # so that we wait for the new pid, not a dead one
        proc = netns.run(
            netns.nsenter_argv(holder, daemon.argv, keep=daemon.keep), what=f"{node_name}: start {daemon.name}",
            check=False,
        )
        if proc.returncode != 0:
            detail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
            raise LabError(f"{node_name}: {daemon.name} refused to start (exit {proc.returncode}): {detail}")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            pid = netns.read_pidfile(pidfile)
            if pid and _node.node_pid_alive(holder, pid):
                return pid
            time.sleep(0.01)
        raise LabError(f"{node_name}: {daemon.name} started but wrote no live pid to {daemon.pidfile}")

    def _lldp_resume(self, node_name: str, holder: int) -> None:
        """lldpd starts paused and only sends/receives once the lldpcli it spawns has applied
        /etc/lldpd.d and said `resume`; do that ourselves, synchronously, so that when the build
        ends every lldpd listens and the final `lldpcli update` round reaches every neighbour."""
        argv = netns.nsenter_argv(
            holder, ["lldpcli", "-u", routers.LLDP_SOCKET, "-c", "/etc/lldpd.d", "resume"]
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            proc = netns.run(argv, what=f"{node_name}: lldp resume", check=False)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"{node_name}: lldpcli resume failed: {proc.stderr.strip()[-300:]}")
            time.sleep(0.05)

    def _write_known_hosts(self) -> None:
        lines = []
        for _name, node in sorted(self._state["nodes"].items()):
            key_type, key_b64 = node["host_key_pub"].split()[:2]
            lines.append(f"{_ip(node['mgmt_address'])} {key_type} {key_b64}")
        self.known_hosts_path.write_text("\n".join(lines) + "\n")

    # --- services of other modules (package repo, SMTP): only for labs with servers ------------

    def _repo_url(self) -> str:
        return f"http://{_ip(self.spec.mgmt_gateway)}:{self.spec.package_repo_port}/"

    def _start_services(self) -> None:
        # The mail server serves every lab (reports, alerts); the package repo only labs with servers.
        self._state["services"]["smtp"] = netns.proc_record(_smtp.start(
            self.spec.smtp_port, self.state_dir / "mail", username=self.spec.smtp_username,
            password=self.spec.smtp_password))
        self._save_state()  # recorded at once: a build that fails later must still stop it
        _base_image.ensure_base_image(self._base_image())  # every node's root
        if any(n.kind == "server" for n in self.spec.nodes):
            repo_dir = self.state_dir / "repo"
            _pkgrepo.build_repo(repo_dir)
            self._state["services"]["pkgrepo"] = netns.proc_record(_pkgrepo.start(
                _ip(self.spec.mgmt_gateway),
                self.spec.package_repo_port,
                repo_dir,
                self.state_dir / "pkgrepo.log",
            ))
        self._save_state()

    # --- status ------------------------------------------------------------------------------

    def status(self) -> LabStatus:
        _require_root()
        state = self._load_state()
        result = LabStatus(self.prefix, str(self.state_dir), state is not None, self.mgmt_bridge)
        if not state:
            return result
        nodes = state.get("nodes", {})
        with ThreadPoolExecutor(_WORKERS) as pool:
            result.nodes = list(pool.map(lambda item: self._node_status(*item), nodes.items()))
        result.services = {name: netns.record_matches(rec) for name, rec in state.get("services", {}).items()}
        return result

    def _node_status(self, name: str, node: dict[str, Any]) -> NodeStatus:
        holder = node.get("holder_pid")
        alive = netns.record_matches(node.get("holder"))
        daemons = {d: alive and _node.node_pid_alive(holder, self._daemon_pid(node, d))
                   for d in node.get("pidfiles", {})}
        if node["kind"] == "ap" and "hostapd" not in daemons:
            daemons["hostapd"] = alive and _node.node_pid_alive(holder, self._daemon_pid(node, "hostapd"))
        banner = _ssh_banner(_ip(node["mgmt_address"])) if alive else ""
        return NodeStatus(
            name=name,
            kind=node["kind"],
            netns=node["netns"],
            mgmt_address=node["mgmt_address"],
            holder_pid=holder,
            holder_alive=alive,
            daemons=daemons,
            expected_daemons=list(node.get("expected", [])),
            ssh=banner.startswith("SSH-"),
            ssh_banner=banner,
            stands_in_for=node.get("stands_in_for", ""),
        )

    def _daemon_pid(self, node: dict[str, Any], daemon: str) -> int | None:
        """PID in the node's PID namespace; the pidfile inside the node is the truth (an admin may
        restart a daemon over SSH). Only valid while the holder's record matches."""
        pidfile = node.get("pidfiles", {}).get(daemon) or (
            routers.HOSTAPD_PIDFILE if daemon == "hostapd" else None
        )
        if pidfile:
            pid = _node.read_node_pidfile(node["holder_pid"], pidfile)
            if pid:
                return pid
        return node.get("daemon_nspids", {}).get(daemon)

    # --- inside a node -----------------------------------------------------------------------

    def _holder(self, node_name: str) -> int:
        """The node's PID 1, refused when the recorded process is not that process any more."""
        return netns.checked_pid(self._node_state(node_name).get("holder"), f"lab node {node_name}")

    def exec_argv(self, node_name: str, argv: list[str]) -> list[str]:
        """argv that runs `argv` as root at the node's console (its namespaces, root, cwd)."""
        return netns.nsenter_argv(self._holder(node_name), argv)

    def exec(
        self, node_name: str, argv: list[str], input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run argv as root inside the node, as if at its console; never raises on a non-zero exit."""
        _require_root()
        full = self.exec_argv(node_name, argv)
        return subprocess.run(
            full,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def _exec_checked(self, node_name: str, argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
        proc = self.exec(node_name, argv)
        if proc.returncode != 0:
            raise LabError(
                f"{node_name}: {what}: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def set_link(self, node: str, interface: str, up: bool) -> None:
        """Fault injection: take a port of a node down (the far end loses carrier) or up again."""
        self._exec_checked(
            node,
            ["ip", "link", "set", "dev", interface, "up" if up else "down"],
            f"set link {interface} {'up' if up else 'down'}",
        )

    def stop_daemon(self, node: str, daemon: str) -> None:
        """Fault injection: stop one daemon; it stays stopped (watchfrr runs with --dry)."""
        _require_root()
        state = self._node_state(node)
        self._daemon_def(node, daemon)
        holder = self._holder(node)
        pid = self._daemon_pid(state, daemon)
        if pid and _node.node_pid_alive(holder, pid):
            # Signalled from inside the node: its PID namespace holds nothing but the node's processes.
            self._exec_checked(node, ["sh", "-c", 'kill "$1"; for _ in $(seq 200); do kill -0 "$1" 2>/dev/null '
                                      '|| exit 0; sleep 0.01; done; kill -9 "$1"', "stop", str(pid)],
                               f"stop {daemon}")
        log.info("%s: %s stopped", node, daemon)

    def start_daemon(self, node: str, daemon: str) -> None:
        """Start one daemon of a node if it is not running (reloading its part of frr.conf)."""
        _require_root()
        state = self._node_state(node)
        definition = self._daemon_def(node, daemon)
        holder = self._holder(node)
        if _node.node_pid_alive(holder, self._daemon_pid(state, daemon)):
            return
        pid = self._run_daemon(node, holder, definition)
        if daemon == "lldpd":
            self._lldp_resume(node, holder)
        if definition.frr and daemon != "watchfrr":
            routers.load_frr_config(holder, node, daemon)
        with self._state_lock:
            self._state["nodes"][node]["daemon_nspids"][daemon] = pid
            self._state["nodes"][node].setdefault("pidfiles", {})[daemon] = definition.pidfile
        self._save_state()

    def _daemon_def(self, node: str, daemon: str) -> routers.Daemon:
        try:
            spec_node = self.spec.node(node)
        except KeyError:
            raise LabError(f"no node {node!r} in lab {self.prefix!r}") from None
        return routers.daemon_by_name(spec_node, daemon)

    def lldp_neighbors(self, node: str) -> list[tuple[str, str, str]]:
        """(local interface, remote system name, remote port id) for each LLDP neighbour of node."""
        sock = self._node_state(node).get("lldp_socket", routers.LLDP_SOCKET)
        proc = self._exec_checked(node, ["lldpcli", "-u", sock, "-f", "json0", "show", "neighbors"], "lldp")
        return parse_lldp_json0(proc.stdout)

    # --- down --------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove every namespace, link, bridge, process and file the state file lists; idempotent."""
        _require_root()
        with self._locked():
            self._down()
            self._remove_lock_file()

    def _remove_lock_file(self) -> None:
        """Last, still holding it (a rebuild inside up() keeps the lock file, and so the dir)."""
        (self.state_dir / LOCK_FILE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()  # holds files that are not ours: leave them

    def _down(self) -> None:
        state = self._load_state() or {}
        same_boot = state.get("boot_id") == netns.boot_id()
        if state and not same_boot:
            # After a reboot every process, namespace and link of this lab is gone already, and
            # names or PIDs in the state file may now belong to someone else: only files remain.
            log.warning("lab %s: state is from an earlier boot; removing its files only", self.prefix)
        # Everything running in the lab's namespaces now: down() returns only once all of it is gone
        # (a killed node's processes are torn down by the kernel, which takes a while under load).
        seen = {pid for ns in (state.get("netns", []) if same_boot else []) for pid in netns.netns_pids(ns)}
        for name, node in state.get("nodes", {}).items():
            try:
                _node.stop_node(node.get("holder"), Path(node["node_dir"]))
            except Exception as exc:  # keep removing the rest
                log.warning("node %s: stop failed: %s", name, exc)
        for service, record in state.get("services", {}).items():
            if not netns.record_matches(record):
                continue  # gone already, or its PID now belongs to another process
            (_pkgrepo.stop if service == "pkgrepo" else _smtp.stop)(int(record["pid"]))
        namespaces = sorted(state.get("netns", [])) if same_boot else []
        # Whatever still runs in a namespace this lab created (an `nsenter` mid-way) is the lab's.
        netns.kill_pids([pid for ns in namespaces for pid in netns.netns_pids(ns)])
        _wait_all_gone(seen, self.prefix)
        if same_boot:
            for link in sorted(state.get("root_links", [])):
                netns.delete_root_link(link)
            for bridge in sorted(state.get("bridges", [])):
                netns.delete_root_link(bridge)
        for ns in namespaces:
            netns.delete_netns(ns)
        self._remove_files()
        self._state = {}
        log.info("lab %s removed", self.prefix)

    def _remove_files(self) -> None:
        if not self.state_dir.exists():
            return
        for mnt in netns.mounts_under(self.state_dir):
            # Node mounts live in the holders' namespaces; this only catches mounts leaked into ours,
            # which rmtree would otherwise descend into.
            netns.run(["umount", "-l", mnt], what=f"lab {self.prefix}: unmount", check=False)
        for name in ("nodes", "repo", "mail"):
            shutil.rmtree(self.state_dir / name, ignore_errors=True)
        for leftover in self.state_dir.glob("access-*"):  # ansible-runner's dir of a crashed `up`
            shutil.rmtree(leftover, ignore_errors=True)
        for name in (STATE_FILE, KNOWN_HOSTS, "pkgrepo.log", "mail.smtpd.log", STATE_FILE.replace(".json", ".tmp")):
            (self.state_dir / name).unlink(missing_ok=True)


def _wait_all_gone(pids: set[int], prefix: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if netns.pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if netns.pid_alive(p)]
    if alive:
        log.warning("lab %s: processes still exiting after %.0f s: %s", prefix, timeout, alive)


def _ssh_banner(ip: str, timeout: float = 2.0) -> str:
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(256).decode("ascii", errors="replace").strip()
    except OSError:
        return ""


def parse_lldp_json0(text: str) -> list[tuple[str, str, str]]:
    """Parse `lldpcli -f json0 show neighbors` (json0: every level is a list, whatever the count)."""
    data = json.loads(text or "{}")
    result: list[tuple[str, str, str]] = []
    for lldp in data.get("lldp", []):
        for iface in lldp.get("interface", []):
            chassis = (iface.get("chassis") or [{}])[0]
            names = chassis.get("name") or [{}]
            port = (iface.get("port") or [{}])[0]
            port_id = (port.get("id") or [{}])[0]
            result.append((iface.get("name", ""), names[0].get("value", ""), port_id.get("value", "")))
    return sorted(result)
