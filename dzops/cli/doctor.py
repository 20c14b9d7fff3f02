"""`dzops doctor [--lab]`: is this machine ready for dzops (and its lab)? One line per check.

Each check is OK, MISSING with the command that fixes it (`apt-get install frr-pythontools`), or
INFO for what is worth knowing but needs no fix (the kernel's VLAN support). Programs are looked up
the way dzops runs them: on PATH by name, or at the fixed path the lab starts them from. Kernel
features are tried for real, as root, in a throwaway namespace named with the lab prefix, removed
before doctor returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from dzops.cli.contract import contract
from dzops.cli.exit_codes import ExitCode
from dzops.cli.output import JsonOption, Settings, emit_json, emit_text, say

PYTHON = (3, 11)
ANSIBLE_CORE = ((2, 19), (2, 20))  # pyproject: ansible-core>=2.19,<2.20

# (program, Debian package, what needs it): found on PATH, as dzops' subprocess calls find them.
COMMAND_PROGRAMS = (
    ("git", "git", "backup, drift"),
    ("dot", "graphviz", "diagram, docs"),
    ("crontab", "cron", "schedule"),
    ("flock", "util-linux", "schedule"),
)
LAB_PROGRAMS = (
    ("ip", "iproute2", "lab"),
    ("tc", "iproute2", "lab: WAN bandwidth"),
    ("bridge", "iproute2", "lab"),
    ("unshare", "util-linux", "lab: servers"),
    ("nsenter", "util-linux", "lab"),
    ("setpriv", "util-linux", "lab"),
    ("sysctl", "procps", "lab"),
    ("sudo", "sudo", "lab"),
    ("openssl", "openssl", "lab: password hashes"),
    ("debootstrap", "debootstrap", "lab: servers' base image"),
    ("dpkg-deb", "dpkg", "lab: package repository"),
    ("apt-ftparchive", "apt-utils", "lab: package repository"),
    ("vtysh", "frr", "lab: routers"),
    ("lldpcli", "lldpd", "lab"),
    ("hostapd_cli", "hostapd", "lab: access points"),
    ("ovs-vswitchd", "openvswitch-switch", "lab: VLANs in user space"),
    ("ovsdb-server", "openvswitch-switch", "lab: VLANs in user space"),
    ("ovs-vsctl", "openvswitch-switch", "lab: VLANs in user space"),
)
# Started by absolute path inside the lab's namespaces.
LAB_FILES = (
    ("/usr/lib/frr/zebra", "frr", "lab: routers"),
    ("/usr/lib/frr/ospfd", "frr", "lab: routers"),
    ("/usr/lib/frr/staticd", "frr", "lab: routers"),
    ("/usr/lib/frr/watchfrr", "frr", "lab: routers"),
    ("/usr/lib/frr/frr-reload.py", "frr-pythontools", "lab, provision-wan: config replace"),
    ("/usr/sbin/sshd", "openssh-server", "lab"),
    ("/usr/sbin/lldpd", "lldpd", "lab"),
    ("/usr/sbin/hostapd", "hostapd", "lab: access points"),
)


@dataclass
class Check:
    check: str
    status: str  # ok, missing, info
    detail: str = ""
    fix: str | None = None
    needed_by: str | None = None

    def line(self) -> str:
        """One line of the report.

        >>> Check("frr-reload.py", "missing", "/usr/lib/frr/frr-reload.py", "apt-get install frr-pythontools",
        ...       "lab").line()
        'MISSING  frr-reload.py: /usr/lib/frr/frr-reload.py not found; fix: apt-get install frr-pythontools  [lab]'
        >>> Check("python", "ok", "3.11.2").line()
        'OK       python: 3.11.2'
        """
        who = f"  [{self.needed_by}]" if self.needed_by else ""
        if self.status == "missing":
            return f"MISSING  {self.check}: {self.detail} not found; fix: {self.fix}{who}"
        return f"{self.status.upper():<8} {self.check}: {self.detail}{who}"


def program(name: str, package: str, needed_by: str) -> Check:
    found = shutil.which(name)
    if found:
        return Check(name, "ok", found, needed_by=needed_by)
    return Check(name, "missing", "on PATH", f"apt-get install {package}", needed_by)


def file(path: str, package: str, needed_by: str) -> Check:
    if os.access(path, os.X_OK):
        return Check(Path(path).name, "ok", path, needed_by=needed_by)
    return Check(Path(path).name, "missing", path, f"apt-get install {package}", needed_by)


def python_checks() -> list[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= PYTHON:
        return [Check("python", "ok", f"{version} ({sys.executable})")]
    return [Check("python", "missing", f"Python {'.'.join(map(str, PYTHON))} (have {version})",
                  "apt-get install python3 (Debian 12 ships 3.11), then scripts/install.sh")]


def dzops_files() -> list[Check]:
    from dzops import resources

    root = resources.data_root()
    missing = resources.missing()
    if not missing:
        return [Check("dzops files", "ok", f"{', '.join(resources.SHIPPED)} in {root}")]
    return [Check(f"dzops files: {name}", "missing", str(root / name),
                  "reinstall dzops (scripts/install.sh in a checkout, or pip install a wheel built from one)")
            for name in missing]


def ansible_checks() -> list[Check]:
    from importlib import metadata

    fix = f"{Path(sys.executable).parent / 'pip'} install 'ansible-core>={ANSIBLE_CORE[0][0]}.{ANSIBLE_CORE[0][1]},<2.20'"
    try:
        from ansible.release import __version__
    except ImportError:
        return [Check("ansible-core", "missing", "the ansible package", fix)]
    parts = tuple(int(p) for p in __version__.split(".")[:2])
    checks = [Check("ansible-core", "ok" if ANSIBLE_CORE[0] <= parts < ANSIBLE_CORE[1] else "missing",
                    __version__ if ANSIBLE_CORE[0] <= parts < ANSIBLE_CORE[1] else f"2.19.x (have {__version__})",
                    fix)]
    try:
        checks.append(Check("ansible-runner", "ok", metadata.version("ansible-runner"), needed_by="patch, user"))
    except metadata.PackageNotFoundError:
        checks.append(Check("ansible-runner", "missing", "the ansible-runner package",
                            f"{Path(sys.executable).parent / 'pip'} install ansible-runner", "patch, user"))
    # ansible-runner starts the ansible-playbook beside this Python (see dzops.execute.ansible).
    playbook = Path(sys.executable).parent / "ansible-playbook"
    checks.append(Check("ansible-playbook", "ok", str(playbook), needed_by="patch, user") if playbook.is_file() else
                  Check("ansible-playbook", "missing", str(playbook), fix, "patch, user"))
    return checks


def kernel_checks(prefix: str) -> list[Check]:
    """netns, veth and tbf (needed), VLAN-aware bridges and 802.1Q (informative), in a throwaway namespace."""
    if os.geteuid() != 0:
        return [Check("root", "missing", "root privileges", "run `dzops doctor --lab` (and the lab) as root",
                      "lab")]
    ns = f"{prefix}-doctor-{os.getpid()}"

    def ip(*args: str) -> bool:
        return subprocess.run(["ip", *args], capture_output=True, timeout=30).returncode == 0

    if shutil.which("ip") is None:
        return [Check("kernel", "missing", "ip (to try namespaces)", "apt-get install iproute2", "lab")]
    if not ip("netns", "add", ns):
        return [Check("kernel: network namespaces", "missing", "ip netns add", "a kernel with network namespaces",
                      "lab")]
    try:
        veth = ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        tbf = veth and ip("-n", ns, "link", "set", "v0", "up") and subprocess.run(
            ["tc", "-n", ns, "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
             "latency", "400ms"], capture_output=True, timeout=30).returncode == 0 if shutil.which("tc") else False
        vlan_bridge = ip("-n", ns, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
        dot1q = veth and ip("-n", ns, "link", "add", "link", "v0", "name", "v0.10", "type", "vlan", "id", "10")
    finally:
        ip("netns", "delete", ns)
    return [
        Check("kernel: network namespaces", "ok", "yes", needed_by="lab"),
        Check("kernel: veth", "ok", "yes", needed_by="lab") if veth else
        Check("kernel: veth", "missing", "veth pairs", "a kernel with veth (CONFIG_VETH)", "lab"),
        Check("kernel: tbf", "ok", "yes", needed_by="lab") if tbf else
        Check("kernel: tbf", "missing", "the tbf qdisc", "a kernel with sch_tbf (WAN bandwidth)", "lab"),
        Check("kernel: VLAN-aware bridges", "info",
              "yes" if vlan_bridge else "no (switch VLANs go through Open vSwitch in user space)"),
        Check("kernel: 802.1Q VLAN interfaces", "info", "yes" if dot1q else "no"),
    ]


def run_checks(lab: bool, prefix: str) -> list[Check]:
    checks = python_checks() + dzops_files() + ansible_checks()
    checks += [program(*row) for row in COMMAND_PROGRAMS]
    if lab:
        checks += [program(*row) for row in LAB_PROGRAMS] + [file(*row) for row in LAB_FILES]
        checks += kernel_checks(prefix)
    return checks


@contract
def doctor(
    ctx: typer.Context,
    lab: Annotated[bool, typer.Option("--lab", help="Also what the virtual lab needs: daemons, kernel features (root).")] = False,
    prefix: Annotated[str, typer.Option(
        "--prefix", envvar="DZOPS_LAB_PREFIX", metavar="PREFIX",
        help="Lab name prefix carried by the throwaway namespace of the kernel checks.")] = "dz",
    json_output: JsonOption = False,
) -> None:
    """Check Python, dzops' own files, ansible-core and the programs each command needs (exit 9 if any is missing)."""
    settings: Settings = ctx.obj
    checks = run_checks(lab, prefix)
    missing = [c for c in checks if c.status == "missing"]
    if settings.json:
        emit_json({"ok": not missing, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            emit_text(c.line())
    if missing:
        say(f"dzops doctor: {len(missing)} missing (see the fixes above)")
        raise typer.Exit(ExitCode.LAB_ERROR)
    say("dzops doctor: everything dzops" + (" and its lab need" if lab else " needs") + " is here")
