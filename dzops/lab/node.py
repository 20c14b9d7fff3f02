"""One lab node of any kind: a stock Debian box made of namespaces and a private root filesystem.

Inside its network namespace, `unshare` gives each node its own mount, UTS, IPC and PID namespaces. An
overlayfs (the cached base image as read-only lower layer, a per-node upper layer under the lab's
state dir) becomes its root by `pivot_root`, and the machine's root is then detached: nothing of
the machine's files is reachable from inside, not even by root. The node's /proc/sys is read-only
(its network sysctls are set before), and every process entering the node does so with a reduced
capability bounding set (`netns.DROPPED_CAPS`: no mounts, no device nodes, no modules, ...), so
root inside cannot mount the machine's disk or change kernel-wide settings either.

PID 1 of the node (the holder) is a small shell loop that reaps orphans; its PID as seen from the
machine, recorded with its start time and the boot id, is the handle for everything else:
`netns.nsenter_argv` enters it, killing it makes the kernel kill every process of the node and drop
its mounts.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from dzops.exceptions import LabError
from dzops.lab import netns

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
INIT_TAG = "dz-init"  # $0 of PID 1 inside every node

# Runs with the machine's root still visible, already inside the node's new namespaces (as PID 1
# of the new PID namespace). Everything it mounts lives in the node's private mount namespace.
HOLDER_SCRIPT = r"""
set -eu
merged=$1 lower=$2 upper=$3 work=$4 name=$5 forward=$6 init=$7 bounding=$8
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
# Open vSwitch's user-space datapath (switches, APs) makes each bridge's own port a tap device.
mkdir -m 0755 "$merged/dev/net"
mknod -m 666 "$merged/dev/net/tun" c 10 200
mkdir -m 0755 "$merged/dev/pts"
# A devpts instance of its own: ptys of this node are invisible to the others.
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$merged/dev/pts"
ln -s pts/ptmx "$merged/dev/ptmx"
mkdir -m 1777 "$merged/dev/shm"
# POSIX shared memory, as a real box has it (PostgreSQL's parallel queries take their segments here).
mount -t tmpfs -o nosuid,nodev,mode=1777,size=128m tmpfs "$merged/dev/shm"
ln -s /proc/self/fd "$merged/dev/fd"
ln -s /proc/self/fd/0 "$merged/dev/stdin"
ln -s /proc/self/fd/1 "$merged/dev/stdout"
ln -s /proc/self/fd/2 "$merged/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=0755,size=32m tmpfs "$merged/run"
mkdir -m 1777 "$merged/run/lock"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m tmpfs "$merged/tmp"
echo "$name" > /proc/sys/kernel/hostname
ip link set lo up
echo "$forward" > /proc/sys/net/ipv4/ip_forward
# 20 by default: an OSPF hub with more interfaces would silently stay in Init on the rest.
echo 4096 > /proc/sys/net/ipv4/igmp_max_memberships
# Kernel-wide knobs (core_pattern, sysrq, ...) would reach the machine: read-only inside.
mount --bind "$merged/proc/sys" "$merged/proc/sys"
mount -o remount,bind,ro "$merged/proc/sys"
# Network knobs are per namespace and a real router sets them (zebra: ipv6 forwarding): writable.
mount --bind "$merged/proc/sys/net" "$merged/proc/sys/net"
mount -o remount,bind,rw "$merged/proc/sys/net"
if [ -e "$merged/proc/sysrq-trigger" ]; then
    mount --bind "$merged/proc/sysrq-trigger" "$merged/proc/sysrq-trigger"
    mount -o remount,bind,ro "$merged/proc/sysrq-trigger"
