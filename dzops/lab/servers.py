"""Linux server hosts of the lab: a private root filesystem, PID tree and hostname per server.

A server is a process tree, not a VM: inside its network namespace, `unshare` gives it its own
mount, UTS and PID namespaces; an overlayfs (shared read-only base image + per-host upper layer)
is its root, so files (packages, users, keys) are private to each host at about 2 MB of RAM each.
PID 1 in there is a tiny shell loop that reaps orphans; sshd and lldpd run beside it.

The holder PID returned by `start_server` (PID 1 of the server, seen from the root namespace)
is the handle for everything else: `server_exec_argv` enters its namespaces and root,
`stop_server` kills it, and the kernel then kills the rest and drops its mounts.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from dzops.exceptions import LabError
from dzops.lab.spec import LabNode

log = logging.getLogger(__name__)

LLDPD_SOCKET = "/run/lldpd.socket"  # inside the server; lldpcli's default path too
SSHD_LOG = "/var/log/sshd.log"
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
_INIT_TAG = "dz-init"  # $0 of PID 1, how start_server recognises the chroot is done

# Runs in the root filesystem of the host, already inside the server's new namespaces. Mounts are
# made in the private mount namespace, so they disappear when the last process of the server dies.
_HOLDER_SCRIPT = r"""
set -eu
merged=$1 lower=$2 upper=$3 work=$4 name=$5 init=$6
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount -t proc -o nosuid,nodev,noexec proc "$merged/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$merged/sys"
mount -t tmpfs -o nosuid,mode=0755,size=1m tmpfs "$merged/dev"
mknod -m 666 "$merged/dev/null" c 1 3
mknod -m 666 "$merged/dev/zero" c 1 5
mknod -m 666 "$merged/dev/full" c 1 7
mknod -m 666 "$merged/dev/random" c 1 8
mknod -m 666 "$merged/dev/urandom" c 1 9
mknod -m 666 "$merged/dev/tty" c 5 0
mkdir -m 0755 "$merged/dev/pts"
# A devpts instance of its own: ptys of this server are invisible to the others.
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$merged/dev/pts"
ln -s pts/ptmx "$merged/dev/ptmx"
mkdir -m 1777 "$merged/dev/shm"
ln -s /proc/self/fd "$merged/dev/fd"
ln -s /proc/self/fd/0 "$merged/dev/stdin"
ln -s /proc/self/fd/1 "$merged/dev/stdout"
ln -s /proc/self/fd/2 "$merged/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=0755,size=16m tmpfs "$merged/run"
mkdir -m 1777 "$merged/run/lock"
mkdir -m 0755 "$merged/run/sshd" "$merged/run/lldpd"
echo "$name" > /proc/sys/kernel/hostname
exec chroot "$merged" /bin/sh -c "$init" dz-init
"""

# PID 1 of the server. A PID-namespace init must reap orphans (sshd sessions, daemons started by
# Ansible): dash's `wait` reaps any exited child, not only the job it waits for. TERM ends it,
# which makes the kernel kill everything else in the namespace.
_INIT_SCRIPT = "trap 'exit 0' TERM INT HUP; while :; do sleep 2147483647 & wait $!; done"

# Runs inside the server as root once PID 1 is up; the password arrives on stdin only.
_SETUP_SCRIPT = r"""
set -eu
user=$1; shift
ip link set lo up
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo "$user"
chpasswd
while [ $# -gt 1 ]; do
    ip link set "$1" up
    if [ "$2" != "-" ]; then ip addr replace "$2" dev "$1"; fi
    shift 2
done
/usr/sbin/sshd -t
/usr/sbin/sshd -E /var/log/sshd.log </dev/null >/dev/null 2>&1
/usr/sbin/lldpd -u /run/lldpd.socket </dev/null >/dev/null 2>&1
"""

# Popen objects of the `unshare` parents we started, so stop_server can reap them.
_holders: dict[int, subprocess.Popen[bytes]] = {}


def server_exec_argv(holder_pid: int, argv: list[str]) -> list[str]:
    """argv that runs `argv` as root inside the server (its namespaces, root and cwd).

    The environment is reset: the caller's PATH or PYTHONPATH mean nothing inside the server.
    """
    return [
        "nsenter", "-t", str(holder_pid), "-m", "-u", "-p", "-n", "-r", "-w", "--",
        "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", *argv,
    ]  # fmt: skip


def _overlay_dirs(node_dir: Path) -> tuple[Path, Path, Path]:
    return node_dir / "upper", node_dir / "work", node_dir / "root"


def start_server(
    node: LabNode, netns: str, node_dir: Path, host_key: Path, base_image: Path, repo_url: str
) -> int:
    """Start server `node` inside the existing network namespace `netns`; returns the holder PID.

    Only returns once sshd listens on the node's management address.
    """
    if not (base_image / "usr" / "sbin" / "sshd").exists():
        raise LabError(f"{base_image} is not a lab base image (no sshd); run ensure_base_image first")
    if not host_key.exists() or not host_key.with_suffix(".pub").exists():
        raise LabError(f"host key {host_key} or its .pub is missing for {node.name}")
    upper, work, merged = _overlay_dirs(node_dir)
    for directory in (upper, work, merged):
        directory.mkdir(parents=True, exist_ok=True)
    pid = _spawn_holder(node, netns, node_dir, base_image)
    try:
        _wait_for_init(pid, node.name, node_dir)
        root = Path(f"/proc/{pid}/root")
        _write_config(root, node, host_key, repo_url)
        _run_setup(pid, node)
        _wait_for_sshd(pid, node)
    except BaseException:
        stop_server(pid, node_dir)
        raise
    log.info("server %s up (holder pid %d)", node.name, pid)
    return pid


def _spawn_holder(node: LabNode, netns: str, node_dir: Path, base_image: Path) -> int:
    """Start unshare + the holder script; returns PID 1 of the new PID namespace (global PID)."""
    upper, work, merged = _overlay_dirs(node_dir)
    argv = [
        "ip", "netns", "exec", netns,
        "unshare", "--mount", "--uts", "--pid", "--fork", "--propagation", "private",
        "/bin/sh", "-c", _HOLDER_SCRIPT, "dz-holder",
        str(merged), str(base_image), str(upper), str(work), node.name, _INIT_SCRIPT,
    ]  # fmt: skip
    with open(node_dir / "holder.log", "ab") as out:
        # Own session: the server must outlive the process that started it (`dzops lab up`).
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        children = _children(proc.pid)
        if children:
            _holders[children[0]] = proc
            return children[0]
        if proc.poll() is not None:
            raise LabError(
                f"server {node.name}: holder failed ({proc.returncode}): {_tail(node_dir / 'holder.log')}"
            )
        time.sleep(0.005)
    proc.kill()
    raise LabError(f"server {node.name}: unshare did not fork within {_START_TIMEOUT_S:.0f} s")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _rooted_elsewhere(pid: int) -> bool:
    """Whether the process's root is another filesystem than ours (the server's overlay)."""
    try:
        return os.stat(f"/proc/{pid}/root").st_dev != os.stat("/").st_dev
    except OSError:
        return False


def _wait_for_init(pid: int, name: str, node_dir: Path) -> None:
    """Wait until the holder script has exec'd PID 1 inside the chroot (mounts are then done)."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            raise LabError(
                f"server {name}: holder exited during setup: {_tail(node_dir / 'holder.log')}"
            ) from None
        # Only the /bin/sh that chroot exec'd counts: while `chroot` itself runs, its command line
        # already ends in the tag but its root is still the host's, and writes would land there.
        if args[0] == b"/bin/sh" and args[-2:] == [_INIT_TAG.encode(), b""] and _rooted_elsewhere(pid):
            return
        time.sleep(0.005)
    raise LabError(f"server {name}: holder did not reach its init within {_START_TIMEOUT_S:.0f} s")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _key_type(pub_line: str) -> str:
    """ssh-ed25519 -> ed25519, ecdsa-sha2-nistp256 -> ecdsa, ssh-rsa -> rsa (sshd's file names)."""
    algo = pub_line.split()[0]
    for kind in ("ed25519", "ecdsa", "rsa"):
        if kind in algo:
            return kind
    raise LabError(f"unsupported host key algorithm {algo}")


