"""`dzops doctor` names what is missing and the command that fixes it, and exits LAB_ERROR (9).

A program is hidden by giving doctor a PATH made of symlinks to every program of this machine's
PATH except that one, so the check meets exactly what a machine without its package would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dzops.cli.doctor import COMMAND_PROGRAMS, LAB_FILES, LAB_PROGRAMS
from dzops.cli.exit_codes import ExitCode

DZOPS = Path(sys.executable).parent / "dzops"  # the venv's own console script
PREFIX = os.environ.get("DZOPS_TEST_LAB_PREFIX", "dzt")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def path_without(hidden: str, tmp_path: Path) -> str:
    """A PATH holding a symlink to every program on the system PATH but `hidden`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in SYSTEM_PATH.split(":"):
        for entry in sorted(Path(directory).glob("*")) if Path(directory).is_dir() else ():
            target = bin_dir / entry.name
            if entry.name != hidden and not target.exists() and os.access(entry, os.X_OK):
                target.symlink_to(entry)
    return str(bin_dir)


def doctor(*args: str, path: str = SYSTEM_PATH) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    return subprocess.run([str(DZOPS), "doctor", *args], env=env, capture_output=True, text=True, timeout=120)


def _leftover_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    return [name for name in listed if name.startswith(f"{PREFIX}-doctor-")]


@pytest.mark.parametrize(("args", "hidden", "fix"), [
    ([], "dot", "apt-get install graphviz"),
    ([], "crontab", "apt-get install cron"),
    (["--lab", "--prefix", PREFIX], "apt-ftparchive", "apt-get install apt-utils"),
    (["--lab", "--prefix", PREFIX], "ovs-vswitchd", "apt-get install openvswitch-switch"),
    (["--lab", "--prefix", PREFIX], "debootstrap", "apt-get install debootstrap"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_program_missing_from_path_is_named_with_its_fix(args: list[str], hidden: str, fix: str,
                                                          tmp_path: Path) -> None:
    proc = doctor(*args, path=path_without(hidden, tmp_path))
    assert proc.returncode == ExitCode.LAB_ERROR, proc.stdout + proc.stderr
    missing = [line for line in proc.stdout.splitlines() if line.startswith("MISSING")]
    assert len(missing) == 1 and missing[0].startswith(f"MISSING  {hidden}:") and f"fix: {fix}" in missing[0], missing
    assert "1 missing" in proc.stderr


def test_this_machine_has_everything_and_the_kernel_probe_leaves_nothing_behind() -> None:
    """scripts/install.sh installed every package: doctor --lab passes here, as test.sh requires."""
    proc = doctor("--lab", "--prefix", PREFIX, "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == ExitCode.OK and report["ok"], [c for c in report["checks"] if c["status"] == "missing"]
    names = {c["check"] for c in report["checks"]}
    assert {row[0] for row in COMMAND_PROGRAMS + LAB_PROGRAMS} <= names
    assert {"python", "ansible-core", "dzops files", "frr-reload.py", "kernel: tbf"} <= names
    vlan = next(c for c in report["checks"] if c["check"] == "kernel: VLAN-aware bridges")
    assert vlan["status"] == "info" and vlan["detail"].split()[0] in ("yes", "no")
    assert _leftover_namespaces() == []


def test_without_lab_no_lab_program_or_kernel_is_checked() -> None:
    proc = doctor("--json")
    names = {c["check"] for c in json.loads(proc.stdout)["checks"]}
    assert proc.returncode == ExitCode.OK
    assert not names & {row[0] for row in LAB_PROGRAMS} and not any(n.startswith("kernel") for n in names)


def _installed_by_install_sh() -> set[str]:
    text = (Path(__file__).resolve().parents[2] / "scripts" / "install.sh").read_text()
    start = text.index("apt_packages=(")
    block = text[start:text.index("\n)\n", start)]  # the array closes on a line of its own
    return {word for line in block.splitlines()[1:] for word in line.split("#")[0].split()}


def _essential(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Essential}", package], capture_output=True, text=True)
    return proc.stdout.strip() == "yes"


@pytest.mark.parametrize("package", sorted({row[1] for row in COMMAND_PROGRAMS + LAB_PROGRAMS + LAB_FILES}))
def test_every_package_doctor_asks_for_is_installed_by_install_sh(package: str) -> None:
    """A fix doctor prints is one scripts/install.sh already applies on a fresh machine."""
    assert package in _installed_by_install_sh() or _essential(package), package