fi
# The overlay becomes / and the machine's root is detached: from here on only the node's files exist.
cd "$merged"
pivot_root . .
umount -l .
cd /
echo ready
exec setpriv --bounding-set "$bounding" -- /bin/sh -c "$init" "$INIT_TAG" </dev/null >/dev/null 2>&1
""".replace("$INIT_TAG", INIT_TAG)

# PID 1 of the node. A PID-namespace init must reap orphans (daemons, sshd sessions): dash's `wait`
# reaps any exited child. TERM ends it, which makes the kernel kill everything else in the node.
INIT_SCRIPT = "trap 'exit 0' TERM INT HUP; while :; do sleep 2147483647 & wait $!; done"

# Popen objects of the `unshare` parents this process started, reaped by stop_node.
_parents: dict[int, subprocess.Popen[bytes]] = {}


def overlay_dirs(node_dir: Path) -> tuple[Path, Path, Path]:
    """(upper, work, merged) of a node's root overlay."""
    return node_dir / "upper", node_dir / "work", node_dir / "root"


def start_node(name: str, ns: str, node_dir: Path, base_image: Path, forward: bool) -> dict[str, Any]:
    """Start PID 1 of node `name` in network namespace `ns`; returns its process record.

    The caller has written the node's own files into the overlay's upper dir beforehand.
    """
    if not (base_image / "usr" / "sbin" / "sshd").exists():
        raise LabError(f"{base_image} is not a lab base image (no sshd); run ensure_base_image first")
    upper, work, merged = overlay_dirs(node_dir)
    for directory in (upper, work, merged):
        directory.mkdir(parents=True, exist_ok=True)
    upper.chmod(0o755)  # the upper dir's root is the node's /
    bounding = ",".join(f"-{c}" for c in netns.DROPPED_CAPS)
    argv = [
        "ip", "netns", "exec", ns,
        "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--propagation", "private",
        "/bin/sh", "-c", HOLDER_SCRIPT, "dz-holder",
        str(merged), str(base_image), str(upper), str(work), name, "1" if forward else "0", INIT_SCRIPT, bounding,
    ]  # fmt: skip
    with open(node_dir / "holder.log", "ab") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, cwd="/",
            env={"PATH": netns.NODE_PATH, "LANG": "C.UTF-8"},
            start_new_session=True,  # the node outlives `dzops lab up`
        )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    children = _children(proc.pid)
    if line.strip() != b"ready" or len(children) != 1:
        for child in children:
            _kill(child)
        proc.kill()
        proc.wait(5)
        raise LabError(f"{name}: node failed to start: {_tail(node_dir / 'holder.log') or 'timeout'}")
    _parents[children[0]] = proc
    return netns.proc_record(children[0])


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_node(record: dict[str, Any] | None, node_dir: Path) -> None:
    """Kill the node (PID 1 dies -> the kernel kills the rest and drops its mounts), remove its dirs.

    A record that no longer matches a live process (other boot, PID reused) is never signalled.
    """
    if netns.record_matches(record):
        pid = int(record["pid"])  # type: ignore[index]
        _kill(pid)
        _wait_gone(pid)
        parent = _parents.pop(pid, None)
        if parent is not None:
            try:
                parent.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                parent.kill()
                parent.wait()
    elif record:
        log.info("node in %s: holder %s already gone, nothing to signal", node_dir, record.get("pid"))
    for directory in overlay_dirs(node_dir):
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LabError(f"cannot remove {directory}: {exc}") from exc


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not netns.pid_alive(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return
        time.sleep(0.01)
    raise LabError(f"node holder {pid} did not die within {_STOP_TIMEOUT_S:.0f} s")


def inside(holder_pid: int, path: str) -> Path:
    """A path of the node as the machine reaches it (for reading pid files only)."""
    return Path(f"/proc/{holder_pid}/root{path}")


def node_pid_alive(holder_pid: int, nspid: int | None) -> bool:
    """Whether PID `nspid` of the node's own PID namespace runs (seen through the node's /proc)."""
    if not nspid:
        return False
    try:
        stat = inside(holder_pid, f"/proc/{nspid}/stat").read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
        return False
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] not in ("Z", "X")


def read_node_pidfile(holder_pid: int, pidfile: str) -> int | None:
    return netns.read_pidfile(inside(holder_pid, pidfile))
