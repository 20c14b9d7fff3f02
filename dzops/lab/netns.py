"""Small Linux primitives the lab builder is made of: namespaces, veths, bridges, shaping, nsenter.

Every function runs one external command with an argv list and raises `LabError` naming the
command (and the node, when the caller passes `what`) on failure. Nothing here knows about a
lab spec: `dzops.lab.builder` decides names and order.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dzops.exceptions import LabError

log = logging.getLogger(__name__)

IFNAMSIZ = 15  # longest Linux interface name
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETNS_DIR = Path("/run/netns")


def run(
    argv: Sequence[str],
    *,
    what: str = "",
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 60,
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture text output; on failure raise LabError with the command and its stderr."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{what + ': ' if what else ''}{' '.join(argv)} failed: {exc}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise LabError(
            f"{what + ': ' if what else ''}{' '.join(argv)} exited {proc.returncode}: {' | '.join(detail)}"
        )
    return proc


def ip_batch(commands: Iterable[str], *, netns: str | None = None, what: str = "") -> None:
    """Run many `ip` commands in one process: a lab has hundreds of links and fork+exec adds up."""
    lines = [c for c in commands if c]
    if not lines:
        return
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    run(argv, what=what, input="\n".join(lines) + "\n")


# --- network namespaces -------------------------------------------------------------------------


def list_netns() -> list[str]:
    """Names of all named network namespaces (the files `ip netns add` creates)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def add_netns(name: str) -> None:
    run(["ip", "netns", "add", name], what=f"netns {name}")


def delete_netns(name: str) -> None:
    if name in list_netns():
        run(["ip", "netns", "delete", name], what=f"netns {name}")


def netns_pids(name: str) -> list[int]:
    """PIDs of every process whose network namespace is `name` (empty if it does not exist)."""
    if name not in list_netns():
        return []
    out = run(["ip", "netns", "pids", name], what=f"netns {name}", check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit()]


# --- links --------------------------------------------------------------------------------------