def _write_config(root: Path, node: LabNode, host_key: Path, repo_url: str) -> None:
    """Write the server's identity and config files through /proc/PID/root (its merged root)."""
    if os.stat(root).st_dev == os.stat("/").st_dev:
        # Never write a server's files into the machine's own /etc.
        raise LabError(f"server {node.name}: {root} is not the server's overlay root; refusing to write")
    _write(root / "etc/hostname", f"{node.name}\n")
    # sudo resolves the hostname; without this line it would wait on unreachable DNS servers.
    _write(
        root / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{node.name}\n::1\tlocalhost ip6-localhost\n"
    )
    _write(root / "etc/resolv.conf", "# dzops lab: no DNS inside the lab\n")
    # The real mirror is unreachable from inside the namespaces: the lab repository is the only source.
    _write(root / "etc/apt/sources.list", f"deb [trusted=yes] {repo_url.rstrip('/')}/ ./\n")
    for extra in (root / "etc/apt/sources.list.d").glob("*"):
        extra.unlink()
    _write(root / "etc/sudoers.d/dzops", "%sudo ALL=(ALL:ALL) ALL\n", 0o440)
    pub = host_key.with_suffix(".pub").read_text()
    kind = _key_type(pub)
    _write(root / f"etc/ssh/ssh_host_{kind}_key", host_key.read_text(), 0o600)
    _write(root / f"etc/ssh/ssh_host_{kind}_key.pub", pub)
    mgmt_ip = node.mgmt_address.split("/")[0]
    # sshd_config Includes sshd_config.d first and the first value wins, so these settings hold.
    _write(
        root / "etc/ssh/sshd_config.d/dzops.conf",
        f"ListenAddress {mgmt_ip}\nHostKey /etc/ssh/ssh_host_{kind}_key\nPasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin no\nUseDNS no\nMaxStartups 100:30:200\n",
    )
    _write(root / "etc/lldpd.d/dzops.conf", "configure lldp portidsubtype ifname\n")