def check_ifname(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or ":" in name or any(c.isspace() for c in name):
        raise LabError(f"invalid interface name {name!r} (1-{IFNAMSIZ} chars, no '/', ':' or spaces)")


def veth_cmd(a_name: str, a_netns: str | None, b_name: str, b_netns: str | None) -> str:
    """`ip` batch line creating a veth pair with each end born in its namespace under its final name.

    Creating the ends directly inside their namespaces (instead of a temporary root-side name that
    is then moved and renamed) means no name in the root namespace can ever clash or be left over.
    """
    check_ifname(a_name)
    check_ifname(b_name)
    a_ns = f" netns {a_netns}" if a_netns else ""
    b_ns = f" netns {b_netns}" if b_netns else ""
    return f"link add {a_name}{a_ns} type veth peer name {b_name}{b_ns}"


def root_links() -> list[str]:
    """Interface names in the root network namespace."""
    return sorted(os.listdir("/sys/class/net"))


def root_addresses() -> list[tuple[str, str]]:
    """(interface, IPv4 address) pairs in the root network namespace."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [(link["ifname"], info["local"]) for link in json.loads(out or "[]") for info in link.get("addr_info", [])]


def delete_root_link(name: str) -> None:
    if os.path.exists(f"/sys/class/net/{name}"):
        run(["ip", "link", "delete", name], what=f"link {name}", check=False)


def add_bridge_cmds(name: str, *, vlan_filtering: bool = False) -> list[str]:
    check_ifname(name)
    # Only mention vlan_filtering when wanted: kernels without VLAN-aware bridges reject even "0".
    return [
        f"link add {name} type bridge{' vlan_filtering 1' if vlan_filtering else ''}",
        f"link set {name} up",
    ]


# ethtool's ETHTOOL_STXCSUM through SIOCETHTOOL: the lab machine need not have ethtool installed.
_TX_CHECKSUM_OFF = r"""
import ctypes, fcntl, socket, struct, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for name in sys.argv[1:]:
    value = ctypes.create_string_buffer(struct.pack("II", 0x17, 0), 8)  # ETHTOOL_STXCSUM, off
    fcntl.ioctl(sock, 0x8946, struct.pack("16sP", name.encode(), ctypes.addressof(value)))
"""


def tx_checksum_off(netns: str, ifnames: Sequence[str], *, what: str = "") -> None:
    """Turn off transmit checksum offload on veth ends that meet an Open vSwitch user-space bridge.

    A veth hands its peer packets whose TCP/UDP checksum is left for the hardware to fill in; the
    kernel does that on delivery, but OVS' netdev datapath reads them from a packet socket and sends
    them on as they are, so TCP across a lab switch fails while ping works. Real NICs compute it.
    """
    if ifnames:
        import sys

        run(["ip", "netns", "exec", netns, sys.executable, "-c", _TX_CHECKSUM_OFF, *ifnames],
            what=what or f"{netns}: tx checksum off")


def tbf(netns: str, ifname: str, kbps: int, *, what: str = "") -> None:
    """Shape egress of ifname to kbps (kbit/s, as dzops.bandwidth reads the inventory) with a token
    bucket (netem is not available on this kernel)."""
    rate_bytes = kbps * 1_000 // 8
    burst = max(rate_bytes // 250, 16_000)  # >= one jiffy of traffic at HZ=250, or tbf drops
    run(
        [
            "tc",
            "-n",
            netns,
            "qdisc",
            "replace",
            "dev",
            ifname,
            "root",
            "tbf",
            "rate",
            f"{kbps}kbit",
            "burst",
            str(burst),
            "latency",
            "50ms",
        ],
        what=what or f"tbf {netns}/{ifname}",
    )


# --- processes inside a node --------------------------------------------------------------------


# Capabilities no process inside a node keeps (bounding set), whoever it runs as: loading modules,
# raw I/O ports, device nodes (a copy of the machine's disk), mounts (devtmpfs, procfs elsewhere),
# tracing, the clock, the kernel log and reboot act on the whole machine, not on the node.
DROPPED_CAPS = ("sys_module", "sys_rawio", "mknod", "sys_admin", "sys_ptrace", "sys_time", "syslog",
                "sys_boot", "dac_read_search", "linux_immutable", "mac_admin", "mac_override",
                "wake_alarm", "block_suspend", "bpf", "perfmon", "sys_pacct", "checkpoint_restore")


def confined_argv(argv: Sequence[str], keep: Sequence[str] = ()) -> list[str]:
    """argv run with the node's reduced capability bounding set and a clean environment.

    `keep`: capabilities this one program still needs (FRR's zebra and ospfd refuse to start
    without sys_admin); logins never come from such a program. The environment is reset so that
    nothing of the caller (virtualenv PATH, PYTHONPATH) leaks in.
    """
    dropped = [c for c in DROPPED_CAPS if c not in keep]
    return [
        "/usr/bin/setpriv", "--bounding-set", ",".join(f"-{c}" for c in dropped), "--",
        "/usr/bin/env", "-i", f"PATH={NODE_PATH}", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
        "USER=root", "LOGNAME=root", *argv,
    ]  # fmt: skip


def nsenter_argv(holder_pid: int, argv: Sequence[str], keep: Sequence[str] = ()) -> list[str]:
    """argv running `argv` as root in the node whose PID 1 is holder_pid (namespaces, root, cwd).

    Callers check the holder's record first (`checked_pid`); the node's own setpriv and env run
    inside its root, so the command sees only the node's files.
    """
    return ["nsenter", "-t", str(holder_pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--",
            *confined_argv(argv, keep)]


def pid_alive(pid: int | None) -> bool:
    """True if pid exists and is not a zombie (our PID 1 may not reap orphans promptly)."""
    if not pid or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # The state letter follows the command name, which is in parentheses and may contain spaces.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] not in ("Z", "X")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def kill_pids(pids: Iterable[int], *, timeout: float = 2.0) -> None:
    """SIGTERM the pids, then SIGKILL whatever is still alive after timeout; reap our children."""
    alive = [p for p in set(pids) if p > 1 and p != os.getpid() and pid_alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        # After SIGKILL only the kernel's own teardown is left; on a loaded 2-core machine an exit
        # through overlayfs and namespace cleanup has been seen to take several seconds.
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 30.0)
        while alive and time.monotonic() < deadline:
            for pid in alive:
                _reap(pid)
            alive = [p for p in alive if pid_alive(p)]
            if alive:
                time.sleep(0.02)
        if not alive:
            return
    if alive:
        log.warning("processes survived SIGKILL: %s", alive)


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError, ProcessLookupError):
        return None
    return int(text) if text.isdigit() else None


def mounts_under(path: Path) -> list[str]:
    """Mount points in our mount namespace at or below path, deepest first."""
    prefix = str(path).rstrip("/")
    found: list[str] = []
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            mnt = line.split()[1].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return sorted(found, key=len, reverse=True)


# --- process records: a PID is only trusted with its start time and the boot it belongs to --------

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    return BOOT_ID_PATH.read_text().strip()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot); None if the process is gone.

    The command name (field 2) may hold spaces and parentheses, so fields are counted after the last ')'.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])  # fields[0] is field 3 (state), so field 22 is fields[19]


def proc_record(pid: int) -> dict[str, Any]:
    """What the state file keeps of a process we started: enough to never mistake another for it."""
    started = start_time(pid)
    if started is None:
        raise LabError(f"process {pid} exited before it could be recorded")
    return {"pid": pid, "start": started, "boot": boot_id()}


def record_matches(record: dict[str, Any] | None) -> bool:
    """True when the recorded process still runs: same boot, same PID, same start time, not a zombie."""
    if not record or not record.get("pid"):
        return False
    if record.get("boot") != boot_id() or start_time(record["pid"]) != record.get("start"):
        return False
    return pid_alive(record["pid"])


def checked_pid(record: dict[str, Any] | None, what: str) -> int:
    """The PID of a recorded process, or LabError when it is not that process any more.

    Used before every signal and every nsenter: after a reboot or a crash the number may belong to
    an unrelated process (entering it could act on the machine's own interfaces).
    """
    if record_matches(record):
        return int(record["pid"])  # type: ignore[index]
    pid = (record or {}).get("pid")
    raise LabError(f"{what}: recorded process {pid} is gone or is another process now "
                   "(start time or boot id differ); refusing to signal or enter it")