def _run_setup(pid: int, node: LabNode) -> None:
    """Create the login user, set addresses, start sshd and lldpd inside the server."""
    pairs: list[str] = []
    for iface in node.interfaces:
        for address in iface.addresses or ("-",):
            pairs += [iface.name, address]
    argv = server_exec_argv(pid, ["/bin/sh", "-c", _SETUP_SCRIPT, "dz-setup", node.login_user, *pairs])
    secret = f"{node.login_user}:{node.login_password}\n"
    try:
        subprocess.run(
            argv, input=secret, text=True, capture_output=True, check=True, timeout=_START_TIMEOUT_S
        )
    except subprocess.CalledProcessError as exc:
        # stderr of useradd/ip/sshd -t; chpasswd never echoes the password.
        raise LabError(f"server {node.name}: setup failed ({exc.returncode}): {exc.stderr.strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"server {node.name}: setup timed out") from exc


def _listening(pid: int, ip: str, port: int) -> bool:
    """True when a socket in the server's netns listens on ip:port (read from its /proc/net/tcp)."""
    local = f"{socket.htonl(int.from_bytes(socket.inet_aton(ip), 'big')):08X}:{port:04X}"
    wildcard = f"00000000:{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return any(f[1] in (local, wildcard) and f[3] == "0A" for f in (line.split() for line in lines))


def _wait_for_sshd(pid: int, node: LabNode) -> None:
    ip = node.mgmt_address.split("/")[0]
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _listening(pid, ip, 22):
            return
        time.sleep(0.01)
    raise LabError(f"server {node.name}: sshd does not listen on {ip}:22 (see {SSHD_LOG} in the server)")


def stop_server(holder_pid: int, node_dir: Path) -> None:
    """Kill the server (all processes of its PID namespace) and remove its overlay directories.

    Safe to call twice or for a server that already died.
    """
    if _is_holder_of(holder_pid, node_dir):
        try:
            os.kill(holder_pid, signal.SIGKILL)  # PID 1 dies -> the kernel kills the whole namespace
        except ProcessLookupError:
            pass
        _wait_gone(holder_pid)
    proc = _holders.pop(holder_pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _unmount_leftovers(node_dir)
    for directory in _overlay_dirs(node_dir):
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LabError(f"cannot remove {directory}: {exc}") from exc


def _is_holder_of(pid: int, node_dir: Path) -> bool:
    """Guard against killing an unrelated process that reuses a stale PID."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        root = os.readlink(f"/proc/{pid}/root")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if _INIT_TAG.encode() in args[-2:]:
        return True
    # Still in the holder script (start failed half-way): its argv names our overlay.
    return str(_overlay_dirs(node_dir)[2]).encode() in args or root.startswith(str(node_dir))


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)  # only succeeds if it is our child
            except ChildProcessError:
                pass
        time.sleep(0.01)
    raise LabError(f"server holder {pid} did not die within {_STOP_TIMEOUT_S:.0f} s")


def _unmount_leftovers(node_dir: Path) -> None:
    """Mounts live in the server's private namespace; this only catches ones leaked to ours."""
    prefix = str(node_dir.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)
